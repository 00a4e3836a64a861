"""creditstream/access.py: the token file, roles, where the API may listen; the settings' checks."""

from __future__ import annotations

import hashlib

import pytest

from creditstream.access import Access, AccessConfigError, exposure_warnings, is_loopback, load_tokens, serving_problem
from creditstream.settings import Settings
from tests import builders

PUBLIC_TOKEN = "p" * 40
PERSONAL_TOKEN = "q" * 40


def write(tmp_path, text: str) -> str:
    path = tmp_path / "tokens.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def token_file(tmp_path) -> str:
    return builders.token_file(tmp_path, PUBLIC_TOKEN, PERSONAL_TOKEN)


def test_tokens_by_digest_or_in_clear_name_their_client_and_role(tmp_path):
    access = Access.from_settings(Settings(api_tokens_file=token_file(tmp_path)))
    public = access.client_of(f"Bearer {PUBLIC_TOKEN}")
    personal = access.client_of(f"bearer  {PERSONAL_TOKEN} ")
    assert (public.name, public.role) == ("publicity-site", "public")
    assert (personal.name, personal.role) == ("joint-punishment", "personal")
    assert public.may("public") and not public.may("personal") and personal.may("public")
    for header in ("Bearer " + "x" * 40, f"Basic {PUBLIC_TOKEN}", "Bearer", "", PUBLIC_TOKEN):
        assert access.client_of(header) is None, header
    anonymous = access.client_of(None)
    assert anonymous.name == "anonymous" and not anonymous.may("public")


def test_without_a_token_file_everyone_gets_the_anonymous_role():
    assert Access.from_settings(Settings()).client_of(None).role == "public"
    personal = Access.from_settings(Settings(api_anonymous_role="personal"))
    assert personal.client_of("Bearer whatever").may("personal")
    with pytest.raises(AccessConfigError, match="api_anonymous_role"):
        Access.from_settings(Settings(api_anonymous_role="admin"))


@pytest.mark.parametrize("text, complaint", [
    ("", "no \\[\\[token\\]\\] entries"),
    ("[[token]]\nclient = 'a'\nrole = 'admin'\ntoken = '" + "x" * 40 + "'", "role must be one of public, personal"),
    ("[[token]]\nrole = 'public'\ntoken = '" + "x" * 40 + "'", "no client name"),
    ("[[token]]\nclient = 'a'\nrole = 'public'\ntoken = 'short'", "at least 32 characters"),
    ("[[token]]\nclient = 'a'\nrole = 'public'\nsha256 = 'zz'", "64 hexadecimal"),
    ("[[token]]\nclient = 'a'\nrole = 'public'", "either sha256"),
    ("[[token]]\nclient = 'a'\nrole = 'public'\ntoken = '" + "x" * 40 + "'\nrol = 1", "unknown key"),
    ("[[token]]\nclient = 'a'\nrole = 'public'\ntoken = '" + "x" * 40 + "'\n"
     "[[token]]\nclient = 'b'\nrole = 'personal'\nsha256 = '" + hashlib.sha256(b"x" * 40).hexdigest() + "'",
     "repeats an earlier token"),
    ("[[token]\n", "api_tokens_file"),
])
def test_a_bad_token_file_is_refused_with_the_reason(tmp_path, text, complaint):
    path = write(tmp_path, text)
    with pytest.raises(AccessConfigError, match=complaint):
        load_tokens(path)
    assert any(complaint.replace("\\", "") in p or "api_tokens_file" in p
               for p in Settings(api_tokens_file=path).validate())


def test_a_missing_token_file(tmp_path):
    with pytest.raises(AccessConfigError, match="does not exist"):
        load_tokens(str(tmp_path / "nope.toml"))


def test_only_loopback_may_go_without_tokens(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("api.example")
    assert serving_problem("127.0.0.1", Settings()) is None
    assert "refusing to serve the API on 0.0.0.0" in serving_problem("0.0.0.0", Settings())
    assert serving_problem("0.0.0.0", Settings(api_tokens_file=token_file(tmp_path))) is None


def test_config_check_warns_about_an_exposed_api(tmp_path):
    assert exposure_warnings("127.0.0.1", Settings()) == []
    both = exposure_warnings("0.0.0.0", Settings())
    assert len(both) == 2 and "without authentication" in both[0] and "without TLS" in both[1]
    tokens_only = exposure_warnings("0.0.0.0", Settings(api_tokens_file=token_file(tmp_path)))
    assert len(tokens_only) == 1 and "without TLS" in tokens_only[0]


def test_tls_settings_are_checked(tmp_path):
    assert "api_tls_certfile and api_tls_keyfile: give both, or neither" in Settings(
        api_tls_certfile=str(tmp_path / "c.pem")).validate()
    problems = Settings(api_tls_certfile=str(tmp_path / "c.pem"), api_tls_keyfile=str(tmp_path / "k.pem")).validate()
    assert any("does not exist" in p for p in problems), problems


def test_the_tls_key_password_is_masked():
    assert Settings(api_tls_password="hunter2").masked()["api_tls_password"] == "***"
