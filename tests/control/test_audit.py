"""The audit trail and the commit rules, in-process against a real embedded registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from motanmesh.cluster.command import EMPTY_DOCUMENT_JSON, parse_command_document
from motanmesh.control import audit
from motanmesh.control.audit import (
    AUDIT_GROUP,
    AuditError,
    AuditRecord,
    AuditTrail,
    CommandTarget,
    audit_group,
)
from motanmesh.control.commands import (
    CommandAuthor,
    CommandValidationError,
    ConcurrentChangeError,
    StoredCommand,
    build_command,
    command_targets,
    plan_clear,
    plan_command,
    plan_document,
    read_command,
    upsert,
)
from motanmesh.registry.embedded import EmbeddedRegistry
from tests.control.conftest import embedded

GROUP = CommandTarget("group", "user-rpc-yf")
AGENT = CommandTarget("agent", "feed-web")


def _record(target: CommandTarget, n: int) -> AuditRecord:
    return AuditRecord.new(
        operator="op", host="h", action="set", target=target, before=None, after=str(n)
    )


async def test_records_round_trip_and_order(registry: EmbeddedRegistry) -> None:
    trail = AuditTrail(registry)
    first, second, third = _record(GROUP, 1), _record(AGENT, 2), _record(GROUP, 3)
    for record in (first, second, third):
        await trail.append(record)
    assert await trail.targets() == [GROUP, AGENT]
    assert await trail.history(GROUP) == [first, third]
    assert await trail.history() == [first, second, third]
    assert await trail.history(limit=1) == [third]
    assert await trail.history(limit=0) == []


async def test_audit_nodes_read_as_empty_command_lists(registry: EmbeddedRegistry) -> None:
    await AuditTrail(registry).append(_record(GROUP, 1))
    for group in (AUDIT_GROUP, audit_group(GROUP)):
        text = await registry.get_command(group)
        assert text is not None
        assert parse_command_document(text).commands == []
        assert json.loads(text)["clientCommandList"] == []


async def test_records_are_trimmed_oldest_first(
    registry: EmbeddedRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "MAX_RECORDS", 3)
    trail = AuditTrail(registry)
    records = [_record(GROUP, n) for n in range(5)]
    for record in records:
        await trail.append(record)
    assert await trail.history(GROUP) == records[2:]
    monkeypatch.setattr(audit, "MAX_NODE_BYTES", 1500)
    big = AuditRecord.new(
        operator="op", host="h", action="set", target=GROUP, before="x" * 600, after="y" * 600
    )
    await trail.append(big)
    assert await trail.history(GROUP) == [big]


async def test_two_registries_see_one_trail(registry: EmbeddedRegistry, tmp_path: Path) -> None:
    async with EmbeddedRegistry(embedded(tmp_path / "registry.db")) as other:
        await AuditTrail(registry).append(_record(GROUP, 1))
        await AuditTrail(other).append(_record(GROUP, 2))
        history = await AuditTrail(registry).history(GROUP)
    assert [r.after for r in history] == ["1", "2"]


async def test_unreadable_trail_blocks_the_change(registry: EmbeddedRegistry) -> None:
    await registry.set_command(audit_group(GROUP), '{"motanmeshAudit":{"records":"oops"}}')
    author = CommandAuthor(registry, "op")
    plan = plan_clear(await author.read(GROUP))
    with pytest.raises(AuditError):
        await author.commit(plan)
    assert await registry.get_command(GROUP.name) is None


async def test_concurrent_change_is_refused(registry: EmbeddedRegistry) -> None:
    author = CommandAuthor(registry, "op")
    plan = plan_command(await author.read(GROUP), build_command("traffic", "*"))
    await registry.set_command(GROUP.name, EMPTY_DOCUMENT_JSON)
    with pytest.raises(ConcurrentChangeError):
        await author.commit(plan)
    assert await registry.get_command(GROUP.name) == EMPTY_DOCUMENT_JSON
    assert await AuditTrail(registry).history() == []


async def test_commit_records_who_and_what(registry: EmbeddedRegistry) -> None:
    author = CommandAuthor(registry, "alice", host="ops-1")
    before = await read_command(registry, GROUP)
    command = build_command("traffic", "*", merge_groups=["user-rpc-yf:8,user-rpc-tc:2"])
    plan = plan_command(before, command)
    result = await author.commit(plan, "drill")
    assert result.written
    assert not result.concurrent
    (record,) = await AuditTrail(registry).history(GROUP)
    assert record == result.record
    assert (record.operator, record.host, record.remark) == ("alice", "ops-1", "drill")
    assert record.after == await registry.get_command(GROUP.name)
    assert plan.document is not None
    again = await author.commit(plan_document(await author.read(GROUP), plan.document))
    assert not again.written


def test_plans_validate_everything() -> None:
    before = StoredCommand(GROUP, None, None)
    with pytest.raises(CommandValidationError) as info:
        plan_command(before, build_command("traffic", "*", merge_groups=["a:0", "a"]))
    assert len(info.value.problems) == 1
    with pytest.raises(CommandValidationError):
        build_command("nope", "*")
    document = upsert(parse_command_document(EMPTY_DOCUMENT_JSON), build_command("degrade", "x"))
    assert document.commands[0].index == 1


class _ListingRegistry(EmbeddedRegistry):
    """A registry that can list its command nodes (the optional ``command_groups``)."""

    async def command_groups(self) -> list[str]:
        return ["b-group", "a-group", audit_group(GROUP), AUDIT_GROUP]


async def test_targets_come_from_the_registry_when_it_can_list(tmp_path: Path) -> None:
    async with _ListingRegistry(embedded(tmp_path / "listing.db")) as registry:
        trail = AuditTrail(registry)
        await trail.append(_record(AGENT, 1))
        targets, source = await command_targets(registry, trail)
        assert source == "registry"
        assert targets == [CommandTarget("group", "a-group"), CommandTarget("group", "b-group")]


async def test_targets_fall_back_to_the_audit_index(registry: EmbeddedRegistry) -> None:
    trail = AuditTrail(registry)
    assert await command_targets(registry, trail) == ([], "audit")
    await trail.append(_record(AGENT, 1))
    assert await command_targets(registry, trail) == ([AGENT], "audit")
