"""Registry creation by protocol name.

``create_registry(url)`` picks the backend from ``url.protocol``. Built in: ``direct`` and
``embedded``. Other backends plug in with ``register_registry_type`` (a class or any callable
taking the registry URL); ``zookeeper`` and ``etcd`` are looked up lazily in
``motanmesh.registry.zookeeper`` / ``motanmesh.registry.etcd`` (attribute ``REGISTRY_TYPE``)
so that installing those modules is enough to enable them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from motanmesh.registry.base import Registry, RegistryError
from motanmesh.registry.direct import DirectRegistry
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.url import URL

__all__ = ["RegistryFactory", "create_registry", "register_registry_type", "registry_types"]

RegistryFactory = Callable[[URL], Registry]

_TYPES: dict[str, RegistryFactory] = {
    "direct": DirectRegistry,
    "embedded": EmbeddedRegistry,
}
_LAZY: dict[str, str] = {
    "zookeeper": "motanmesh.registry.zookeeper",
    "etcd": "motanmesh.registry.etcd",
}


def register_registry_type(protocol: str, factory: RegistryFactory) -> None:
    """Make ``create_registry`` build ``factory(url)`` for URLs of ``protocol`` (replaces)."""
    if not protocol:
        raise ValueError("a registry type needs a protocol name")
    _TYPES[protocol] = factory


def registry_types() -> list[str]:
    """The protocols ``create_registry`` can build right now."""
    return sorted(_TYPES)


def _load(protocol: str) -> RegistryFactory | None:
    module_name = _LAZY.get(protocol)
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        return None
    factory: RegistryFactory | None = getattr(module, "REGISTRY_TYPE", None)
    if factory is not None:
        _TYPES.setdefault(protocol, factory)
    return _TYPES.get(protocol)


def create_registry(url: URL) -> Registry:
    """A new, not yet started registry for ``url``; ``RegistryError`` for unknown protocols."""
    factory = _TYPES.get(url.protocol) or _load(url.protocol)
    if factory is None:
        raise RegistryError(
            f"unknown registry protocol {url.protocol!r} in {url}; "
            f"known: {', '.join(registry_types())}"
        )
    return factory(url)
