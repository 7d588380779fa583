"""The shared registry pieces: node layout, node parsing, the keep-last-known-good rule."""

from __future__ import annotations

import logging

import pytest

from motanmesh.registry.base import (
    CommandView,
    ProviderView,
    RegistrationStatus,
    RegistryError,
    RegistryStatus,
    agent_command_path,
    agent_node_path,
    command_path,
    node_path,
    node_url,
    service_dir,
)
from motanmesh.url import URL
from tests.registry.conftest import Commands, Providers, provider, refer


def test_layout_paths() -> None:
    assert service_dir("g", "com.S") == "/motan/g/com.S"
    assert (
        node_path(provider(8001), "server") == "/motan/demo/com.example.Echo/server/127.0.0.1:8001"
    )
    assert node_path(refer(), "client") == "/motan/demo/com.example.Echo/client/10.0.0.9:0"
    unix = URL("motan2", "unix:///tmp/a.sock", 0, "com.S", "g")
    assert node_path(unix, "server") == "/motan/g/com.S/server/unix:///tmp/a.sock"
    assert command_path("g") == "/motan/g/command"
    assert agent_command_path("app") == "/motan/agent/app/command"
    agent = URL("motan2", "10.1.1.1", 9981, parameters={"application": "app"})
    assert agent_node_path(agent) == "/motan/agent/app/node/10.1.1.1:9981"
    assert agent_node_path(agent.with_params(mport="8002")) == "/motan/agent/app/node/10.1.1.1:8002"


@pytest.mark.parametrize(
    "make",
    [
        lambda: service_dir("", "com.S"),
        lambda: service_dir("g", ""),
        lambda: command_path(""),
        lambda: agent_command_path(""),
        lambda: agent_node_path(URL("motan2", "10.1.1.1", 9981)),
    ],
)
def test_layout_refuses_empty_names(make: object) -> None:
    with pytest.raises(RegistryError):
        make()  # type: ignore[operator]


def test_node_url_reads_data_or_falls_back_to_the_name(caplog: pytest.LogCaptureFixture) -> None:
    assert node_url("x", provider(8001).to_ext_info(), refer()) == provider(8001)
    assert node_url("10.0.0.1:81", "", refer()) == refer().copy(host="10.0.0.1", port=81)
    assert node_url("10.0.0.1", "", refer()) == refer().copy(host="10.0.0.1", port=80)
    with caplog.at_level(logging.WARNING):
        assert node_url("10.0.0.1:81", "garbage", refer()) is None
        assert node_url("10.0.0.1:port", "", refer()) is None
    assert "garbage" in caplog.text


def test_provider_view_notifies_changes_only() -> None:
    view, seen = ProviderView(), Providers()
    view.add(seen)
    assert seen.calls == []  # nothing to hand over yet
    assert view.offer([provider(8002), provider(8001)])
    assert not view.offer([provider(8001), provider(8002)])  # same set, other order
    assert view.offer([provider(8001)])
    assert seen.ports() == [[8001, 8002], [8001]]
    late = Providers()
    view.add(late)
    assert late.ports() == [[8001]]


def test_provider_view_keeps_last_known_good() -> None:
    view, seen = ProviderView([provider(8001)]), Providers()
    view.add(seen)
    assert not view.offer([])
    assert view.urls == [provider(8001)]
    assert view.offer([], all_withdrawn=True)
    assert seen.ports() == [[8001], []]
    assert not view.offer([], all_withdrawn=True)


def test_listener_failure_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    view, seen = ProviderView(), Providers()

    def broken(urls: list[URL]) -> None:
        urls.clear()
        raise RuntimeError("listener bug")

    view.add(broken)
    view.add(seen)
    with caplog.at_level(logging.ERROR):
        view.offer([provider(8001)])
    assert seen.ports() == [[8001]]  # got its own list, untouched by the other listener
    assert view.urls == [provider(8001)]
    assert "listener bug" in caplog.text


def test_command_view_treats_empty_as_none() -> None:
    view, seen = CommandView(""), Commands()
    view.add(seen)
    assert seen.calls == []
    assert view.offer("a")
    assert not view.offer("a")
    assert view.offer("")
    assert not view.offer(None)
    view.remove(seen)
    assert view.offer("b")
    assert seen.calls == ["a", None]


def test_registration_status_json() -> None:
    status = RegistrationStatus(
        "g", "com.S", "embedded:///r.db", RegistryStatus.REGISTER_FAILED, "x"
    )
    assert status.to_dict() == {
        "group": "g",
        "service": "com.S",
        "registry": "embedded:///r.db",
        "status": "register-failed",
        "errMsg": "x",
        "isCheck": False,
    }
