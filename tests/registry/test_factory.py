"""create_registry: built-in protocols, plug-ins and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from motanmesh.registry import (
    DirectRegistry,
    EmbeddedRegistry,
    Registry,
    RegistryError,
    create_registry,
    factory,
    register_registry_type,
    registry_types,
)
from motanmesh.url import URL


@pytest.fixture(autouse=True)
def _isolated_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "_TYPES", dict(factory._TYPES))
    monkeypatch.setattr(factory, "_LAZY", dict(factory._LAZY))


def test_builtin_protocols(tmp_path: Path) -> None:
    assert isinstance(create_registry(URL("direct", "127.0.0.1", 9982)), DirectRegistry)
    db = str(tmp_path / "r.db")
    embedded = create_registry(URL("embedded", parameters={"file": db}))
    assert isinstance(embedded, EmbeddedRegistry)
    assert embedded.supports_commands
    assert embedded.file == db
    assert {"direct", "embedded"} <= set(registry_types())


def test_unknown_protocol_names_the_known_ones() -> None:
    with pytest.raises(
        RegistryError, match=r"unknown registry protocol 'vintage'.*direct, embedded"
    ):
        create_registry(URL("vintage", "10.0.0.1", 80))


def test_registered_type_is_used() -> None:
    made: list[URL] = []

    def build(url: URL) -> Registry:
        made.append(url)
        return DirectRegistry(url.with_params(address="10.0.0.5:1"))

    register_registry_type("custom", build)
    registry = create_registry(URL("custom", "10.0.0.1", 80))
    assert isinstance(registry, DirectRegistry)
    assert made == [URL("custom", "10.0.0.1", 80)]
    assert "custom" in registry_types()
    with pytest.raises(ValueError):
        register_registry_type("", build)


def test_lazy_backends_load_from_their_module() -> None:
    factory._LAZY["lazy"] = "motanmesh.registry.direct"  # a module exporting REGISTRY_TYPE
    factory._LAZY["absent"] = "motanmesh.registry.no_such_backend"
    assert isinstance(create_registry(URL("lazy", "10.0.0.1", 80)), DirectRegistry)
    assert "lazy" in registry_types()
    with pytest.raises(RegistryError, match="unknown registry protocol 'absent'"):
        create_registry(URL("absent", "10.0.0.1", 80))
