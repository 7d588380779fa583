"""Event loop selection: uvloop when it is installed, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import importlib


def install() -> bool:
    """Make uvloop the event loop of ``asyncio.run`` and new loops, when it can be imported.

    Returns True when uvloop is now in use, False when the default loop stays (uvloop is
    missing or the platform has none).
    """
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def uninstall() -> None:
    """Go back to asyncio's default event loop policy."""
    asyncio.set_event_loop_policy(None)
