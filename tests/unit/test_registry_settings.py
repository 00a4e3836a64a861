"""The schema registry's settings (creditstream/settings.py ``schema_registry_*``): what is secret is
masked wherever it is shown (``config check``, the command line's error lines, the client's own
messages), and Settings.validate says what does not fit together."""

from __future__ import annotations

import json

import pytest

from creditstream import cli
from creditstream.probes import mask_url
from creditstream.settings import SECRET_FIELDS, Settings, mask_secret
from streams.codec import ConfluentRegistry, RegistryError, split_credentials


@pytest.mark.parametrize("url, shown", [
    ("https://svc:s3cr3t@registry:8081", "https://svc:***@registry:8081"),
    ("https://svc:p@ss/w0rd@registry:8081/apis/ccompat/v7", "https://svc:***@registry:8081/apis/ccompat/v7"),
    ("https://:only-pw@registry:8081", "https://***@registry:8081"),
    ("https://token-as-user@registry:8081", "https://***@registry:8081"),
    ("https://registry:8081", "https://registry:8081"),
    ("local", "local"),
])
def test_the_registry_url_is_masked_like_redis_url(url, shown):
    assert mask_secret("schema_registry", url) == shown
    assert Settings(schema_registry=url).masked()["schema_registry"] == shown


def test_config_check_masks_every_registry_secret():
    s = Settings(schema_registry="https://svc:url-pw-1@registry:8081", schema_registry_password="field-pw-2",
                 schema_registry_username="svc", schema_registry_token="token-3",
                 schema_registry_ca_file="/etc/ca.pem")
    assert {"schema_registry", "schema_registry_password", "schema_registry_token"} <= SECRET_FIELDS
    shown = json.dumps(s.masked())
    for secret in ("url-pw-1", "field-pw-2", "token-3"):
        assert secret not in shown
    m = s.masked()
    assert m["schema_registry_password"] == m["schema_registry_token"] == "***"
    assert m["schema_registry_username"] == "svc" and m["schema_registry_ca_file"] == "/etc/ca.pem"


@pytest.mark.parametrize("text, shown", [
    ("schema registry https://svc:pw@r:8081 unreachable", "schema registry https://svc:***@r:8081 unreachable"),
    ("at https://svc:pa/ss@r:8081/x and redis://:p@h/0", "at https://svc:***@r:8081/x and redis://***@h/0"),
    ("https://tok@r:8081", "https://***@r:8081"),
    ("http://r:8081/subjects", "http://r:8081/subjects"),
])
def test_mask_url_in_free_text(text, shown):
    assert mask_url(text) == shown


def test_credentials_in_the_url_are_taken_out_of_it():
    assert split_credentials("https://svc:p%40ss%3Aw@registry:8081/ccompat") == (
        "https://registry:8081/ccompat", "svc", "p@ss:w")
    assert split_credentials("https://registry:8081") == ("https://registry:8081", "", "")
    reg = ConfluentRegistry("https://svc:hidden-pw@registry:8081/")
    assert reg.url == "https://registry:8081" and reg.credentials == "basic"
    assert "hidden-pw" not in repr(reg)
    # the settings' username wins over none in the URL; a token and basic auth do not go together
    with pytest.raises(RegistryError, match="not both"):
        ConfluentRegistry("https://registry:8081", username="svc", token="t")


@pytest.mark.parametrize("changes, problem", [
    ({"schema_registry": "registry:8081"}, "schema_registry: 'local' or an http(s) URL"),
    ({"schema_registry": "https://u:p@r:8081", "schema_registry_username": "u"}, "in one place"),
    ({"schema_registry_password": "p"}, "schema_registry_password: needs schema_registry_username"),
    ({"schema_registry_token": "t", "schema_registry_username": "u"}, "not both"),
    ({"schema_registry": "http://r:8081", "schema_registry_ca_file": __file__}, "need an https://"),
    ({"schema_registry_keyfile": __file__}, "needs schema_registry_certfile"),
    ({"schema_registry_ca_file": "/nonexistent/ca.pem"}, "schema_registry_ca_file: /nonexistent/ca.pem does not exist"),
    ({"schema_registry_timeout_s": 0}, "schema_registry_timeout_s: must be > 0"),
    ({"schema_registry_retries": -1}, "schema_registry_retries: must be >= 0"),
])
def test_registry_settings_that_do_not_fit(changes, problem):
    s = Settings(**{"schema_registry": "https://registry:8081", **changes})
    assert any(problem in p for p in s.validate()), s.validate()


def test_registry_settings_that_fit():
    for s in (Settings(schema_registry="https://u:p@registry:8081"),
              Settings(schema_registry="https://registry:8081", schema_registry_username="u",
                       schema_registry_password="p", schema_registry_ca_file=__file__),
              Settings(schema_registry="https://registry:8081", schema_registry_token="t",
                       schema_registry_certfile=__file__, schema_registry_keyfile=__file__),
              Settings(schema_registry="local")):
        assert [p for p in s.validate() if "schema_registry" in p] == []


@pytest.fixture
def registry_settings(monkeypatch):
    monkeypatch.setattr(cli, "_current_settings", Settings(schema_registry="https://svc:pw-77@registry:8081"))


def _failure(exc: BaseException):
    try:
        raise exc
    except BaseException as raised:  # noqa: BLE001
        return cli._failure(raised)


def test_refused_credentials_and_tls_failures_are_settings_errors_on_the_command_line(registry_settings):
    code, line = _failure(RegistryError("schema registry https://registry:8081 refused the credentials: HTTP 401 "
                                        "(error_code 401): Unauthorized; check ...", status=401, error_code=401,
                                        kind="auth"))
    assert code == cli.EXIT_USAGE and "refused the credentials" in line and "\n" not in line
    code, line = _failure(RegistryError("schema registry https://registry:8081: TLS failed: certificate verify "
                                        "failed", kind="tls"))
    assert code == cli.EXIT_USAGE and "TLS failed" in line
    # an outage stays exit 3, naming the registry with its password masked
    code, line = _failure(RegistryError("schema registry https://registry:8081 unreachable: no answer within 5 s",
                                        kind="unreachable"))
    assert code == cli.EXIT_UNREACHABLE and "https://svc:***@registry:8081" in line and "pw-77" not in line


def test_outage_is_what_the_error_says():
    assert RegistryError("x unreachable: y").outage  # the old constructor: still read from the message
    assert RegistryError("x", status=503).outage and RegistryError("x", status=429).outage
    assert not RegistryError("x", status=401, kind="auth").outage
    assert not RegistryError("x", status=409).outage
    assert not RegistryError("TLS failed", kind="tls").outage
