"""Fuzz target `authPolicy` (fuzz/targets.py); flags and corpus as for libFuzzer (README)."""

from common import main

if __name__ == "__main__":
    main("authPolicy")
