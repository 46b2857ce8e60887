"""Credentials in a request, the access policy, the hub secret (SPEC §5, §6) — pure, table-tested."""

from __future__ import annotations

import base64
import hashlib

import pytest

from cocalcproxy.auth.credentials import API_KEY, SESSION, CookieNames, Credential, find_credential, stripped
from cocalcproxy.auth.policy import Facts, decide
from cocalcproxy.auth.secrets import SecretFileError, parse_secrets, read_secrets, secret_matches
from cocalcproxy.http1.cookies import cookie_values, without_cookies
from cocalcproxy.http1.head import parse_request_head

PID = "6f9e3d2c-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
OTHER = "0e0e0e0e-1b4a-4c8e-9d7f-0a1b2c3d4e5f"
ACC = "11111111-2222-4333-8444-555555555555"


def req(*headers: bytes):
    return parse_request_head(b"GET /x HTTP/1.1\r\nHost: h\r\n" + b"".join(h + b"\r\n" for h in headers))


def h(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


# ----------------------------------------------------------------- cookies

@pytest.mark.parametrize("value, names, out", [
    (b"a=1; b=2; c=3", {b"b"}, b"a=1; c=3"),
    (b"a=1;b=2", {b"a", b"b"}, b""),
    (b"remember_me=x; theme=dark; remember_me=y", {b"remember_me"}, b"theme=dark"),
    (b"flag; a=1", {b"a"}, b"flag"),
    (b"  a=1 ;  b = 2 ", {b"a"}, b"b = 2"),
])
def test_without_cookies(value, names, out):
    assert without_cookies(value, frozenset(names)) == out


def test_cookie_values_in_every_header_in_order():
    assert cookie_values([b"a=1; remember_me=s1", b"remember_me=s2"], b"remember_me") == [b"s1", b"s2"]
    assert cookie_values([b"remember_me"], b"remember_me") == []


# ------------------------------------------------------------- credentials

def test_cookie_names_carry_the_encoded_base_url():
    assert CookieNames.for_base("/") == CookieNames(b"remember_me", b"api_key")
    assert CookieNames.for_base("/foo/") == CookieNames(b"%2Ffooremember_me", b"%2Ffooapi_key")
    assert CookieNames.for_base("/a b/c/", "sid").session == b"%2Fa%20b%2Fcsid"


NAMES = CookieNames.for_base("/")


@pytest.mark.parametrize("headers, expected", [
    ((b"Cookie: remember_me=s",), Credential(SESSION, h(b"s"))),
    ((b"Cookie: api_key=k",), Credential(API_KEY, h(b"k"))),
    ((b"Cookie: api_key=k; remember_me=s",), Credential(SESSION, h(b"s"))),  # the session wins
    ((b"Authorization: Bearer k",), Credential(API_KEY, h(b"k"), True)),
    ((b"Authorization: bearer   k  ",), Credential(API_KEY, h(b"k"), True)),
    ((b"Authorization: Basic " + base64.b64encode(b"k:anything"),), Credential(API_KEY, h(b"k"), True)),
    ((b"Authorization: Basic " + base64.b64encode(b"k"),), Credential(API_KEY, h(b"k"), True)),
    ((b"Cookie: remember_me=s", b"Authorization: Bearer k"), Credential(SESSION, h(b"s"))),
    ((b"Cookie: %2Ffooremember_me=s",), None),  # another base URL's cookie
    ((b"Cookie: remember_me=",), None),
    ((b"Authorization: Basic !!!",), None),
    ((b"Authorization: Basic " + base64.b64encode(b":pw"),), None),
    ((b"Authorization: Digest x",), None),
    ((b"Authorization: Bearer a", b"Authorization: Bearer b"), None),  # ambiguous: never guessed
    ((), None),
])
def test_find_credential(headers, expected):
    assert find_credential(req(*headers), NAMES) == expected


def test_find_credential_under_a_base_url():
    names = CookieNames.for_base("/foo/")
    assert find_credential(req(b"Cookie: %2Ffooremember_me=s"), names) == Credential(SESSION, h(b"s"))
    assert find_credential(req(b"Cookie: remember_me=s"), names) is None


def test_stripped_headers():
    assert stripped(Credential(SESSION, "x")) == {b"x-cocalc-hub-secret"}
    assert stripped(Credential(API_KEY, "x", True)) == {b"x-cocalc-hub-secret", b"authorization"}
    assert stripped(None) == {b"x-cocalc-hub-secret"}


# ------------------------------------------------------------------ policy

def facts(**kw):
    base = dict(account_id=ACC, project_found=True, users={})
    base.update(kw)
    return Facts(**base)


@pytest.mark.parametrize("f, status", [
    (facts(users={ACC: {"group": "owner"}}), 200),
    (facts(users={ACC: {"group": "collaborator"}}), 200),
    (facts(users={ACC: {"group": "viewer"}}), 403),
    (facts(users={}), 403),
    (facts(users={ACC: "owner"}), 403),  # not the stored shape: never allowed by accident
    (facts(groups=("admin",)), 200),
    (facts(groups=("admin",), banned=True), 403),
    (facts(users={ACC: {"group": "owner"}}, banned=True), 403),
    (facts(users={ACC: {"group": "owner"}}, key_project=PID), 200),
    (facts(users={ACC: {"group": "owner"}}, key_project=OTHER), 403),
    (facts(groups=("admin",), key_project=OTHER), 403),
    (facts(project_found=False, users=None), 404),
    (Facts(None), 401),
])
def test_decide(f, status):
    d = decide(f, PID)
    assert (200 if d.allowed else d.status) == status
    if not d.allowed:
        assert d.message


# -------------------------------------------------------------- hub secret

def test_secret_file_lines(tmp_path):
    assert parse_secrets("# comment\nnew-secret\n\n  old-secret  \n") == (b"new-secret", b"old-secret")
    p = tmp_path / "s"
    p.write_text("\n# nothing\n")
    with pytest.raises(SecretFileError, match="holds no secret"):
        read_secrets(str(p))
    p.write_text("has space\n")
    with pytest.raises(SecretFileError, match="spaces or control"):
        read_secrets(str(p))
    with pytest.raises(SecretFileError, match="cannot read"):
        read_secrets(str(tmp_path / "missing"))


@pytest.mark.parametrize("headers, ok", [
    ((b"X-CoCalc-Hub-Secret: new",), True),
    ((b"X-CoCalc-Hub-Secret: old",), True),
    ((b"x-cocalc-hub-secret: old",), True),
    ((b"X-CoCalc-Hub-Secret: other",), False),
    ((b"X-CoCalc-Hub-Secret: ",), False),
    ((b"X-CoCalc-Hub-Secret: new", b"X-CoCalc-Hub-Secret: new"), False),
    ((), False),
])
def test_secret_matches(headers, ok):
    assert secret_matches(req(*headers), (b"new", b"old")) is ok
