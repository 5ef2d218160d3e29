"""Careless configuration refused at construction (issue 25): keys, cookies, origin secrets.

Each refusal names the setting and how to fix it; each was accepted (or crashed
later, per request) before.
"""

from __future__ import annotations

import pytest
from chalice import Chalice, Response

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager, set_cookie

GOOD_KEY = "k7Qx2-Lm9vRt4YbN8cWz1Hs6JdPf3GaE0uKo5iXq"


def manager(tmp_path, **options):
    return ContentManager(str(tmp_path), str(tmp_path), Chalice(app_name="hostile"), **options)


# -- secret keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "changeme",
        "s3cret",
        "x" * 31,
        "k7Qx2-Lm9vRt4YbN8cWz1Hs6JdPf3Ga",  # random, but 31 characters
        "k7Qx2-Lm9vRt4YbN",
        b"short bytes key",
        "change-me-to-a-long-random-string-please",
        "your-secret-key-here-0123456789abcdef",
        "django-insecure-0123456789abcdefghijklmnop",
        "replace_me_with_something_random_1234567",
        ["k7Qx2-Lm9vRt4YbN8cWz1Hs6JdPf3GaE0uKo5iXq", "old-short"],  # rotation lists too
    ],
)
def test_guessable_secret_keys_are_refused_with_how_to_make_one(tmp_path, key):
    with pytest.raises(ValueError, match=r"secret_key.*secrets\.token_urlsafe\(32\)"):
        manager(tmp_path, secret_key=key)


@pytest.mark.parametrize(
    "key",
    [
        GOOD_KEY,
        GOOD_KEY.encode(),
        [GOOD_KEY, "Zr8-pW3nQ5tY7uI9oP1aS2dF4gH6jK8lM0xC"],
        "a test key that is long enough to sign sessions",
    ],
)
def test_real_secret_keys_are_accepted(tmp_path, key):
    from chalice.test import Client

    app = Chalice(app_name="keys")
    cm = ContentManager(str(tmp_path), str(tmp_path), app, secret_key=key)

    @app.route("/count")
    def count():
        cm.session["n"] = cm.session.get("n", 0) + 1
        return cm.json({"n": cm.session["n"]})

    with Client(app) as client:
        cookies = client.http.get("/count").headers["Set-Cookie"]
        cookie = (cookies[0] if isinstance(cookies, list) else cookies).split(";")[0]
        assert client.http.get("/count", headers={"Cookie": cookie}).json_body == {"n": 2}


def test_a_generated_key_is_always_accepted(tmp_path):
    import secrets

    for _ in range(200):
        manager(tmp_path, secret_key=secrets.token_urlsafe(32))
        manager(tmp_path, secret_key=secrets.token_hex(16))


# -- session cookie settings --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"session_cookie": "__Host-session", "session_cookie_secure": False}, "__Host-"),
        ({"session_cookie": "__Secure-session", "session_cookie_secure": False}, "secure=True"),
        ({"session_cookie": "__host-session", "session_cookie_secure": False}, "prefix"),
        ({"session_max_age": 10**12}, "400 days"),
        ({"session_max_age": 400 * 86400 + 1}, "400 days"),
        ({"session_max_age": True}, "session_max_age"),
        ({"session_max_age": 3600.0}, "session_max_age"),
        ({"session_cookie": "a b"}, "session_cookie"),
    ],
)
def test_session_settings_browsers_would_not_keep_are_refused(tmp_path, options, words):
    with pytest.raises(ValueError, match=words):
        manager(tmp_path, secret_key=GOOD_KEY, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"session_cookie": "__Host-session"},
        {"session_cookie": "__Secure-session"},
        {"session_cookie": "sid", "session_cookie_secure": False},
        {"session_max_age": 400 * 86400},
    ],
)
def test_session_settings_browsers_keep_are_accepted(tmp_path, options):
    manager(tmp_path, secret_key=GOOD_KEY, **options)


def test_a_host_prefixed_session_cookie_sticks(tmp_path):
    from chalice.test import Client

    app = Chalice(app_name="prefixed")
    cm = ContentManager(
        str(tmp_path), str(tmp_path), app, secret_key=GOOD_KEY, session_cookie="__Host-sid"
    )

    @app.route("/count")
    def count():
        cm.session["n"] = cm.session.get("n", 0) + 1
        return cm.json({"n": cm.session["n"]})

    with Client(app) as client:
        first = client.http.get("/count")
        cookies = first.headers["Set-Cookie"]
        cookie = cookies[0] if isinstance(cookies, list) else cookies
        assert cookie.startswith("__Host-sid=") and "; Path=/; Secure;" in cookie
        assert "Domain" not in cookie
        second = client.http.get("/count", headers={"Cookie": cookie.split(";")[0]})
        assert second.json_body == {"n": 2}


# -- set_cookie -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "words"),
    [
        ("__Host-x", {"secure": False}, "secure=True"),
        ("__Host-x", {"domain": "example.com"}, "no domain"),
        ("__Host-x", {"path": "/app"}, "path='/'"),
        ("__HOST-x", {"path": "/app"}, "path='/'"),
        ("__Secure-x", {"secure": False}, "secure=True"),
        ("x", {"domain": "exa mple.com"}, "host name"),
        ("x", {"domain": ""}, "host name"),
        ("x", {"domain": "example.com:443"}, "host name"),
        ("x", {"domain": "a" * 254}, "host name"),
        ("x", {"path": "/" + "a" * 1024}, "1024"),
        ("x", {"max_age": float("inf")}, "400 days"),
        ("x", {"max_age": float("-inf")}, "400 days"),
        ("x", {"max_age": float("nan")}, "400 days"),
        ("x", {"max_age": 10**15}, "400 days"),
        ("x", {"max_age": 400 * 86400 + 1}, "400 days"),
        ("x", {"max_age": True}, "number of seconds"),
        ("x", {"max_age": "3600"}, "number of seconds"),
    ],
)
def test_set_cookie_refuses_what_browsers_drop(name, options, words):
    with pytest.raises(ValueError, match=words):
        set_cookie(Response(body=""), name, "1", **options)


@pytest.mark.parametrize(
    ("name", "options", "attributes"),
    [
        ("__Host-x", {}, "Path=/; Secure"),
        ("__Secure-x", {"domain": "example.com", "path": "/a"}, "Domain=example.com; Path=/a"),
        ("x", {"domain": ".example.com"}, "Domain=.example.com"),
        ("x", {"domain": "localhost", "secure": False}, "Domain=localhost; Path=/; HttpOnly"),
        ("x", {"max_age": 400 * 86400}, f"Max-Age={400 * 86400}"),
        ("x", {"max_age": 59.9}, "Max-Age=59;"),
        ("x", {"max_age": -5}, "Max-Age=-5;"),
    ],
)
def test_set_cookie_accepts_what_browsers_keep(name, options, attributes):
    response = set_cookie(Response(body=""), name, "1", **options)
    assert attributes in response.headers["Set-Cookie"][0]


def test_delete_cookie_of_a_prefixed_name_is_kept_by_browsers():
    response = toolkit.delete_cookie(Response(body=""), "__Host-x")
    assert "Max-Age=0; Path=/; Secure" in response.headers["Set-Cookie"][0]


# -- origin secrets ------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "   ", [], ["", " "], ["x" * 20, ""], [None], [b"x" * 20]])
def test_blank_origin_secrets_are_refused(secret):
    with pytest.raises(ValueError, match="origin_secret"):
        toolkit.lambda_handler(Chalice(app_name="x"), origin_secret=secret)


@pytest.mark.parametrize("value", ["", " ", ",", " , "])
def test_a_blank_origin_secret_variable_is_refused(monkeypatch, value):
    monkeypatch.setenv(toolkit.ORIGIN_SECRET_ENV, value)
    with pytest.raises(ValueError, match=toolkit.ORIGIN_SECRET_ENV):
        toolkit.lambda_handler(Chalice(app_name="x"))


@pytest.mark.parametrize(
    "secret", ["é" * 20, "origin-secret-\udc80-0123456789", "tab\tsecret-0123456789"]
)
def test_origin_secrets_that_no_header_can_carry_are_refused(secret):
    with pytest.raises(ValueError, match="printable ASCII"):
        toolkit.lambda_handler(Chalice(app_name="x"), origin_secret=secret)
