from __future__ import annotations

from pathlib import Path

import pytest

from motanmesh.config import ConfigError, load_config

CONFIG = """
dynamic-param:
  zkHost:
    app-yf-core: 10.1.0.1
    "regexp:^app-tc": 10.2.0.1
    "regexp:-yf-": 10.3.0.1
    default: 10.9.0.1
  timeout: 800
  noDefault:
    app-yf-core: exact-only
  replicas: [a, b]
motan-registry:
  zk: {protocol: zookeeper, host: "${zkHost}", port: 2181}
motan-refer:
  r:
    path: a.B
    group: "g-${idc}"
    requestTimeout: "${timeout}"
    application: "${noDefault}"
    module: "prefix-${timeout}"
extra:
  list: ["${timeout}", "${replicas}"]
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "agent.yaml"
    target.write_text(CONFIG)
    return target


@pytest.mark.parametrize(
    ("pool", "host"),
    [
        ("app-yf-core", "10.1.0.1"),  # exact pool name first
        ("app-tc-core", "10.2.0.1"),  # then regexp keys in file order
        ("web-yf-core", "10.3.0.1"),
        ("app-yf", "10.9.0.1"),  # '-yf-' does not match the end: default
        ("", "10.9.0.1"),
    ],
)
def test_pool_specific_value(path: Path, pool: str, host: str) -> None:
    assert load_config(path, pool=pool).registries["zk"].host == host


def test_plain_value_keeps_its_type(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.refers["r"].request_timeout_ms == 800
    assert cfg.raw["motan-refer"]["r"]["requestTimeout"] == 800
    assert cfg.raw["extra"]["list"] == [800, ["a", "b"]]


def test_only_whole_strings_are_replaced(path: Path) -> None:
    refer = load_config(path).refers["r"]
    assert refer.get("module") == "prefix-${timeout}"
    assert refer.group == "g-${idc}"  # not a dynamic parameter: left for the cluster layer


def test_no_value_leaves_the_placeholder(path: Path) -> None:
    assert load_config(path).refers["r"].application == "${noDefault}"
    assert load_config(path, pool="app-yf-core").refers["r"].application == "exact-only"


def test_dynamic_param_section_itself_is_kept(path: Path) -> None:
    cfg = load_config(path, pool="app-yf-core")
    assert cfg.dynamic_params["timeout"] == 800
    assert cfg.dynamic_params["zkHost"]["default"] == "10.9.0.1"


def test_substituted_values_are_validated(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    target.write_text(
        "dynamic-param: {t: {default: soon}}\n"
        "motan-refer:\n"
        "  r: {path: a.B, requestTimeout: '${t}'}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(target)
    assert str(info.value) == (
        f"{target}: motan-refer.r.requestTimeout: expected an integer, got 'soon'"
    )


def test_dynamic_params_in_pool_mode(tmp_path: Path) -> None:
    (tmp_path / "pools").mkdir()
    (tmp_path / "basic.yaml").write_text("motan-refer:\n  r: {path: a.B, group: '${grp}'}\n")
    (tmp_path / "pools" / "app-yf.yaml").write_text(
        "dynamic-param:\n  grp: {app-yf: rpc-yf, default: rpc}\n"
    )
    assert load_config(tmp_path, pool="app-yf").refers["r"].group == "rpc-yf"
    assert load_config(tmp_path, pool="app-tc").refers["r"].group == "${grp}"


def test_invalid_regexp(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    target.write_text("dynamic-param:\n  k: {'regexp:(': x}\n")
    with pytest.raises(ConfigError) as info:
        load_config(target, pool="app")
    assert str(info.value) == (
        f"{target}: dynamic-param.k.regexp:(: invalid regular expression: "
        "missing ), unterminated subpattern at position 0"
    )


def test_section_must_be_a_mapping(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    target.write_text("dynamic-param: [a]\n")
    with pytest.raises(ConfigError) as info:
        load_config(target)
    assert str(info.value) == f"{target}: dynamic-param: expected a mapping, got a list"
