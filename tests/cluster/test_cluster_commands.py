"""Commands in live clusters: real clusters over a real embedded registry (a SQLite file) and
real provider servers on loopback addresses. The control plane writes commands through its
own registry instance, as an operator's tool would; the clusters read them through theirs."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from motanmesh.cluster.cluster import DEGRADE_MESSAGE, Cluster
from motanmesh.cluster.command import EMPTY_DOCUMENT_JSON
from motanmesh.cluster.commands_live import SwitcherCommands
from motanmesh.cluster.errors import call_error_response
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.sdk.client import MotanClient, decode_response
from motanmesh.sdk.errors import MotanRemoteError
from motanmesh.sdk.service import ServiceRegistry, ServiceServer
from motanmesh.switcher import SwitcherManager
from motanmesh.url import URL

SERVICE = "com.weibo.motanmesh.test.InstanceService"
FEED = "com.weibo.feed.FeedService"
RECOMMEND = "com.weibo.feed.RecommendService"
USER = "com.weibo.user.UserService"
A, B = "user-rpc-yf", "user-rpc-tc"
YF, TC = "feed-rpc-yf", "feed-rpc-tc"
WAIT = 5.0


def document(*commands: dict[str, Any]) -> str:
    """A command document; every command gets the fields the manager writes."""
    base = {"version": "1.0", "dc": "", "pattern": "*", "mergeGroups": [], "routeRules": []}
    return json.dumps({"clientCommandList": [{**base, **c} for c in commands]})


def traffic(
    index: int, groups: Sequence[str], rules: Sequence[str] = (), pattern: str = "*"
) -> str:
    return document(
        {
            "index": index,
            "commandType": 0,
            "pattern": pattern,
            "mergeGroups": list(groups),
            "routeRules": list(rules),
        }
    )


# ---------------------------------------------------------------------------- the mesh


@dataclass
class Provider:
    """A service server answering every call with its name; counts what it served."""

    name: str
    host: str
    server: ServiceServer
    served: Counter[str] = field(default_factory=Counter)

    @property
    def port(self) -> int:
        return int(self.server.address.rpartition(":")[2])


class Mesh:
    """Providers, clusters and two registry instances on one file: ``control`` (providers
    and the control plane write there) and ``client`` (the clusters read there)."""

    def __init__(self, control: EmbeddedRegistry, client: EmbeddedRegistry) -> None:
        self.control = control
        self.client = client
        self.providers: dict[str, Provider] = {}
        self.clusters: list[Cluster] = []

    async def provider(self, name: str, group: str, host: str = "127.0.0.1", *paths: str) -> None:
        """Serve ``paths`` (default: SERVICE) as ``name`` and register them in ``group``."""
        registry = ServiceRegistry()
        served: Counter[str] = Counter()
        for path in paths or (SERVICE,):
            svc = registry.service(path)

            def whoami(path: str = path) -> str:
                served[path] += 1
                return name

            svc.add("whoami", whoami, inline=True)
        server = await registry.serve(host, 0)
        provider = self.providers[name] = Provider(name, host, server, served)
        for path in paths or (SERVICE,):
            url = URL("motan2", host, provider.port, path, group, {"nodeType": "service"})
            await self.control.register(url)
            await self.control.available(url)

    async def cluster(
        self,
        group: str,
        path: str = SERVICE,
        *,
        local_ip: str = "127.0.0.1",
        switchers: SwitcherCommands | None = None,
        application: str = "",
        **params: str,
    ) -> Cluster:
        refer = URL("motan2", local_ip, 0, path, group, {"requestTimeout": "2000", **params})
        cluster = Cluster(refer, [self.client], local_ip=local_ip, switchers=switchers)
        self.clusters.append(cluster)
        if application:
            await self.client.subscribe_agent_command(application, cluster.on_agent_command)
        await cluster.start()
        return cluster

    async def close(self) -> None:
        for cluster in self.clusters:
            await cluster.close()
        for provider in self.providers.values():
            await provider.server.close(0.5)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    db = str(tmp_path / "registry.db")
    control = EmbeddedRegistry(URL("embedded", parameters={"file": db}))
    client = EmbeddedRegistry(URL("embedded", parameters={"file": db}))
    await control.start()
    await client.start()
    m = Mesh(control, client)
    try:
        yield m
    finally:
        await m.close()
        await client.close()
        await control.close()


# ---------------------------------------------------------------------------- calls

_FRAMES = MotanClient(application="cluster-test")


async def call(cluster: Cluster) -> str:
    """One ``whoami`` call through the cluster; an exception response raises."""
    frame = _FRAMES.request(cluster.refer.path, "whoami", (), group=cluster.refer.group)
    try:
        reply = await cluster.request(frame)
    except Exception as e:  # the single-attempt fast path hands transport errors back
        reply = call_error_response(frame, e)
    return str(decode_response(reply))


async def calls(cluster: Cluster, total: int, concurrency: int = 50) -> Counter[str]:
    seen: Counter[str] = Counter()
    for start in range(0, total, concurrency):
        batch = min(concurrency, total - start)
        seen.update(await asyncio.gather(*(call(cluster) for _ in range(batch))))
    return seen


@dataclass
class Load:
    """Calls running all the time in the background: who answered, and every failure."""

    cluster: Cluster
    replies: Counter[str] = field(default_factory=Counter)
    failures: list[BaseException] = field(default_factory=list)
    last: dict[str, float] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, workers: int = 8) -> None:
        async def worker() -> None:
            while not self.stop.is_set():
                try:
                    name = await call(self.cluster)
                except Exception as e:
                    self.failures.append(e)
                    await asyncio.sleep(0.001)
                    continue
                self.replies[name] += 1
                self.last[name] = time.monotonic()

        await asyncio.gather(*(worker() for _ in range(workers)))


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Wait until ``predicate()``; return how long it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def groups_of(cluster: Cluster) -> set[str]:
    return {ep.url.group for ep in cluster.endpoints.values()}


def ready(cluster: Cluster, names: set[str], mesh: Mesh) -> bool:
    """Exactly the providers ``names`` are the cluster's endpoints, all connected."""
    ports = {f"{mesh.providers[n].host}:{mesh.providers[n].port}" for n in names}
    eps = cluster.endpoints.values()
    return {ep.url.address for ep in eps} == ports and all(ep.available for ep in eps)


def assert_share(seen: Counter[str], name: str, share: float, tolerance: float = 0.03) -> None:
    total = sum(seen.values())
    assert abs(seen[name] / total - share) <= tolerance, (name, share, seen)


# ---------------------------------------------------------------------------- traffic control


async def test_weighted_split_follows_commands_without_failed_calls(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    await mesh.provider("b", B)
    cluster = await mesh.cluster(A)
    await wait_until(lambda: ready(cluster, {"a"}, mesh), "the own group's provider")
    load = Load(cluster)
    runner = asyncio.ensure_future(load.run())
    try:
        await wait_until(lambda: load.replies["a"] > 100, "calls to a")

        written = time.monotonic()
        await mesh.control.set_command(A, traffic(1, [f"{A}:8", f"{B}:2"]))
        await wait_until(lambda: "b" in load.replies, "the first call served by group B")
        latency = time.monotonic() - written
        print(f"\ncommand written -> first call in the new group: {latency * 1000:.0f} ms")
        assert cluster.lb.weights == {A: 8, B: 2}
        assert groups_of(cluster) == {A, B}
        split = await calls(cluster, 5000)
        assert sum(split.values()) == 5000
        assert_share(split, "b", 0.2)
        assert_share(split, "a", 0.8)

        await mesh.control.set_command(A, EMPTY_DOCUMENT_JSON)
        await wait_until(lambda: groups_of(cluster) == {A}, "group B to leave")
        assert cluster.lb.weights is None
        assert await calls(cluster, 500) == Counter(a=500)

        await mesh.control.set_command(A, traffic(2, [B]))
        await wait_until(lambda: groups_of(cluster) == {B}, "all traffic on group B")
        assert await calls(cluster, 500) == Counter(b=500)

        await mesh.control.set_command(A, None)  # the node is deleted
        await wait_until(lambda: groups_of(cluster) == {A}, "the deleted command to go")
        assert await calls(cluster, 500) == Counter(a=500)
    finally:
        load.stop.set()
        await runner
    assert load.failures == []
    assert load.replies["a"] > 0 and load.replies["b"] > 0
    info = cluster.runtime_info()
    assert [r["command"] for r in info["commandHistory"]] == [
        traffic(1, [f"{A}:8", f"{B}:2"]),
        EMPTY_DOCUMENT_JSON,
        traffic(2, [B]),
        None,
    ]
    assert info["notifyHistory"][-1]["providers"] == {A: 1}
    assert info["groups"] == {A: 1}
    assert info["commands"]["subscribedGroups"] == []


async def test_group_b_client_node_appears_and_goes(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    await mesh.provider("b", B)
    cluster = await mesh.cluster(A)
    clients = f"/motan/{B}/{SERVICE}/client/127.0.0.1:0"
    await mesh.control.set_command(A, traffic(1, [A, B]))
    await wait_until(lambda: groups_of(cluster) == {A, B}, "the mixed groups")
    assert cluster.lb.weights is None  # mix mode: one pool, no weighting
    assert cluster.runtime_info()["commands"]["subscribedGroups"] == [B]
    assert await mesh.control.discover(URL("motan2", "", 0, SERVICE, B))
    # the client node is written by the subscription and removed by the unsubscription, each
    # a registry write that completes after the endpoints changed: wait for it
    await _wait_node(mesh, clients, present=True)
    await mesh.control.set_command(A, EMPTY_DOCUMENT_JSON)
    await wait_until(lambda: groups_of(cluster) == {A}, "group B to leave")
    await _wait_node(mesh, clients, present=False)


async def _wait_node(mesh: Mesh, path: str, *, present: bool) -> None:
    prefix = path.rsplit("/", 1)[0] + "/"
    start = time.monotonic()
    while (path in await _node_paths(mesh, prefix)) != present:
        if time.monotonic() - start > WAIT:
            state = "appear" if present else "go"
            raise AssertionError(f"timed out after {WAIT} s waiting for {path} to {state}")
        await asyncio.sleep(0.02)


async def _node_paths(mesh: Mesh, prefix: str) -> set[str]:
    import sqlite3  # noqa: PLC0415

    def read() -> set[str]:
        with sqlite3.connect(mesh.client.file) as conn:
            rows = conn.execute("SELECT path FROM nodes").fetchall()
        return {str(p) for (p,) in rows if str(p).startswith(prefix)}

    return await asyncio.to_thread(read)


async def test_mix_groups_parameter_is_the_default_command(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    await mesh.provider("b", B)
    cluster = await mesh.cluster(A, mixGroups=B)
    await wait_until(lambda: ready(cluster, {"a", "b"}, mesh), "both groups")
    assert set(await calls(cluster, 200)) == {"a", "b"}
    # a dynamic command replaces it; removing that brings the static one back
    await mesh.control.set_command(A, traffic(1, [A]))
    await wait_until(lambda: groups_of(cluster) == {A}, "the own group only")
    await mesh.control.set_command(A, None)
    await wait_until(lambda: groups_of(cluster) == {A, B}, "mixGroups again")


async def test_route_rule_keeps_a_client_on_its_subnet(mesh: Mesh) -> None:
    await mesh.provider("one", A, "127.0.0.1")
    await mesh.provider("two", A, "127.0.0.2")
    near = await mesh.cluster(A, local_ip="127.0.0.1")
    other = await mesh.cluster(A, local_ip="127.0.0.2")
    await wait_until(lambda: ready(near, {"one", "two"}, mesh), "both providers")
    await wait_until(lambda: ready(other, {"one", "two"}, mesh), "both providers")

    await mesh.control.set_command(A, traffic(1, [A], ["127.0.0.1 to 127.0.0.1"]))
    await wait_until(lambda: ready(near, {"one"}, mesh), "the 127.0.0.1 client on one")
    assert await calls(near, 300) == Counter(one=300)
    assert set(await calls(other, 300)) == {"one", "two"}  # the rule is not for it

    await mesh.control.set_command(A, EMPTY_DOCUMENT_JSON)
    await wait_until(lambda: ready(near, {"one", "two"}, mesh), "both providers again")


async def test_route_rule_that_leaves_nothing_is_not_applied(mesh: Mesh) -> None:
    await mesh.provider("one", A, "127.0.0.1")
    cluster = await mesh.cluster(A)
    await wait_until(lambda: ready(cluster, {"one"}, mesh), "the provider")
    await mesh.control.set_command(A, traffic(1, [A], ["* to 10.0.0.*"]))
    await wait_until(lambda: len(cluster.commands.history.notifies) >= 2, "the command")
    assert await calls(cluster, 100) == Counter(one=100)


# ---------------------------------------------------------------------------- degrade, switchers


async def test_degrade_fails_fast_and_recovers(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    cluster = await mesh.cluster(A)
    await wait_until(lambda: ready(cluster, {"a"}, mesh), "the provider")
    degrade = document({"index": 1, "commandType": 1, "pattern": SERVICE})
    await mesh.control.set_command(A, degrade)
    await wait_until(lambda: not cluster.available, "the degrade")
    served = mesh.providers["a"].served[SERVICE]
    for _ in range(20):
        with pytest.raises(MotanRemoteError) as info:
            await call(cluster)
        assert (info.value.errcode, info.value.errmsg) == (500, DEGRADE_MESSAGE)
    assert mesh.providers["a"].served[SERVICE] == served  # nothing reached the backend
    await mesh.control.set_command(A, None)
    await wait_until(lambda: cluster.available, "the recovery")
    assert await calls(cluster, 50) == Counter(a=50)


async def test_switcher_command_sets_and_restores(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    manager = SwitcherManager()
    manager.register("metricsReqApp", False)
    manager.register("featureOn", True)
    switchers = SwitcherCommands(manager)
    cluster = await mesh.cluster(A, switchers=switchers)
    command = document(
        {"index": 1, "commandType": 2, "pattern": "metricsReqApp:true,featureOn:false,nope:true"}
    )
    await mesh.control.set_command(A, command)
    await wait_until(lambda: manager.is_open("metricsReqApp"), "the switcher on")
    assert manager.all() == {"featureOn": False, "metricsReqApp": True}  # nope is unknown
    assert switchers.saved == {"featureOn": True, "metricsReqApp": False}
    await mesh.control.set_command(A, EMPTY_DOCUMENT_JSON)
    await wait_until(lambda: not manager.is_open("metricsReqApp"), "the switcher restored")
    assert manager.all() == {"featureOn": True, "metricsReqApp": False}
    assert switchers.saved == {}
    assert cluster.available


def test_switcher_commands_of_several_clusters_share_the_saved_values() -> None:
    manager = SwitcherManager()
    manager.register("s", False)
    switchers = SwitcherCommands(manager)
    one, two = object(), object()
    switchers.apply(one, {"s": True})
    switchers.apply(two, {"s": False})
    assert manager.get("s") is False  # the last request wins
    switchers.apply(two, {})
    assert manager.get("s") is True  # back to the remaining request
    manager.set("s", False)  # an operator flips it meanwhile
    switchers.release(one)
    assert manager.get("s") is False  # the value from before any command
    switchers.apply(one, {"s": True})
    assert switchers.saved == {"s": False}
    switchers.apply(one, {"s": True, "unknown": True})
    assert switchers.requests(one) == {"s": True}


async def test_agent_command_overrides_the_service_command(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    await mesh.provider("b", B)
    cluster = await mesh.cluster(A, application="user-web")
    await mesh.control.set_command(A, traffic(1, [f"{A}:8", f"{B}:2"]))
    await wait_until(lambda: cluster.lb.weights == {A: 8, B: 2}, "the service command")
    await mesh.control.set_agent_command("user-web", traffic(1, [B]))
    await wait_until(lambda: groups_of(cluster) == {B}, "the agent command")
    assert await calls(cluster, 300) == Counter(b=300)
    effective = cluster.runtime_info()["commands"]["effective"]
    assert effective["source"] == {"trafficControl": "agent command index 1 (traffic control)"}
    await mesh.control.set_agent_command("user-web", None)
    await wait_until(lambda: cluster.lb.weights == {A: 8, B: 2}, "the service command again")
    await wait_until(lambda: ready(cluster, {"a", "b"}, mesh), "both groups connected")
    assert_share(await calls(cluster, 1000), "b", 0.2)


# ---------------------------------------------------------------------------- documented examples


async def test_example_1_split_with_same_subnet_preference(mesh: Mesh) -> None:
    for name, group, host in (
        ("yf-near", YF, "127.0.0.1"),
        ("yf-far", YF, "127.0.1.1"),
        ("tc-near", TC, "127.0.0.1"),
        ("tc-far", TC, "127.0.1.1"),
    ):
        await mesh.provider(name, group, host, FEED, USER)
    near = await mesh.cluster(YF, FEED, local_ip="127.0.0.9")
    far = await mesh.cluster(YF, FEED, local_ip="127.0.1.9")
    user = await mesh.cluster(YF, USER, local_ip="127.0.0.9")
    command = traffic(1, [f"{YF}:70", f"{TC}:30"], ["127.0.0.* to 127.0.0.*"], "com.weibo.feed.")
    await mesh.control.set_command(YF, command)

    await wait_until(lambda: ready(near, {"yf-near", "tc-near"}, mesh), "near: the 127.0.0 pair")
    await wait_until(lambda: ready(far, {"yf-near", "yf-far", "tc-near", "tc-far"}, mesh), "far")
    seen = await calls(near, 2000)
    assert set(seen) == {"yf-near", "tc-near"}
    assert_share(seen, "tc-near", 0.3)
    seen = await calls(far, 2000)
    assert set(seen) == {"yf-near", "yf-far", "tc-near", "tc-far"}
    assert abs((seen["tc-near"] + seen["tc-far"]) / 2000 - 0.3) <= 0.03, seen
    # the pattern does not cover the user service
    assert ready(user, {"yf-near", "yf-far"}, mesh)
    assert user.commands.effective.traffic is None


async def test_example_2_degrade_one_service_by_agent_command(mesh: Mesh) -> None:
    await mesh.provider("yf", YF, "127.0.0.1", FEED, RECOMMEND)
    recommend = await mesh.cluster(YF, RECOMMEND, application="feed-web")
    feed = await mesh.cluster(YF, FEED, application="feed-web")
    await wait_until(lambda: ready(recommend, {"yf"}, mesh), "the provider")
    degrade = document(
        {"index": 5, "commandType": 1, "pattern": RECOMMEND, "remark": "degrade recommend"}
    )
    await mesh.control.set_agent_command("feed-web", degrade)
    await wait_until(lambda: not recommend.available, "the degrade")
    with pytest.raises(MotanRemoteError) as info:
        await call(recommend)
    assert (info.value.errcode, info.value.errmsg) == (500, DEGRADE_MESSAGE)
    assert feed.available
    assert await calls(feed, 20) == Counter(yf=20)
    await mesh.control.set_agent_command("feed-web", EMPTY_DOCUMENT_JSON)
    await wait_until(lambda: recommend.available, "the recovery")
    assert await calls(recommend, 20) == Counter(yf=20)


async def test_example_3_switcher_and_blacklist_in_one_document(mesh: Mesh) -> None:
    await mesh.provider("kept", YF, "127.0.0.1")
    await mesh.provider("drained", YF, "127.0.3.1")
    manager = SwitcherManager()
    manager.register("metricsReqApp", False)
    cluster = await mesh.cluster(YF, switchers=SwitcherCommands(manager))
    await wait_until(lambda: ready(cluster, {"kept", "drained"}, mesh), "both providers")
    command = document(
        {"index": 1, "commandType": 0, "mergeGroups": [YF], "routeRules": ["* to !127.0.3.*"]},
        {"index": 2, "commandType": 2, "pattern": "metricsReqApp:true"},
    )
    await mesh.control.set_command(YF, command)
    await wait_until(lambda: ready(cluster, {"kept"}, mesh), "the drained rack to leave")
    assert manager.is_open("metricsReqApp")
    assert await calls(cluster, 200) == Counter(kept=200)
    await mesh.control.set_command(YF, None)
    await wait_until(lambda: ready(cluster, {"kept", "drained"}, mesh), "the rack back")
    assert not manager.is_open("metricsReqApp")


# ---------------------------------------------------------------------------- edges


async def test_unchanged_and_unreadable_commands(mesh: Mesh) -> None:
    await mesh.provider("a", A)
    await mesh.provider("b", B)
    cluster = await mesh.cluster(A)
    await wait_until(lambda: ready(cluster, {"a"}, mesh), "the provider")
    await mesh.control.set_command(A, traffic(1, [B]))
    await wait_until(lambda: groups_of(cluster) == {B}, "group B")
    await mesh.control.set_command(A, "{not json")
    await wait_until(lambda: groups_of(cluster) == {A}, "the unreadable command to count as none")
    assert any("ignored" in n for n in cluster.commands.effective.notes)
    cluster.on_agent_command(None)  # no change: nothing recorded
    assert [r.origin for r in cluster.commands.history.commands] == ["service", "service"]


async def test_cluster_without_command_registry_ignores_commands(tmp_path: Path) -> None:
    from motanmesh.registry.direct import DirectRegistry  # noqa: PLC0415

    registry = ServiceRegistry()

    def whoami() -> str:
        return "direct"

    registry.service(SERVICE).add("whoami", whoami, inline=True)
    server = await registry.serve("127.0.0.1", 0)
    direct = DirectRegistry(URL("direct", parameters={"address": server.address}))
    await direct.start()
    cluster = Cluster(URL("motan2", "127.0.0.1", 0, SERVICE, A), [direct])
    try:
        await cluster.start()
        assert not cluster.accepts_commands
        cluster.on_agent_command(document({"index": 1, "commandType": 1, "pattern": "*"}))
        assert cluster.available
        await wait_until(lambda: all(ep.available for ep in cluster.endpoints.values()), "ep")
        assert await calls(cluster, 10) == Counter(direct=10)
    finally:
        await cluster.close()
        await direct.close()
        await server.close(0.5)
