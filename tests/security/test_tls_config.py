"""The ``tls.*`` keys and the certificate files: checked at start, reloaded when they change
(new contexts for new connections), a broken file leaves the previous certificates in use."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from motanmesh.config.loader import load_config
from motanmesh.security.tls import TlsConfig, TlsConfigError, TlsMaterial
from tests.security.pki import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def test_defaults_and_derived_values(pki: Pki) -> None:
    assert not TlsConfig.from_params({}).enabled
    c = pki.config("a", mode="permissive", reloadInterval="250")
    assert (c.mode, c.verify_client, c.client, c.reload_interval) == (
        "permissive",
        True,
        "auto",
        0.25,
    )
    assert c.server_enabled and c.client_enabled
    only_client = TlsConfig.from_params({"tls.ca": str(pki.ca)})
    assert only_client.client_enabled and not only_client.server_enabled


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tls.mode": "on"}, "tls.mode: one of off, permissive, strict"),
        ({"tls.mode": "strict"}, "needs tls.cert and tls.key"),
        ({"tls.cert": "a.pem"}, "go together"),
        ({"tls.verifyClient": "true"}, "verifyClient needs tls.ca"),
        ({"tls.verifyClient": "maybe"}, "not a boolean"),
        ({"tls.trustDomain": "Bad Domain"}, "tls.trustDomain"),
        ({"tls.client": "always"}, "tls.client: one of auto, off"),
        ({"tls.reloadInterval": "soon"}, "not a number of ms"),
        ({"tls.sert": "x"}, "tls.sert: unknown key"),
    ],
)
def test_bad_keys_are_named(params: dict[str, str], message: str) -> None:
    with pytest.raises(TlsConfigError, match=message):
        TlsConfig.from_params(params)


def test_unreadable_files_fail_at_start(pki: Pki, tmp_path: Path) -> None:
    cert, _key = pki.issue("a")
    _cert2, other_key = pki.issue("b")
    params = {"tls.mode": "strict", "tls.cert": str(cert), "tls.key": str(other_key)}
    with pytest.raises(TlsConfigError, match="cannot load"):
        TlsMaterial(TlsConfig.from_params(params))
    params["tls.key"] = str(tmp_path / "missing.pem")
    with pytest.raises(TlsConfigError, match="cannot load"):
        TlsMaterial(TlsConfig.from_params(params))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_changed_files_give_new_contexts_after_the_interval(pki: Pki) -> None:
    clock = Clock()
    material = TlsMaterial(pki.config("svc", mode="strict", reloadInterval="1000"), clock=clock)
    first = material.server_context()
    assert material.server_context() is first
    pki.issue("svc")  # new certificate and key, same paths
    clock.now = 0.5
    assert material.server_context() is first  # not looked at before the interval
    clock.now = 1.0
    second = material.server_context()
    assert second is not first
    assert material.reloads == 1 and material.reload_errors == 0
    clock.now = 2.0
    assert material.server_context() is second  # nothing changed


def test_a_broken_file_keeps_the_previous_certificates(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    config = pki.config("svc2", mode="strict", reloadInterval="1000")
    material = TlsMaterial(config, clock=clock)
    first = material.server_context()
    Path(config.cert).write_text("-----BEGIN CERTIFICATE-----\nhalf")
    for t in (1.0, 2.0, 3.0):
        clock.now = t
        assert material.server_context() is first
    assert material.reload_errors == 3
    errors = [r for r in caplog.records if "previous certificates stay" in r.getMessage()]
    assert len(errors) == 1  # logged once a minute, counted every time
    assert material.info()["reloadErrors"] == 3
    pki.issue("svc2")  # a good pair again
    clock.now = 4.0
    assert material.server_context() is not first
    assert material.reloads == 1
    assert "lastReloadError" not in material.info()
    assert isinstance(material.client_context(), ssl.SSLContext)


def test_a_tls_mapping_in_the_yaml_is_read_as_the_dotted_keys(pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.issue("nested")
    path = tmp_path / "agent.yaml"
    path.write_text(
        "motan-agent:\n"
        "  application: nested\n"
        "  tls:\n"
        "    mode: permissive\n"
        f"    cert: {cert}\n"
        f"    key: {key}\n"
        f"    ca: {pki.ca}\n"
        "    verifyClient: false\n"
        "    reloadInterval: 250\n"
    )
    config = load_config(str(path))
    assert config.warnings == []
    tls = TlsConfig.from_params(config.agent.params)
    assert (tls.mode, tls.cert, tls.verify_client, tls.reload_interval) == (
        "permissive",
        str(cert),
        False,
        0.25,
    )
