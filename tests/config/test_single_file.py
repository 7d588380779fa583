from __future__ import annotations

from pathlib import Path

import pytest

from motanmesh.config import (
    AgentConfig,
    Config,
    ProxyTarget,
    load_config,
    service_proxy,
)
from motanmesh.url import URL

DATA = Path(__file__).resolve().parent / "data"
AGENT_YAML = DATA / "agent.yaml"


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(AGENT_YAML)


def test_agent_section(cfg: Config) -> None:
    agent = cfg.agent
    assert (agent.port, agent.eport, agent.hport, agent.mport) == (9981, 9982, 9983, 8002)
    assert agent.application == "demo-agent"
    assert agent.registry == "zk-main"
    assert agent.log_dir == "./logs"
    assert agent.init_cluster_timeout_ms == 5000
    assert agent.default_filter == ["accessLog", "metrics"]
    assert agent.global_filter == ["failfast"]
    assert agent.http_proxy_enable is False
    assert agent.params == {"log_async": "true", "processPoolSize": "20000"}
    # Not set in the file: defaults.
    assert agent.host == "127.0.0.1"
    assert agent.pidfile == "./agent.pid"
    assert agent.runtime_dir == "./agent_runtime"
    assert agent.snapshot_dir == "./snapshot"
    assert agent.unix_sock == ""
    assert agent.management_port_range is None


def test_agent_defaults_for_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    cfg = load_config(path)
    assert cfg.agent == AgentConfig()
    assert cfg.agent.port == 9981
    assert cfg.agent.mport == 8002
    assert cfg.agent.application == "default_agent_group"
    assert cfg.agent.init_cluster_timeout_ms == 10000
    assert cfg.refers == {}
    assert cfg.services == {}
    assert cfg.files == [str(path)]


def test_registries(cfg: Config) -> None:
    zk = cfg.registries["zk-main"]
    assert (zk.protocol, zk.host, zk.port) == ("zookeeper", "10.77.1.10", 2181)
    assert zk.parameters == {"registrySessionTimeout": "10", "conf-id": "zk-main"}
    direct = cfg.registries["direct-local"]
    assert direct.protocol == "direct"
    assert direct.port == 0
    assert direct.get("address") == "127.0.0.1:9982,127.0.0.1:9992"


def test_refer_from_template(cfg: Config) -> None:
    refer = cfg.refers["demo-refer"]
    assert refer.protocol == "motan2"
    assert refer.path == "com.weibo.motan.demo.service.MotanDemoService"
    assert refer.group == "motan-demo-rpc"
    assert refer.registry == ["zk-main"]
    assert refer.request_timeout_ms == 500  # entry overrides the template
    assert refer.loadbalance == "roundrobin"  # from the template
    assert refer.get_method_int("hello", "java.lang.String", "requestTimeout", 0) == 2000
    assert refer.get("lazyInit") == "true"
    assert refer.conf_id == "demo-refer"
    assert refer.get("basicRefer") == "demo-basic"
    # default filters minus disableDefaultFilter, global filters, then the refer's own.
    assert refer.filters == ["accessLog", "failfast", "clusterMetrics"]


def test_refer_without_template(cfg: Config) -> None:
    refer = cfg.refers["user-refer"]
    assert refer.protocol == "motan"  # motanV1Compatible is read as motan
    assert refer.group == "user-${idc}"  # left for the cluster layer
    assert refer.registry == ["zk-main", "direct-local"]
    assert refer.get("version") == "2.0"
    assert refer.filters == ["accessLog", "metrics", "failfast"]


def test_refer_protocol_defaults_to_motan2(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("motan-refer:\n  r:\n    path: a.B\n")
    refer = load_config(path).refers["r"]
    assert refer.protocol == "motan2"
    assert "filter" not in refer.parameters
    assert refer.parameters == {"conf-id": "r"}


def test_service_fans_out_groups(cfg: Config) -> None:
    urls = cfg.services["demo-service"]
    assert [u.group for u in urls] == ["motan-demo-rpc", "motan-demo-rpc-canary"]
    for url in urls:
        assert (url.protocol, url.port) == ("motan2", 9982)
        assert url.path == "com.weibo.motan.demo.service.MotanDemoService"
        assert url.registry == ["zk-main"]
        assert url.get("provider") == "motan2"
        assert url.get("mingzSize") == "1024"
        assert url.conf_id == "demo-service"
        assert url.filters == ["accessLog", "metrics", "failfast", "trace"]
        assert service_proxy(url) == ProxyTarget("motan2", "127.0.0.1", 8100)
    assert urls[0].group_path == "motan-demo-rpc_com.weibo.motan.demo.service.MotanDemoService"


def test_service_with_explicit_provider_and_port_only_export(cfg: Config) -> None:
    (url,) = cfg.services["timeline-service"]
    assert (url.protocol, url.port) == ("motan2", 9990)
    assert url.get("provider") == "http"  # explicit provider wins over the proxy protocol
    assert url.get("proxyAddress") == "127.0.0.1:8080"
    target = service_proxy(url)
    assert target is not None
    assert target.address == "127.0.0.1:8080"


def test_service_export_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "motan-service:\n"
        "  s:\n"
        "    path: a.B\n"
        "    proxy: 8100\n"
        "    proxy.host: unix:///run/app.sock\n"
    )
    (url,) = load_config(path).services["s"]
    assert (url.protocol, url.port, url.group) == ("motan2", 9982, "")
    assert url.get("provider") == "motan2"
    target = service_proxy(url)
    assert target == ProxyTarget("motan2", "unix:///run/app.sock", 8100)
    assert target is not None
    assert target.address == "unix:///run/app.sock"
    assert service_proxy(URL("motan2", "h", 1, "a.B")) is None


def test_service_from_template_keeps_template_group(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "motan-basicService:\n"
        "  b: {group: g1, requestTimeout: 300}\n"
        "motan-service:\n"
        "  s: {basicService: b, path: a.B, group: '', export: 'motan:9100'}\n"
    )
    (url,) = load_config(path).services["s"]
    assert url.group == "g1"
    assert (url.protocol, url.port) == ("motan", 9100)
    assert url.request_timeout_ms == 300


def test_switchers_union(cfg: Config) -> None:
    assert cfg.switchers == {"metricsReqApp": False, "mesh.decodeV1.exception.log": True}


def test_switchers_section_wins_over_switcher(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("switcher: {a: true, b: 'false'}\nswitchers: {a: false}\n")
    assert load_config(path).switchers == {"a": False, "b": False}


def test_metrics_and_http_sections_are_kept_raw(cfg: Config) -> None:
    assert cfg.metrics["period"] == 5
    assert cfg.metrics["graphite"] == [{"name": "graphite-main", "host": "10.77.2.2", "port": 8125}]
    assert cfg.http_client["api.weibo.com"]["group"] == "http-api"
    assert cfg.http_locations["api.weibo.com"][0]["upstream"] == "com.weibo.api.Timeline"
    assert cfg.http_service == {}


def test_raw_is_the_merged_document() -> None:
    cfg = load_config(AGENT_YAML)
    assert cfg.raw["motan-refer"]["demo-refer"]["requestTimeout"] == 500
    assert set(cfg.raw) >= {"motan-agent", "motan-registry", "motan-refer", "motan-service"}
    cfg.raw["motan-agent"]["port"] = 1  # a copy: the typed view is not affected
    assert cfg.agent.port == 9981
    assert cfg.metrics is not cfg.raw["metrics"]


def test_file_of_names_the_single_file(cfg: Config) -> None:
    assert cfg.file_of(("motan-refer", "demo-refer", "requestTimeout")) == str(AGENT_YAML)
    assert cfg.file_of(("no", "such", "key")) == str(AGENT_YAML)


def test_scalar_conversion_like_go(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "motan-refer:\n"
        "  r:\n"
        "    path: a.B\n"
        "    weight: 1.50\n"
        "    big: 1.0e+20\n"
        "    flag: true\n"
        "    since: 2024-01-02\n"
        "    filter: [accessLog, metrics]\n"
        "    nested: {a: 1}\n"
        "    empty: null\n"
        "    8080: port-key\n"
    )
    cfg = load_config(path)
    refer = cfg.refers["r"]
    assert refer.get("weight") == "1.5"
    assert refer.get("big") == "100000000000000000000"
    assert refer.get("flag") == "true"
    assert refer.get("since") == "2024-01-02"
    assert refer.filters == ["accessLog", "metrics"]
    assert refer.get("8080") == "port-key"
    assert "nested" not in refer.parameters
    assert "empty" not in refer.parameters
    assert cfg.warnings == [f"{path}: motan-refer.r.nested: mapping ignored"]


def test_what_the_go_agent_accepts_and_cannot_hurt(tmp_path: Path) -> None:
    """Accepted as the Go agent accepts them: a negative initClusterTimeout (no wait), an
    unused registry without a protocol (left out), structured values where a URL parameter
    is expected (ignored), each with a warning where something is dropped."""
    path = tmp_path / "agent.yaml"
    path.write_text(
        "motan-agent:\n"
        "  initClusterTimeout: -5\n"
        "  extension: {foo: xxx}\n"
        "  registry: direct-registry\n"
        "motan-registry:\n"
        "  direct-registry: {protocol: direct}\n"
        "  spare: {host: localhost, port: 2181}\n"
        "motan-refer:\n"
        "  r: {path: a.B, registry: direct-registry, groups: [[a, b]], retries: 1}\n"
    )
    cfg = load_config(path)
    assert cfg.agent.init_cluster_timeout_ms == 0
    assert "extension" not in cfg.agent.params
    assert list(cfg.registries) == ["direct-registry"]
    assert "groups" not in cfg.refers["r"].parameters
    assert cfg.refers["r"].get("retries") == "1"
    assert cfg.warnings == [
        f"{path}: motan-agent.extension: mapping ignored",
        f"{path}: motan-refer.r.groups: nested list ignored",
        f"{path}: motan-registry.spare.protocol: missing; the registry is not used and is left out",
    ]
