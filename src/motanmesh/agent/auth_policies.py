"""Access policies from the registry: the agent follows ``/motan/<group>/<service>/auth`` of
every service it exports with an ``auth`` filter, in each of the service's registries that
hold commands, as it follows command nodes (same watches, same propagation, no restart).

* A node's JSON (:meth:`AuthPolicy.from_json`) replaces the configured policy of that
  service; when several registries of the service hold one, the first registry in the
  service's ``registry`` list wins.
* Removing the node (or writing it empty) returns to the configured policy.
* A node that is not a valid policy is refused with an error log line naming the node and
  the reason; the policy in force stays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from motanmesh.agent.dispatcher import Provider
from motanmesh.agent.filtering import FilteredProvider
from motanmesh.filters.auth import AuthFilter
from motanmesh.filters.auth_policy import AuthPolicy, PolicyError
from motanmesh.registry.base import CommandListener, Registry, auth_policy_path
from motanmesh.url import URL

__all__ = ["AuthPolicies"]

log = logging.getLogger("motanmesh.agent.auth")


@dataclass
class _Followed:
    """One exported service's auth filters and what each of its registries holds."""

    url: URL
    filters: list[AuthFilter]
    registries: list[Registry]
    #: the valid policy last read from each registry (``None``: no node)
    values: list[AuthPolicy | None] = field(default_factory=list)
    listeners: list[CommandListener] = field(default_factory=list)
    in_force: AuthPolicy | None = None

    def offer(self, index: int, text: str | None) -> None:
        registry = self.registries[index]
        path = auth_policy_path(self.url.group, self.url.path)
        if text is None or not text.strip():
            policy = None
        else:
            try:
                policy = AuthPolicy.from_json(text, source=f"registry {registry.name} {path}")
            except PolicyError as e:
                kept = self.in_force.source if self.in_force is not None else "config"
                log.error(
                    "auth policy %s in %s refused: %s; the policy from %s stays in force",
                    path,
                    registry.name,
                    e,
                    kept,
                )
                return
        self.values[index] = policy
        effective = next((p for p in self.values if p is not None), None)
        if effective is self.in_force:
            return
        self.in_force = effective
        for f in self.filters:
            f.use_registry_policy(effective)


class AuthPolicies:
    """The registry access policies one agent follows."""

    def __init__(self) -> None:
        self._followed: dict[int, _Followed] = {}

    async def follow(self, provider: Provider, url: URL, registries: Sequence[Registry]) -> None:
        """Follow the policy node of ``url`` when ``provider`` has an auth filter."""
        if not isinstance(provider, FilteredProvider):
            return
        filters = [f for f in provider.filters.endpoint if isinstance(f, AuthFilter)]
        usable = [r for r in registries if r.supports_commands]
        if not filters or not usable or not url.group or not url.path:
            return
        followed = _Followed(url, filters, usable, [None] * len(usable))
        self._followed[id(provider)] = followed
        for index, registry in enumerate(usable):

            def listener(text: str | None, index: int = index) -> None:
                followed.offer(index, text)

            followed.listeners.append(listener)
            try:
                await registry.subscribe_auth_policy(url.group, url.path, listener)
            except Exception as e:  # a dead registry must not stop the export
                log.error(
                    "auth policy of %s/%s: watching %s failed: %s",
                    url.group,
                    url.path,
                    registry.name,
                    e,
                )

    async def unfollow(self, provider: Provider) -> None:
        await self._drop(id(provider))

    async def close(self) -> None:
        for key in list(self._followed):
            await self._drop(key)

    async def _drop(self, key: int) -> None:
        followed = self._followed.pop(key, None)
        if followed is None:
            return
        url = followed.url
        for registry, listener in zip(followed.registries, followed.listeners, strict=False):
            try:
                await registry.unsubscribe_auth_policy(url.group, url.path, listener)
            except Exception as e:
                log.warning(
                    "auth policy of %s: unwatching %s failed: %s", url.path, registry.name, e
                )
