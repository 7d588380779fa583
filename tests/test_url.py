from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from motanmesh.url import URL

DEMO_NODE = (
    "motan2://10.73.1.20:9982/com.weibo.motan.demo.service.MotanDemoService"
    "?group=motan-demo-rpc&application=demo&nodeType=service&protocol=motan2"
    "&serialization=simple"
)
# Same node as a Java registry writes it: parameter order is arbitrary, trailing '&'.
JAVA_NODE = (
    "motan2://10.73.1.20:9982/com.weibo.motan.demo.service.MotanDemoService"
    "?serialization=simple&protocol=motan2&group=motan-demo-rpc&nodeType=service"
    "&application=demo&"
)
AGENT_NODE = (
    "motan2://10.73.1.31:8002/?group=demo-agent&application=demo-agent&nodeType=agent"
    "&port=9981&registry=zk-main"
)


def test_parse_go_written_service_node() -> None:
    url = URL.parse(DEMO_NODE)
    assert url.protocol == "motan2"
    assert url.host == "10.73.1.20"
    assert url.port == 9982
    assert url.path == "com.weibo.motan.demo.service.MotanDemoService"
    assert url.group == "motan-demo-rpc"
    assert url.parameters == {
        "application": "demo",
        "nodeType": "service",
        "protocol": "motan2",
        "serialization": "simple",
    }
    assert "group" not in url.parameters
    assert url.to_ext_info() == DEMO_NODE
    assert str(url) == DEMO_NODE


def test_java_order_and_trailing_ampersand_normalise_to_go_form() -> None:
    url = URL.from_ext_info(JAVA_NODE)
    assert url == URL.parse(DEMO_NODE)
    assert url.to_ext_info() == DEMO_NODE


def test_agent_node_with_empty_path() -> None:
    url = URL.parse(AGENT_NODE)
    assert url.path == ""
    assert url.port == 8002
    assert url.node_type == "agent"
    assert url.registry == ["zk-main"]
    assert url.to_ext_info() == AGENT_NODE


def test_group_first_then_sorted_keys() -> None:
    url = URL("motan2", "h", 1, "svc", "g", {"zeta": "1", "alpha": "2", "mid": "3"})
    assert url.to_ext_info() == "motan2://h:1/svc?group=g&alpha=2&mid=3&zeta=1"


def test_no_query_when_no_group_and_no_params() -> None:
    assert URL("motan2", "h", 1, "svc").to_ext_info() == "motan2://h:1/svc"
    assert URL("motan2", "h", 1, "svc", parameters={"a": "b"}).to_ext_info() == (
        "motan2://h:1/svc?group=&a=b"
    )


def test_missing_port_is_zero() -> None:
    url = URL.parse("direct://10.0.0.1/svc?group=g")
    assert url.port == 0
    assert url.host == "10.0.0.1"
    assert URL.parse("motan2://h:/svc").port == 0
    assert URL.parse("motan2://h").path == ""


def test_ipv6_host_in_brackets() -> None:
    url = URL.parse("motan2://[fe80::1]:9982/svc?group=g")
    assert url.host == "fe80::1"
    assert url.port == 9982
    assert url.address == "[fe80::1]:9982"
    assert url.to_ext_info() == "motan2://[fe80::1]:9982/svc?group=g"
    assert URL.parse("motan2://[::1]/svc").port == 0


def test_unix_socket_host() -> None:
    url = URL("motan2", "unix:///var/run/agent.sock", 0, "svc", "g")
    assert url.address == "unix:///var/run/agent.sock"
    text = url.to_ext_info()
    assert text == "motan2://unix:///var/run/agent.sock:0/svc?group=g"
    assert URL.parse(text) == url


def test_percent_encoded_values_are_decoded() -> None:
    url = URL.parse("motan2://h:1/svc?group=a%20b&filter=accessLog%2Cmetrics&expr=a+b&k%3D=v")
    assert url.group == "a b"
    assert url.parameters["filter"] == "accessLog,metrics"
    assert url.parameters["expr"] == "a+b"
    assert url.parameters["k="] == "v"


def test_structural_characters_are_escaped_readable_ones_are_not() -> None:
    url = URL("motan2", "h", 1, "svc", "g", {"filter": "a,b", "q": "x=1&y=2#z?", "p": "50%"})
    text = url.to_ext_info()
    assert "filter=a,b" in text
    assert "q=x%3D1%26y%3D2%23z%3F" in text
    assert "p=50%25" in text
    assert URL.parse(text) == url


def test_raw_percent_that_is_not_an_escape_survives() -> None:
    assert URL.parse("motan2://h:1/s?group=g&p=100%").parameters["p"] == "100%"


def test_segments_without_equals_are_ignored() -> None:
    url = URL.parse("motan2://h:1/s?group=g&&flag&=x&a=1")
    assert url.parameters == {"a": "1"}


def test_value_containing_equals_is_kept() -> None:
    assert URL.parse("motan2://h:1/s?group=g&sig=YWI==").parameters["sig"] == "YWI=="


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "missing '://'"),
        ("not a url", "missing '://'"),
        ("://h:1/s", "bad protocol"),
        ("9x://h:1/s", "bad protocol"),
        ("mo tan://h:1/s", "bad protocol"),
        ("motan2://h:abc/s", "port 'abc' is not a number"),
        ("motan2://h:70000/s", "port 70000 out of range"),
        ("motan2://h:-1/s", "is not a number"),
        ("motan2://[::1:80/s", "unclosed '['"),
        ("motan2://[::1]x/s", "junk after IPv6 host"),
        ("motan2://fe80::1:80/s", "IPv6 host must be in brackets"),
        ("motan2://us er@h:1/s", "bad host"),
        ("motan2://unix:///tmp/a.sock/s", "unix socket host"),
    ],
)
def test_garbage_raises_value_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        URL.parse(text)
    assert fragment in str(info.value)


def test_non_string_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        URL.parse(b"motan2://h:1/s")  # type: ignore[arg-type]


def test_constructor_validates_port() -> None:
    with pytest.raises(ValueError, match="out of range"):
        URL("motan2", "h", 65536)
    with pytest.raises(ValueError, match="must be an int"):
        URL("motan2", "h", "1")  # type: ignore[arg-type]


def test_group_parameter_moves_to_field() -> None:
    url = URL("motan2", "h", 1, "s", parameters={"group": "g", "a": "1"})
    assert url.group == "g"
    assert url.parameters == {"a": "1"}


def test_constructor_copies_parameters() -> None:
    params = {"a": "1"}
    url = URL("motan2", "h", 1, "s", "g", params)
    params["a"] = "2"
    assert url.parameters == {"a": "1"}


def test_typed_accessors() -> None:
    url = URL(
        "motan2",
        "h",
        1,
        "s",
        "g",
        {
            "requestTimeout": "250",
            "bad": "12x",
            "lazyInit": "true",
            "off": "F",
            "odd": "maybe",
            "ratio": "0.25",
            "empty": "",
            "filter": " accessLog, ,metrics ",
        },
    )
    assert url.get("requestTimeout") == "250"
    assert url.get("empty", "dflt") == "dflt"
    assert url.get("missing", "dflt") == "dflt"
    assert url.get_int("requestTimeout", 7) == 250
    assert url.get_int("bad", 7) == 7
    assert url.get_int("missing", 7) == 7
    assert url.get_bool("lazyInit") is True
    assert url.get_bool("off", True) is False
    assert url.get_bool("odd", True) is True
    assert url.get_float("ratio") == 0.25
    assert url.get_float("bad", 1.5) == 1.5
    assert url.filters == ["accessLog", "metrics"]
    assert url.request_timeout_ms == 250


def test_defaults_of_common_properties() -> None:
    url = URL("motan2", "h", 1, "s", "g")
    assert url.version == "1.0"
    assert url.serialization == "simple"
    assert url.request_timeout_ms == 1000
    assert url.retries == 0
    assert url.ha_strategy == "failover"
    assert url.loadbalance == "random"
    assert url.application == ""
    assert url.registry == []
    assert url.filters == []
    assert url.weight == 0
    assert url.conf_id == ""


def test_common_properties_read_parameters() -> None:
    url = URL(
        "motan2",
        "h",
        1,
        "s",
        "g",
        {
            "version": "2.0",
            "serialization": "breeze",
            "retries": "2",
            "haStrategy": "backupRequest",
            "loadbalance": "roundrobin",
            "application": "demo",
            "registry": "zk-a,zk-b",
            "weight": "30",
            "conf-id": "demo-refer",
        },
    )
    assert url.version == "2.0"
    assert url.serialization == "breeze"
    assert url.retries == 2
    assert url.ha_strategy == "backupRequest"
    assert url.loadbalance == "roundrobin"
    assert url.application == "demo"
    assert url.registry == ["zk-a", "zk-b"]
    assert url.weight == 30
    assert url.conf_id == "demo-refer"


def test_method_level_parameters() -> None:
    url = URL(
        "motan2",
        "h",
        1,
        "s",
        "g",
        {"requestTimeout": "300", "hello(java.lang.String).requestTimeout": "900"},
    )
    assert url.get_method_param("hello", "java.lang.String", "requestTimeout") == "900"
    assert url.get_method_param("other", "", "requestTimeout") == "300"
    assert url.get_method_param("other", "", "retries", "1") == "1"
    assert url.get_method_int("hello", "java.lang.String", "requestTimeout", 5) == 900
    assert url.get_method_int("other", "", "requestTimeout", 5) == 300
    plain = URL("motan2", "h", 1, "s", "g", {"requestTimeout": "300"})
    assert plain.get_method_int("hello", "java.lang.String", "requestTimeout", 5) == 300


def test_keys_and_identity() -> None:
    url = URL.parse(DEMO_NODE)
    assert url.group_path == "motan-demo-rpc_com.weibo.motan.demo.service.MotanDemoService"
    assert url.cluster_key == (
        "motan-demo-rpc_1.0_motan2_com.weibo.motan.demo.service.MotanDemoService"
    )
    assert url.identity == (
        "motan2://10.73.1.20:9982/com.weibo.motan.demo.service.MotanDemoService"
        "?group=motan-demo-rpc"
    )
    assert url.with_params(retries="3").identity == url.identity
    cedrus = url.copy(protocol="cedrus")
    assert cedrus.cluster_key == url.cluster_key
    direct = URL("direct", "", 0, "", "", {"address": "10.0.0.1:1,10.0.0.2:1"})
    assert direct.identity == "direct://:0/?group=&address=10.0.0.1:1,10.0.0.2:1"


@pytest.mark.parametrize(
    ("protocol", "params", "args", "expected"),
    [
        ("motan2", {}, ("svc", "", "", ""), True),
        ("motan2", {}, ("other", "", "", ""), False),
        ("motan2", {}, ("svc", "g", "", ""), True),
        ("motan2", {}, ("svc", "g2", "", ""), False),
        ("motan2", {}, ("svc", "g", "motan", ""), True),
        ("motan2", {}, ("svc", "g", "motan2", ""), True),
        ("motan2", {}, ("svc", "g", "grpc", ""), False),
        ("motanV1Compatible", {}, ("svc", "g", "motan", ""), True),
        ("cedrus", {}, ("svc", "g", "motan2", ""), True),
        ("grpc", {}, ("svc", "g", "grpc", ""), True),
        ("grpc", {}, ("svc", "g", "motan2", ""), False),
        ("motan2", {"version": "1.0"}, ("svc", "g", "", "2.0"), False),
        ("motan2", {"version": "1.0"}, ("svc", "g", "", "1.0"), True),
        ("motan2", {"version": "1.0"}, ("svc", "g", "", ""), True),
        ("motan2", {}, ("svc", "g", "", "2.0"), True),
    ],
)
def test_is_match(
    protocol: str, params: dict[str, str], args: tuple[str, str, str, str], expected: bool
) -> None:
    url = URL(protocol, "h", 1, "svc", "g", params)
    assert url.is_match(*args) is expected


def test_copy_and_with_params_return_new_urls() -> None:
    url = URL.parse(DEMO_NODE)
    moved = url.copy(host="10.0.0.9", port=1234)
    assert (moved.host, moved.port) == ("10.0.0.9", 1234)
    assert (url.host, url.port) == ("10.73.1.20", 9982)
    tagged = url.with_params({"conf-id": "demo"}, retries="2")
    assert tagged.parameters["conf-id"] == "demo"
    assert tagged.retries == 2
    assert "conf-id" not in url.parameters
    regrouped = url.with_params(group="other")
    assert regrouped.group == "other"
    assert "group" not in regrouped.parameters
    assert url.without_params("application").application == ""
    assert url.application == "demo"
    with pytest.raises(AttributeError):
        url.host = "x"  # type: ignore[misc]


def test_to_ext_info_cache_does_not_leak_into_copies() -> None:
    url = URL.parse(DEMO_NODE)
    assert url.to_ext_info() == DEMO_NODE
    assert url.copy(port=1).to_ext_info().startswith("motan2://10.73.1.20:1/")


def test_hash_and_equality() -> None:
    a = URL.parse(DEMO_NODE)
    b = URL.parse(JAVA_NODE)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, a.copy(port=1)}) == 2


_hosts = st.one_of(
    st.just(""),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.from_regex(r"[a-z][a-z0-9\-]{0,10}(\.[a-z][a-z0-9\-]{0,10}){0,3}", fullmatch=True),
    st.from_regex(r"unix:///[a-z][a-z0-9_/.]{0,15}", fullmatch=True),
)
_keys = st.text(min_size=1, max_size=12).filter(lambda k: k != "group")


@given(
    protocol=st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    host=_hosts,
    port=st.integers(0, 65535),
    path=st.text(max_size=30),
    group=st.text(max_size=15),
    params=st.dictionaries(_keys, st.text(max_size=20), max_size=6),
)
def test_round_trip(
    protocol: str, host: str, port: int, path: str, group: str, params: dict[str, str]
) -> None:
    url = URL(protocol, host, port, path, group, params)
    text = url.to_ext_info()
    again = URL.parse(text)
    assert again == url
    assert again.to_ext_info() == text


@given(st.text(max_size=60))
def test_parse_never_crashes_unexpectedly(text: str) -> None:
    try:
        url = URL.parse(text)
    except ValueError:
        return
    assert URL.parse(url.to_ext_info()) == url


def test_a_host_named_unix_is_not_read_back_as_a_unix_socket() -> None:
    # found by fuzz/fuzz_url.py: "unix:<port>/" is a host called unix, not a socket path
    url = URL.parse("motan2://unix/u&&&sock:0/co~:/tmpock:2")
    assert (url.host, url.port, url.path) == ("unix", 0, "u&&&sock:0/co~:/tmpock:2")
    assert URL.parse(url.to_ext_info()) == url
    assert URL.parse("motan2://unix:7/svc").host == "unix"
    assert URL.parse("motan2://unix:///tmp/a.sock:0/svc").host == "unix:///tmp/a.sock"


def test_a_bracketed_host_is_checked_like_any_host() -> None:
    # found by fuzz/fuzz_url.py: "[\x1e ]" was accepted and written back unbracketed
    with pytest.raises(ValueError, match="bad host"):
        URL.parse("n2://[\x1e ]:99/")
    assert URL.parse("motan2://[::1]:9981/s").host == "::1"
