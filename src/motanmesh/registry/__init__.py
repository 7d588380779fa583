"""Service discovery: registries yield provider URL lists and command strings.

Backends share one interface (``Registry``) and one node layout (``base``); build them with
``create_registry``.
"""

from motanmesh.registry.base import (
    CommandListener,
    NotifyListener,
    RegistrationStatus,
    Registry,
    RegistryError,
    RegistryStatus,
)
from motanmesh.registry.direct import DirectRegistry
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.registry.factory import create_registry, register_registry_type, registry_types

__all__ = [
    "CommandListener",
    "DirectRegistry",
    "EmbeddedRegistry",
    "NotifyListener",
    "RegistrationStatus",
    "Registry",
    "RegistryError",
    "RegistryStatus",
    "create_registry",
    "register_registry_type",
    "registry_types",
]
