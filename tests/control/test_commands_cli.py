"""``ctl commands``: set/show/list/clear/history through the real command line against a real
embedded registry file; every write checked in the registry afterwards."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from motanmesh.cli import ctl
from motanmesh.cluster.command import EMPTY_DOCUMENT_JSON
from motanmesh.control.audit import AUDIT_GROUP
from motanmesh.registry.embedded import EmbeddedRegistry
from tests.control.conftest import CtlResult, embedded, run_ctl

GROUP = "user-rpc-yf"
#: the document of the "move 20% of IDC-A traffic to IDC-B" example, as the Go agent reads it
GO_20_PERCENT = (
    '{"clientCommandList":[{"index":1,"version":"1.0","dc":"yf","commandType":0,'
    '"pattern":"*","mergeGroups":["user-rpc-yf:8","user-rpc-tc:2"],"routeRules":[],'
    '"remark":"shift 20% yf->tc"}]}'
)
SHIFT_FLAGS = [
    "--type",
    "traffic",
    "--pattern",
    "*",
    "--merge-groups",
    "user-rpc-yf:8,user-rpc-tc:2",
    "--remark",
    "shift 20% yf->tc",
    "--dc",
    "yf",
]
#: a document written by the Java manager: alphabetical keys, an id, index as text, no dc
JAVA_MANAGER_DOC = (
    '{"clientCommandList":[{"commandType":0,"id":7,"index":"1","mergeGroups":'
    '["user-rpc-yf:8","user-rpc-tc:2"],"pattern":"com.weibo.api.*","remark":"from manager",'
    '"routeRules":["10.75.* to 10.75.*"],"version":"1.0"}]}'
)


def _read(db: Path, *, group: str = "", agent: str = "") -> str | None:
    async def read() -> str | None:
        async with EmbeddedRegistry(embedded(db)) as registry:
            if agent:
                return await registry.get_agent_command(agent)
            return await registry.get_command(group)

    return asyncio.run(read())


def _write(db: Path, group: str, text: str | None) -> None:
    async def write() -> None:
        async with EmbeddedRegistry(embedded(db)) as registry:
            await registry.set_command(group, text)

    asyncio.run(write())


def _ok(result: CtlResult) -> CtlResult:
    assert result.code == 0, str(result)
    return result


def _history(reg_args: list[str], *target: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = _ok(
        run_ctl("commands", "history", *reg_args, *target, "--json")
    ).json()
    return records


# ---------------------------------------------------------------------------- writing


def test_set_from_flags_writes_the_go_bytes(db: Path, reg_args: list[str]) -> None:
    result = _ok(run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS))
    assert _read(db, group=GROUP) == GO_20_PERCENT
    assert "#1 traffic pattern=* mergeGroups=[user-rpc-yf:8, user-rpc-tc:2]" in result.out


def test_set_from_file_and_stdin_writes_the_go_bytes(
    db: Path, reg_args: list[str], tmp_path: Path
) -> None:
    spaced = json.dumps(json.loads(GO_20_PERCENT), indent=4)
    doc = tmp_path / "cmd.json"
    doc.write_text(spaced)
    _ok(run_ctl("commands", "set", *reg_args, "--group", GROUP, "--file", str(doc)))
    assert _read(db, group=GROUP) == GO_20_PERCENT
    _ok(run_ctl("commands", "set", *reg_args, "--group", "other", "--file", "-", stdin=spaced))
    assert _read(db, group="other") == GO_20_PERCENT


def test_set_adds_and_replaces_by_index(db: Path, reg_args: list[str]) -> None:
    base = ["commands", "set", *reg_args, "--group", GROUP]
    _ok(run_ctl(*base, *SHIFT_FLAGS))
    _ok(run_ctl(*base, "--type", "switcher", "--pattern", "metricsReqApp:true"))
    _ok(
        run_ctl(
            *base,
            "--type",
            "traffic",
            "--pattern",
            "*",
            "--index",
            "1",
            "--merge-groups",
            GROUP,
            "--route",
            "* to !10.71.3.*",
            "--remark",
            "drain",
        )
    )
    stored = json.loads(_read(db, group=GROUP) or "")
    commands = stored["clientCommandList"]
    assert [(c["index"], c["commandType"]) for c in commands] == [(1, 0), (2, 2)]
    assert commands[0]["mergeGroups"] == [GROUP]
    assert commands[0]["routeRules"] == ["* to !10.71.3.*"]
    assert commands[1]["pattern"] == "metricsReqApp:true"


def test_agent_command_target(db: Path, reg_args: list[str]) -> None:
    _ok(
        run_ctl(
            "commands",
            "set",
            *reg_args,
            "--agent",
            "feed-web",
            "--type",
            "degrade",
            "--pattern",
            "com.weibo.feed.RecommendService",
            "--remark",
            "incident",
        )
    )
    stored = json.loads(_read(db, agent="feed-web") or "")
    assert stored["clientCommandList"][0]["commandType"] == 1
    assert _read(db, group="feed-web") is None
    shown = _ok(run_ctl("commands", "show", *reg_args, "--agent", "feed-web", "--json")).json()
    assert shown["target"] == "agent:feed-web"


def test_unchanged_document_is_not_written_again(db: Path, reg_args: list[str]) -> None:
    _ok(run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS))
    again = _ok(
        run_ctl("commands", "set", *reg_args, "--group", GROUP, "--file", "-", stdin=GO_20_PERCENT)
    )
    assert "unchanged" in again.out
    assert len(_history(reg_args, "--group", GROUP)) == 1


def test_dry_run_writes_nothing(db: Path, reg_args: list[str]) -> None:
    result = _ok(
        run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS, "--dry-run", "--json")
    )
    assert result.json()["after"] == GO_20_PERCENT
    assert result.json()["written"] is False
    assert _read(db, group=GROUP) is None
    assert _history(reg_args) == []


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("flags", "stdin", "problem"),
    [
        (
            ["--type", "traffic", "--pattern", "*", "--merge-groups", "a:800"],
            None,
            "weight must be 1..100",
        ),
        (["--type", "traffic", "--pattern", "*", "--route", "10.* to"], None, "route rule"),
        (
            ["--type", "traffic", "--pattern", "*", "--route", "10.* to abc.*"],
            None,
            "not an IPv4 address",
        ),
        (["--type", "switcher", "--pattern", "metricsReqApp:maybe"], None, "true' or 'false"),
        (["--type", "traffic", "--pattern", " "], None, "pattern"),
        (["--file", "-"], '{"clientCommandList": [', "invalid command JSON"),
        (
            ["--file", "-"],
            '{"clientCommandList":[{"commandType":0,"pattern":"*"}]}',
            "index is missing",
        ),
        (
            ["--file", "-"],
            '{"clientCommandList":[{"index":1,"pattern":"*"},{"index":1,"pattern":"a"}]}',
            "index 1 is also used",
        ),
        (
            ["--file", "-"],
            '{"clientCommandList":[{"index":1,"commandType":7,"pattern":"*"}]}',
            "unknown commandType 7",
        ),
    ],
)
def test_invalid_changes_are_refused_and_nothing_is_written(
    db: Path, reg_args: list[str], flags: list[str], stdin: str | None, problem: str
) -> None:
    result = run_ctl("commands", "set", *reg_args, "--group", GROUP, *flags, stdin=stdin)
    assert result.code == 1, str(result)
    assert "refused, nothing written" in result.err
    assert problem in result.err
    assert _read(db, group=GROUP) is None
    assert _read(db, group=AUDIT_GROUP) is None


def test_refusal_keeps_the_existing_command(db: Path, reg_args: list[str]) -> None:
    _ok(run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS))
    result = run_ctl(
        "commands",
        "set",
        *reg_args,
        "--group",
        GROUP,
        "--type",
        "traffic",
        "--pattern",
        "*",
        "--index",
        "1",
        "--merge-groups",
        "x:0",
        "--json",
    )
    assert result.code == 1
    assert result.json()["problems"]
    assert _read(db, group=GROUP) == GO_20_PERCENT
    assert len(_history(reg_args)) == 1


def test_usage_errors_exit_2(db: Path, reg_args: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = run_ctl("commands", "show", "--registry", f"embedded://{missing}", "--group", "g")
    assert result.code == 2
    assert "does not exist" in result.err
    assert not missing.exists()
    assert run_ctl("commands", "show", "--group", "g").code == 2
    assert run_ctl("commands", "show", *reg_args).code == 2
    mixed = run_ctl("commands", "set", *reg_args, "--group", "g", "--file", "-", "--index", "1")
    assert mixed.code == 2
    assert run_ctl("commands", "set", *reg_args, "--group", "g", "--type", "traffic").code == 2
    assert run_ctl("commands", "set", *reg_args, "--group", "g", "--type", "bogus").code == 2
    assert run_ctl("commands").code == 2


# ---------------------------------------------------------------------------- reading


def test_java_manager_document_is_shown_and_kept(db: Path, reg_args: list[str]) -> None:
    _write(db, GROUP, JAVA_MANAGER_DOC)
    human = _ok(run_ctl("commands", "show", *reg_args, "--group", GROUP))
    assert (
        "#1 traffic pattern=com.weibo.api.* mergeGroups=[user-rpc-yf:8, user-rpc-tc:2] "
        "routeRules=[10.75.* to 10.75.*] remark='from manager'" in human.out
    )
    shown = _ok(run_ctl("commands", "show", *reg_args, "--group", GROUP, "--json")).json()
    assert shown["raw"] == JAVA_MANAGER_DOC
    assert shown["problems"] == []
    command = shown["document"]["clientCommandList"][0]
    assert command["index"] == 1
    assert command["pattern"] == "com.weibo.api.*"
    _ok(
        run_ctl(
            "commands",
            "set",
            *reg_args,
            "--group",
            GROUP,
            "--type",
            "switcher",
            "--pattern",
            "metricsReqApp:true",
        )
    )
    rewritten = json.loads(_read(db, group=GROUP) or "")["clientCommandList"]
    assert list(rewritten[0]) == [
        "index",
        "version",
        "dc",
        "commandType",
        "pattern",
        "mergeGroups",
        "routeRules",
        "remark",
    ]
    assert rewritten[0]["routeRules"] == ["10.75.* to 10.75.*"]
    assert rewritten[1]["index"] == 2


def test_unreadable_document_is_shown_and_edits_need_a_whole_document(
    db: Path, reg_args: list[str]
) -> None:
    _write(db, GROUP, "not json")
    shown = _ok(run_ctl("commands", "show", *reg_args, "--group", GROUP))
    assert "unreadable command" in shown.out
    edit = run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS)
    assert edit.code == 1
    assert "--file" in edit.err
    assert _read(db, group=GROUP) == "not json"
    _ok(run_ctl("commands", "set", *reg_args, "--group", GROUP, "--file", "-", stdin=GO_20_PERCENT))
    assert _read(db, group=GROUP) == GO_20_PERCENT


def test_list(db: Path, reg_args: list[str]) -> None:
    nothing = run_ctl("commands", "list", *reg_args)
    assert nothing.code == 2
    assert "--group" in nothing.err
    _ok(run_ctl("commands", "set", *reg_args, "--group", GROUP, *SHIFT_FLAGS))
    _ok(
        run_ctl(
            "commands",
            "set",
            *reg_args,
            "--agent",
            "feed-web",
            "--type",
            "switcher",
            "--pattern",
            "metricsReqApp:true",
        )
    )
    listed = _ok(run_ctl("commands", "list", *reg_args, "--json")).json()
    assert listed["source"] == "audit"
    assert [t["target"] for t in listed["targets"]] == [f"group:{GROUP}", "agent:feed-web"]
    human = _ok(run_ctl("commands", "list", *reg_args)).out
    assert f"group {GROUP}: 1 command(s)" in human
    assert "agent feed-web: 1 command(s)" in human
    one = _ok(run_ctl("commands", "list", *reg_args, "--group", "never-written")).out
    assert "group never-written: no command node" in one


# ---------------------------------------------------------------------------- clearing, audit


def test_clear_delete_and_history(db: Path, reg_args: list[str]) -> None:
    _ok(
        run_ctl(
            "commands",
            "set",
            *reg_args,
            "--group",
            GROUP,
            *SHIFT_FLAGS,
            "--operator",
            "alice",
            "--reason",
            "drill",
        )
    )
    _ok(run_ctl("commands", "clear", *reg_args, "--group", GROUP, "--reason", "rollback"))
    assert _read(db, group=GROUP) == EMPTY_DOCUMENT_JSON
    deleted = _ok(run_ctl("commands", "clear", *reg_args, "--group", GROUP, "--delete"))
    assert "Go agents" in deleted.err
    assert _read(db, group=GROUP) is None

    records = _history(reg_args, "--group", GROUP)
    assert [r["action"] for r in records] == ["set-command", "clear", "delete"]
    assert [r["operator"] for r in records] == ["alice", "tester", "tester"]
    assert [r["remark"] for r in records] == ["drill", "rollback", ""]
    assert records[0]["before"] is None
    assert records[0]["after"] == GO_20_PERCENT
    assert records[1]["before"] == GO_20_PERCENT
    assert records[1]["after"] == EMPTY_DOCUMENT_JSON
    assert records[2]["after"] is None
    assert all(r["target"] == f"group:{GROUP}" and r["time"].endswith("Z") for r in records)
    assert records[0]["time"] <= records[1]["time"] <= records[2]["time"]

    human = _ok(run_ctl("commands", "history", *reg_args)).out
    assert "alice@" in human
    assert "set-command  group user-rpc-yf  'drill'" in human
    assert "  + #1 traffic pattern=*" in human
    assert "  + (empty list)" in human
    assert len(_history(reg_args, "--limit", "2")) == 2
    assert _history(reg_args, "--group", "other") == []


def test_clear_one_index(db: Path, reg_args: list[str]) -> None:
    base = ["commands", "set", *reg_args, "--group", GROUP]
    _ok(run_ctl(*base, *SHIFT_FLAGS))
    _ok(run_ctl(*base, "--type", "switcher", "--pattern", "metricsReqApp:true"))
    missing = run_ctl("commands", "clear", *reg_args, "--group", GROUP, "--index", "9")
    assert missing.code == 1
    assert "no command with index 9" in missing.err
    _ok(run_ctl("commands", "clear", *reg_args, "--group", GROUP, "--index", "2"))
    assert _read(db, group=GROUP) == GO_20_PERCENT
    assert _history(reg_args)[-1]["action"] == "remove-command"


def test_warnings_do_not_block(db: Path, reg_args: list[str]) -> None:
    result = _ok(
        run_ctl(
            "commands",
            "set",
            *reg_args,
            "--group",
            GROUP,
            "--type",
            "traffic",
            "--pattern",
            "com.weibo.api.UserService",
            "--merge-groups",
            "user-rpc-tc",
            "--service",
            "com.weibo.api.UserService",
        )
    )
    assert "leave out the own group user-rpc-yf" in result.err
    assert "merge group user-rpc-tc has no providers of com.weibo.api.UserService" in result.err
    assert "not an error" in result.err
    assert _read(db, group=GROUP) is not None


def test_registry_from_agent_config(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    registries = {
        "direct-reg": {"protocol": "direct", "address": "127.0.0.1:9"},
        "local": {"protocol": "embedded", "address": str(db)},
        "spare": {"protocol": "embedded", "address": str(tmp_path / "spare.db")},
    }
    config.write_text(json.dumps({"motan-agent": {"registry": "local"},
                                  "motan-registry": registries}))  # fmt: skip
    _ok(run_ctl("commands", "set", "-c", str(config), "--group", GROUP, *SHIFT_FLAGS))
    assert _read(db, group=GROUP) == GO_20_PERCENT

    config.write_text(json.dumps({"motan-registry": registries}))
    unclear = run_ctl("commands", "show", "-c", str(config), "--group", GROUP)
    assert unclear.code == 2
    assert "--registry-id" in unclear.err
    shown = run_ctl("commands", "show", "-c", str(config), "--registry-id", "local",
                    "--group", GROUP, "--json")  # fmt: skip
    assert shown.json()["raw"] == GO_20_PERCENT
    direct = run_ctl("commands", "show", "-c", str(config), "--registry-id", "direct-reg",
                     "--group", GROUP)  # fmt: skip
    assert direct.code == 2
    assert "keeps no commands" in direct.err
    both = run_ctl("commands", "show", "-c", str(config), "--registry", f"embedded://{db}",
                   "--group", GROUP)  # fmt: skip
    assert both.code == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("motan-registry: [")
    assert run_ctl("commands", "show", "-c", str(broken), "--group", GROUP).code == 2


def test_ctl_plugs_into_the_motanmesh_command_line(db: Path) -> None:
    parser = argparse.ArgumentParser(prog="motanmesh")
    ctl.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ctl", "commands", "show", "--registry", f"embedded://{db}",
                              "--group", GROUP, "--json"])  # fmt: skip
    assert args.func is ctl.run
    assert ctl.run(args) == 0
    assert ctl.run(parser.parse_args(["ctl"])) == 2
