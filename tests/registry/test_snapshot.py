"""Discovery snapshots (format, debounced atomic writes, read back at start) and ``${idc}``
group resolution, with real registries: embedded (SQLite) and a ZooKeeper that is not there."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from motanmesh.cluster.cluster import Cluster
from motanmesh.registry.base import Registry
from motanmesh.registry.direct import DirectRegistry
from motanmesh.registry.snapshot import (
    SNAPSHOT_SOURCE,
    IdcGroups,
    SnapshotError,
    SnapshotStore,
    decode_snapshot,
    encode_snapshot,
    registry_reachable,
    snapshot_file,
)
from motanmesh.registry.zookeeper import ZookeeperRegistry
from motanmesh.url import URL
from tests.registry.conftest import MakeRegistry, provider, refer, wait_until
from tests.servers.zookeeper import free_port

SERVICE = "com.example.Echo"


def ports(urls: list[URL]) -> list[int]:
    return sorted(u.port for u in urls)


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshot", interval=0.0, initial_wait=0.3)


@pytest.fixture
async def dead_zookeeper() -> AsyncIterator[ZookeeperRegistry]:
    """A started ZooKeeper registry whose server does not exist."""
    url = URL("zookeeper", "127.0.0.1", free_port(), parameters={"connectTimeout": "100"})
    registry = ZookeeperRegistry(url)
    await registry.start()
    yield registry
    await registry.close()


async def started_cluster(
    store: SnapshotStore, registries: list[Registry], referred: URL
) -> Cluster:
    cluster = Cluster(referred, registries)
    cluster.snapshot = store.for_refer(referred, registries)
    await cluster.start()
    return cluster


# ---------------------------------------------------------------------------- format


def test_go_written_snapshot_is_read() -> None:
    doc = {
        "group": "demo",
        "path": SERVICE,
        "nodes": [
            {"extInfo": f"motan2://10.0.0.1:8002/{SERVICE}?group=demo&weight=3", "address": "x"},
            {"extInfo": "", "address": "10.0.0.2:8003"},
            {"extInfo": "", "address": ""},
            "not a node",
        ],
    }
    urls = decode_snapshot(json.dumps(doc).encode(), refer())
    assert [u.address for u in urls] == ["10.0.0.1:8002", "10.0.0.2:8003"]
    assert urls[0].get("weight") == "3"
    assert urls[1].path == SERVICE and urls[1].group == "demo"


def test_encode_round_trip_keeps_one_node_per_address() -> None:
    urls = [provider(9002), provider(9001), provider(9001)]
    data = encode_snapshot("demo", SERVICE, urls)
    doc = json.loads(data)
    assert doc["group"] == "demo" and doc["path"] == SERVICE
    assert [n["address"] for n in doc["nodes"]] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    assert doc["nodes"][0]["extInfo"] == provider(9001).to_ext_info()
    assert decode_snapshot(data, refer()) == [provider(9001), provider(9002)]


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"nodes": 3}', b"\xff\xfe"])
def test_garbage_is_a_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        decode_snapshot(data, refer())


def test_file_name_is_group_underscore_service(tmp_path: Path) -> None:
    assert snapshot_file(tmp_path, "demo", SERVICE) == tmp_path / f"demo_{SERVICE}"
    assert snapshot_file(tmp_path, "a/b", "../c").parent == tmp_path


# ---------------------------------------------------------------------------- store


async def test_saves_are_debounced_and_the_last_list_is_written(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, interval=3600.0)
    await store.flush()  # the next write is an interval away
    store.save("demo", SERVICE, [provider(9001)])
    store.save("demo", SERVICE, [provider(9002)])
    target = store.file("demo", SERVICE)
    assert not target.exists()
    await store.close()
    assert decode_snapshot(target.read_bytes(), refer()) == [provider(9002)]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


async def test_save_reaches_the_disk_on_its_own(store: SnapshotStore) -> None:
    store.save("demo", SERVICE, [provider(9001)])
    target = store.file("demo", SERVICE)
    await wait_until(target.exists, "the snapshot file")
    assert store.read(refer()) == [provider(9001)]
    await store.close()


def test_missing_or_corrupt_snapshot_reads_empty(
    store: SnapshotStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.read(refer()) == []
    target = store.file("demo", SERVICE)
    target.parent.mkdir(parents=True)
    target.write_text("{not json")
    with caplog.at_level(logging.WARNING, "motanmesh.registry.snapshot"):
        assert store.read(refer()) == []
    assert "ignoring snapshot" in caplog.text


def test_direct_refers_keep_no_snapshot(store: SnapshotStore) -> None:
    direct = DirectRegistry(URL("direct", "127.0.0.1", 9001))
    assert store.for_refer(refer(), [direct]) is None


# ---------------------------------------------------------------------------- read back


async def test_unreachable_registry_serves_the_snapshot(
    store: SnapshotStore, dead_zookeeper: ZookeeperRegistry
) -> None:
    assert not registry_reachable(dead_zookeeper)
    store.save("demo", SERVICE, [provider(9001), provider(9002)])
    await store.flush()
    cluster = await started_cluster(store, [dead_zookeeper], refer())
    try:
        assert ports(cluster.provider_urls()) == [9001, 9002]
        assert cluster.snapshot is not None and cluster.snapshot.serving_snapshot
    finally:
        await cluster.close()


async def test_corrupt_snapshot_is_ignored_at_start(
    store: SnapshotStore, dead_zookeeper: ZookeeperRegistry
) -> None:
    target = store.file("demo", SERVICE)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x00garbage")
    cluster = await started_cluster(store, [dead_zookeeper], refer())
    try:
        assert cluster.provider_urls() == []
    finally:
        await cluster.close()


async def test_silent_registry_serves_the_snapshot_until_a_real_list(
    store: SnapshotStore, make_registry: MakeRegistry
) -> None:
    client, server = await make_registry(), await make_registry()
    store.save("demo", SERVICE, [provider(9001)])
    await store.flush()
    cluster = await started_cluster(store, [client], refer())
    try:
        assert ports(cluster.provider_urls()) == [9001]
        await server.register(provider(9005))
        await server.available(provider(9005))
        await wait_until(lambda: ports(cluster.provider_urls()) == [9005], "the real list")
        assert SNAPSHOT_SOURCE not in cluster._lists["demo"]
        await wait_until(
            lambda: store.read(refer()) == [provider(9005)], "the snapshot of the real list"
        )
    finally:
        await cluster.close()


async def test_delivered_list_wins_and_is_saved(
    store: SnapshotStore, make_registry: MakeRegistry
) -> None:
    registry = await make_registry()
    await registry.register(provider(9003))
    await registry.available(provider(9003))
    store.save("demo", SERVICE, [provider(9001)])
    await store.flush()
    cluster = await started_cluster(store, [registry], refer())
    try:
        assert ports(cluster.provider_urls()) == [9003]
        assert cluster.snapshot is not None and not cluster.snapshot.serving_snapshot
        await wait_until(lambda: store.read(refer()) == [provider(9003)], "the snapshot")
    finally:
        await cluster.close()


async def test_merge_groups_are_saved_too(
    store: SnapshotStore, make_registry: MakeRegistry
) -> None:
    registry = await make_registry()
    await registry.register(provider(9004, group="other"))
    await registry.available(provider(9004, group="other"))
    mixed = refer().with_params(mixGroups="other")
    cluster = await started_cluster(store, [registry], mixed)
    try:
        await wait_until(
            lambda: store.read(mixed, "other") == [provider(9004, group="other")],
            "the snapshot of the merge group",
        )
    finally:
        await cluster.close()


# ---------------------------------------------------------------------------- ${idc}


async def test_idc_group_with_providers_is_chosen(make_registry: MakeRegistry) -> None:
    registry = await make_registry()
    await registry.register(provider(9001, group="rpc-yf"))
    await registry.available(provider(9001, group="rpc-yf"))
    groups = IdcGroups("Yf")
    assert groups.candidates("rpc-${idc}") == ["rpc-Yf", "rpc-yf", "rpc-YF"]
    configured = refer(group="rpc-${idc}")
    assert await groups.resolve(configured, [registry]) == "rpc-yf"
    assert groups.group("rpc-${idc}") == "rpc-yf"
    assert groups.group("plain") == "plain"


async def test_idc_group_without_providers_is_the_plain_replacement(
    make_registry: MakeRegistry,
) -> None:
    registry = await make_registry()
    groups = IdcGroups("yf")
    assert await groups.resolve(refer(group="rpc-${idc}"), [registry]) == "rpc-yf"
    assert await IdcGroups("").resolve(refer(group="rpc-${idc}"), [registry]) == "rpc-${idc}"


async def test_idc_group_falls_back_to_snapshots_when_offline(
    store: SnapshotStore, dead_zookeeper: ZookeeperRegistry
) -> None:
    store.save("rpc-TC", SERVICE, [provider(9001, group="rpc-TC")])
    await store.flush()
    groups = IdcGroups("tc")
    configured = refer(group="rpc-${idc}")
    assert await groups.resolve(configured, [dead_zookeeper], store) == "rpc-TC"
