"""Registration and lookup in the service registry."""

from __future__ import annotations

from typing import Any

import pytest

from motanmesh.sdk import MotanService, ServiceRegistry


def test_decorator_uses_the_function_name_by_default() -> None:
    svc = MotanService("com.x.Svc")

    @svc.method()
    def greet(name: str) -> str:
        return name

    @svc.method("Other")
    def other() -> None:
        return None

    assert set(svc.methods) == {"greet", "Other"}
    assert svc.methods["greet"].fn is greet


def test_lookup_by_group_then_any_group() -> None:
    registry = ServiceRegistry()
    specific = registry.service("com.x.Svc", group="g1")
    anygroup = registry.service("com.x.Svc")
    assert registry.service("com.x.Svc", group="g1") is specific
    assert registry.find("g1", "com.x.Svc") is specific
    assert registry.find("g2", "com.x.Svc") is anygroup
    assert registry.find("", "com.x.Svc") is anygroup
    assert registry.find("g1", "com.x.Other") is None
    assert set(map(id, registry.services())) == {id(specific), id(anygroup)}


def test_group_only_service_does_not_answer_other_groups() -> None:
    registry = ServiceRegistry()
    registry.service("com.x.Svc", group="g1")
    assert registry.find("g2", "com.x.Svc") is None


def test_add_replaces_same_path_and_group() -> None:
    registry = ServiceRegistry()
    first = registry.service("com.x.Svc", group="g")
    second = registry.add(MotanService("com.x.Svc", group="g"))
    assert registry.find("g", "com.x.Svc") is second is not first


def test_add_object_skips_private_names_properties_and_classes() -> None:
    class Thing:
        Nested = int

        def visible(self) -> int:
            return 1

        @staticmethod
        def static(x: int) -> int:
            return x

        @property
        def prop(self) -> Any:
            raise AssertionError("must not be read")

        def _hidden(self) -> None:
            return None

    svc = ServiceRegistry().add_object("com.x.Thing", Thing())
    assert set(svc.methods) == {"visible", "static"}


def test_names_are_required() -> None:
    with pytest.raises(ValueError, match="path"):
        MotanService("")
    with pytest.raises(ValueError, match="name"):
        MotanService("com.x.Svc").add("", lambda: None)


async def test_serve_needs_something_to_listen_on() -> None:
    with pytest.raises(ValueError, match="nothing to listen on"):
        await ServiceRegistry().serve(port=None)
