"""The autopilot's traffic commands in the registry.

For a service ``S`` whose group ``A`` sends part of its calls to other groups, the autopilot
keeps one traffic-control command in ``/motan/A/command``::

    {"index":1000,"version":"1.0","dc":"","commandType":0,"pattern":"S",
     "mergeGroups":["A:80","B:20"],"routeRules":[],
     "remark":"motanmesh-autopilot: A 80%, B 20% (shift: demand level 1.10 > warning 0.8)"}

* Its ``remark`` starts with :data:`MARK`: that is how the autopilot knows its own commands.
  Every other command in the node is kept exactly as it is.
* When traffic is back home (100% in A), the command is removed from the node (the node keeps
  the other commands, or becomes the empty list ``{"clientCommandList":[]}``).
* A traffic-control command that the autopilot did not write and that matches ``S`` is an
  operator's decision: the autopilot never overwrites it and stands aside for ``S`` in that
  group (it removes its own command there so that the operator's is the one in force).
* Writes go through :class:`~motanmesh.control.commands.CommandAuthor`: validated, refused
  when the node changed since it was read, and recorded in the audit trail under the operator
  name ``motanmesh-autopilot``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import Final

from motanmesh.cluster.command import (
    ClientCommand,
    CommandDocument,
    CommandError,
    CommandType,
    parse_command_document,
)
from motanmesh.cluster.group_weights import parse_group_weights
from motanmesh.cluster.patterns import compile_pattern
from motanmesh.control.audit import CommandTarget
from motanmesh.control.commands import (
    COMMAND_VERSION,
    CommandAuthor,
    plan_document,
    read_command,
)
from motanmesh.registry.base import Registry

__all__ = [
    "AUTOPILOT_INDEX",
    "MARK",
    "OPERATOR",
    "CommandWriter",
    "NodeView",
    "OperatorCommandError",
    "UnreadableCommandError",
    "inspect_node",
    "merge_groups",
    "render_node",
]

MARK: Final = "motanmesh-autopilot"
OPERATOR: Final = "motanmesh-autopilot"
AUTOPILOT_INDEX: Final = 1000


class OperatorCommandError(Exception):
    """An operator's traffic command covers the service in this group."""


class UnreadableCommandError(Exception):
    """The group's command node cannot be parsed; nothing is written to it."""


def is_autopilot(command: ClientCommand) -> bool:
    return command.remark.startswith(MARK)


def merge_groups(source: str, split: dict[str, int]) -> list[str]:
    """``["A:80", "B:20"]``: the source first, then the receivers by name."""
    others = sorted(g for g in split if g != source and split[g] > 0)
    entries = [f"{source}:{split.get(source, 0)}"] if split.get(source, 0) > 0 else []
    return entries + [f"{g}:{split[g]}" for g in others]


@dataclass(frozen=True, slots=True)
class NodeView:
    """What one group's command node says about one service."""

    split: dict[str, int] | None  # the autopilot's split in force, None: no autopilot command
    operator: ClientCommand | None  # an operator's traffic command covering the service
    error: str = ""


def _split_of(source: str, command: ClientCommand) -> dict[str, int]:
    weights = parse_group_weights(",".join(command.merge_groups)) or {
        g.strip(): 1 for g in command.merge_groups if g.strip()
    }
    total = sum(weights.values()) or 1
    split = {g: round(100 * w / total) for g, w in weights.items()}
    drift = 100 - sum(split.values())
    split[source] = split.get(source, 0) + drift
    return {g: p for g, p in split.items() if p > 0}


def inspect_node(raw: str | None, source: str, service: str) -> NodeView:
    if raw is None or not raw.strip():
        return NodeView(None, None)
    try:
        document = parse_command_document(raw)
    except CommandError as exc:
        return NodeView(None, None, str(exc))
    split: dict[str, int] | None = None
    operator: ClientCommand | None = None
    for command in document.sorted_commands():
        if command.command_type != CommandType.TRAFFIC_CONTROL:
            continue
        if is_autopilot(command):
            if command.pattern == service:
                split = _split_of(source, command)
        elif operator is None and compile_pattern(command.pattern).matches(service):
            operator = command
    return NodeView(split, operator)


def render_node(
    raw: str | None, source: str, service: str, split: dict[str, int], remark: str
) -> CommandDocument:
    """The node with the autopilot's command for ``service`` set to ``split`` (removed when
    ``split`` keeps everything in ``source``); every other command is kept."""
    document = parse_command_document(raw) if raw and raw.strip() else CommandDocument()
    kept = [
        c
        for c in document.commands
        if not (
            c.command_type == CommandType.TRAFFIC_CONTROL
            and is_autopilot(c)
            and c.pattern == service
        )
    ]
    if split.get(source, 100) >= 100:
        return CommandDocument(kept)
    taken = {c.index for c in kept if c.index is not None}
    index = AUTOPILOT_INDEX
    while index in taken:
        index += 1
    command = ClientCommand(
        index=index,
        version=COMMAND_VERSION,
        command_type=CommandType.TRAFFIC_CONTROL,
        pattern=service,
        merge_groups=merge_groups(source, split),
        remark=f"{MARK}: {remark}" if remark else MARK,
    )
    return CommandDocument([*kept, replace(command)])


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    before: str | None
    after: str | None
    written: bool


class CommandWriter:
    """Reads and writes the autopilot's commands (nothing is written with ``dry_run``)."""

    def __init__(self, registry: Registry, *, dry_run: bool = False, host: str = "") -> None:
        self.registry = registry
        self.dry_run = dry_run
        self.author = CommandAuthor(registry, OPERATOR, host=host or socket.gethostname())

    async def apply(
        self, source: str, service: str, split: dict[str, int], remark: str
    ) -> WriteOutcome:
        """Put ``split`` in force for ``service`` in ``source``'s node.

        :class:`OperatorCommandError` when an operator's command covers the service (then
        only the autopilot's own command is removed, if there is one);
        :class:`UnreadableCommandError` when the node cannot be parsed;
        ``ConcurrentChangeError`` when the node changed while this write was prepared."""
        target = CommandTarget("group", source)
        before = await read_command(self.registry, target)
        if before.error:
            raise UnreadableCommandError(f"command node of {source}: {before.error}")
        view = inspect_node(before.raw, source, service)
        operator = view.operator
        if operator is not None:
            split = {source: 100}
        document = render_node(before.raw, source, service, split, remark)
        plan = plan_document(before, document)
        written = False
        if plan.changed and not self.dry_run:
            result = await self.author.commit(plan, remark=f"{MARK}: {remark}")
            written = result.written
        if operator is not None:
            raise OperatorCommandError(
                f"an operator's command covers {service} in {source} "
                f"(index {operator.index}, mergeGroups {operator.merge_groups}); standing aside"
            )
        return WriteOutcome(before.raw, plan.after, written)
