from __future__ import annotations

from pathlib import Path

import pytest

from motanmesh.config import ConfigError, load_config

TREE = {
    "basic.yaml": """
motan-agent:
  port: 9981
  log_dir: /var/log/agent
  registry: zk
motan-registry:
  zk: {protocol: zookeeper, host: 10.0.0.1, port: 2181}
metrics:
  graphite:
    - {name: basic, host: 10.0.0.2, port: 8125}
switcher:
  from.basic: true
""",
    "http/location/loc.yaml": """
http-locations:
  api.example.com:
    - {match: /basic, type: start, upstream: com.example.Basic}
""",
    "http/service/app.yaml": """
import-http-location: [loc]
http-client:
  api.example.com: {domain: api.example.com, group: http-api, registry: zk}
""",
    "http/pools/app-yf-core.yaml": """
import-http-location: [loc]
http-client:
  api.example.com: {group: http-api-yf}
""",
    "services/user.yaml": """
motan-refer:
  user:
    path: com.example.UserService
    group: user-rpc
    registry: zk
    requestTimeout: 300
    retries: 2
""",
    "services/feed.yaml": """
motan-refer:
  feed: {path: com.example.FeedService, group: feed-rpc, registry: zk}
""",
    "applications/app.yaml": """
import-refer: [user, feed, missing]
motan-agent:
  application: app
motan-refer:
  user:
    requestTimeout: 400
metrics:
  graphite:
    - {name: app, host: 10.0.0.3, port: 8125}
""",
    "pools/app.yaml": """
motan-refer:
  user: {requestTimeout: 500}
""",
    "pools/app-yf.yaml": """
motan-refer:
  user: {group: user-yf, requestTimeout: 600}
metrics:
  graphite:
    - {name: yf, host: 10.0.0.4, port: 8125}
switcher:
  from.pool: false
""",
    "pools/app-yf-core.yaml": """
motan-refer:
  user: {requestTimeout: 700}
motan-agent:
  mport: 8102
""",
    # Never read: another application's files.
    "applications/other.yaml": "motan-agent: {port: 1}\n",
    "pools/other-yf.yaml": "motan-agent: {port: 1}\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_tree(tmp_path, TREE)
    return tmp_path


def test_merge_order(tree: Path) -> None:
    cfg = load_config(tree, pool="app-yf-core")
    assert cfg.application == "app"
    assert cfg.pool == "app-yf-core"
    assert cfg.files == [
        str(tree / name)
        for name in (
            "basic.yaml",
            "http/location/loc.yaml",
            "http/service/app.yaml",
            "http/pools/app-yf-core.yaml",
            "services/user.yaml",
            "services/feed.yaml",
            "applications/app.yaml",
            "pools/app.yaml",
            "pools/app-yf.yaml",
            "pools/app-yf-core.yaml",
        )
    ]


def test_later_files_override_scalars_and_deep_merge_maps(tree: Path) -> None:
    cfg = load_config(tree, pool="app-yf-core")
    user = cfg.refers["user"]
    assert user.request_timeout_ms == 700  # pools/app-yf-core.yaml
    assert user.group == "user-yf"  # pools/app-yf.yaml
    assert user.retries == 2  # services/user.yaml, untouched since
    assert user.path == "com.example.UserService"
    assert cfg.refers["feed"].group == "feed-rpc"
    assert cfg.agent.application == "app"
    assert cfg.agent.mport == 8102
    assert cfg.agent.port == 9981
    assert cfg.agent.log_dir == "/var/log/agent"
    assert cfg.switchers == {"from.basic": True, "from.pool": False}
    assert cfg.http_client["api.example.com"] == {
        "domain": "api.example.com",
        "group": "http-api-yf",
        "registry": "zk",
    }


def test_lists_append(tree: Path) -> None:
    cfg = load_config(tree, pool="app-yf-core")
    assert [g["name"] for g in cfg.metrics["graphite"]] == ["basic", "app", "yf"]
    # The location file is imported once although two files ask for it.
    assert cfg.http_locations["api.example.com"] == [
        {"match": "/basic", "type": "start", "upstream": "com.example.Basic"}
    ]


def test_shorter_pool_reads_fewer_pool_files(tree: Path) -> None:
    cfg = load_config(tree, pool="app-yf")
    assert cfg.refers["user"].request_timeout_ms == 600
    assert cfg.agent.mport == 8002
    assert str(tree / "pools/app-yf-core.yaml") not in cfg.files
    assert str(tree / "http/pools/app-yf-core.yaml") not in cfg.files


def test_application_only(tree: Path) -> None:
    cfg = load_config(tree, application="app")
    assert cfg.refers["user"].request_timeout_ms == 400
    assert cfg.files[-1] == str(tree / "applications/app.yaml")


def test_explicit_application_beats_pool_prefix(tree: Path) -> None:
    cfg = load_config(tree, pool="other-yf", application="app")
    assert cfg.application == "app"
    assert cfg.refers["user"].request_timeout_ms == 400  # applications/app.yaml
    assert cfg.agent.port == 1  # pools/other-yf.yaml
    assert str(tree / "applications/other.yaml") not in cfg.files


def test_missing_import_is_a_warning(tree: Path) -> None:
    cfg = load_config(tree, pool="app-yf-core")
    assert cfg.warnings == [
        f"{tree / 'applications/app.yaml'}: import-refer[2]: "
        f"{tree / 'services/missing.yaml'} not found; skipped"
    ]


def test_file_of_tracks_the_file_that_set_each_key(tree: Path) -> None:
    cfg = load_config(tree, pool="app-yf-core")
    assert cfg.file_of(("motan-refer", "user", "requestTimeout")) == str(
        tree / "pools/app-yf-core.yaml"
    )
    assert cfg.file_of(("motan-refer", "user", "group")) == str(tree / "pools/app-yf.yaml")
    assert cfg.file_of(("motan-refer", "user", "retries")) == str(tree / "services/user.yaml")
    assert cfg.file_of(("metrics", "graphite", 1, "name")) == str(tree / "applications/app.yaml")
    assert cfg.file_of(("metrics", "graphite", 2)) == str(tree / "pools/app-yf.yaml")


def test_error_names_the_pool_file_that_set_the_key(tree: Path) -> None:
    write_tree(tree, {"pools/app-yf.yaml": "motan-refer:\n  user: {retries: many}\n"})
    with pytest.raises(ConfigError) as info:
        load_config(tree, pool="app-yf-core")
    assert str(info.value) == (
        f"{tree / 'pools/app-yf.yaml'}: motan-refer.user.retries: expected an integer, got 'many'"
    )


def test_replacing_a_map_with_a_scalar_forgets_old_sources(tree: Path) -> None:
    write_tree(tree, {"basic.yaml": TREE["basic.yaml"] + "extra: {a: {b: 1}}\n"})
    write_tree(tree, {"pools/app-yf.yaml": "extra: {a: off}\n"})
    cfg = load_config(tree, pool="app-yf")
    assert cfg.raw["extra"] == {"a": False}
    assert cfg.file_of(("extra", "a", "b")) == str(tree / "pools/app-yf.yaml")
    assert cfg.file_of(("extra",)) == str(tree / "basic.yaml")


def test_null_values_do_not_override(tree: Path) -> None:
    write_tree(tree, {"pools/app-yf.yaml": "motan-refer:\n  user: {requestTimeout: null}\n"})
    cfg = load_config(tree, pool="app-yf")
    assert cfg.refers["user"].request_timeout_ms == 500  # pools/app.yaml


def test_directory_without_pool_or_application(tree: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tree)
    assert str(info.value) == (
        f"{tree}: is a directory; directory (pool) mode needs -pool or -application"
    )


def test_directory_with_no_matching_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, pool="ghost-yf")
    assert str(info.value) == (
        f"{tmp_path}: no configuration files found for pool 'ghost-yf' (application 'ghost')"
    )


def test_import_refer_must_be_a_list(tree: Path) -> None:
    write_tree(tree, {"applications/app.yaml": "import-refer: user\n"})
    with pytest.raises(ConfigError) as info:
        load_config(tree, pool="app")
    assert str(info.value) == (
        f"{tree / 'applications/app.yaml'}: import-refer: expected a list of names, got 'user'"
    )


def test_import_refer_entries_must_be_names(tree: Path) -> None:
    write_tree(tree, {"applications/app.yaml": "import-refer: [user, {a: 1}]\n"})
    with pytest.raises(ConfigError) as info:
        load_config(tree, pool="app")
    assert str(info.value) == (
        f"{tree / 'applications/app.yaml'}: import-refer[1]: expected a file name, got a mapping"
    )


def test_invalid_yaml_in_a_pool_file(tree: Path) -> None:
    write_tree(tree, {"pools/app-yf.yaml": "motan-refer:\n  user: {retries: 1\n"})
    with pytest.raises(ConfigError) as info:
        load_config(tree, pool="app-yf")
    assert str(info.value).startswith(f"{tree / 'pools/app-yf.yaml'}: invalid YAML at line 3, ")
