"""``ctl commands preview``: providers registered in two groups, a weighted merge and a route
rule, seen by clients at different IPs; and :func:`traffic_shares`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from motanmesh.control.preview import traffic_shares
from motanmesh.registry.embedded import EmbeddedRegistry
from motanmesh.url import URL
from tests.control.conftest import arun_ctl, provider, register

SERVICE = "com.weibo.api.UserService"
YF, TC = "user-rpc-yf", "user-rpc-tc"
PROVIDERS = [
    provider("10.75.1.1", 8001, SERVICE, YF),
    provider("10.80.1.1", 8002, SERVICE, YF),
    provider("10.75.2.1", 8003, SERVICE, TC),
    provider("10.81.2.2", 8004, SERVICE, TC),
]


@pytest.fixture
async def reg_args(registry: EmbeddedRegistry, tmp_path: Path) -> list[str]:
    await register(registry, PROVIDERS)
    return ["--registry", f"embedded://{tmp_path / 'registry.db'}"]


async def _preview(reg_args: list[str], ip: str, *extra: str) -> dict[str, object]:
    result = await arun_ctl(
        "commands", "preview", *reg_args, "--service", SERVICE, "--group", YF,
        "--client-ip", ip, "--json", *extra,
    )  # fmt: skip
    assert result.code == 0, str(result)
    data: dict[str, object] = result.json()
    return data


async def test_weighted_merge_with_route_rule(reg_args: list[str]) -> None:
    setting = await arun_ctl(
        "commands", "set", *reg_args, "--group", YF, "--type", "traffic", "--pattern",
        "com.weibo.api.", "--merge-groups", f"{YF}:8,{TC}:2", "--route", "10.75.* to 10.75.*",
    )  # fmt: skip
    assert setting.code == 0, str(setting)

    near = await _preview(reg_args, "10.75.9.9")
    assert near["groups"] == [YF, TC]
    assert near["providers"] == [
        {"address": "10.75.1.1:8001", "group": YF},
        {"address": "10.75.2.1:8003", "group": TC},
    ]
    assert near["trafficShares"] == {YF: 0.8, TC: 0.2}
    assert near["routeRules"] == [
        {"rule": "10.75.* to 10.75.*", "applies": True, "kept": 2, "error": ""}
    ]
    effective = near["effective"]
    assert isinstance(effective, dict)
    assert effective["weights"] == f"{YF}:8,{TC}:2"

    far = await _preview(reg_args, "10.90.0.1")
    providers = far["providers"]
    assert isinstance(providers, list)
    assert sorted(p["address"] for p in providers) == [
        "10.75.1.1:8001", "10.75.2.1:8003", "10.80.1.1:8002", "10.81.2.2:8004",
    ]  # fmt: skip
    assert far["routeRules"] == [
        {"rule": "10.75.* to 10.75.*", "applies": False, "kept": None, "error": ""}
    ]

    human = await arun_ctl(
        "commands", "preview", *reg_args, "--service", SERVICE, "--group", YF,
        "--client-ip", "10.75.9.9",
    )  # fmt: skip
    assert human.code == 0, str(human)
    assert "route '10.75.* to 10.75.*': applies, keeps 2 provider(s)" in human.out
    assert f"traffic: {YF} 80%, {TC} 20%" in human.out
    assert "    10.75.2.1:8003 (user-rpc-tc)" in human.out


async def test_preview_of_a_proposed_document_writes_nothing(
    reg_args: list[str], registry: EmbeddedRegistry, tmp_path: Path
) -> None:
    proposal = tmp_path / "proposal.json"
    proposal.write_text(
        json.dumps(
            {
                "clientCommandList": [
                    {"index": 1, "commandType": 0, "pattern": "*", "mergeGroups": [TC],
                     "routeRules": ["* to !10.81.*"]}
                ]
            }
        )
    )  # fmt: skip
    data = await _preview(reg_args, "10.1.1.1", "--file", str(proposal))
    assert data["providers"] == [{"address": "10.75.2.1:8003", "group": TC}]
    assert data["trafficShares"] == {TC: 1.0}
    assert await registry.get_command(YF) is None

    bad = tmp_path / "bad.json"
    bad.write_text('{"clientCommandList":[{"index":1,"pattern":"*","mergeGroups":["x:0"]}]}')
    refused = await arun_ctl(
        "commands", "preview", *reg_args, "--service", SERVICE, "--group", YF,
        "--client-ip", "10.1.1.1", "--file", str(bad),
    )  # fmt: skip
    assert refused.code == 1
    assert "weight must be 1..100" in refused.err


async def test_route_rules_leaving_nothing_fall_back(reg_args: list[str]) -> None:
    result = await arun_ctl(
        "commands", "set", *reg_args, "--group", YF, "--type", "traffic", "--pattern", "*",
        "--merge-groups", YF, "--route", "* to 192.168.*",
    )  # fmt: skip
    assert result.code == 0, str(result)
    data = await _preview(reg_args, "10.75.9.9")
    assert data["routeFallback"] is True
    providers = data["providers"]
    assert isinstance(providers, list)
    assert len(providers) == 2


async def test_agent_degrade_and_switchers(reg_args: list[str]) -> None:
    for args in (
        ["--type", "degrade", "--pattern", SERVICE],
        ["--type", "switcher", "--pattern", "metricsReqApp:true"],
    ):
        done = await arun_ctl("commands", "set", *reg_args, "--agent", "feed-web", *args)
        assert done.code == 0, str(done)
    data = await _preview(reg_args, "10.75.9.9", "--agent", "feed-web")
    effective = data["effective"]
    assert isinstance(effective, dict)
    assert effective["degraded"] is True
    assert effective["switchers"] == {"metricsReqApp": True}
    assert data["groups"] == [YF]
    without = await _preview(reg_args, "10.75.9.9")
    assert isinstance(without["effective"], dict)
    assert without["effective"]["degraded"] is False


def _urls(*groups: str) -> list[URL]:
    return [URL("motan2", "10.0.0.1", 8000 + i, SERVICE, g) for i, g in enumerate(groups)]


@pytest.mark.parametrize(
    ("weights", "groups", "shares"),
    [
        ("a:8,b:2", ["a", "a", "b"], {"a": 0.8, "b": 0.2}),
        ("a:8,b:2", ["a", "c"], {"a": 1.0, "c": 0.0}),
        ("", ["a", "a", "b", "b"], {"a": 0.5, "b": 0.5}),
        ("a,b", ["a", "b", "b", "b"], {"a": 0.25, "b": 0.75}),
        ("x:3", ["a", "b"], {"a": 0.5, "b": 0.5}),
        ("a:1", [], {}),
    ],
)
def test_traffic_shares(weights: str, groups: list[str], shares: dict[str, float]) -> None:
    assert traffic_shares(weights, _urls(*groups)) == shares
