"""Starting a registry again and again until it works, while the agent serves.

A registry whose ``start`` raised (an embedded registry file that is corrupt, a directory, on a
read-only or full disk, or locked by other processes for longer than its busy timeout; an
etcd that refuses the login) does not stop the agent: its registrations and subscriptions are
recorded and answer a clear error (``/registry/status``) until a later ``start`` succeeds and
the registry writes them (each backend re-applies what it recorded). :func:`keep_starting`
tries again after ``delay`` seconds, doubling up to ``max_delay``; it logs each different
error once and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from motanmesh.registry.base import Registry

log = logging.getLogger("motanmesh.registry")

FIRST_DELAY: Final = 1.0
MAX_DELAY: Final = 30.0


async def keep_starting(
    rid: str,
    registry: Registry,
    error: BaseException,
    *,
    delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
) -> None:
    """Call ``registry.start()`` until it returns (``error`` is why the first start failed);
    runs until then or until cancelled."""
    last = str(error)
    attempts = 1
    while True:
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
        attempts += 1
        try:
            await registry.start()
        except Exception as e:
            if str(e) != last:
                last = str(e)
                log.error("registry %s (%s) still does not start: %s", rid, registry.name, e)
            continue
        log.warning("registry %s (%s) started at attempt %d", rid, registry.name, attempts)
        return
