"""The audit trail of command changes, kept in the registry so every operator sees it.

Every write made by ``motanmesh ctl`` leaves one :class:`AuditRecord`: who (``--operator`` or
the login name) and from which host, when (UTC, ISO 8601), what (the target: a service group or
an agent application; the action), the command text before and after, and a free remark.

Storage goes through the ``Registry`` interface only, so it works on every backend that keeps
commands (embedded, ZooKeeper, etcd). Records live in command nodes of reserved groups that no
refer uses::

    /motan/motanmesh.ctl-audit/command                 index: every target ever audited
    /motan/motanmesh.ctl-audit.group.<group>/command   records of one service group
    /motan/motanmesh.ctl-audit.agent.<app>/command     records of one agent application

Each node holds ``{"clientCommandList":[],"motanmeshAudit":{...}}``: to any Motan client that
ever read it, it is an empty command list. A target keeps its newest :data:`MAX_RECORDS`
records, and at most :data:`MAX_NODE_BYTES` of JSON (older records are dropped first).

The registry offers no compare-and-set, so an append is optimistic: read, add the record,
write, read back; if a concurrent writer replaced the node in between, the records are merged
and written again (up to :data:`APPEND_ATTEMPTS` times). A record can only be lost when two
operators write the *same* target within the same instant, which the read-back makes unlikely.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from motanmesh.registry.base import Registry

__all__ = [
    "APPEND_ATTEMPTS",
    "AUDIT_GROUP",
    "MAX_NODE_BYTES",
    "MAX_RECORDS",
    "AuditError",
    "AuditRecord",
    "AuditTrail",
    "CommandTarget",
    "TargetKind",
    "audit_group",
    "records_to_json",
    "utc_now",
]

AUDIT_GROUP: Final = "motanmesh.ctl-audit"
AUDIT_KEY: Final = "motanmeshAudit"
AUDIT_VERSION: Final = 1
MAX_RECORDS: Final = 200
MAX_NODE_BYTES: Final = 512 * 1024
APPEND_ATTEMPTS: Final = 5

TargetKind: TypeAlias = Literal["group", "agent"]


class AuditError(Exception):
    """The audit trail cannot be read or written."""


@dataclass(frozen=True, slots=True)
class CommandTarget:
    """A command node: a service group's (``group``) or an agent application's (``agent``)."""

    kind: TargetKind
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ("group", "agent"):
            raise ValueError(f"unknown command target kind {self.kind!r}")
        if not self.name or any(ch in self.name for ch in "/ \t\r\n"):
            raise ValueError(f"invalid {self.kind} name {self.name!r}")

    @property
    def key(self) -> str:
        """``group:<name>`` or ``agent:<name>``."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def from_key(cls, key: str) -> CommandTarget:
        kind, sep, name = key.partition(":")
        if not sep or kind not in ("group", "agent"):
            raise ValueError(f"not a command target: {key!r}")
        return cls("group" if kind == "group" else "agent", name)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def audit_group(target: CommandTarget) -> str:
    """The reserved group whose command node holds ``target``'s records."""
    return f"{AUDIT_GROUP}.{target.kind}.{target.name}"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(moment: datetime.datetime) -> str:
    text = moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One command change. ``before``/``after`` are the node texts (``None``: no node)."""

    id: str
    time: str
    operator: str
    host: str
    action: str
    target: CommandTarget
    before: str | None
    after: str | None
    remark: str = ""

    @classmethod
    def new(
        cls,
        *,
        operator: str,
        host: str,
        action: str,
        target: CommandTarget,
        before: str | None,
        after: str | None,
        remark: str = "",
        moment: datetime.datetime | None = None,
    ) -> AuditRecord:
        moment = moment or utc_now()
        stamp = moment.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%S.%f")
        return cls(
            id=f"{stamp}Z-{uuid.uuid4().hex[:8]}",
            time=_iso(moment),
            operator=operator,
            host=host,
            action=action,
            target=target,
            before=before,
            after=after,
            remark=remark,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "operator": self.operator,
            "host": self.host,
            "action": self.action,
            "target": self.target.key,
            "before": self.before,
            "after": self.after,
            "remark": self.remark,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AuditRecord:
        if not isinstance(data, dict):
            raise AuditError(f"an audit record must be an object, got {json.dumps(data)}")
        try:
            target = CommandTarget.from_key(str(data["target"]))
            return cls(
                id=str(data["id"]),
                time=str(data["time"]),
                operator=str(data.get("operator") or ""),
                host=str(data.get("host") or ""),
                action=str(data.get("action") or ""),
                target=target,
                before=_optional_text(data.get("before")),
                after=_optional_text(data.get("after")),
                remark=str(data.get("remark") or ""),
            )
        except (KeyError, ValueError) as exc:
            raise AuditError(f"unreadable audit record {json.dumps(data)[:200]}: {exc}") from None


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _document(body: dict[str, Any]) -> str:
    payload = {"clientCommandList": [], AUDIT_KEY: {"version": AUDIT_VERSION, **body}}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _body(text: str | None, where: str) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AuditError(f"audit node {where} is not JSON: {exc}") from None
    body = data.get(AUDIT_KEY) if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise AuditError(f"audit node {where} does not hold {AUDIT_KEY!r}")
    return body


def _trim(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records = records[-MAX_RECORDS:]
    while len(records) > 1 and len(_document({"records": records}).encode()) > MAX_NODE_BYTES:
        records = records[1:]
    return records


class AuditTrail:
    """Reads and appends audit records through a started registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def _records(self, target: CommandTarget) -> list[dict[str, Any]]:
        group = audit_group(target)
        body = _body(await self.registry.get_command(group), group)
        records = body.get("records", [])
        if not isinstance(records, list):
            raise AuditError(f"audit node {group}: records must be a list")
        for item in records:
            AuditRecord.from_dict(item)
        return list(records)

    async def targets(self) -> list[CommandTarget]:
        """Every target that has records, in the order they first appeared."""
        body = _body(await self.registry.get_command(AUDIT_GROUP), AUDIT_GROUP)
        keys = body.get("targets", [])
        if not isinstance(keys, list):
            raise AuditError(f"audit node {AUDIT_GROUP}: targets must be a list")
        found: list[CommandTarget] = []
        for key in keys:
            try:
                found.append(CommandTarget.from_key(str(key)))
            except ValueError:
                continue
        return found

    async def check(self, target: CommandTarget) -> None:
        """Raise :class:`AuditError` when ``target``'s records cannot be appended to (call it
        before changing a command, so nothing is changed without a record)."""
        await self._records(target)
        await self.targets()

    async def history(
        self, target: CommandTarget | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """Records oldest first: of one target, or of every target (sorted by time)."""
        targets = [target] if target is not None else await self.targets()
        records: list[AuditRecord] = []
        for each in targets:
            records.extend(AuditRecord.from_dict(item) for item in await self._records(each))
        if target is None:
            records.sort(key=lambda r: (r.time, r.id))
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        return records

    async def append(self, record: AuditRecord) -> None:
        """Add a record to its target's node and the target to the index."""
        group = audit_group(record.target)
        entry = record.to_dict()
        for _ in range(APPEND_ATTEMPTS):
            records = await self._records(record.target)
            if not any(item.get("id") == record.id for item in records):
                records.append(entry)
            await self.registry.set_command(group, _document({"records": _trim(records)}))
            if any(item.get("id") == record.id for item in await self._records(record.target)):
                break
        else:
            raise AuditError(f"audit node {group} keeps changing; record {record.id} not kept")
        await self._index([record.target])

    async def _index(self, targets: Sequence[CommandTarget]) -> None:
        for attempt in range(APPEND_ATTEMPTS + 1):
            known = [t.key for t in await self.targets()]
            missing = [t.key for t in targets if t.key not in known]
            if not missing:
                return
            if attempt < APPEND_ATTEMPTS:
                await self.registry.set_command(
                    AUDIT_GROUP, _document({"targets": known + missing})
                )
        raise AuditError(f"audit index {AUDIT_GROUP} keeps changing")


def records_to_json(records: Iterable[AuditRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]
