"""The decision log: every decision with its inputs, the rule that fired and the command.

A :class:`Decision` is recorded when the split of a (service, group) changes, or when the rule
that governs it changes (a shift held back, telemetry gone stale, an operator's command found,
back to steady). Records go to a JSON-lines file (``decisionLog``) and to a bounded list in
memory that the console shows. ``motanmesh autopilot decisions`` reads the file.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Decision", "DecisionLog", "format_decision", "read_decisions"]


@dataclass(slots=True)
class Decision:
    time: float  # seconds since the epoch
    service: str
    group: str
    rule: str
    detail: str
    before: dict[str, int]
    after: dict[str, int]
    inputs: dict[str, Any]
    command: str | None = None
    written: bool = False
    dry_run: bool = False
    leader: bool = True
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": _iso(self.time),
            "ts": round(self.time, 3),
            "service": self.service,
            "group": self.group,
            "rule": self.rule,
            "detail": self.detail,
            "before": self.before,
            "after": self.after,
            "inputs": self.inputs,
            "command": self.command,
            "written": self.written,
            "dryRun": self.dry_run,
            "leader": self.leader,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(
            time=float(data.get("ts", 0.0)),
            service=str(data.get("service", "")),
            group=str(data.get("group", "")),
            rule=str(data.get("rule", "")),
            detail=str(data.get("detail", "")),
            before={str(k): int(v) for k, v in (data.get("before") or {}).items()},
            after={str(k): int(v) for k, v in (data.get("after") or {}).items()},
            inputs=dict(data.get("inputs") or {}),
            command=data.get("command"),
            written=bool(data.get("written")),
            dry_run=bool(data.get("dryRun")),
            leader=bool(data.get("leader", True)),
            error=str(data.get("error") or ""),
        )


def _iso(ts: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _split_text(split: dict[str, int]) -> str:
    return ", ".join(f"{g} {p}%" for g, p in sorted(split.items(), key=lambda kv: -kv[1]))


def format_decision(d: Decision) -> str:
    """One line for people."""
    change = (
        f"{_split_text(d.before)} -> {_split_text(d.after)}"
        if d.before != d.after
        else _split_text(d.after)
    )
    if d.written:
        state = "written"
    elif d.dry_run and d.before != d.after:
        state = "dry-run, not written"
    elif not d.leader and d.before != d.after:
        state = "not leader, not written"
    else:
        state = ""
    tail = f" [{state}]" if state else ""
    error = f" error: {d.error}" if d.error else ""
    return f"{_iso(d.time)} {d.service} {d.group} {d.rule}: {change}; {d.detail}{tail}{error}"


class DecisionLog:
    def __init__(self, path: str | None, keep: int = 1000) -> None:
        self.path = path
        self.recent: deque[Decision] = deque(maxlen=keep)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def record(self, decision: Decision) -> None:
        self.recent.append(decision)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(decision.to_dict(), separators=(",", ":")) + "\n")


def read_decisions(path: str | Path) -> Iterator[Decision]:
    """The decisions of a log file, oldest first (unreadable lines are skipped)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                yield Decision.from_dict(data)
