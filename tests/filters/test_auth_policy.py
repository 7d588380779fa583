"""Access policies of the ``auth`` filter: how an entry matches a caller, the config and the
registry (JSON) forms, and what is refused as malformed."""

from __future__ import annotations

import json

import pytest

from motanmesh.filters.auth_policy import Allowed, AuthPolicy, PolicyError, application_of
from motanmesh.url import URL

WEB = "spiffe://prod.example/app/web"
WEB_OTHER_DOMAIN = "spiffe://staging.example/app/web"
MOBILE = "spiffe://prod.example/app/mobile"


@pytest.mark.parametrize(
    ("identity", "app"),
    [
        (WEB, "web"),
        (WEB_OTHER_DOMAIN, "web"),
        ("spiffe://td/app/a.b-c_d", "a.b-c_d"),
        ("spiffe://td/app/web/extra", ""),
        ("spiffe://td/app/", ""),
        ("spiffe://td/app", ""),
        ("spiffe://td/ns/default/sa/web", ""),
        ("spiffe://td", ""),
        ("https://td/app/web", ""),
        ("", ""),
    ],
)
def test_application_of_an_identity(identity: str, app: str) -> None:
    assert application_of(identity) == app


def test_a_name_matches_m_s_without_identity_and_the_app_of_an_identity() -> None:
    allowed = Allowed.from_text("web, spiffe://prod.example/app/mobile")
    # no identity: M_s decides (unauthenticated)
    assert allowed.admits("", "web")
    assert not allowed.admits("", "mobile")  # a URI never matches a bare M_s
    assert not allowed.admits("", "")
    # an identity: M_s is ignored
    assert allowed.admits(WEB, "anything")
    assert allowed.admits(WEB_OTHER_DOMAIN, "")  # a name matches in any trust domain
    assert allowed.admits(MOBILE, "web")
    assert not allowed.admits("spiffe://staging.example/app/mobile", "mobile")  # exact URI
    assert not allowed.admits("spiffe://prod.example/app/intruder", "web")  # M_s ignored
    assert not allowed.admits("spiffe://prod.example/web", "web")  # not /app/<name>


def test_a_star_admits_everyone() -> None:
    allowed = Allowed.from_text("*")
    assert allowed.admits("", "")
    assert allowed.admits(WEB, "x")


def test_config_policy_methods_and_require_identity() -> None:
    url = URL("motan2", "127.0.0.1", 0, "com.example.Orders", "g").with_params(
        **{
            "auth.allow": "web,mobile",
            "auth.allow.refund": "billing",
            "auth.requireIdentity": "true",
        }
    )
    policy = AuthPolicy.from_url(url)
    assert policy.require_identity
    assert policy.refusal("get", WEB, "") == ""
    assert "requires a verified mTLS identity" in policy.refusal("get", "", "web")
    assert "identity is not in" in policy.refusal("refund", WEB, "billing")
    assert policy.refusal("refund", "spiffe://td/app/billing", "") == ""
    assert policy.to_info() == {
        "source": "config",
        "allow": ["mobile", "web"],
        "methods": {"refund": ["billing"]},
        "requireIdentity": True,
    }
    open_policy = AuthPolicy.from_url(url.with_params(**{"auth.requireIdentity": "false"}))
    assert open_policy.refusal("get", "", "web") == ""
    assert "M_s is not in" in open_policy.refusal("get", "", "intruder")


def test_no_list_refuses_everything() -> None:
    policy = AuthPolicy.from_url(URL("motan2", "127.0.0.1", 0, "s", "g"))
    assert policy.empty
    assert policy.refusal("get", WEB, "web") != ""
    only_method = AuthPolicy.from_json('{"methods": {"get": ["web"]}}')
    assert only_method.refusal("get", "", "web") == ""
    assert "names no callers" in only_method.refusal("put", "", "web")


@pytest.mark.parametrize(
    "value",
    ["web mobile", "a/b", "spiffe://", "spiffe://td", "spiffe:///app/x", "we*b", "x:y"],
)
def test_bad_config_entries_are_refused(value: str) -> None:
    url = URL("motan2", "127.0.0.1", 0, "s", "g").with_params(**{"auth.allow": value})
    with pytest.raises(PolicyError):
        AuthPolicy.from_url(url)


def test_bad_require_identity_is_refused() -> None:
    url = URL("motan2", "127.0.0.1", 0, "s", "g").with_params(**{"auth.requireIdentity": "maybe"})
    with pytest.raises(PolicyError, match="true or false"):
        AuthPolicy.from_url(url)


def test_json_policy_round_trip() -> None:
    text = json.dumps(
        {
            "allow": ["web", MOBILE],
            "methods": {"refund": "billing, spiffe://td/app/ops"},
            "requireIdentity": True,
        }
    )
    policy = AuthPolicy.from_json(text, source="registry zk")
    assert policy.source == "registry zk"
    assert policy.require_identity
    assert policy.refusal("refund", "spiffe://td/app/ops", "") == ""
    assert AuthPolicy.from_json(policy.to_json(), "registry zk") == policy
    assert AuthPolicy.from_json("{}").empty


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"alow": ["web"]}', "unknown key"),
        ('{"allow": [1]}', "list of strings"),
        ('{"allow": {"web": true}}', "list of strings"),
        ('{"methods": ["get"]}', "'methods' must be an object"),
        ('{"methods": {"": ["web"]}}', "empty method name"),
        ('{"methods": {"get": ["bad name"]}}', "methods.get"),
        ('{"requireIdentity": "yes"}', "true or false"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_malformed_json_policies_say_why(text: str, reason: str) -> None:
    with pytest.raises(PolicyError, match=reason):
        AuthPolicy.from_json(text)


def test_admits_and_refusal_agree() -> None:
    policies = [
        AuthPolicy(),
        AuthPolicy.from_json('{"allow": ["web", "' + MOBILE + '"], "methods": {"put": []}}'),
        AuthPolicy.from_json('{"allow": ["*"], "requireIdentity": true}'),
        AuthPolicy.from_json('{"methods": {"get": ["web"]}, "requireIdentity": true}'),
    ]
    identities = ["", WEB, WEB_OTHER_DOMAIN, MOBILE, "spiffe://td/app/intruder", "spiffe://td/x"]
    for policy in policies:
        for method in ("get", "put", ""):
            for identity in identities:
                for caller in ("", "web", "mobile", "intruder"):
                    admitted = policy.admits(method, identity, caller)
                    assert admitted == (policy.refusal(method, identity, caller) == ""), (
                        policy,
                        method,
                        identity,
                        caller,
                    )
