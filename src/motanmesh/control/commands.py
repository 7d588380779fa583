"""Command authoring: read a command node, build the next document, validate it, write it,
and leave an audit record.

A change is made in two steps. ``plan_*`` reads nothing but its inputs and returns a
:class:`Plan` (the node text before and after, plus warnings) or raises
:class:`CommandValidationError` with one message per problem; :meth:`CommandAuthor.commit` then
writes the node and appends an :class:`~motanmesh.control.audit.AuditRecord`. Nothing is
written when validation fails, when the audit trail is unreadable, or when the node changed
since it was read.

Documents are written exactly as the Go agent expects them (``CommandDocument.to_json``);
documents written by other tools (the Java manager's field order, ``index`` as a string,
extra fields) are read leniently and rewritten in that form on the next change.

A merge group that has no provider is a *warning*, never an error: a group can be prepared
before its providers register (a standby data centre), and clients fall back to their own
group while none of the merged groups has providers. Providers can only be looked up for
named services (the registry cannot list a group's services), so the check runs for the
services given to :func:`provider_warnings`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from motanmesh.cluster.command import (
    EMPTY_DOCUMENT_JSON,
    ClientCommand,
    CommandDocument,
    CommandError,
    CommandType,
    parse_command_document,
    validate,
)
from motanmesh.cluster.patterns import PatternMode, compile_pattern
from motanmesh.control.audit import (
    AUDIT_GROUP,
    AuditError,
    AuditRecord,
    AuditTrail,
    CommandTarget,
)
from motanmesh.registry.base import Registry, RegistryError
from motanmesh.url import URL

__all__ = [
    "COMMAND_VERSION",
    "TYPE_NAMES",
    "AuditWriteError",
    "CommandAuthor",
    "CommandTarget",
    "CommandValidationError",
    "ConcurrentChangeError",
    "Plan",
    "StoredCommand",
    "WriteResult",
    "authoring_warnings",
    "build_command",
    "command_targets",
    "describe_command",
    "plan_clear",
    "plan_command",
    "plan_document",
    "plan_remove",
    "provider_warnings",
    "read_command",
    "record_lines",
    "summarize",
    "type_name",
    "upsert",
    "write_raw",
]

COMMAND_VERSION: Final = "1.0"
TYPE_NAMES: Final = {
    "traffic": CommandType.TRAFFIC_CONTROL,
    "degrade": CommandType.DEGRADE,
    "switcher": CommandType.SWITCHER,
}
_NAMES_BY_TYPE: Final = {int(v): k for k, v in TYPE_NAMES.items()}


class CommandValidationError(Exception):
    """A change refused before anything was written; ``problems`` says why."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class ConcurrentChangeError(Exception):
    """The command node changed between reading it and writing it; nothing was written."""


class AuditWriteError(Exception):
    """The command was written but its audit record could not be stored."""

    def __init__(self, record: AuditRecord, cause: Exception) -> None:
        super().__init__(f"command written, but the audit record failed: {cause}")
        self.record = record


def type_name(command_type: int) -> str:
    return _NAMES_BY_TYPE.get(int(command_type), f"type{int(command_type)}")


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """A command node as read: its text (``None``: no node, or empty), the document when it
    parses, else the parse error."""

    target: CommandTarget
    raw: str | None
    document: CommandDocument | None
    error: str = ""

    @property
    def exists(self) -> bool:
        return self.raw is not None

    def lines(self) -> list[str]:
        """The node for people: one line per command, in precedence order."""
        if self.raw is None:
            return [f"{self.target}: no command node"]
        if self.document is None:
            return [f"{self.target}: unreadable command ({self.error})", f"  raw: {self.raw}"]
        commands = self.document.sorted_commands()
        if not commands:
            return [f"{self.target}: no commands (empty list)"]
        return [f"{self.target}: {len(commands)} command(s)"] + [
            f"  {describe_command(c)}" for c in commands
        ]


async def read_command(registry: Registry, target: CommandTarget) -> StoredCommand:
    """Read a target's command node (``RegistryError`` when the registry cannot be read)."""
    if target.kind == "group":
        raw = await registry.get_command(target.name)
    else:
        raw = await registry.get_agent_command(target.name)
    if raw is None or not raw.strip():
        return StoredCommand(target, None, None)
    try:
        return StoredCommand(target, raw, parse_command_document(raw))
    except CommandError as exc:
        return StoredCommand(target, raw, None, str(exc))


async def write_raw(registry: Registry, target: CommandTarget, text: str | None) -> None:
    """Write a target's node as it is (``None`` deletes it). No validation, no audit."""
    if target.kind == "group":
        await registry.set_command(target.name, text)
    else:
        await registry.set_agent_command(target.name, text)


async def command_targets(registry: Registry, trail: AuditTrail) -> tuple[list[CommandTarget], str]:
    """The targets to list and where they came from: ``"registry"`` when the backend can
    list its command nodes (an optional ``async command_groups() -> list[str]`` method), else
    ``"audit"``: the targets ``ctl`` has written (the audit index)."""
    lister = getattr(registry, "command_groups", None)
    if callable(lister):
        groups = [str(g) for g in await lister() if not str(g).startswith(AUDIT_GROUP)]
        return [CommandTarget("group", g) for g in sorted(groups)], "registry"
    return await trail.targets(), "audit"


# ---------------------------------------------------------------------------- building


def describe_command(command: ClientCommand) -> str:
    """One line for people: ``#1 traffic pattern=* mergeGroups=[a:8, b:2] ...``."""
    index = "#-" if command.index is None else f"#{command.index}"
    kind = type_name(command.command_type)
    if command.command_type == CommandType.SWITCHER:
        parts = [index, kind, command.pattern]
    else:
        parts = [index, kind, f"pattern={command.pattern}"]
    if command.merge_groups:
        parts.append(f"mergeGroups=[{', '.join(command.merge_groups)}]")
    if command.route_rules:
        parts.append(f"routeRules=[{', '.join(command.route_rules)}]")
    if command.remark:
        parts.append(f"remark={command.remark!r}")
    return " ".join(parts)


def summarize(text: str | None) -> list[str]:
    """A node text as one line per command (for histories and confirmations)."""
    if text is None:
        return ["(no node)"]
    try:
        document = parse_command_document(text)
    except CommandError:
        return [f"(unreadable) {text}"]
    return [describe_command(c) for c in document.sorted_commands()] or ["(empty list)"]


def record_lines(record: AuditRecord) -> list[str]:
    """An audit record for people: who, when, what, and the commands removed and added."""
    who = f"{record.operator}@{record.host}" if record.host else record.operator
    head = f"{record.time}  {who}  {record.action}  {record.target}"
    out = [head + (f"  {record.remark!r}" if record.remark else "")]
    before, after = summarize(record.before), summarize(record.after)
    out.extend(f"  - {line}" for line in before if line not in after)
    out.extend(f"  + {line}" for line in after if line not in before)
    return out


def build_command(
    kind: str,
    pattern: str,
    *,
    merge_groups: Iterable[str] = (),
    route_rules: Iterable[str] = (),
    remark: str = "",
    index: int | None = None,
    dc: str = "",
    version: str = COMMAND_VERSION,
) -> ClientCommand:
    """One command from its parts. ``merge_groups`` entries may hold comma lists."""
    if kind not in TYPE_NAMES:
        raise CommandValidationError(
            [f"unknown command type {kind!r} (traffic, degrade, switcher)"]
        )
    groups = [g.strip() for item in merge_groups for g in item.split(",") if g.strip()]
    return ClientCommand(
        index=index,
        version=version,
        dc=dc,
        command_type=TYPE_NAMES[kind],
        pattern=pattern,
        merge_groups=groups,
        route_rules=[r for r in route_rules if r.strip()],
        remark=remark,
    )


def upsert(document: CommandDocument, command: ClientCommand) -> CommandDocument:
    """A copy of ``document`` with ``command`` replacing the one of the same index (in place),
    or appended; a command without index gets the next one (highest + 1)."""
    if command.index is None:
        command = replace(command, index=document.next_index())
    commands = list(document.commands)
    for i, existing in enumerate(commands):
        if existing.index == command.index:
            commands[i] = command
            return CommandDocument(commands)
    return CommandDocument([*commands, command])


# ---------------------------------------------------------------------------- plans


@dataclass(slots=True)
class Plan:
    """A change ready to be written: the node text before and after (``None``: no node)."""

    target: CommandTarget
    action: str
    before: StoredCommand
    after: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before.raw != self.after

    @property
    def document(self) -> CommandDocument | None:
        return None if self.after is None else parse_command_document(self.after)


def _checked(
    target: CommandTarget, document: CommandDocument, mode: PatternMode
) -> tuple[str, list[str]]:
    problems = validate(document, mode)
    if problems:
        raise CommandValidationError(problems)
    return document.to_json(), authoring_warnings(target, document)


def _current(before: StoredCommand) -> CommandDocument:
    if before.error:
        raise CommandValidationError(
            [
                f"the current command of {before.target} cannot be read ({before.error}); "
                "replace the whole document with --file or clear it first"
            ]
        )
    return before.document or CommandDocument()


def plan_document(
    before: StoredCommand, document: CommandDocument, mode: PatternMode = "auto"
) -> Plan:
    """Replace the whole node with ``document``."""
    after, warnings = _checked(before.target, document, mode)
    return Plan(before.target, "set", before, after, warnings)


def plan_command(before: StoredCommand, command: ClientCommand, mode: PatternMode = "auto") -> Plan:
    """Add ``command``, or replace the command with its index; the whole result is validated."""
    document = upsert(_current(before), command)
    after, warnings = _checked(before.target, document, mode)
    return Plan(before.target, "set-command", before, after, warnings)


def plan_remove(before: StoredCommand, index: int, mode: PatternMode = "auto") -> Plan:
    """Remove the command with ``index``; the rest is validated and kept."""
    current = _current(before)
    kept = [c for c in current.commands if c.index != index]
    if len(kept) == len(current.commands):
        raise CommandValidationError([f"{before.target} has no command with index {index}"])
    after, warnings = _checked(before.target, CommandDocument(kept), mode)
    return Plan(before.target, "remove-command", before, after, warnings)


def plan_clear(before: StoredCommand, *, delete: bool = False) -> Plan:
    """Write the empty command list (what every client reads as "no command"), or delete the
    node (clients that ignore deletions, such as the Go agent, keep the old command)."""
    warnings: list[str] = []
    if delete:
        warnings.append(
            "a deleted node is ignored by Go agents, which keep the last command in force; "
            "clear without --delete to reach every client"
        )
    after = None if delete else EMPTY_DOCUMENT_JSON
    return Plan(before.target, "delete" if delete else "clear", before, after, warnings)


# ---------------------------------------------------------------------------- warnings


def authoring_warnings(target: CommandTarget, document: CommandDocument) -> list[str]:
    """Things that are valid but often not meant (own group left out, degrade, ...)."""
    warnings: list[str] = []
    for command in document.sorted_commands():
        where = describe_command(command).split(" ", 1)[0]
        groups = [g.partition(":")[0].strip() for g in command.merge_groups]
        if command.command_type == CommandType.TRAFFIC_CONTROL:
            if target.kind == "group" and groups and target.name not in groups:
                warnings.append(
                    f"command {where}: mergeGroups leave out the own group {target.name}: its "
                    f"clients send all matching calls to {', '.join(groups)}"
                )
            if command.route_rules and not groups:
                warnings.append(
                    f"command {where}: route rules without mergeGroups are ignored by Go "
                    "agents; list the own group in mergeGroups to reach them too"
                )
        elif command.command_type == CommandType.DEGRADE:
            warnings.append(
                f"command {where}: calls to services matching {command.pattern!r} will fail "
                "fast (Java clients ignore degrade commands)"
            )
    return warnings


async def provider_warnings(
    registry: Registry, document: CommandDocument, services: Sequence[str], mode: PatternMode
) -> list[str]:
    """A warning per traffic-control merge group without providers of a given service."""
    warnings: list[str] = []
    for command in document.sorted_commands():
        if command.command_type != CommandType.TRAFFIC_CONTROL:
            continue
        pattern = compile_pattern(command.pattern, mode)
        for service in services:
            if not pattern.matches(service):
                continue
            for entry in command.merge_groups:
                group = entry.partition(":")[0].strip()
                found = await registry.discover(URL("motan2", path=service, group=group))
                if not found:
                    warnings.append(
                        f"merge group {group} has no providers of {service} (a warning, not "
                        "an error: they may register later; until then the clients keep "
                        "using the other groups)"
                    )
    return warnings


# ---------------------------------------------------------------------------- committing


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :meth:`CommandAuthor.commit` did. ``concurrent``: the node read back differs from
    what was written (another writer came right after)."""

    plan: Plan
    written: bool
    record: AuditRecord | None = None
    concurrent: bool = False


class CommandAuthor:
    """Writes planned changes and records them in the audit trail."""

    def __init__(
        self, registry: Registry, operator: str, *, host: str = "", trail: AuditTrail | None = None
    ) -> None:
        self.registry = registry
        self.operator = operator
        self.host = host or socket.gethostname()
        self.trail = trail or AuditTrail(registry)

    async def read(self, target: CommandTarget) -> StoredCommand:
        return await read_command(self.registry, target)

    async def commit(self, plan: Plan, remark: str = "") -> WriteResult:
        """Write the plan's node and its audit record. Nothing is written when the node is
        unchanged, when the audit trail is unreadable (``AuditError``) or when the node changed
        since the plan read it (:class:`ConcurrentChangeError`). ``AuditWriteError`` when only the
        record could not be stored; ``RegistryError`` when the registry failed."""
        if not plan.changed:
            return WriteResult(plan, written=False)
        await self.trail.check(plan.target)
        current = await self.read(plan.target)
        if current.raw != plan.before.raw:
            raise ConcurrentChangeError(
                f"the command of {plan.target} changed while this change was prepared; "
                "nothing was written, run the command again"
            )
        await write_raw(self.registry, plan.target, plan.after)
        check = await self.read(plan.target)
        record = AuditRecord.new(
            operator=self.operator,
            host=self.host,
            action=plan.action,
            target=plan.target,
            before=plan.before.raw,
            after=plan.after,
            remark=remark,
        )
        try:
            await self.trail.append(record)
        except (AuditError, RegistryError) as exc:
            raise AuditWriteError(record, exc) from exc
        return WriteResult(plan, written=True, record=record, concurrent=check.raw != plan.after)
