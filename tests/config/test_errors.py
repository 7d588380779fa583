"""Every validation error: one ConfigError naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from motanmesh.config import ConfigError, load_config

BASE = """
motan-registry:
  zk: {protocol: zookeeper, host: 10.0.0.1, port: 2181}
"""


def error_of(tmp_path: Path, text: str, *, name: str = "agent.yaml") -> str:
    target = tmp_path / name
    target.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(target)
    assert info.value.file == str(target)
    return str(info.value).removeprefix(f"{target}: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # sections of the wrong type
        ("motan-agent: [1]\n", "motan-agent: expected a mapping, got a list"),
        ("motan-registry: zk\n", "motan-registry: expected a mapping, got 'zk'"),
        ("motan-refer: [a]\n", "motan-refer: expected a mapping, got a list"),
        ("motan-refer: {r: 5}\n", "motan-refer.r: expected a mapping, got 5"),
        ("motan-service: {s: [1]}\n", "motan-service.s: expected a mapping, got a list"),
        (
            "motan-basicRefer: 3\n" + "motan-refer: {r: {path: a, basicRefer: t}}\n",
            "motan-basicRefer: expected a mapping, got 3",
        ),
        ("switcher: [a]\n", "switcher: expected a mapping, got a list"),
        ("switchers: on\n", "switchers: expected a mapping, got True"),
        ("metrics: 5\n", "metrics: expected a mapping, got 5"),
        ("http-client: [a]\n", "http-client: expected a mapping, got a list"),
        ("http-locations: x\n", "http-locations: expected a mapping, got 'x'"),
        ("http-service: [x]\n", "http-service: expected a mapping, got a list"),
        # agent ports and values
        (
            "motan-agent: {port: 70000}\n",
            "motan-agent.port: expected a port number in 1..65535, got 70000",
        ),
        (
            "motan-agent: {eport: abc}\n",
            "motan-agent.eport: expected a port number in 1..65535, got 'abc'",
        ),
        (
            "motan-agent: {hport: 0}\n",
            "motan-agent.hport: expected a port number in 1..65535, got 0",
        ),
        (
            "motan-agent: {mport: true}\n",
            "motan-agent.mport: expected a port number in 1..65535, got True",
        ),
        (
            "motan-agent: {mport: 80.5}\n",
            "motan-agent.mport: expected a port number in 1..65535, got 80.5",
        ),
        (
            "motan-agent: {initClusterTimeout: soon}\n",
            "motan-agent.initClusterTimeout: expected an integer, got 'soon'",
        ),
        (
            "motan-agent: {managementPortRange: 8002}\n",
            "motan-agent.managementPortRange: expected 'start-end' with ports in 1..65535, "
            "got 8002",
        ),
        (
            "motan-agent: {managementPortRange: 9000-8000}\n",
            "motan-agent.managementPortRange: expected 'start-end' with ports in 1..65535, "
            "got '9000-8000'",
        ),
        (
            "motan-agent: {httpProxyEnable: maybe}\n",
            "motan-agent.httpProxyEnable: expected a boolean, got 'maybe'",
        ),
        (
            "motan-agent: {processPoolSize: lots}\n",
            "motan-agent.processPoolSize: expected an integer, got 'lots'",
        ),
        (
            "motan-agent: {log_async: sometimes}\n",
            "motan-agent.log_async: expected a boolean, got 'sometimes'",
        ),
        (
            "motan-agent: {registry: zk2}\n" + BASE,
            "motan-agent.registry: unknown registry id 'zk2' (motan-registry defines zk)",
        ),
        # registries
        (
            "motan-registry: {zk: {host: a}}\nmotan-refer: {demo: {path: a.B, registry: zk}}\n",
            "motan-registry.zk.protocol: required key is missing",
        ),
        (
            "motan-registry: {zk: {host: a}}\nmotan-agent: {registry: zk}\n",
            "motan-registry.zk.protocol: required key is missing",
        ),
        (
            "motan-registry: {zk: {protocol: zookeeper, port: 99999}}\n",
            "motan-registry.zk.port: expected a port number in 0..65535, got 99999",
        ),
        (
            "motan-registry: {zk: {protocol: zookeeper, registrySessionTimeout: 1s}}\n",
            "motan-registry.zk.registrySessionTimeout: expected an integer, got '1s'",
        ),
        # refers
        (
            "motan-refer: {demo: {path: a.B, requestTimeout: abc}}\n",
            "motan-refer.demo.requestTimeout: expected an integer, got 'abc'",
        ),
        (
            "motan-refer: {demo: {path: a.B, 'm(java.lang.String).retries': x}}\n",
            "motan-refer.demo.m(java.lang.String).retries: expected an integer, got 'x'",
        ),
        (
            "motan-refer: {demo: {path: a.B, lazyInit: later}}\n",
            "motan-refer.demo.lazyInit: expected a boolean, got 'later'",
        ),
        (
            "motan-refer: {demo: {path: a.B, port: x}}\n",
            "motan-refer.demo.port: expected a port number in 0..65535, got 'x'",
        ),
        ("motan-refer: {demo: {group: g}}\n", "motan-refer.demo.path: required key is missing"),
        ("motan-refer: {demo: {path: ''}}\n", "motan-refer.demo.path: required key is missing"),
        (
            "motan-refer: {demo: {path: a.B, registry: 'zk,zk9'}}\n" + BASE,
            "motan-refer.demo.registry: unknown registry id 'zk9' (motan-registry defines zk)",
        ),
        (
            "motan-refer: {demo: {path: a.B, registry: zk}}\n",
            "motan-refer.demo.registry: unknown registry id 'zk' (motan-registry defines nothing)",
        ),
        (
            "motan-refer: {demo: {path: a.B, basicRefer: nope}}\n",
            "motan-refer.demo.basicRefer: unknown motan-basicRefer id 'nope'",
        ),
        (
            "motan-refer: {demo: {path: a.B, filter: {a: 1}, retries: [[1]]}}\n",
            "motan-refer.demo.retries: expected an integer, got a list",
        ),
        # template values are reported where they are written
        (
            "motan-basicRefer: {tpl: {requestTimeout: slow}}\n"
            "motan-refer: {demo: {path: a.B, basicRefer: tpl}}\n",
            "motan-basicRefer.tpl.requestTimeout: expected an integer, got 'slow'",
        ),
        (
            "motan-basicRefer: {tpl: [1]}\nmotan-refer: {demo: {path: a.B, basicRefer: tpl}}\n",
            "motan-basicRefer.tpl: expected a mapping, got a list",
        ),
        # services
        ("motan-service: {s: {group: g}}\n", "motan-service.s.path: required key is missing"),
        (
            "motan-service: {s: {path: a.B, basicService: nope}}\n",
            "motan-service.s.basicService: unknown motan-basicService id 'nope'",
        ),
        (
            "motan-service: {s: {path: a.B, registry: zk1}}\n" + BASE,
            "motan-service.s.registry: unknown registry id 'zk1' (motan-registry defines zk)",
        ),
        (
            "motan-service: {s: {path: a.B, export: 'motan2:abc'}}\n",
            "motan-service.s.export: expected 'protocol:port' or 'port', got 'motan2:abc'",
        ),
        (
            "motan-service: {s: {path: a.B, export: 'motan2:0.0.0.0:9982'}}\n",
            "motan-service.s.export: expected 'protocol:port' or 'port', got 'motan2:0.0.0.0:9982'",
        ),
        (
            "motan-service: {s: {path: a.B, export: 'motan2:70000'}}\n",
            "motan-service.s.export: port must be in 1..65535, got 'motan2:70000'",
        ),
        (
            "motan-service: {s: {path: a.B, proxy: 'motan2:'}}\n",
            "motan-service.s.proxy: expected 'protocol:port' or 'port', got 'motan2:'",
        ),
        (
            "motan-service: {s: {path: a.B, proxy: '127.0.0.1:8100:x'}}\n",
            "motan-service.s.proxy: expected 'protocol:port' or 'port', got '127.0.0.1:8100:x'",
        ),
        (
            "motan-basicService: {b: {export: 'x:y'}}\n"
            "motan-service: {s: {path: a.B, basicService: b}}\n",
            "motan-basicService.b.export: expected 'protocol:port' or 'port', got 'x:y'",
        ),
        (
            "motan-service: {s: {path: a.B, mingzSize: big}}\n",
            "motan-service.s.mingzSize: expected an integer, got 'big'",
        ),
        # switchers and metrics
        ("switcher: {feature.a: maybe}\n", "switcher.feature.a: expected a boolean, got 'maybe'"),
        ("switchers: {feature.b: 2}\n", "switchers.feature.b: expected a boolean, got 2"),
        ("metrics: {period: 0}\n", "metrics.period: expected an integer >= 1, got 0"),
    ],
)
def test_validation_error(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, text) == message


def test_error_attributes(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    target.write_text("motan-refer: {demo: {path: a.B, requestTimeout: abc}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(target)
    err = info.value
    assert err.file == str(target)
    assert err.key_path == "motan-refer.demo.requestTimeout"
    assert err.detail == "expected an integer, got 'abc'"
    assert str(err) == f"{target}: motan-refer.demo.requestTimeout: expected an integer, got 'abc'"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = "motan-agent:\n  port: 9981\n  mport: [8002\nmotan-refer: {}\n"
    assert error_of(tmp_path, text) == (
        "invalid YAML at line 4, column 12: expected ',' or ']', but got ':'"
    )


def test_invalid_indentation(tmp_path: Path) -> None:
    text = "motan-agent:\n  port: 9981\n   mport: 8002\n"
    assert error_of(tmp_path, text) == (
        "invalid YAML at line 3, column 9: mapping values are not allowed here"
    )


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert error_of(tmp_path, "- a\n- b\n") == "expected a mapping at the top level, got a list"


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: cannot read file: No such file or directory"


def test_not_utf8(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    target.write_bytes(b"motan-agent: {application: \xff\xfe}\n")
    with pytest.raises(ConfigError) as info:
        load_config(target)
    assert str(info.value) == f"{target}: not valid UTF-8"


def test_unsupported_yaml_type(tmp_path: Path) -> None:
    assert error_of(tmp_path, "motan-agent: {data: !!binary aGk=}\n") == (
        "motan-agent.data: unsupported YAML value of type bytes"
    )


def test_unsupported_key(tmp_path: Path) -> None:
    assert error_of(tmp_path, "motan-agent: {!!binary aGk=: x}\n") == (
        "motan-agent: unsupported key b'hi'"
    )
