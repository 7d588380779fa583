from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from motanmesh.cluster.command import (
    EMPTY_DOCUMENT_JSON,
    ClientCommand,
    CommandDocument,
    CommandError,
    CommandHistory,
    CommandType,
    EffectiveCommand,
    ReferCommands,
    effective_command,
    parse_command_document,
    parse_switcher_pattern,
    select_commands,
    validate,
)
from motanmesh.url import URL

# The documents of the inventory's §4.5 (step 1) and §4.6, as written there.
SHIFT_20 = (
    '{"clientCommandList":[{"index":1,"version":"1.0","dc":"yf","commandType":0,"pattern":"*",'
    '"mergeGroups":["user-rpc-yf:8","user-rpc-tc:2"],"routeRules":[],'
    '"remark":"shift 20% yf->tc"}]}'
)
EXAMPLE_1 = """{"clientCommandList":[{"index":1,"commandType":0,"pattern":"com.weibo.feed.",
  "mergeGroups":["feed-rpc-yf:70","feed-rpc-tc:30"],
  "routeRules":["10.75.* to 10.75.*"],
  "remark":"30% to tc; 10.75 clients only to 10.75 servers"}]}"""
EXAMPLE_2 = """{"clientCommandList":[{"index":5,"commandType":1,
  "pattern":"com.weibo.feed.RecommendService",
  "mergeGroups":[],"routeRules":[],"remark":"degrade recommend during incident"}]}"""
EXAMPLE_3 = """{"clientCommandList":[
  {"index":1,"commandType":0,"pattern":"*","mergeGroups":["user-rpc-yf"],
   "routeRules":["* to !10.71.3.*"],"remark":"drain rack 10.71.3"},
  {"index":2,"commandType":2,"pattern":"metricsReqApp:true","remark":"per-caller metrics on"}]}"""
EXAMPLES = [SHIFT_20, EXAMPLE_1, EXAMPLE_2, EXAMPLE_3]


def refer(path: str, group: str, **params: str) -> URL:
    return URL("motan2", "", 0, path, group, params)


def provider(host: str, group: str) -> URL:
    return URL("motan2", host, 8002, "com.weibo.Svc", group)


def tc(index: int | None, pattern: str, groups: list[str], rules: list[str] = []) -> ClientCommand:  # noqa: B006
    return ClientCommand(index, "", "", 0, pattern, list(groups), list(rules), "")


def cmd(index: int | None, kind: int, pattern: str) -> ClientCommand:
    return ClientCommand(index=index, command_type=kind, pattern=pattern)


def doc(*commands: ClientCommand) -> str:
    return CommandDocument(list(commands)).to_json()


# ---------------------------------------------------------------------------- JSON


def test_shift_20_parses_and_writes_back_byte_for_byte() -> None:
    document = parse_command_document(SHIFT_20)
    assert document.commands == [
        ClientCommand(
            index=1,
            version="1.0",
            dc="yf",
            command_type=CommandType.TRAFFIC_CONTROL,
            pattern="*",
            merge_groups=["user-rpc-yf:8", "user-rpc-tc:2"],
            route_rules=[],
            remark="shift 20% yf->tc",
        )
    ]
    assert document.to_json() == SHIFT_20
    assert parse_command_document(SHIFT_20.encode()) == document


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_round_trip(text: str) -> None:
    document = parse_command_document(text)
    assert document.commands
    assert parse_command_document(document.to_json()) == document
    assert json.loads(document.to_json())["clientCommandList"] == [
        c.to_dict() for c in document.commands
    ]


def test_written_field_order_and_defaults() -> None:
    written = parse_command_document(EXAMPLE_3).to_json()
    assert written == (
        '{"clientCommandList":[{"index":1,"version":"","dc":"","commandType":0,"pattern":"*",'
        '"mergeGroups":["user-rpc-yf"],"routeRules":["* to !10.71.3.*"],'
        '"remark":"drain rack 10.71.3"},{"index":2,"version":"","dc":"","commandType":2,'
        '"pattern":"metricsReqApp:true","mergeGroups":[],"routeRules":[],'
        '"remark":"per-caller metrics on"}]}'
    )
    assert CommandDocument().to_json() == EMPTY_DOCUMENT_JSON
    unset = CommandDocument([ClientCommand(pattern="a<b>&c", remark="déjà vu")]).to_json()
    assert '"index":null' in unset
    assert '"pattern":"a<b>&c"' in unset
    assert '"remark":"déjà vu"' in unset


def test_java_manager_style_documents_are_obeyed() -> None:
    text = """{"clientCommandList":[
        {"id":7,"index":2,"commandType":0,"pattern":"com.weibo.*&!com.weibo.Foo",
         "mergeGroups":["g1:1","g2:1"],"routeRules":null,"remark":null,"createTime":1},
        {"id":3,"index":null,"commandType":null,"pattern":"com.weibo.*",
         "mergeGroups":["g3"]},
        {"pattern":"other"}],
      "dataVersion":4}"""
    document = parse_command_document(text)
    first, second, third = document.commands
    assert second == ClientCommand(index=None, pattern="com.weibo.*", merge_groups=["g3"])
    assert third == ClientCommand(pattern="other")
    assert first.route_rules == []
    assert first.remark == ""
    assert [c.index for c in document.sorted_commands()] == [None, None, 2]
    # index null sorts first, so the mix command wins for com.weibo.Bar
    effective = effective_command(refer("com.weibo.Bar", "g1"), None, text)
    assert effective.merge_groups == ["g3"]
    assert effective.weights == ""
    assert "ignored" in effective.notes[0]
    assert "id" not in document.to_json()


@pytest.mark.parametrize(
    ("entry", "index", "command_type"),
    [
        ('"index":"3","commandType":"1"', 3, 1),
        ('"index":2.0,"commandType":1.0', 2, 1),
        ('"Index":4,"CommandType":2', 4, 2),
        ('"index":-1', -1, 0),
    ],
)
def test_lenient_numbers_and_names(entry: str, index: int, command_type: int) -> None:
    (command,) = parse_command_document(
        '{"clientCommandList":[{' + entry + ',"pattern":"x"}]}'
    ).commands
    assert (command.index, command.command_type) == (index, command_type)


def test_informational_numbers_become_text() -> None:
    text = '{"clientCommandList":[{"version":1.0,"dc":7,"remark":2,"mergeGroups":["g",null]}]}'
    (command,) = parse_command_document(text).commands
    assert (command.version, command.dc, command.remark) == ("1.0", "7", "2")
    assert command.merge_groups == ["g"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "command document is empty"),
        ("{", "invalid command JSON"),
        ('{"clientCommandList":[{"index":NaN}]}', "NaN is not a JSON number"),
        ("[]", "must be a JSON object"),
        ('{"clientCommandList":{}}', "clientCommandList must be a list"),
        ('{"clientCommandList":[1]}', r"clientCommandList\[0\] must be an object"),
        ('{"clientCommandList":[{"index":"x"}]}', r"clientCommandList\[0\].index must be an int"),
        ('{"clientCommandList":[{"index":true}]}', "must be an integer, got true"),
        ('{"clientCommandList":[{"index":1.5}]}', "must be an integer, got 1.5"),
        ('{"clientCommandList":[{},{"pattern":[]}]}', r"\[1\].pattern must be a string"),
        ('{"clientCommandList":[{"mergeGroups":"g1"}]}', "mergeGroups must be a list"),
        ('{"clientCommandList":[{"routeRules":[{}]}]}', r"routeRules\[0\] must be a string"),
    ],
)
def test_unreadable_documents(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command_document(text)
    with pytest.raises(CommandError, match="UTF-8"):
        parse_command_document(b"\xff")


def test_missing_list_is_an_empty_document_and_next_index() -> None:
    assert parse_command_document("{}") == CommandDocument()
    assert parse_command_document('{"clientCommandList":null}').next_index() == 1
    assert parse_command_document(EXAMPLE_3).next_index() == 3


TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
COMMANDS = st.builds(
    ClientCommand,
    index=st.none() | st.integers(-5, 10**12),
    version=TEXT,
    dc=TEXT,
    command_type=st.integers(0, 3),
    pattern=TEXT,
    merge_groups=st.lists(TEXT, max_size=3),
    route_rules=st.lists(TEXT, max_size=3),
    remark=TEXT,
)


@given(st.lists(COMMANDS, max_size=4))
def test_any_document_round_trips(commands: list[ClientCommand]) -> None:
    document = CommandDocument(commands)
    text = document.to_json()
    assert parse_command_document(text) == document
    assert parse_command_document(text).to_json() == text


# ---------------------------------------------------------------------------- precedence


def test_first_traffic_control_by_index_wins() -> None:
    document = CommandDocument([tc(2, "*", ["a"]), tc(1, "com.", ["b"]), tc(3, "*", ["c"])])
    selection = select_commands(document, "com.weibo.Svc")
    assert selection.traffic is not None
    assert selection.traffic.merge_groups == ["b"]
    assert [c.index for c in selection.ignored] == [2, 3]
    # a command that does not match is not considered at all
    assert select_commands(document, "org.Svc").traffic == document.commands[0]


def test_last_degrade_and_switcher_win() -> None:
    document = CommandDocument(
        [
            cmd(9, 1, "com."),
            cmd(4, 1, "com."),
            cmd(12, 1, "org."),
            cmd(3, 2, "a:true"),
            cmd(7, 2, "b:true"),
            cmd(2, 2, "c:true"),
            cmd(1, 5, "*"),
        ]
    )
    selection = select_commands(document, "com.weibo.Svc")
    assert selection.degrade is not None
    assert selection.degrade.index == 9
    assert selection.switcher is not None
    assert selection.switcher.pattern == "b:true"  # switchers match every service
    assert selection.traffic is None


def test_agent_command_first_service_fills_the_other_types() -> None:
    agent = doc(tc(5, "*", ["agent-group"]))
    service = doc(tc(1, "*", ["service-group"]), cmd(2, 1, "*"), cmd(3, 2, "x:true"))
    effective = effective_command(refer("com.Svc", "own"), agent, service)
    assert effective.merge_groups == ["agent-group"]
    assert effective.degraded
    assert effective.switchers == {"x": True}
    assert effective.source == {
        "trafficControl": "agent command index 5 (traffic control)",
        "degrade": "service command index 2 (degrade)",
        "switcher": "service command index 3 (switcher)",
    }
    assert any("service command index 1" in note for note in effective.notes)
    # an agent degrade command for another service leaves the service's degrade in force
    other = effective_command(refer("com.Svc", "own"), doc(cmd(1, 1, "org.")), service)
    assert other.degrade is not None
    assert other.degrade.origin == "service"


def test_unreadable_document_counts_as_no_command() -> None:
    effective = effective_command(refer("com.Svc", "own"), "{oops", doc(cmd(1, 1, "*")))
    assert effective.degraded
    assert effective.notes[0].startswith("agent command ignored: invalid command JSON")
    assert effective_command(refer("com.Svc", "own"), "", None) == EffectiveCommand("own")


def test_mix_groups_is_the_default_traffic_control() -> None:
    own = refer("com.Svc", "g1", mixGroups="g2, g3,g1")
    static = effective_command(own)
    assert static.merge_groups == ["g1", "g2", "g3"]
    assert static.weights == ""
    assert static.source == {"trafficControl": "static mixGroups"}
    assert static.other_groups == ["g2", "g3"]
    # a dynamic traffic-control command that matches takes over; one that does not, doesn't
    assert effective_command(own, None, doc(tc(1, "com.", ["g9"]))).merge_groups == ["g9"]
    assert effective_command(own, None, doc(tc(1, "org.", ["g9"]))).merge_groups == [
        "g1",
        "g2",
        "g3",
    ]


@pytest.mark.parametrize(
    ("groups", "merge_groups", "weights"),
    [
        (["g1:8", "g2:2"], ["g1", "g2"], "g1:8,g2:2"),
        (["g1:500", "g2:abc", "g3", "g4:0"], ["g1", "g2", "g3", "g4"], "g1:100,g2:1,g3:1,g4:1"),
        (["g1", "g2"], ["g1", "g2"], ""),
        ([" g1 : 3 ", "g2:1,g3:1", ""], ["g1", "g2", "g3"], "g1:3,g2:1,g3:1"),
        ([], None, ""),
    ],
)
def test_weights(groups: list[str], merge_groups: list[str] | None, weights: str) -> None:
    effective = effective_command(refer("com.Svc", "g1"), None, doc(tc(1, "*", groups)))
    assert effective.merge_groups == merge_groups
    assert effective.weights == weights


# ---------------------------------------------------------------------------- the examples

FEED = {
    "feed-rpc-yf": [provider("10.75.0.1", "feed-rpc-yf"), provider("10.80.0.1", "feed-rpc-yf")],
    "feed-rpc-tc": [provider("10.75.9.1", "feed-rpc-tc"), provider("10.90.0.1", "feed-rpc-tc")],
}


def hosts(urls: list[URL]) -> list[str]:
    return [u.host for u in urls]


def test_example_1_split_with_rack_preference() -> None:
    effective = effective_command(
        refer("com.weibo.feed.FeedService", "feed-rpc-yf"), None, EXAMPLE_1
    )
    assert effective.merge_groups == ["feed-rpc-yf", "feed-rpc-tc"]
    assert effective.other_groups == ["feed-rpc-tc"]
    assert effective.weights == "feed-rpc-yf:70,feed-rpc-tc:30"
    assert hosts(effective.providers(FEED, "10.75.3.3")) == ["10.75.0.1", "10.75.9.1"]
    assert hosts(effective.providers(FEED, "10.80.3.3")) == [
        "10.75.0.1",
        "10.80.0.1",
        "10.75.9.1",
        "10.90.0.1",
    ]
    # route rules that would leave nothing are not applied (decision 2)
    far = {g: urls[1:] for g, urls in FEED.items()}
    assert hosts(effective.providers(far, "10.75.3.3")) == ["10.80.0.1", "10.90.0.1"]
    other = effective_command(refer("com.weibo.user.UserService", "feed-rpc-yf"), None, EXAMPLE_1)
    assert other == EffectiveCommand("feed-rpc-yf")


def test_example_2_degrade_from_the_agent_command() -> None:
    effective = effective_command(refer("com.weibo.feed.RecommendService", "feed-web"), EXAMPLE_2)
    assert effective.degraded
    assert effective.merge_groups is None
    assert effective.source == {"degrade": "agent command index 5 (degrade)"}
    assert not effective_command(
        refer("com.weibo.feed.FeedService", "feed-web"), EXAMPLE_2
    ).degraded


def test_example_3_blacklist_and_switcher() -> None:
    effective = effective_command(
        refer("com.weibo.api.UserService", "user-rpc-yf"), None, EXAMPLE_3
    )
    assert effective.merge_groups == ["user-rpc-yf"]
    assert effective.other_groups == []
    assert effective.weights == ""
    assert effective.switchers == {"metricsReqApp": True}
    urls = {"user-rpc-yf": [provider(h, "user-rpc-yf") for h in ("10.71.3.4", "10.71.4.4")]}
    assert hosts(effective.providers(urls, "10.1.1.1")) == ["10.71.4.4"]


def test_shift_20_effect() -> None:
    effective = effective_command(refer("com.weibo.api.UserService", "user-rpc-yf"), None, SHIFT_20)
    assert effective.weights == "user-rpc-yf:8,user-rpc-tc:2"
    assert effective.other_groups == ["user-rpc-tc"]
    rolled_back = effective_command(refer("x", "user-rpc-yf"), None, EMPTY_DOCUMENT_JSON)
    assert rolled_back == EffectiveCommand("user-rpc-yf")


def test_route_only_command_applies_to_the_own_group() -> None:
    effective = effective_command(
        refer("com.Svc", "g1"), None, doc(tc(1, "*", [], ["* to !10.0.0.1"]))
    )
    assert effective.merge_groups is None
    assert effective.route_rules == ["* to !10.0.0.1"]
    urls = {"g1": [provider("10.0.0.1", "g1"), provider("10.0.0.2", "g1")]}
    assert hosts(effective.providers(urls, "1.1.1.1")) == ["10.0.0.2"]


def test_empty_merge_groups_fall_back_to_the_own_group() -> None:
    effective = effective_command(refer("com.Svc", "g1"), None, doc(tc(1, "*", ["g2"])))
    urls = {"g1": [provider("10.0.0.1", "g1")], "g2": []}
    assert hosts(effective.providers(urls, "1.1.1.1")) == ["10.0.0.1"]
    urls["g2"] = [provider("10.0.0.9", "g2")]
    assert hosts(effective.providers(urls, "1.1.1.1")) == ["10.0.0.9"]


def test_skipped_route_rules_are_noted() -> None:
    effective = effective_command(refer("com.Svc", "g1"), None, doc(tc(1, "*", [], ["nonsense"])))
    assert effective.notes == ("route rule skipped: route rule 'nonsense' is not '<from> to <to>'",)


# ---------------------------------------------------------------------------- state and history


def test_refer_commands_track_changes_and_deletes() -> None:
    ticks = iter(range(100))
    history = CommandHistory(clock=lambda: float(next(ticks)))
    state = ReferCommands(refer("com.Svc", "g1"), history=history)
    assert state.effective == EffectiveCommand("g1")
    assert state.update("service", SHIFT_20)
    assert state.effective.weights == "user-rpc-yf:8,user-rpc-tc:2"
    assert state.effective.other_groups == ["user-rpc-yf", "user-rpc-tc"]  # g1 is not listed
    assert not state.update("service", SHIFT_20)  # unchanged string: ignored
    assert not state.update("agent", doc(tc(1, "org.", ["zz"])))  # recorded, no effect
    assert state.update("service", None)  # a deleted node means no command (decision 3)
    assert state.effective == EffectiveCommand("g1")
    assert not state.update("service", "")
    info = history.to_info()
    assert [(e["type"], e["command"] is None) for e in info["commandHistory"]] == [
        ("service", False),
        ("agent", False),
        ("service", True),
    ]
    assert info["commandHistory"][0]["time"] == "1970-01-01T00:00:00.000Z"


def test_history_is_bounded_and_records_notifies() -> None:
    history = CommandHistory(clock=lambda: 1.5)
    for i in range(15):
        history.record_command("agent", str(i))
    assert [r.command for r in history.commands] == [str(i) for i in range(5, 15)]
    effective = effective_command(
        refer("com.weibo.feed.FeedService", "feed-rpc-yf"), None, EXAMPLE_1
    )
    history.record_notify(effective, effective.providers(FEED, "10.80.0.1"))
    (notify,) = history.to_info()["notifyHistory"]
    assert notify == {
        "time": "1970-01-01T00:00:01.500Z",
        "providers": {"feed-rpc-yf": 2, "feed-rpc-tc": 2},
        "weights": "feed-rpc-yf:70,feed-rpc-tc:30",
        "degraded": False,
        "source": {"trafficControl": "service command index 1 (traffic control)"},
    }
    assert effective.to_info()["mergeGroups"] == ["feed-rpc-yf", "feed-rpc-tc"]


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_are_valid(text: str) -> None:
    assert validate(parse_command_document(text)) == []


def test_validation_messages() -> None:
    document = CommandDocument(
        [
            ClientCommand(index=None, command_type=7, pattern="*"),
            ClientCommand(index=1, command_type=0, pattern=""),
            ClientCommand(index=2, pattern=" com.a"),
            ClientCommand(index=3, pattern="com.(", merge_groups=["g1:0", "g2:101", "g3:x"]),
            ClientCommand(index=4, pattern="*", merge_groups=["g 1", "g4", "g4:2", "a,b"]),
            ClientCommand(index=5, pattern="*", route_rules=["10.* to", "10.* to host.name"]),
            ClientCommand(index=6, command_type=2, pattern="a:yes,b,c:1,d:true"),
            ClientCommand(index=7, command_type=1, pattern="x", merge_groups=["g"]),
            ClientCommand(index=7, pattern="*"),
        ]
    )
    assert validate(document) == [
        "clientCommandList[0] (index unset (unknown type)): index is missing "
        "(Go clients read it as 0, Java clients sort it first)",
        "clientCommandList[0] (index unset (unknown type)): unknown commandType 7 "
        "(0 traffic control, 1 degrade, 2 switcher)",
        "clientCommandList[1] (index 1 (traffic control)): pattern is empty",
        "clientCommandList[2] (index 2 (traffic control)): "
        "pattern ' com.a' has surrounding whitespace",
        "clientCommandList[3] (index 3 (traffic control)): "
        "pattern 'com.(' (go): not a valid regular expression (prefix only)",
        "clientCommandList[3] (index 3 (traffic control)): "
        "mergeGroups entry 'g1:0': weight must be 1..100",
        "clientCommandList[3] (index 3 (traffic control)): "
        "mergeGroups entry 'g2:101': weight must be 1..100",
        "clientCommandList[3] (index 3 (traffic control)): "
        "mergeGroups entry 'g3:x': weight 'x' is not an integer",
        "clientCommandList[4] (index 4 (traffic control)): "
        "mergeGroups entry 'g 1' is not 'group' or 'group:weight'",
        "clientCommandList[4] (index 4 (traffic control)): mergeGroups lists group 'g4' twice",
        "clientCommandList[4] (index 4 (traffic control)): "
        "mergeGroups entry 'a,b' is not 'group' or 'group:weight'",
        "clientCommandList[5] (index 5 (traffic control)): route rule '10.* to': "
        "side '' is not '*', an address or 'prefix*', optionally negated with '!'",
        "clientCommandList[5] (index 5 (traffic control)): route rule '10.* to host.name': "
        "'host.name' is not an IPv4 address or prefix",
        "clientCommandList[6] (index 6 (switcher)): "
        "switcher entry 'a:yes': write 'true' or 'false'",
        "clientCommandList[6] (index 6 (switcher)): "
        "switcher entry 'b' is not 'name:true' or 'name:false'",
        "clientCommandList[6] (index 6 (switcher)): switcher entry 'c:1': write 'true' or 'false'",
        "clientCommandList[7] (index 7 (degrade)): "
        "mergeGroups and routeRules only apply to traffic control commands",
        "clientCommandList[8] (index 7 (traffic control)): index 7 is also used by "
        "clientCommandList[7]; precedence would be ambiguous",
    ]


def test_validation_follows_the_pattern_mode() -> None:
    java = CommandDocument([ClientCommand(index=1, pattern="(com.a|com.b")])
    assert validate(java, "java") == [
        "clientCommandList[0] (index 1 (traffic control)): pattern '(com.a|com.b' (java): "
        "invalid pattern expression '(com.a|com.b': '(' is not closed"
    ]
    assert validate(java, "go") == [
        "clientCommandList[0] (index 1 (traffic control)): pattern '(com.a|com.b' (go): "
        "not a valid regular expression (prefix only)"
    ]
    assert validate(CommandDocument([ClientCommand(index=1, pattern="com.a|com.b")])) == []
    assert validate(CommandDocument([ClientCommand(index=1, pattern="com.a&!")])) == [
        "clientCommandList[0] (index 1 (traffic control)): pattern 'com.a&!' uses '&' or '!' "
        "but is read as a regular expression: invalid pattern expression 'com.a&!': "
        "it ends where a name is expected"
    ]


def test_switcher_pattern_reading() -> None:
    assert parse_switcher_pattern("a:true, b:F ,c:1,,d:0") == (
        {"a": True, "b": False, "c": True, "d": False},
        [],
    )
    values, errors = parse_switcher_pattern("a:yes,b,c:true")
    assert values == {"c": True}
    assert errors == [
        "switcher entry 'a:yes': 'yes' is not true or false",
        "switcher entry 'b' is not 'name:true' or 'name:false'",
    ]
