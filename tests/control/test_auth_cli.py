"""``ctl auth``: show/set/delete a service's access policy through the real command line
against a real embedded registry file; every write checked in the registry afterwards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from motanmesh.filters.auth_policy import AuthPolicy
from motanmesh.registry.embedded import EmbeddedRegistry
from tests.control.conftest import CtlResult, embedded, run_ctl

GROUP = "orders-rpc"
SERVICE = "com.example.Orders"
TARGET = ["--group", GROUP, "--service", SERVICE]


def _read(db: Path) -> str | None:
    async def read() -> str | None:
        async with EmbeddedRegistry(embedded(db)) as registry:
            return await registry.get_auth_policy(GROUP, SERVICE)

    return asyncio.run(read())


def _ok(result: CtlResult) -> CtlResult:
    assert result.code == 0, str(result)
    return result


def test_set_show_and_delete(db: Path, reg_args: list[str]) -> None:
    assert "no policy" in _ok(run_ctl("auth", "show", *reg_args, *TARGET)).out
    result = _ok(
        run_ctl(
            "auth",
            "set",
            *reg_args,
            *TARGET,
            "--allow",
            "web, spiffe://prod.example/app/mobile",
            "--method",
            "refund=billing",
            "--require-identity",
        )
    )
    assert "written" in result.out
    stored = _read(db)
    assert stored is not None
    assert json.loads(stored) == {
        "allow": ["web", "spiffe://prod.example/app/mobile"],
        "methods": {"refund": ["billing"]},
        "requireIdentity": True,
    }
    shown = _ok(run_ctl("auth", "show", *reg_args, *TARGET, "--json")).json()
    assert shown["node"] == f"/motan/{GROUP}/{SERVICE}/auth"
    assert AuthPolicy.from_json(shown["policy"]).require_identity
    assert "method refund: billing" in _ok(run_ctl("auth", "show", *reg_args, *TARGET)).out

    _ok(run_ctl("auth", "delete", *reg_args, *TARGET))
    assert _read(db) is None


def test_set_from_stdin_and_dry_run(db: Path, reg_args: list[str]) -> None:
    doc = '{"methods": {"get": ["*"]}}'
    dry = _ok(run_ctl("auth", "set", *reg_args, *TARGET, "--file", "-", "--dry-run", stdin=doc))
    assert '"get":["*"]' in dry.out
    assert _read(db) is None
    _ok(run_ctl("auth", "set", *reg_args, *TARGET, "--file", "-", stdin=doc))
    assert json.loads(_read(db) or "") == {"methods": {"get": ["*"]}}


def test_a_malformed_policy_writes_nothing(db: Path, reg_args: list[str]) -> None:
    _ok(run_ctl("auth", "set", *reg_args, *TARGET, "--allow", "web"))
    before = _read(db)
    result = run_ctl("auth", "set", *reg_args, *TARGET, "--file", "-", stdin='{"alow": ["x"]}')
    assert result.code == 1, str(result)
    assert "refused, nothing written" in result.err and "unknown key" in result.err
    result = run_ctl("auth", "set", *reg_args, *TARGET, "--allow", "bad name")
    assert result.code == 1, str(result)
    assert _read(db) == before
    usage = run_ctl("auth", "set", *reg_args, *TARGET)
    assert usage.code == 2 and "--allow" in usage.err
