"""Discovery at start: provider snapshots on disk, and ``${idc}`` groups.

Snapshots
---------
Every provider list a refer receives (its own group and any merge group a command adds) is
kept in ``snapshot_dir/<group>_<service>`` as the Go agent writes it::

    {"group": "<group>", "path": "<service>",
     "nodes": [{"extInfo": "<provider URL text>", "address": "ip:port"}, ...]}

Files are written off the event loop, atomically (a temporary file renamed over the old one),
at most once per ``interval`` (1 s) per store, and only when their content changed; a provider
list never waits for the disk. Refers whose every registry is ``direct`` keep no snapshot.

Beyond the Go agent, which only writes them, snapshots are read back: when a cluster starts
and its registries are all unreachable, or none delivers a list within ``initial_wait`` (1 s),
the snapshot of its own group becomes its provider list (source :data:`SNAPSHOT_SOURCE`), so an
agent restarted during a registry outage still serves. The first real list replaces it. A
missing or unreadable snapshot is logged and ignored.

``${idc}`` groups
-----------------
With ``-idc NAME``, a refer group containing ``${idc}`` is resolved by trying ``NAME``, its
lower-case and its upper-case form in turn: the first group that has providers in a reachable
registry wins; when no registry answers, the first with a non-empty snapshot; else ``NAME``
itself. The Go agent's fallback without ``-idc`` (pinging every matching group and choosing the
closest) is not implemented: without ``-idc`` the group is used as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from motanmesh.registry.base import Registry, node_url
from motanmesh.registry.direct import DirectRegistry
from motanmesh.url import URL

__all__ = [
    "IDC_PLACEHOLDER",
    "SNAPSHOT_SOURCE",
    "IdcGroups",
    "ReferSnapshot",
    "SnapshotError",
    "SnapshotStore",
    "decode_snapshot",
    "encode_snapshot",
    "registry_reachable",
    "snapshot_file",
]

log = logging.getLogger("motanmesh.registry.snapshot")

#: the source index under which a cluster holds a provider list read from a snapshot
SNAPSHOT_SOURCE: Final = -1
IDC_PLACEHOLDER: Final = "${idc}"
DEFAULT_INTERVAL: Final = 1.0
DEFAULT_INITIAL_WAIT: Final = 1.0
#: how long one ``discover`` may take while resolving an ``${idc}`` group
DISCOVER_TIMEOUT: Final = 2.0


class SnapshotError(ValueError):
    """A snapshot file's content is not a snapshot."""


# ---------------------------------------------------------------------------- format


def snapshot_file(directory: str | Path, group: str, path: str) -> Path:
    """``<directory>/<group>_<service>``; path separators in the name become ``_``."""
    name = f"{group}_{path}".replace(os.sep, "_")
    if os.altsep:
        name = name.replace(os.altsep, "_")
    return Path(directory) / name


def _unique(urls: Iterable[URL]) -> list[URL]:
    """One URL per address, ordered by text form."""
    seen: dict[str, URL] = {}
    for url in urls:
        seen.setdefault(url.address, url)
    return sorted(seen.values(), key=URL.to_ext_info)


def encode_snapshot(group: str, path: str, urls: Iterable[URL]) -> bytes:
    """The JSON document of one snapshot (nodes in a stable order)."""
    nodes = [{"extInfo": u.to_ext_info(), "address": u.address} for u in _unique(urls)]
    return json.dumps({"group": group, "path": path, "nodes": nodes}).encode()


def decode_snapshot(data: bytes, refer: URL) -> list[URL]:
    """The provider URLs of a snapshot document; ``SnapshotError`` when it is not one.

    A node whose ``extInfo`` is empty becomes ``refer`` at the node's ``address``; nodes that
    cannot be read are skipped.
    """
    try:
        doc: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SnapshotError(f"not JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes", []), list):
        raise SnapshotError("expected an object with a 'nodes' list")
    nodes: list[Any] = doc.get("nodes") or []
    urls: list[URL] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        ext, address = node.get("extInfo", ""), node.get("address", "")
        if not isinstance(ext, str) or not isinstance(address, str) or not (ext or address):
            continue
        url = node_url(address, ext, refer)
        if url is not None:
            urls.append(url)
    return _unique(urls)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# ---------------------------------------------------------------------------- store


class SnapshotStore:
    """The snapshots of one agent, in one directory (see module doc)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        interval: float = DEFAULT_INTERVAL,
        initial_wait: float = DEFAULT_INITIAL_WAIT,
    ) -> None:
        self.directory = Path(directory)
        self.interval = interval
        self.initial_wait = initial_wait
        self._pending: dict[Path, tuple[str, str, list[URL]]] = {}
        self._written: dict[Path, bytes] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_flush = float("-inf")

    def file(self, group: str, path: str) -> Path:
        return snapshot_file(self.directory, group, path)

    def save(self, group: str, path: str, urls: Iterable[URL]) -> None:
        """Remember a provider list; it reaches the disk within ``interval``. Never blocks."""
        self._pending[self.file(group, path)] = (group, path, list(urls))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._last_flush + self.interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> None:
        """Write every remembered list now (off the event loop; one write at a time)."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = asyncio.get_running_loop().time()
            if not pending:
                return
            writing = asyncio.ensure_future(asyncio.to_thread(self._write, pending))
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:
                await asyncio.wait([writing])  # hold the lock until the file is written
                raise

    def _write(self, pending: dict[Path, tuple[str, str, list[URL]]]) -> None:
        for target, (group, path, urls) in pending.items():
            data = encode_snapshot(group, path, urls)
            if self._written.get(target) == data:
                continue
            try:
                _write_atomically(target, data)
            except OSError as err:
                log.warning("cannot write snapshot %s: %s", target, err)
                continue
            self._written[target] = data

    async def close(self) -> None:
        """Write what is pending and stop."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        await self.flush()

    def read(self, refer: URL, group: str = "") -> list[URL]:
        """The providers of ``group`` (default: the refer's) in the snapshot of the refer's
        service; empty (and logged) when the file is missing or unreadable. Blocking I/O."""
        target = self.file(group or refer.group, refer.path)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            log.info("no snapshot %s", target)
            return []
        except OSError as err:
            log.warning("cannot read snapshot %s: %s", target, err)
            return []
        try:
            return decode_snapshot(data, refer.copy(group=group or refer.group))
        except SnapshotError as err:
            log.warning("ignoring snapshot %s: %s", target, err)
            return []

    def for_refer(self, refer: URL, registries: Sequence[Registry]) -> ReferSnapshot | None:
        """The snapshot hook of one cluster; ``None`` when every registry is ``direct``."""
        if all(isinstance(r, DirectRegistry) for r in registries):
            return None
        return ReferSnapshot(self, refer)


def registry_reachable(registry: Registry) -> bool:
    """Whether a registry says it answers right now."""
    return registry.reachable


class ReferSnapshot:
    """One cluster's snapshots: ``save`` every provider list, ``read_back`` at start."""

    def __init__(self, store: SnapshotStore, refer: URL) -> None:
        self.store = store
        self.refer = refer
        #: set once a registry delivered a list of the refer's own group
        self.delivered = asyncio.Event()
        #: whether the current list of the own group came from the snapshot
        self.serving_snapshot = False

    def save(self, group: str, lists: Iterable[list[URL]]) -> None:
        """A registry delivered ``group``'s lists (one per registry): merge and save them."""
        if group == self.refer.group:
            self.delivered.set()
            self.serving_snapshot = False
        self.store.save(group, self.refer.path, (u for urls in lists for u in urls))

    async def read_back(
        self, registries: Sequence[Registry], notify: Callable[[int, list[URL]], None]
    ) -> bool:
        """If no registry delivers the own group's providers (all unreachable, or nothing
        within ``initial_wait``), hand the snapshot to ``notify(SNAPSHOT_SOURCE, urls)``.
        Whether it did. Without a usable snapshot it returns at once."""
        if self.delivered.is_set():
            return False
        urls = await asyncio.to_thread(self.store.read, self.refer)
        if not urls:
            return False
        if not self.delivered.is_set() and any(registry_reachable(r) for r in registries):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.delivered.wait(), self.store.initial_wait)
        if self.delivered.is_set():
            return False
        log.warning(
            "%s: no provider list from the registries; serving %d providers from snapshot %s "
            "until one arrives",
            self.refer.cluster_key,
            len(urls),
            self.store.file(self.refer.group, self.refer.path),
        )
        self.serving_snapshot = True
        notify(SNAPSHOT_SOURCE, urls)
        return True


# ---------------------------------------------------------------------------- ${idc}


class IdcGroups:
    """The ``${idc}`` groups of an agent started with ``-idc`` (see module doc)."""

    def __init__(self, idc: str) -> None:
        self.idc = idc
        #: group as configured -> group in use
        self.chosen: dict[str, str] = {}

    def candidates(self, group: str) -> list[str]:
        """The groups to try, in order, without repeats."""
        names = dict.fromkeys((self.idc, self.idc.lower(), self.idc.upper()))
        return [group.replace(IDC_PLACEHOLDER, name) for name in names]

    def group(self, group: str) -> str:
        """The group in use for a configured group (resolved, or the plain replacement)."""
        if IDC_PLACEHOLDER not in group or not self.idc:
            return group
        return self.chosen.get(group) or group.replace(IDC_PLACEHOLDER, self.idc)

    async def resolve(
        self,
        refer: URL,
        registries: Sequence[Registry],
        snapshots: SnapshotStore | None = None,
    ) -> str:
        """Choose (and remember) the group of a configured refer; see :meth:`group`."""
        configured = refer.group
        if IDC_PLACEHOLDER not in configured or not self.idc:
            return configured
        candidates = self.candidates(configured)
        chosen = await self._with_providers(refer, candidates, registries)
        offline = not any(registry_reachable(r) for r in registries)
        if chosen is None and snapshots is not None and offline:
            for group in candidates:
                if await asyncio.to_thread(snapshots.read, refer, group):
                    chosen = group
                    break
        if chosen is None:
            chosen = candidates[0]
            log.info("%s: no group of %s has providers; using %s", refer.path, candidates, chosen)
        else:
            log.info("%s: group %s resolved to %s", refer.path, configured, chosen)
        self.chosen[configured] = chosen
        return chosen

    @staticmethod
    async def _with_providers(
        refer: URL, candidates: list[str], registries: Sequence[Registry]
    ) -> str | None:
        live = [r for r in registries if registry_reachable(r)]
        for group in candidates:
            probe = refer.copy(group=group)
            for registry in live:
                try:
                    found = await asyncio.wait_for(registry.discover(probe), DISCOVER_TIMEOUT)
                except Exception as err:
                    log.info("%s: discover %s failed: %s", registry.name, group, err)
                    continue
                if found:
                    return group
        return None
