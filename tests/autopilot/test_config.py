"""The autopilot's configuration: defaults, overrides, and one clear message per mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from motanmesh.autopilot.config import AutopilotConfigError, load_config, parse_config
from motanmesh.autopilot.decisions import Decision, DecisionLog

GOOD: dict[str, Any] = {
    "registry": {"protocol": "zookeeper", "address": "127.0.0.1:2181"},
    "defaults": {"policy": {"warning": 0.75}, "capacity": {"perInstance": 50}},
    "telemetry": [{"type": "agents"}, {"type": "graphite", "port": 2003, "period": 5}],
    "services": [
        {"service": "com.example.A", "groups": ["a-yf", "a-tc"]},
        {
            "service": "com.example.B",
            "groups": "b-yf,b-tc,b-gz",
            "capacity": {"perGroup": {"b-gz": 20}},
            "policy": {"target": 0.5, "maxShare": 0.3, "guardAfter": 8},
            "slo": {"p99": 0.25},
        },
    ],
}


def test_a_good_config_with_defaults_and_overrides() -> None:
    config = parse_config(GOOD)
    assert config.registry.protocol == "zookeeper"
    a, b = config.services
    assert a.policy.warning == 0.75 and a.policy.target == 0.6
    assert a.capacity.per_instance == 50
    assert b.groups == ("b-yf", "b-tc", "b-gz")
    assert b.capacity.per_instance_of("b-gz") == 20 and b.capacity.per_instance_of("b-yf") == 50
    assert b.policy.max_share == 0.3 and b.policy.warning == 0.75
    assert b.policy.guard_after == 8 and a.policy.guard_after == 5
    assert b.slo.p99 == 0.25
    assert [s.type for s in config.sources] == ["agents", "graphite"]
    assert not config.console.enabled and not config.dry_run


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"registry": None}, "registry", "required"),
        ({"registry": "direct://127.0.0.1:1"}, "registry.protocol", "embedded, zookeeper or etcd"),
        ({"interval": "fast"}, "interval", "must be a number"),
        ({"services": []}, "services", "non-empty"),
        ({"telemetry": [{"type": "statsd"}]}, "telemetry[0].type", "agents, prometheus"),
        ({"telemetry": [{"type": "prometheus"}]}, "telemetry[0].url", "required"),
        ({"telemetry": [{"type": "graphite"}]}, "telemetry[0].port", "required"),
        ({"defaults": {"policy": {"target": 0.9}}}, "defaults.policy.target", "below the warning"),
        ({"defaults": {"policy": {"warnign": 0.9}}}, "defaults.policy.warnign", "unknown key"),
        ({"defaults": {"policy": {"guardAfter": -1}}}, "defaults.policy.guardAfter", "number"),
        ({"defaults": {"policy": {"guardAfter": "5s"}}}, "defaults.policy.guardAfter", "number"),
        ({"console": {"port": 70000}}, "console.port", "port number"),
        ({"colour": 1}, "colour", "unknown key"),
    ],
)
def test_mistakes_name_their_key(change: dict[str, Any], key: str, words: str) -> None:
    data = {**GOOD, **change}
    if change.get("registry", "") is None:
        del data["registry"]
    with pytest.raises(AutopilotConfigError) as info:
        parse_config(data, "ap.yaml")
    assert info.value.key == key
    assert words in str(info.value)
    assert str(info.value).startswith(f"ap.yaml: {key}: ")


def test_service_mistakes_name_their_key() -> None:
    services: list[dict[str, Any]] = [{"service": "S", "groups": ["only-one"]}]
    with pytest.raises(AutopilotConfigError, match=r"services\[0\]\.groups: needs at least two"):
        parse_config({**GOOD, "services": services})
    services = [{"service": "S", "groups": ["a", "b"], "capacity": {"perInstance": 0}}]
    with pytest.raises(AutopilotConfigError, match=r"services\[0\]\.capacity\.perInstance"):
        parse_config({**GOOD, "defaults": {}, "services": services})


def test_the_command_line_prints_one_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "autopilot.yaml"
    path.write_text("registry: embedded:///tmp/x.db\nservices: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "motanmesh.cli", "autopilot", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"motanmesh autopilot: {path}: services: required: a non-empty list of services to steer"
    )
    with pytest.raises(AutopilotConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_the_decisions_command_prints_the_log(tmp_path: Path) -> None:
    log = DecisionLog(str(tmp_path / "d.jsonl"))
    for i, rule in enumerate(("steady", "shift", "return")):
        log.record(
            Decision(
                time=1_800_000_000.0 + i,
                service="com.example.S" if i else "com.example.Other",
                group="s-yf",
                rule=rule,
                detail=f"detail {i}",
                before={"s-yf": 100},
                after={"s-yf": 75, "s-tc": 25} if rule == "shift" else {"s-yf": 100},
                inputs={"s-yf": {"demandLevel": 0.9}},
                written=rule != "steady",
            )
        )

    def decisions(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "motanmesh.cli", "autopilot", "decisions", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = decisions("--log", str(tmp_path / "d.jsonl"), "--service", "com.example.S")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert "shift: s-yf 100% -> s-yf 75%, s-tc 25%; detail 1 [written]" in lines[0]
    done = decisions("--log", str(tmp_path / "d.jsonl"), "--json", "--limit", "1")
    assert json.loads(done.stdout)["rule"] == "return"
    assert decisions("--log", str(tmp_path / "missing.jsonl")).returncode == 1
