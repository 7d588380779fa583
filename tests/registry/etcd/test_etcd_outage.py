"""The etcd registry when things break: a killed provider, an etcd restart, a partition."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from motanmesh.registry import RegistryStatus
from motanmesh.registry.etcd import EtcdRegistry
from motanmesh.url import URL
from tests.registry.conftest import WAIT_SECONDS, Commands, Providers, provider, refer, wait_until
from tests.registry.etcd.conftest import MakeEtcd, TcpProxy, etcd_url
from tests.servers.etcd import EtcdServer

SERVICE = "/motan/demo/com.example.Echo"
CHILD = Path(__file__).with_name("child.py")


def servers(etcd: EtcdServer) -> dict[str, tuple[str, int]]:
    return etcd.range(f"{SERVICE}/server/")


def owned(etcd: EtcdServer, lease: int | None) -> dict[str, str]:
    """The keys under /motan/ attached to ``lease``."""
    return {key: data for key, (data, owner) in etcd.range("/motan/").items() if owner == lease}


async def test_killed_provider_vanishes_after_ttl_and_is_kept(
    etcd: EtcdServer, make_etcd: MakeEtcd
) -> None:
    client = await make_etcd()
    seen = Providers()
    await client.subscribe(refer(), seen)
    url = provider(8001)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), etcd_url(etcd.address).to_ext_info(), url.to_ext_info()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), WAIT_SECONDS)
        verb, lease = line.split()
        assert verb == "ok"
        assert servers(etcd) == {
            f"{SERVICE}/server/127.0.0.1:8001": (url.to_ext_info(), int(lease))
        }
        await wait_until(lambda: seen.ports() == [[8001]], "the child's provider")
        child.kill()
        child.wait()
        await wait_until(lambda: not servers(etcd), "the lease of the killed process to expire")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    await client.refresh()
    assert seen.ports() == [[8001]]  # vanished, not unregistered: the last list is kept


async def test_etcd_restart_resumes_watches_and_applies_queued_writes(
    own_etcd: EtcdServer, registries: list[EtcdRegistry]
) -> None:
    etcd = own_etcd
    server = EtcdRegistry(etcd_url(etcd.address))
    client = EtcdRegistry(etcd_url(etcd.address))
    registries += [server, client]
    await server.start()
    await client.start()
    first, second = provider(8001), provider(8002)
    await server.register(first)
    await server.available(first)
    seen, commands = Providers(), Commands()
    await client.subscribe(refer(), seen)
    await client.subscribe_command("demo", commands)
    assert seen.ports() == [[8001]]

    await etcd.astop(kill=True)
    await wait_until(lambda: not server.online and not client.online, "both to notice")
    await asyncio.sleep(2.5)  # longer than the lease TTL
    await server.register(second)
    await server.available(second)
    await server.unavailable(first)
    queued = {s.service: s for s in server.status()}
    assert all("queued" in s.err_msg for s in queued.values())
    assert await client.discover(refer()) == [first]  # the watched list, while unreachable

    await etcd.astart()
    await wait_until(lambda: seen.last_ports == [8002], "the queued writes to reach the client")
    assert set(servers(etcd)) == {f"{SERVICE}/server/127.0.0.1:8002"}
    assert etcd.range(f"{SERVICE}/unavailableServer/") == {
        f"{SERVICE}/unavailableServer/127.0.0.1:8001": (first.to_ext_info(), server.lease or -1)
    }
    # the client's watch may hear of the last write before the server has read etcd's answer
    # to it, which is when its status changes
    await wait_until(
        lambda: (
            [s.status for s in server.status()]
            == [RegistryStatus.UNREGISTER_SUCCESS, RegistryStatus.REGISTER_SUCCESS]
        ),
        "the queued writes' statuses",
    )

    etcd.put("/motan/demo/command", "after restart")
    etcd.put(f"{SERVICE}/server/10.9.9.9:7000", "")
    await wait_until(lambda: commands.calls == ["after restart"], "the command watch")
    await wait_until(lambda: seen.last_ports == [7000, 8002], "the service watch")
    assert [] not in seen.ports()


async def test_partition_longer_than_ttl_recreates_every_node(
    etcd: EtcdServer, make_etcd: MakeEtcd, proxy: TcpProxy
) -> None:
    server, client = await make_etcd(proxy.address), await make_etcd()
    first, second = provider(8001), provider(8002)
    agent = URL("motan2", "10.0.0.5", 9981, parameters={"application": "web"})
    await server.register(first)
    await server.available(first)
    await server.register(second)
    await server.register_agent(agent)
    seen = Providers()
    await client.subscribe(refer(), seen)
    assert seen.ports() == [[8001]]
    old_lease = server.lease

    await proxy.cut()
    await wait_until(lambda: not server.online, "the server registry to notice")
    await wait_until(lambda: not owned(etcd, old_lease), "the lease to expire")
    await server.available(second)  # queued, and part of the state written again
    await client.refresh()
    assert seen.ports() == [[8001]]  # every provider vanished: the last list is kept

    await proxy.start()
    await wait_until(lambda: seen.last_ports == [8001, 8002], "the nodes written again")
    assert server.lease not in (None, old_lease)
    nodes = owned(etcd, server.lease)
    assert set(nodes) == {
        f"{SERVICE}/server/127.0.0.1:8001",
        f"{SERVICE}/server/127.0.0.1:8002",
        "/motan/agent/web/node/10.0.0.5:9981",
    }
    await wait_until(
        lambda: [s.status for s in server.status()] == [RegistryStatus.REGISTER_SUCCESS] * 2,
        "the statuses of the nodes written again",
    )
    assert [] not in seen.ports()
