from __future__ import annotations

from pathlib import Path

import pytest

from motanmesh.config import Config, ConfigError, apply_overrides, load_config


def load(tmp_path: Path, text: str) -> Config:
    target = tmp_path / "agent.yaml"
    target.write_text(text)
    return load_config(target)


def test_flags_win_over_yaml(tmp_path: Path) -> None:
    cfg = load(tmp_path, "motan-agent: {port: 9000, eport: 9001, mport: 9002, application: a}\n")
    out = apply_overrides(
        cfg,
        port=19981,
        eport=19982,
        hport=19983,
        mport=18002,
        idc="yf",
        local_ip="10.1.2.3",
        pidfile="/run/agent.pid",
        application="b",
        log_dir="stdout",
        env={},
    )
    agent = out.agent
    assert (agent.port, agent.eport, agent.hport, agent.mport) == (19981, 19982, 19983, 18002)
    assert (agent.idc, agent.local_ip, agent.pidfile) == ("yf", "10.1.2.3", "/run/agent.pid")
    assert (agent.application, agent.log_dir) == ("b", "stdout")
    # The original is not changed.
    assert cfg.agent.port == 9000
    assert cfg.agent.idc == ""
    assert out.refers is cfg.refers


def test_unset_flags_keep_yaml_and_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "motan-agent: {port: 9000}\n")
    out = apply_overrides(cfg, port=None, eport=0, idc="", env={})
    assert out is cfg
    assert out.agent.port == 9000
    assert out.agent.eport == 9982


def test_env_mport_between_flag_and_yaml(tmp_path: Path) -> None:
    cfg = load(tmp_path, "motan-agent: {mport: 9002}\n")
    assert apply_overrides(cfg, env={"mport": "7002"}).agent.mport == 7002
    assert apply_overrides(cfg, mport=6002, env={"mport": "7002"}).agent.mport == 6002
    assert apply_overrides(cfg, env={"mport": " "}).agent.mport == 9002
    assert apply_overrides(cfg, env={}).agent.mport == 9002


def test_env_defaults_to_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load(tmp_path, "")
    monkeypatch.setenv("mport", "7003")
    assert apply_overrides(cfg).agent.mport == 7003


def test_bad_flag_port(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        apply_overrides(cfg, port=70000, env={})
    assert str(info.value) == ("command line: -port: expected a port number in 1..65535, got 70000")


def test_bad_env_mport(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        apply_overrides(cfg, env={"mport": "eight"})
    assert str(info.value) == "environment: mport: expected a port number in 1..65535, got 'eight'"
