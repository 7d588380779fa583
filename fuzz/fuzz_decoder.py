"""Fuzz target `decoder` (fuzz/targets.py); flags and corpus as for libFuzzer (fuzz/README.md)."""

from common import main

if __name__ == "__main__":
    main("decoder")
