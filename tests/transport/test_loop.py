"""uvloop selection."""

from __future__ import annotations

import asyncio
import importlib.util

from motanmesh.transport import loop


def test_install_uses_uvloop_when_present() -> None:
    before = asyncio.get_event_loop_policy()
    try:
        installed = loop.install()
        assert installed == (importlib.util.find_spec("uvloop") is not None)
        if installed:
            policy = asyncio.get_event_loop_policy()
            assert type(policy).__module__.startswith("uvloop")
            new = policy.new_event_loop()
            try:
                assert type(new).__module__.startswith("uvloop")
            finally:
                new.close()
        loop.uninstall()
        assert not type(asyncio.get_event_loop_policy()).__module__.startswith("uvloop")
    finally:
        asyncio.set_event_loop_policy(before)
