"""Motan client commands: the JSON documents, their validation, and what they mean for a refer.

A command document lives in the registry (``/motan/<group>/command`` for a service group,
``/motan/agent/<application>/command`` for every cluster of an agent)::

    {"clientCommandList":[{"index":1,"version":"1.0","dc":"yf","commandType":0,
      "pattern":"*","mergeGroups":["user-rpc-yf:8","user-rpc-tc:2"],"routeRules":[],
      "remark":"shift 20% yf->tc"}]}

Command types: ``0`` traffic control (merge groups, group weights, route rules), ``1`` degrade
(calls fail fast), ``2`` switcher (``pattern`` is ``"name:true,name2:false"``).

Reading (:func:`parse_command_document`) is lenient, as Motan clients are: missing or ``null``
fields take their defaults (``index`` ``None``, ``commandType`` 0, strings ``""``, lists
``[]``); field names also match case-insensitively; unknown fields (the manager's ``id`` ...)
are ignored; ``index`` and ``commandType`` may be written as integer strings (``"1"``) or
integral floats (``1.0``); ``version``, ``dc`` and ``remark`` may be numbers. Anything else
(invalid JSON, wrong shapes, a non-integer index) raises :class:`CommandError`.

Writing (:meth:`CommandDocument.to_json`) produces what the Go agent expects: compact
separators, the fields of every command in the order ``index, version, dc, commandType,
pattern, mergeGroups, routeRules, remark``, lists always written (``[]`` when empty), ``index``
written as ``null`` when unset, non-ASCII text and ``<``, ``>``, ``&`` written as they are.
Unknown fields read from a document are not written back.

What a refer does with its commands (:func:`effective_command`):

* Each document is sorted by ``index`` (unset first, equal indexes keep document order).
  Traffic control: the *first* matching command wins. Degrade and switcher: the *last*
  matching command wins. Switcher commands match every service.
* The agent command is evaluated first; the service command fills only the types the agent
  command did not set. The refer parameter ``mixGroups: g2,g3`` is the traffic-control command
  (``[own, g2, g3]``, unweighted) when no dynamic one matches.
* A deleted command node, an empty one and an unreadable document all mean "no command" from
  that source (the parse error is kept in ``EffectiveCommand.notes``).

Decisions where this differs from the Go agent on purpose (``docs/compatibility.md``):

1. A traffic-control command with route rules and no merge groups applies its route rules to
   the refer's own group (Go ignores them unless the own group is listed; Java applies them).
2. When route rules leave no provider, they are not applied: the cluster gets the unfiltered
   merged list, so the traffic split stays and the endpoints keep following the registry (Go
   keeps its previous endpoints, frozen until the rules match again). When the merge groups
   have no provider at all, the own group's providers are used.
3. A deleted command node means "no command" (as Java); Go ignores the deletion and keeps the
   old command in force.
4. An empty pattern matches no service (Go reads it as a prefix of every path).
5. Commands with equal indexes keep their document order (Go's sort leaves it undefined).
6. A route rule whose sides are not ``*``, an address or ``prefix*`` (optionally ``!``) is
   skipped, as Java skips it; Go compares the text anyway.
7. Reading accepts integer strings for ``index``/``commandType`` (as Java); Go rejects the
   whole document.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final, Literal, NamedTuple, TypeAlias

from motanmesh.cluster.group_weights import MAX_GROUP_WEIGHT, parse_group_weights
from motanmesh.cluster.patterns import (
    PatternMode,
    apply_route_rules,
    compile_pattern,
    parse_route_rule,
    parse_route_rules,
)
from motanmesh.url import URL

__all__ = [
    "EMPTY_DOCUMENT_JSON",
    "HISTORY_SIZE",
    "MIX_GROUPS_PARAM",
    "AppliedCommand",
    "ClientCommand",
    "CommandDocument",
    "CommandError",
    "CommandHistory",
    "CommandRecord",
    "CommandSelection",
    "CommandType",
    "EffectiveCommand",
    "NotifyRecord",
    "ReferCommands",
    "effective_command",
    "parse_command_document",
    "parse_switcher_pattern",
    "select_commands",
    "validate",
]

EMPTY_DOCUMENT_JSON: Final = '{"clientCommandList":[]}'
HISTORY_SIZE: Final = 10
MIX_GROUPS_PARAM: Final = "mixGroups"

Origin: TypeAlias = Literal["agent", "service", "static"]


class CommandError(ValueError):
    """A command document that cannot be read."""


class CommandType(IntEnum):
    TRAFFIC_CONTROL = 0
    DEGRADE = 1
    SWITCHER = 2


# ---------------------------------------------------------------------------- the documents


@dataclass(slots=True)
class ClientCommand:
    """One entry of ``clientCommandList``. ``version`` and ``dc`` are informational only."""

    index: int | None = None
    version: str = ""
    dc: str = ""
    command_type: int = CommandType.TRAFFIC_CONTROL
    pattern: str = ""
    merge_groups: list[str] = field(default_factory=list)
    route_rules: list[str] = field(default_factory=list)
    remark: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in the order the Go agent writes them."""
        return {
            "index": self.index,
            "version": self.version,
            "dc": self.dc,
            "commandType": int(self.command_type),
            "pattern": self.pattern,
            "mergeGroups": list(self.merge_groups),
            "routeRules": list(self.route_rules),
            "remark": self.remark,
        }

    def describe(self) -> str:
        index = "unset" if self.index is None else str(self.index)
        return f"index {index} ({_TYPE_NAMES.get(self.command_type, 'unknown type')})"


_TYPE_NAMES: Final = {0: "traffic control", 1: "degrade", 2: "switcher"}


@dataclass(slots=True)
class CommandDocument:
    """A whole command node: ``{"clientCommandList": [...]}``."""

    commands: list[ClientCommand] = field(default_factory=list)

    def to_json(self) -> str:
        body = {"clientCommandList": [command.to_dict() for command in self.commands]}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def sorted_commands(self) -> list[ClientCommand]:
        """The commands in precedence order: by index, unset first, ties in document order."""
        return sorted(self.commands, key=_sort_key)

    def next_index(self) -> int:
        """The index a new command gets: one more than the highest (1 for an empty document)."""
        return max((c.index for c in self.commands if c.index is not None), default=0) + 1


def _sort_key(command: ClientCommand) -> tuple[bool, int]:
    return (command.index is not None, command.index or 0)


_INT_TEXT_RE = re.compile(r"\s*[+-]?[0-9]+\s*\Z")


def _reject_constant(name: str) -> Any:
    raise CommandError(f"invalid command JSON: {name} is not a JSON number")


def _field(obj: Mapping[str, Any], name: str) -> Any:
    if name in obj:
        return obj[name]
    lower = name.lower()
    for key, value in obj.items():
        if key.lower() == lower:
            return value
    return None


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CommandError(f"{where} must be an integer, got {json.dumps(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT_RE.match(value):
        return int(value)
    raise CommandError(f"{where} must be an integer, got {json.dumps(value)}")


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    raise CommandError(f"{where} must be a string, got {json.dumps(value)}")


def _texts(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CommandError(f"{where} must be a list of strings, got {json.dumps(value)}")
    return [_text(item, f"{where}[{i}]") for i, item in enumerate(value) if item is not None]


def _command(obj: Any, where: str) -> ClientCommand:
    if not isinstance(obj, dict):
        raise CommandError(f"{where} must be an object, got {json.dumps(obj)}")
    command_type = _int(_field(obj, "commandType"), f"{where}.commandType")
    return ClientCommand(
        index=_int(_field(obj, "index"), f"{where}.index"),
        version=_text(_field(obj, "version"), f"{where}.version"),
        dc=_text(_field(obj, "dc"), f"{where}.dc"),
        command_type=CommandType.TRAFFIC_CONTROL if command_type is None else command_type,
        pattern=_text(_field(obj, "pattern"), f"{where}.pattern"),
        merge_groups=_texts(_field(obj, "mergeGroups"), f"{where}.mergeGroups"),
        route_rules=_texts(_field(obj, "routeRules"), f"{where}.routeRules"),
        remark=_text(_field(obj, "remark"), f"{where}.remark"),
    )


def parse_command_document(text: str | bytes) -> CommandDocument:
    """Read a command document (see the module docstring); raise :class:`CommandError`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandError(f"command document is not UTF-8: {exc}") from None
    if not text.strip():
        raise CommandError("command document is empty")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CommandError(f"invalid command JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError(
            'a command document must be a JSON object {"clientCommandList": [...]}, '
            f"got {type(data).__name__}"
        )
    items = _field(data, "clientCommandList")
    if items is None:
        return CommandDocument()
    if not isinstance(items, list):
        raise CommandError(f"clientCommandList must be a list, got {json.dumps(items)}")
    return CommandDocument(
        [_command(item, f"clientCommandList[{i}]") for i, item in enumerate(items)]
    )


# ---------------------------------------------------------------------------- validation

_GROUP_RE = re.compile(r"[^\s:,]+\Z")
_STRICT_SIDE_RE = re.compile(r"!?[0-9.]*\*?\Z")
_SWITCHER_NAME_RE = re.compile(r"[^\s:,]+\Z")
_JAVA_ONLY: Final = frozenset("&!")
_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_switcher_pattern(pattern: str) -> tuple[dict[str, bool], list[str]]:
    """``"a:true,b:false"`` → ``{"a": True, "b": False}`` plus a message per unreadable entry.

    Values are read as Go's ``strconv.ParseBool`` reads them (``1 t T TRUE true True`` ...).
    """
    values: dict[str, bool] = {}
    errors: list[str] = []
    for raw in pattern.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, value = (part.strip() for part in entry.partition(":"))
        if not sep or not _SWITCHER_NAME_RE.match(name) or ":" in value:
            errors.append(f"switcher entry {entry!r} is not 'name:true' or 'name:false'")
        elif value in _GO_TRUE or value in _GO_FALSE:
            values[name] = value in _GO_TRUE
        else:
            errors.append(f"switcher entry {entry!r}: {value!r} is not true or false")
    return values, errors


def _validate_merge_group(entry: str) -> str | None:
    name, sep, weight = entry.partition(":")
    if not _GROUP_RE.match(name):
        return f"mergeGroups entry {entry!r} is not 'group' or 'group:weight'"
    if sep:
        if not weight.isascii() or not weight.isdigit():
            return f"mergeGroups entry {entry!r}: weight {weight!r} is not an integer"
        if not 1 <= int(weight) <= MAX_GROUP_WEIGHT:
            return f"mergeGroups entry {entry!r}: weight must be 1..{MAX_GROUP_WEIGHT}"
    return None


def _validate_command(command: ClientCommand, mode: PatternMode) -> list[str]:
    problems: list[str] = []
    if command.index is None:
        problems.append("index is missing (Go clients read it as 0, Java clients sort it first)")
    if command.command_type not in _TYPE_NAMES:
        problems.append(
            f"unknown commandType {command.command_type} (0 traffic control, 1 degrade, 2 switcher)"
        )
        return problems
    if not command.pattern.strip():
        problems.append("pattern is empty")
    elif command.pattern != command.pattern.strip():
        problems.append(f"pattern {command.pattern!r} has surrounding whitespace")
    elif command.command_type == CommandType.SWITCHER:
        problems.extend(_validate_switchers(command.pattern))
    else:
        compiled = compile_pattern(command.pattern, mode)
        if compiled.error:
            problems.append(f"pattern {command.pattern!r} ({compiled.mode}): {compiled.error}")
        elif mode == "auto" and compiled.mode == "go" and _JAVA_ONLY & set(command.pattern):
            java_error = compile_pattern(command.pattern, "java").error or "a term is not a name"
            problems.append(
                f"pattern {command.pattern!r} uses '&' or '!' but is read as a regular"
                f" expression: {java_error}"
            )
    if command.command_type != CommandType.TRAFFIC_CONTROL:
        if command.merge_groups or command.route_rules:
            problems.append("mergeGroups and routeRules only apply to traffic control commands")
        return problems
    seen: set[str] = set()
    for entry in command.merge_groups:
        problem = _validate_merge_group(entry)
        if problem:
            problems.append(problem)
            continue
        name = entry.partition(":")[0]
        if name in seen:
            problems.append(f"mergeGroups lists group {name!r} twice")
        seen.add(name)
    for rule in command.route_rules:
        try:
            parsed = parse_route_rule(rule)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        for side in (parsed.source, parsed.target):
            if not _STRICT_SIDE_RE.match(side):
                problems.append(f"route rule {rule!r}: {side!r} is not an IPv4 address or prefix")
    return problems


def _validate_switchers(pattern: str) -> list[str]:
    problems = []
    for raw in pattern.split(","):
        entry = raw.strip()
        name, sep, value = (part.strip() for part in entry.partition(":"))
        if not sep or not _SWITCHER_NAME_RE.match(name):
            problems.append(f"switcher entry {entry!r} is not 'name:true' or 'name:false'")
        elif value not in ("true", "false"):
            problems.append(f"switcher entry {entry!r}: write 'true' or 'false'")
    return problems


def validate(document: CommandDocument, mode: PatternMode = "auto") -> list[str]:
    """Strict authoring checks; one message per problem (an empty list means valid)."""
    problems: list[str] = []
    indexes: dict[int, int] = {}
    for i, command in enumerate(document.commands):
        where = f"clientCommandList[{i}] ({command.describe()})"
        problems.extend(f"{where}: {p}" for p in _validate_command(command, mode))
        if command.index is not None:
            if command.index in indexes:
                problems.append(
                    f"{where}: index {command.index} is also used by "
                    f"clientCommandList[{indexes[command.index]}]; precedence would be ambiguous"
                )
            indexes.setdefault(command.index, i)
    return problems


# ---------------------------------------------------------------------------- selection


class CommandSelection(NamedTuple):
    """The commands of one document that apply to one service."""

    traffic: ClientCommand | None
    degrade: ClientCommand | None
    switcher: ClientCommand | None
    ignored: list[ClientCommand]


def select_commands(
    document: CommandDocument, path: str, mode: PatternMode = "auto"
) -> CommandSelection:
    """First matching traffic-control command, last matching degrade and switcher commands.

    ``ignored`` holds the traffic-control commands that matched after the first one.
    """
    traffic: ClientCommand | None = None
    degrade: ClientCommand | None = None
    switcher: ClientCommand | None = None
    ignored: list[ClientCommand] = []
    for command in document.sorted_commands():
        kind = command.command_type
        if kind == CommandType.SWITCHER:
            switcher = command
        elif kind == CommandType.TRAFFIC_CONTROL:
            if compile_pattern(command.pattern, mode).matches(path):
                if traffic is None:
                    traffic = command
                else:
                    ignored.append(command)
        elif kind == CommandType.DEGRADE and compile_pattern(command.pattern, mode).matches(path):
            degrade = command
    return CommandSelection(traffic, degrade, switcher, ignored)


# ---------------------------------------------------------------------------- effective command


@dataclass(frozen=True, slots=True)
class AppliedCommand:
    """A command in force for a refer, and where it came from."""

    origin: Origin
    command: ClientCommand

    def describe(self) -> str:
        if self.origin == "static":
            return f"static {MIX_GROUPS_PARAM}"
        return f"{self.origin} command {self.command.describe()}"


@dataclass(frozen=True, slots=True)
class EffectiveCommand:
    """What the commands mean for one refer (``group`` is the refer's own group).

    ``merge_groups`` are the provider groups to serve from (``None``: the own group only);
    ``weights`` is the string for ``GroupWeightedLoadBalancer.set_weight`` (``""`` when not
    weighting: no command, or mix mode); ``route_rules`` filter the merged providers;
    ``degraded`` makes every call fail fast; ``switchers`` are the values a switcher command
    asks for. ``traffic``/``degrade``/``switcher`` name the commands applied, ``notes`` what was
    skipped and why.
    """

    group: str
    merge_groups: list[str] | None = None
    weights: str = ""
    route_rules: list[str] = field(default_factory=list)
    degraded: bool = False
    switchers: dict[str, bool] = field(default_factory=dict)
    traffic: AppliedCommand | None = None
    degrade: AppliedCommand | None = None
    switcher: AppliedCommand | None = None
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> dict[str, str]:
        """Which command set each part: ``{"trafficControl": "agent command index 1 ..."}``."""
        parts = (("trafficControl", self.traffic), ("degrade", self.degrade))
        out = {name: applied.describe() for name, applied in parts if applied is not None}
        if self.switcher is not None:
            out["switcher"] = self.switcher.describe()
        return out

    @property
    def other_groups(self) -> list[str]:
        """Merge groups besides the own group: the extra provider lists to subscribe."""
        return [g for g in self.merge_groups or () if g != self.group]

    def providers(self, urls_by_group: Mapping[str, Sequence[URL]], local_ip: str) -> list[URL]:
        """The provider list for the cluster, from each group's current providers.

        The merge groups' providers (the own group's when there are no merge groups, or when
        the merge groups have none), filtered by the route rules for a client at
        ``local_ip``; unfiltered when the rules would leave nothing.
        """
        groups = self.merge_groups if self.merge_groups is not None else [self.group]
        candidates = [url for group in groups for url in urls_by_group.get(group, ())]
        if not candidates:
            candidates = list(urls_by_group.get(self.group, ()))
        if not self.route_rules:
            return candidates
        return apply_route_rules(self.route_rules, local_ip, candidates) or candidates

    def to_info(self) -> dict[str, Any]:
        """A JSON-ready summary for ``/runtime/info``."""
        return {
            "mergeGroups": self.merge_groups,
            "weights": self.weights,
            "routeRules": list(self.route_rules),
            "degraded": self.degraded,
            "switchers": dict(self.switchers),
            "source": self.source,
            "notes": list(self.notes),
        }


def _merge_entries(merge_groups: Iterable[str]) -> list[str]:
    return [e.strip() for item in merge_groups for e in item.split(",") if e.strip()]


def _group_names(entries: Iterable[str]) -> list[str]:
    names: list[str] = []
    for entry in entries:
        name = entry.rpartition(":")[0].strip() if ":" in entry else entry
        if name and name not in names:
            names.append(name)
    return names


def _weights_text(entries: Sequence[str]) -> str:
    weights = parse_group_weights(",".join(entries))
    if not weights:
        return ""
    return ",".join(f"{group}:{weight}" for group, weight in weights.items())


def _read(origin: str, text: str | CommandDocument | None, notes: list[str]) -> CommandDocument:
    if isinstance(text, CommandDocument):
        return text
    if text is None or not text.strip():
        return CommandDocument()
    try:
        return parse_command_document(text)
    except CommandError as exc:
        notes.append(f"{origin} command ignored: {exc}")
        return CommandDocument()


def _select(
    origin: Literal["agent", "service"],
    text: str | CommandDocument | None,
    path: str,
    mode: PatternMode,
    notes: list[str],
) -> tuple[AppliedCommand | None, AppliedCommand | None, AppliedCommand | None]:
    selection = select_commands(_read(origin, text, notes), path, mode)
    notes.extend(
        f"{origin} command {c.describe()} ignored: an earlier traffic control command applies"
        for c in selection.ignored
    )
    traffic, degrade, switcher = (
        None if c is None else AppliedCommand(origin, c)
        for c in (selection.traffic, selection.degrade, selection.switcher)
    )
    return traffic, degrade, switcher


def effective_command(
    refer: URL,
    agent_command: str | CommandDocument | None = None,
    service_command: str | CommandDocument | None = None,
    *,
    pattern_mode: PatternMode = "auto",
) -> EffectiveCommand:
    """What the agent and service commands mean for ``refer`` (its group, path, mixGroups).

    ``None`` or ``""`` is "no command"; an unreadable document counts as none and is noted.
    """
    notes: list[str] = []
    agent_tc, agent_degrade, agent_switcher = _select(
        "agent", agent_command, refer.path, pattern_mode, notes
    )
    service_tc, service_degrade, service_switcher = _select(
        "service", service_command, refer.path, pattern_mode, notes
    )
    if agent_tc is not None and service_tc is not None:
        notes.append(f"{service_tc.describe()} ignored: {agent_tc.describe()} applies")
    traffic = agent_tc or service_tc
    degrade = agent_degrade or service_degrade
    switcher = agent_switcher or service_switcher
    mix_groups = refer.get_list(MIX_GROUPS_PARAM)
    if traffic is None and mix_groups:
        groups = [refer.group, *(g for g in mix_groups if g != refer.group)]
        static = ClientCommand(pattern="*", merge_groups=groups, remark=MIX_GROUPS_PARAM)
        traffic = AppliedCommand("static", static)
    merge_groups: list[str] | None = None
    weights = ""
    route_rules: list[str] = []
    if traffic is not None:
        entries = _merge_entries(traffic.command.merge_groups)
        merge_groups = _group_names(entries) or None
        weights = _weights_text(entries)
        route_rules = [rule for rule in traffic.command.route_rules if rule.strip()]
        notes.extend(f"route rule skipped: {e}" for e in parse_route_rules(route_rules)[1])
    switchers: dict[str, bool] = {}
    if switcher is not None:
        switchers, errors = parse_switcher_pattern(switcher.command.pattern)
        notes.extend(errors)
    return EffectiveCommand(
        group=refer.group,
        merge_groups=merge_groups,
        weights=weights,
        route_rules=route_rules,
        degraded=degrade is not None,
        switchers=switchers,
        traffic=traffic,
        degrade=degrade,
        switcher=switcher,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command string received from the registry (``None``: the node was deleted)."""

    time: float
    origin: str
    command: str | None


@dataclass(frozen=True, slots=True)
class NotifyRecord:
    """A provider list handed to the cluster, with the command state it was built under."""

    time: float
    providers: dict[str, int]
    weights: str
    degraded: bool
    source: dict[str, str]


def _timestamp(seconds: float) -> str:
    millis = math.floor(seconds * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class CommandHistory:
    """The last ``size`` command strings and notify results of one refer."""

    def __init__(self, size: int = HISTORY_SIZE, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.commands: deque[CommandRecord] = deque(maxlen=size)
        self.notifies: deque[NotifyRecord] = deque(maxlen=size)

    def record_command(self, origin: str, command: str | None) -> None:
        self.commands.append(CommandRecord(self._clock(), origin, command))

    def record_notify(self, effective: EffectiveCommand, providers: Sequence[URL]) -> None:
        counts: dict[str, int] = {}
        for url in providers:
            counts[url.group] = counts.get(url.group, 0) + 1
        record = NotifyRecord(
            self._clock(), counts, effective.weights, effective.degraded, effective.source
        )
        self.notifies.append(record)

    def to_info(self) -> dict[str, list[dict[str, Any]]]:
        """``{"commandHistory": [...], "notifyHistory": [...]}``, oldest first."""
        return {
            "commandHistory": [
                {"time": _timestamp(r.time), "type": r.origin, "command": r.command}
                for r in self.commands
            ],
            "notifyHistory": [
                {
                    "time": _timestamp(r.time),
                    "providers": dict(r.providers),
                    "weights": r.weights,
                    "degraded": r.degraded,
                    "source": dict(r.source),
                }
                for r in self.notifies
            ],
        }


class ReferCommands:
    """The command state of one refer: the last agent and service command strings, and the
    effective command they give. An unchanged string is ignored; every change is recorded in
    ``history``."""

    def __init__(
        self,
        refer: URL,
        *,
        pattern_mode: PatternMode = "auto",
        history: CommandHistory | None = None,
    ) -> None:
        self.refer = refer
        self.pattern_mode: PatternMode = pattern_mode
        self.history = history if history is not None else CommandHistory()
        self.agent_command: str | None = None
        self.service_command: str | None = None
        self.effective = effective_command(refer, pattern_mode=pattern_mode)

    def update(self, origin: Literal["agent", "service"], command: str | None) -> bool:
        """Take a new command string (``None``/``""``: none). True when the effective command
        changed."""
        text = command if command and command.strip() else None
        if text == (self.agent_command if origin == "agent" else self.service_command):
            return False
        if origin == "agent":
            self.agent_command = text
        else:
            self.service_command = text
        self.history.record_command(origin, text)
        effective = effective_command(
            self.refer, self.agent_command, self.service_command, pattern_mode=self.pattern_mode
        )
        changed = effective != self.effective
        self.effective = effective
        return changed
