"""Cookies, sessions, flash, CSRF, url_for and personal responses (issue 15)."""

from __future__ import annotations

import base64
import json
import logging
import re

import pytest
from chalice import Blueprint, Chalice, Response
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from chalice_http_toolkit import (
    ContentManager,
    Session,
    SessionTooLargeError,
    cross_origin_refusal,
    csrf_exempt,
    delete_cookie,
    parse_cookie_header,
    set_cookie,
)

from apigw import deliver, lambda_context, make_event
from sites import SECRET_KEY, build_app, cookie_of, token_of, write_site

URLENCODED = "application/x-www-form-urlencoded"
SITE = "https://www.example.com"

PAGES = {
    "flashes.html": "{% include 'messages.html' %}<h1>{{ title }}</h1>",
    "messages.html": "{% for m in get_flashed_messages() %}<p>{{ m }}</p>{% endfor %}",
    "links.html": '<a href="{{ url_for("item", item_id=7) }}">item</a>',
}


# -- cookies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=1; b=2", {"a": "1", "b": "2"}),
        ("a=1;b=2;;", {"a": "1", "b": "2"}),
        ('a="quoted value"', {"a": "quoted value"}),
        ("a=1; a=2", {"a": "1"}),  # the first (most specific path) wins
        ("junk; =nameless; a=1; b c=2; d=e=f", {"a": "1", "d": "e=f"}),
        ("sess=abc\x00def; ok=1", {"sess": "abc\x00def", "ok": "1"}),
        ("é=1; x=ü", {"x": "ü"}),
        ("", {}),
        (None, {}),
        (";;;===;;", {}),
    ],
)
def test_parse_cookie_header(header, expected):
    assert parse_cookie_header(header) == expected


def test_set_cookie_defaults_and_attributes():
    response = Response(body="", headers={"Cache-Control": "public, max-age=60", "ETag": '"x"'})
    assert set_cookie(response, "theme", "dark") is response
    set_cookie(response, "id", "42", max_age=3600, path="/app", domain="example.com", secure=False)
    set_cookie(response, "x", "1", httponly=False, samesite="strict")
    delete_cookie(response, "old")
    cookies = response.headers["Set-Cookie"]
    assert cookies[0] == "theme=dark; Path=/; Secure; HttpOnly; SameSite=Lax"
    assert re.fullmatch(
        r"id=42; Expires=\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT; Max-Age=3600; Domain=example.com; "
        r"Path=/app; HttpOnly; SameSite=Lax",
        cookies[1],
    )
    assert cookies[2] == "x=1; Path=/; Secure; SameSite=Strict"
    assert cookies[3].startswith("old=; Expires=") and "Max-Age=0" in cookies[3]
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in response.headers


@pytest.mark.parametrize(
    ("name", "value", "options", "words"),
    [
        ("a b", "1", {}, "name"),
        ("a;", "1", {}, "name"),
        ("a", "two words", {}, "encode it"),
        ("a", "x;y", {}, "encode it"),
        ("a", "é", {}, "encode it"),
        ("a", "1", {"samesite": "None", "secure": False}, "secure"),
        ("a", "1", {"samesite": "sometimes"}, "samesite"),
        ("a", "1", {"path": "/x;Domain=evil"}, "path"),
        ("a", "1", {"domain": "a\r\nb"}, "domain"),
    ],
)
def test_set_cookie_is_strict_with_developer_input(name, value, options, words):
    with pytest.raises(ValueError, match=words):
        set_cookie(Response(body=""), name, value, **options)


# -- an app -------------------------------------------------------------------------


def build(tmp_path, **options):
    """The site's app (tests/sites.py, with its forms when a key is given) and these routes."""
    templates, static = write_site(tmp_path / "site")
    for name, text in PAGES.items():
        (templates / name).write_text(text)
    options.setdefault("secret_key", SECRET_KEY)
    app, cm, cf = build_app(templates, static, **options)

    @app.route("/flashes", methods=["GET"])
    def flashes():
        return cf.template("flashes.html", title="Hi")

    @app.route("/public", methods=["GET"])
    def public():
        return cf.template("flashes.html", title="public")  # personal by template analysis

    @app.route("/links", methods=["GET"])
    def links():
        return cf.template("links.html")

    @app.route("/item/{item_id}", methods=["GET"])
    def item(item_id):
        return cm.json({"item": item_id})

    @app.route("/api/items", methods=["POST", "PUT", "DELETE"])
    def api_items():
        return cm.json({"got": app.current_request.json_body})

    @app.route("/hook", methods=["POST"], content_types=[URLENCODED])
    @csrf_exempt
    def hook():
        return cm.json({"hooked": True})

    @app.route("/counter", methods=["GET"])
    def counter():
        cm.session["n"] = cm.session.get("n", 0) + 1
        return cm.json({"n": cm.session["n"]})

    @app.route("/clear", methods=["GET"])
    def clear():
        cm.session.clear()
        return cm.json({"bye": True})

    @app.route("/cookies", methods=["GET"])
    def cookies():
        response = cm.json(cm.cookies())
        for index in range(3):
            set_cookie(response, f"c{index}", str(index))
        return response

    @app.route("/big", methods=["GET"])
    def big():
        try:
            cm.session["blob"] = "x" * 5000
        except SessionTooLargeError as error:
            return cm.json({"error": str(error)})
        return cm.json({"error": None})

    @app.route("/not-json", methods=["GET"])
    def not_json():
        try:
            cm.session["when"] = object()
        except TypeError as error:
            return cm.json({"error": str(error), "keys": list(cm.session)})
        return cm.json({"error": None})

    return app, cm


SAME_ORIGIN = {"Host": "www.example.com", "Origin": SITE, "Sec-Fetch-Site": "same-origin"}


def form_post(client, path, fields: str, cookie: str | None, extra=None):
    headers = {"Content-Type": URLENCODED, **SAME_ORIGIN, **(extra or {})}
    if cookie:
        headers["Cookie"] = f"session={cookie}"
    return client.http.post(path, headers=headers, body=fields)


# -- sessions and flash ---------------------------------------------------------------


def test_flash_after_a_303_with_csrf(tmp_path):
    app, _ = build(tmp_path)
    with Client(app) as client:
        page = client.http.get("/form")
        cookie, token = cookie_of(page.headers), token_of(page.body)
        assert page.headers["Cache-Control"] == "private, no-store" and "ETag" not in page.headers
        posted = form_post(
            client, "/flash", f"message=thanks+Zo%C3%AB&category=success&csrf_token={token}", cookie
        )
        assert (posted.status_code, posted.headers["Location"]) == (303, "/form")
        assert posted.headers["Cache-Control"] == "private, no-store"
        cookie = cookie_of(posted.headers)
        shown = client.http.get("/form", headers={"Cookie": f"session={cookie}"})
        assert "<p class=success>thanks Zoë</p>" in shown.body.decode()
        assert token_of(shown.body) == token  # one token per session
        cookie = cookie_of(shown.headers)  # the flash was consumed
        again = client.http.get("/form", headers={"Cookie": f"session={cookie}"})
        assert "thanks" not in again.body.decode()


def test_session_round_trip_expiry_rotation_and_clear(tmp_path, monkeypatch):
    import chalice_http_toolkit as toolkit

    app, _ = build(tmp_path, secret_key="old-key-0123456789abcdefghijklmnopq", session_max_age=60)
    with Client(app) as client:
        first = client.http.get("/counter")
        cookie = cookie_of(first.headers)
        second = client.http.get("/counter", headers={"Cookie": f"session={cookie}"})
        assert json.loads(second.body) == {"n": 2}
        assert "Max-Age=60" in second.headers["Set-Cookie"][0]
        cookie = cookie_of(second.headers)
    # Rotation: a new key signs, the old one still verifies.
    rotated, _ = build(
        tmp_path,
        secret_key=["new-key-0123456789abcdefghijklmnopq", "old-key-0123456789abcdefghijklmnopq"],
        session_max_age=60,
    )
    with Client(rotated) as client:
        third = client.http.get("/counter", headers={"Cookie": f"session={cookie}"})
        assert json.loads(third.body) == {"n": 3}
        new_cookie = cookie_of(third.headers)
        now = toolkit._now()
        monkeypatch.setattr(toolkit, "_now", lambda: now + 61)  # expired
        expired = client.http.get("/counter", headers={"Cookie": f"session={new_cookie}"})
        assert json.loads(expired.body) == {"n": 1}
        monkeypatch.undo()
        gone = client.http.get("/clear", headers={"Cookie": f"session={new_cookie}"})
        assert cookie_of(gone.headers) == "" and "Max-Age=0" in gone.headers["Set-Cookie"][0]
    # A key that is no longer listed: the cookie is foreign.
    app2, _ = build(tmp_path, secret_key="new-key-only-0123456789abcdefghijkl")
    with Client(app2) as client:
        assert json.loads(
            client.http.get("/counter", headers={"Cookie": f"session={cookie}"}).body
        ) == {"n": 1}


def _forge(cookie: str) -> list[str]:
    payload, timestamp, signature = cookie.split(".")
    evil = base64.urlsafe_b64encode(b'{"n":1000}').rstrip(b"=").decode()
    return [
        f"{evil}.{timestamp}.{signature}",  # tampered payload
        f"{payload}.{int(timestamp) + 1}.{signature}",  # tampered timestamp
        f"{payload}.{timestamp}.{signature[:-2]}AA",  # tampered signature
        f"{payload}.{timestamp}",
        "garbage",
        "a.b.c.d",
        "...",
        "é.ü.ß",
        base64.b64encode(b"\x80\x04pickle").decode(),
    ]


def test_forged_or_garbage_cookies_give_an_empty_session_and_a_log_line(tmp_path, caplog):
    app, _ = build(tmp_path)
    with Client(app) as client:
        cookie = cookie_of(client.http.get("/counter").headers)
        for forged in _forge(cookie):
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="chalice_http_toolkit"):
                reply = client.http.get("/counter", headers={"Cookie": f"session={forged}"})
            assert (reply.status_code, json.loads(reply.body)) == (200, {"n": 1}), forged
            assert any("session cookie" in r.getMessage() for r in caplog.records), forged


def test_a_signed_cookie_that_is_not_an_object_is_refused(tmp_path):
    _, cm = build(tmp_path)
    signer = cm._visitors._session_signer
    for payload in (b"WzFd", b"bnVsbA", b"_w"):  # [1], null, garbage base64
        assert signer.verify(signer.sign(payload, 1_800_000_000), 1_800_000_000) is None


def test_session_values_are_json_and_fit_in_a_cookie(tmp_path):
    app, _ = build(tmp_path)
    with Client(app) as client:
        big = json.loads(client.http.get("/big").body)
        assert "4096" in big["error"]
        reply = client.http.get("/not-json")
        assert "JSON" in json.loads(reply.body)["error"] and json.loads(reply.body)["keys"] == []


def test_no_secret_key_is_a_clear_error_when_the_session_is_used(tmp_path):
    app, _ = build(tmp_path, secret_key=None)
    app.debug = True
    with Client(app) as client:
        reply = client.http.get("/counter")
    assert reply.status_code == 500 and b"secret_key=" in reply.body
    with pytest.raises(ValueError, match="secret_key"):
        build(tmp_path, secret_key=["", "x"])
    with pytest.raises(ValueError, match="session_cookie"):
        build(tmp_path, session_cookie="my session")
    with pytest.raises(ValueError, match="session_max_age"):
        build(tmp_path, session_max_age=0)


def test_session_is_a_mapping():
    session = Session({"a": 1}, None, new=False)
    assert dict(session) == {"a": 1} and not session.modified
    del session["a"]
    assert session.modified and len(session) == 0


# -- many cookies per response: multiValueHeaders, Lambda, chalice local -----------------


def test_several_set_cookie_headers_leave_as_multi_value_headers(tmp_path):
    app, _ = build(tmp_path)
    event = make_event(app, "GET", "/cookies", {"Cookie": "a=1; junk; b=2"})
    event["multiValueHeaders"]["Cookie"] = ["a=1; junk", "b=2"]
    result = app(event, lambda_context())
    assert result["multiValueHeaders"]["Set-Cookie"] == [
        f"c{i}={i}; Path=/; Secure; HttpOnly; SameSite=Lax" for i in range(3)
    ]
    assert "Set-Cookie" not in result["headers"]
    assert result["headers"]["Cache-Control"] == "private, no-store"
    assert json.loads(deliver(result, {}, app.api.binary_types).body) == {"a": "1", "b": "2"}
    # What the Lambda runtime serialises is what API Gateway reads.
    assert json.loads(json.dumps(result))["multiValueHeaders"]["Set-Cookie"][2].startswith("c2=")


# -- CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "trusted", "refused"),
    [
        ({}, (), False),  # not a browser
        ({"sec-fetch-site": "same-origin"}, (), False),
        ({"sec-fetch-site": "none"}, (), False),
        ({"sec-fetch-site": "same-site", "origin": "https://a.example.com"}, (), True),
        ({"sec-fetch-site": "cross-site", "origin": "https://evil.test"}, (), True),
        (
            {"sec-fetch-site": "cross-site", "origin": "https://app.test"},
            ("https://app.test",),
            False,
        ),
        ({"origin": "https://www.example.com", "host": "www.example.com"}, (), False),
        ({"origin": "https://www.example.com:443", "host": "www.example.com"}, (), False),
        ({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}, (), False),
        ({"origin": "http://127.0.0.1:8001", "host": "127.0.0.1:8000"}, (), True),
        ({"origin": "null", "host": "www.example.com"}, (), True),
        ({"origin": "https://evil.test", "host": "www.example.com"}, (), True),
        # Behind CloudFront: Host is API Gateway's, the function passes the viewer's host.
        (
            {
                "origin": "https://d111.cloudfront.net",
                "host": "abc.execute-api.us-east-1.amazonaws.com",
                "x-forwarded-host": "d111.cloudfront.net",
            },
            (),
            False,
        ),
        (
            {
                "origin": "https://d111.cloudfront.net",
                "host": "abc.execute-api.us-east-1.amazonaws.com",
            },
            (),
            True,
        ),
    ],
)
def test_cross_origin_refusal(headers, trusted, refused):
    assert (cross_origin_refusal("POST", headers, trusted) is not None) is refused
    assert cross_origin_refusal("GET", headers, trusted) is None


def test_csrf_refuses_cross_site_and_tokenless_posts_with_a_403_page(tmp_path):
    app, _ = build(tmp_path)
    with Client(app) as client:
        page = client.http.get("/form")
        cookie, token = cookie_of(page.headers), token_of(page.body)
        other = client.http.get("/form")  # another visitor's session and token
        other_token = token_of(other.body)
        cases = [
            (
                f"csrf_token={token}",
                {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"},
            ),
            (f"csrf_token={token}", {"Sec-Fetch-Site": "same-site"}),
            ("message=x", {}),  # no token
            ("message=x&csrf_token=", {}),
            (f"csrf_token={other_token}", {}),  # a token from another session
            (f"csrf_token={token}x", {}),
        ]
        for fields, extra in cases:
            reply = form_post(client, "/flash", fields, cookie, extra)
            assert reply.status_code == 403, (fields, extra)
            assert b"<h1>403 Forbidden</h1>" in reply.body
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
        # The token alone without the session cookie is refused too.
        assert form_post(client, "/flash", f"csrf_token={token}", None).status_code == 403
        # The header form of the token, and the field form, pass.
        ok = form_post(client, "/flash", "message=a", cookie, {"X-CSRF-Token": token})
        assert ok.status_code == 303
        assert form_post(client, "/flash", f"csrf_token={token}", cookie).status_code == 303


def test_json_apis_keep_working_for_non_browser_clients(tmp_path):
    app, _ = build(tmp_path)
    with Client(app) as client:
        for method in ("POST", "PUT", "DELETE"):
            reply = client.http.request(
                method, "/api/items", headers={"Content-Type": "application/json"}, body=b'{"a": 1}'
            )
            assert reply.status_code == 200, method
        # A browser page on another site cannot post JSON to it either.
        evil = client.http.post(
            "/api/items",
            headers={"Content-Type": "application/json", "Origin": "https://evil.test"},
            body=b"{}",
        )
        assert evil.status_code == 403
        # A non-browser form post still needs the token when sessions are on.
        assert (
            client.http.post(
                "/api/items", headers={"Content-Type": "text/plain"}, body=b"{}"
            ).status_code
            == 403
        )


def test_exempt_routes_and_csrf_off(tmp_path):
    app, _ = build(tmp_path)
    cross = {"Content-Type": URLENCODED, "Origin": "https://evil.test"}
    with Client(app) as client:
        assert client.http.post("/hook", headers=cross, body=b"a=1").status_code == 200
    off, _ = build(tmp_path, csrf=False)
    with Client(off) as client:
        assert client.http.post("/flash", headers=cross, body=b"a=1").status_code == 303


# -- url_for ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "stage", "expected"),
    [
        ({"Host": "abc123.execute-api.us-east-1.amazonaws.com"}, "api", "/api/item/7"),
        ({"Host": "abc123.execute-api.cn-north-1.amazonaws.com.cn"}, "prod", "/prod/item/7"),
        (  # behind CloudFront: the origin path holds the stage
            {
                "Host": "abc123.execute-api.us-east-1.amazonaws.com",
                "X-Forwarded-Host": "d111.cloudfront.net",
            },
            "api",
            "/item/7",
        ),
        ({"Host": "www.example.com"}, "api", "/item/7"),  # a custom domain
        ({"Host": "127.0.0.1:8000"}, None, "/item/7"),  # chalice local
    ],
)
def test_url_for_is_right_behind_every_front_door(tmp_path, headers, stage, expected):
    app, _ = build(tmp_path)
    event = make_event(app, "GET", "/links", headers)
    if stage is None:
        del event["requestContext"]["stage"]
    else:
        event["requestContext"]["stage"] = stage
    body = deliver(app(event, lambda_context()), headers, app.api.binary_types).body
    assert body == f'<a href="{expected}">item</a>'.encode()


def test_url_for_params_query_and_errors(tmp_path):
    _app, cm = build(tmp_path)
    assert cm.url_for("item", item_id="a b/c", page=2, q=["x", "y"], none=None) == (
        "/item/a%20b%2Fc?page=2&q=x&q=y"
    )
    with pytest.raises(ValueError, match="no route"):
        cm.url_for("nope")
    with pytest.raises(ValueError, match="item_id"):
        cm.url_for("item")


def test_url_for_with_a_blueprint(tmp_path):
    app = Chalice(app_name="bp")
    blueprint = Blueprint(__name__)
    cm = ContentManager(str(tmp_path), str(tmp_path), app)

    @blueprint.route("/thing/{name}")
    def thing(name):
        return cm.json(cm.url_for("thing", name="x"))

    app.register_blueprint(blueprint, url_prefix="/bp")
    with Client(app) as client:
        assert json.loads(client.http.get("/bp/thing/y").body) == "/bp/thing/x"


# -- personal responses never reach another visitor --------------------------------------


def test_personal_pages_are_private_and_never_answered_304_from_the_page_cache(tmp_path):
    app, cm = build(tmp_path)
    with Client(app) as client:
        cookie = {"Cookie": "session=" + cookie_of(client.http.get("/counter").headers)}
        first = client.http.get("/public", headers=cookie)
        assert first.headers["Cache-Control"] == "private, no-store"
        assert "ETag" not in first.headers
        assert len(cm.pages) == 0
        again = client.http.get("/public", headers={**cookie, "If-None-Match": "*"})
        assert again.status_code == 200
        # Without a session cookie the empty session is anybody's: shared, never page-cached.
        anonymous = client.http.get("/public")
        assert anonymous.headers["Cache-Control"].startswith("public, max-age=0, s-maxage=0,")
        assert "ETag" in anonymous.headers
        assert len(cm.pages) == 0
        # A page that touches nothing personal is still shared (at the edge) and revalidated.
        links = client.http.get("/links", headers=cookie)
        assert links.headers["Cache-Control"].startswith("public, max-age=0, s-maxage=0,")
        assert "ETag" in links.headers


COOKIE_NAME = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True)
COOKIE_VALUE = st.from_regex(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,20}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_cookie_header_parses(header):
    cookies = parse_cookie_header(header)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cookies.items())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(COOKIE_NAME, COOKIE_VALUE, max_size=6))
def test_set_cookie_values_come_back_through_the_cookie_header(cookies):
    response = Response(body="")
    for name, value in cookies.items():
        set_cookie(response, name, value)
    lines = response.headers.get("Set-Cookie", [])
    header = "; ".join(line.split(";")[0] for line in lines)
    assert parse_cookie_header(header) == cookies
