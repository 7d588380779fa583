"""ZooKeeper registry configuration and node data decoding (no server needed)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from motanmesh.registry import RegistryError, create_registry
from motanmesh.registry.zookeeper import (
    DEFAULT_SESSION_TIMEOUT,
    SESSION_TIMEOUT_CAP,
    ZookeeperRegistry,
    decode_node_data,
    zookeeper_hosts,
)
from motanmesh.url import URL
from tests.registry.conftest import provider


def java_string(text: str) -> bytes:
    """``text`` as Java's ObjectOutputStream writes a String (short or long form)."""
    body = text.encode()
    if len(body) < 0x10000:
        return b"\xac\xed\x00\x05\x74" + struct.pack(">H", len(body)) + body
    return b"\xac\xed\x00\x05\x7c" + struct.pack(">Q", len(body)) + body


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        (URL("zookeeper", "10.0.0.1", 2181), "10.0.0.1:2181"),
        (URL("zookeeper", "zk.example", 0), "zk.example:2181"),
        (URL("zookeeper", "::1", 2182), "[::1]:2182"),
        (
            URL("zookeeper", parameters={"address": "10.0.0.1:2181, 10.0.0.2,[::1]"}),
            "10.0.0.1:2181,10.0.0.2:2181,[::1]:2181",
        ),
        (
            URL("zookeeper", "ignored", 1, parameters={"address": "a:1,b:2"}),
            "a:1,b:2",
        ),
    ],
)
def test_hosts_from_host_port_or_address(url: URL, hosts: str) -> None:
    assert zookeeper_hosts(url) == hosts


@pytest.mark.parametrize(
    "url",
    [
        URL("zookeeper"),
        URL("zookeeper", parameters={"address": "a:99999"}),
        URL("zookeeper", parameters={"address": "a:x"}),
        URL("zookeeper", "a", 1, parameters={"registrySessionTimeout": "0"}),
        URL("zookeeper", "a", 1, parameters={"requestTimeout": "-5"}),
    ],
)
def test_bad_configuration_is_a_registry_error(url: URL) -> None:
    with pytest.raises(RegistryError):
        ZookeeperRegistry(url)


def test_timeouts_follow_the_go_units() -> None:
    default = ZookeeperRegistry(URL("zookeeper", "a", 1))
    assert default.requested_session_timeout == min(DEFAULT_SESSION_TIMEOUT, SESSION_TIMEOUT_CAP)
    tuned = ZookeeperRegistry(
        URL(
            "zookeeper",
            "a",
            1,
            parameters={
                "registrySessionTimeout": "7",
                "requestTimeout": "250",
                "connectTimeout": "1500",
            },
        )
    )
    assert tuned.requested_session_timeout == 7.0  # seconds, as the Go agent reads it
    assert tuned.request_timeout == 0.25  # milliseconds
    assert tuned.connect_timeout == 1.5
    assert tuned.name == "zookeeper://a:1"


def test_factory_builds_the_zookeeper_registry() -> None:
    registry = create_registry(URL("zookeeper", "127.0.0.1", 2181))
    assert isinstance(registry, ZookeeperRegistry)
    assert registry.supports_commands


async def test_operations_before_start_fail_clearly() -> None:
    registry = ZookeeperRegistry(URL("zookeeper", "127.0.0.1", 2181))
    with pytest.raises(RegistryError, match="not started"):
        await registry.register(provider(8001))
    with pytest.raises(RegistryError, match="not started"):
        await registry.get_command("demo")
    await registry.close()  # closing what never started is harmless


def test_decode_plain_and_empty_data() -> None:
    text = provider(8001).to_ext_info()
    assert decode_node_data(text.encode()) == text
    assert decode_node_data(b"") == ""
    assert decode_node_data(None) == ""
    assert decode_node_data("motan2://h:1/p?group=grün".encode()) == "motan2://h:1/p?group=grün"


def test_decode_java_serialized_strings() -> None:
    text = provider(8001).to_ext_info()
    assert decode_node_data(java_string(text)) == text
    long_text = text + "&x=" + "y" * 70_000
    assert java_string(long_text)[4] == 0x7C
    assert decode_node_data(java_string(long_text)) == long_text
    # Java's modified UTF-8: NUL is C0 80, astral characters are CESU-8 surrogate pairs.
    cesu = b"a\xc0\x80b" + "\ud83d\ude00".encode("utf-8", "surrogatepass")
    framed = b"\xac\xed\x00\x05\x74" + struct.pack(">H", len(cesu)) + cesu
    assert decode_node_data(framed) == "a\x00b\U0001f600"


@given(st.text(max_size=300))
def test_decode_round_trips_any_java_string(text: str) -> None:
    # Text with lone surrogates cannot be a URL; everything else must come back intact.
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return
    assert decode_node_data(java_string(text)) == text
    assert decode_node_data(text.encode()) == text


@given(st.binary(max_size=64))
def test_decode_never_raises(raw: bytes) -> None:
    assert isinstance(decode_node_data(raw), str)
    assert isinstance(decode_node_data(b"\xac\xed\x00\x05" + raw), str)
