"""Commands at run time: what a live cluster needs beyond the pure command logic of
:mod:`motanmesh.cluster.command`.

* :class:`SwitcherCommands` sets the switchers that switcher commands (type 2) ask for and
  puts their previous values back when no command asks for them any more. One instance serves
  every cluster of an agent, so the remembered values are shared by the whole process.
* :class:`GroupSubscriptions` follows the provider lists of a refer's *other* merge groups
  (a traffic-control command's ``mergeGroups`` besides the refer's own group): it subscribes
  a copy of the refer with each such group on the cluster's command-capable registries, and
  unsubscribes the groups a later command no longer names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from motanmesh.registry.base import NotifyListener, Registry
from motanmesh.switcher import SwitcherManager
from motanmesh.url import URL

__all__ = ["GroupListener", "GroupSubscriptions", "SwitcherCommands"]

log = logging.getLogger("motanmesh.cluster")

GroupListener = Callable[[int, list[URL], str], None]
"""Receives ``(registry index, providers, group)`` for one subscribed merge group."""


class SwitcherCommands:
    """The switcher values asked for by switcher commands, over one :class:`SwitcherManager`.

    Each owner (a cluster) hands in the values its effective command asks for with
    :meth:`apply`; an empty mapping withdraws its requests. A switcher asked for by several
    owners takes the value of the one that asked last. The value a switcher had before the
    first command changed it is remembered and restored once no owner asks for it. Only
    registered switchers are touched; others are ignored.
    """

    def __init__(self, manager: SwitcherManager) -> None:
        self.manager = manager
        #: switcher name -> owner -> requested value, in request order
        self._requests: dict[str, dict[object, bool]] = {}
        #: switcher name -> its value before any command changed it
        self._saved: dict[str, bool] = {}

    @property
    def saved(self) -> dict[str, bool]:
        """The remembered values of the switchers commands currently hold."""
        return dict(self._saved)

    def requests(self, owner: object) -> dict[str, bool]:
        """What ``owner`` currently asks for (registered switchers only)."""
        return {n: r[owner] for n, r in self._requests.items() if owner in r}

    def apply(self, owner: object, values: Mapping[str, bool]) -> None:
        """Make ``values`` the requests of ``owner``: set what changed, restore what it no
        longer asks for."""
        manager = self.manager
        for name, value in values.items():
            if not manager.is_registered(name):
                log.info("switcher command names unregistered switcher %r; ignored", name)
                continue
            requests = self._requests.setdefault(name, {})
            if requests.get(owner) == value:
                continue
            if name not in self._saved:
                current = manager.get(name)
                self._saved[name] = bool(current)
            requests.pop(owner, None)
            requests[owner] = value
            manager.set(name, value)
        for name in [n for n, r in self._requests.items() if owner in r and n not in values]:
            requests = self._requests[name]
            del requests[owner]
            if requests:
                manager.set(name, next(reversed(requests.values())))
            else:
                del self._requests[name]
                manager.set(name, self._saved.pop(name))

    def release(self, owner: object) -> None:
        """Withdraw every request of ``owner`` (a cluster closing)."""
        self.apply(owner, {})


class GroupSubscriptions:
    """The extra provider groups one refer follows because of a traffic-control command.

    :meth:`want` names the groups (the own group is never among them) and :meth:`sync`
    subscribes and unsubscribes until the subscriptions match the latest wish; calls to
    :meth:`sync` are serialized, so overlapping command changes converge. ``on_notify``
    receives every provider list of a subscribed group; ``on_drop`` is told when a group is no
    longer followed (its lists are stale from then on).
    """

    def __init__(
        self,
        refer: URL,
        registries: Sequence[tuple[int, Registry]],
        on_notify: GroupListener,
        on_drop: Callable[[str], None],
    ) -> None:
        self.refer = refer
        self.registries = list(registries)
        self._on_notify = on_notify
        self._on_drop = on_drop
        self._wanted: list[str] = []
        #: group -> (registry, listener) pairs
        self._subscribed: dict[str, list[tuple[Registry, NotifyListener]]] = {}
        self._lock = asyncio.Lock()

    @property
    def groups(self) -> list[str]:
        """The groups subscribed now."""
        return list(self._subscribed)

    def want(self, groups: Iterable[str]) -> bool:
        """Name the groups to follow; True when that differs from the last wish."""
        wanted = [g for g in dict.fromkeys(groups) if g and g != self.refer.group]
        if wanted == self._wanted:
            return False
        self._wanted = wanted
        return True

    def in_sync(self) -> bool:
        return set(self._wanted) == set(self._subscribed)

    async def sync(self) -> None:
        """Subscribe the wanted groups not subscribed yet, unsubscribe the others."""
        async with self._lock:
            wanted = list(self._wanted)
            for group in [g for g in self._subscribed if g not in wanted]:
                await self._unsubscribe(group)
            for group in wanted:
                if group not in self._subscribed and group in self._wanted:
                    await self._subscribe(group)

    async def close(self) -> None:
        self._wanted = []
        async with self._lock:
            for group in list(self._subscribed):
                await self._unsubscribe(group, drop=False)

    async def _subscribe(self, group: str) -> None:
        url = self.refer.copy(group=group)
        pairs = self._subscribed[group] = []
        for index, registry in self.registries:

            def listener(urls: list[URL], index: int = index, group: str = group) -> None:
                self._on_notify(index, urls, group)

            pairs.append((registry, listener))
            try:
                await registry.subscribe(url, listener)
            except Exception as e:  # one dead registry must not stop the others
                log.warning("%s: subscribing group %s failed: %s", url.cluster_key, group, e)

    async def _unsubscribe(self, group: str, *, drop: bool = True) -> None:
        url = self.refer.copy(group=group)
        for registry, listener in self._subscribed.pop(group, []):
            try:
                await registry.unsubscribe(url, listener)
            except Exception as e:
                log.warning("%s: unsubscribing group %s failed: %s", url.cluster_key, group, e)
        if drop:
            self._on_drop(group)
