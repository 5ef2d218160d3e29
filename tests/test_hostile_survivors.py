"""Regression tests for the bugs mutation testing slipped past the suite (issue 25).

``bench/mutants.py`` put one deliberate bug at a time into the CSRF, session, cookie,
privacy and limit code; each test here is named after a bug that survived every
other test, and fails with it in place.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from chalice import Response
from chalice.test import Client
from test_forms import multipart_body

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import cross_origin_refusal, ex_multipart, set_cookie

from apigw import lambda_context, make_event
from sites import SECRET_KEY, build_app, cookie_of, write_site

NEW_KEY = SECRET_KEY
OLD_KEY = "Zr8-pW3nQ5tY7uI9oP1aS2dF4gH6jK8lM0xCvB2n"


def build(tmp_path, **options):
    """The site's app (tests/sites.py, with its forms) and the routes these bugs need."""
    options.setdefault("secret_key", NEW_KEY)
    app, cm, _ = build_app(*write_site(tmp_path / "site"), **options)

    @app.route("/count")
    def count():
        cm.session["n"] = cm.session.get("n", 0) + 1
        return cm.json({"n": cm.session["n"]})

    @app.route("/peek")
    def peek():
        return cm.json({"n": cm.session.get("n")})

    @app.route("/thing", methods=["POST", "PUT", "PATCH", "DELETE"])
    def thing():
        return cm.json({"done": app.current_request.method})

    @app.route("/handmade/{case}")
    def handmade(case):
        name = {"lower": "set-cookie", "upper": "SET-COOKIE", "title": "Set-Cookie"}[case]
        headers = {name: "theme=dark; Path=/", "Cache-Control": "public, max-age=600"}
        return Response(body="x", headers={**headers, "ETag": '"v1"'})

    @app.route("/legacy", methods=["POST"], content_types=["multipart/form-data"])
    @toolkit.csrf_exempt
    def legacy():
        return cm.json({name: len(part["data"]) for name, part in ex_multipart(app).items()})

    return app, cm


def with_cookie(cookie: str) -> dict[str, str]:
    return {"Cookie": f"session={cookie}"}


# -- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://www.example.com.evil.test",
        "https://www.example.comx",
        "https://www.example.com:4430",
    ],
)
def test_an_origin_that_only_starts_with_the_host_is_cross_origin(origin):
    """Bug: the Origin's host compared as a prefix of the Host header."""
    assert cross_origin_refusal("POST", {"origin": origin, "host": "www.example.com"})


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_every_unsafe_method_is_refused_cross_site(tmp_path, method):
    """Bug: DELETE left out of the methods the CSRF check guards."""
    app, _ = build(tmp_path)
    cross_site = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"}
    with Client(app) as client:
        refused = client.http.request(method, "/thing", headers=cross_site)
        same = client.http.request(method, "/thing", headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 403
    assert (same.status_code, same.json_body) == (200, {"done": method})


# -- sessions --------------------------------------------------------------------------------


def test_a_session_cookie_from_the_future_is_refused(tmp_path, monkeypatch):
    """Bug: the timestamp's upper bound dropped; a cookie dated ahead lives past its max age."""
    app, _ = build(tmp_path)
    now = time.time()
    with Client(app) as client:
        monkeypatch.setattr(toolkit, "_now", lambda: now + 3600)
        ahead = cookie_of(client.http.get("/count").headers)
        monkeypatch.setattr(toolkit, "_now", lambda: now + 240)  # a clock a little fast
        skewed = cookie_of(client.http.get("/count").headers)
        monkeypatch.setattr(toolkit, "_now", lambda: now)
        assert client.http.get("/peek", headers=with_cookie(ahead)).json_body == {"n": None}
        assert client.http.get("/peek", headers=with_cookie(skewed)).json_body == {"n": 1}


def test_after_a_rotation_the_newest_key_signs(tmp_path):
    """Bug: the oldest key of the list signed, so dropping it logged everyone out."""
    rotated, _ = build(tmp_path, secret_key=[NEW_KEY, OLD_KEY])
    new_only, _ = build(tmp_path, secret_key=NEW_KEY)
    old_only, _ = build(tmp_path, secret_key=OLD_KEY)
    with Client(rotated) as client:
        cookie = cookie_of(client.http.get("/count").headers)
    with Client(new_only) as client:
        assert client.http.get("/peek", headers=with_cookie(cookie)).json_body == {"n": 1}
    with Client(old_only) as client:
        assert client.http.get("/peek", headers=with_cookie(cookie)).json_body == {"n": None}


def test_a_refused_session_cookie_is_deleted(tmp_path):
    """Bug: a tampered or foreign cookie was kept, and sent back on every request."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        good = cookie_of(client.http.get("/count").headers)
        payload, stamp, signature = good.split(".")
        for bad in ("garbage", f"{payload}.{stamp}.{signature[:-2]}AA", f"e30.{stamp}.{signature}"):
            reply = client.http.get("/peek", headers=with_cookie(bad))
            assert reply.json_body == {"n": None}
            cookies = reply.headers["Set-Cookie"]
            line = cookies[0] if isinstance(cookies, list) else cookies
            assert line.startswith("session=;") and "Max-Age=0" in line
        kept = client.http.get("/peek", headers=with_cookie(good))
        assert kept.json_body == {"n": 1} and "Set-Cookie" not in kept.headers


# -- cookies and privacy ------------------------------------------------------------------------


@pytest.mark.parametrize("samesite", ["None", "none", "NONE"])
@pytest.mark.parametrize("httponly", [True, False])
def test_samesite_none_without_secure_is_refused_whatever_httponly(samesite, httponly):
    """Bug: the check applied to HttpOnly cookies only."""
    with pytest.raises(ValueError, match="secure"):
        set_cookie(Response(body=""), "a", "1", samesite=samesite, secure=False, httponly=httponly)


@pytest.mark.parametrize("case", ["lower", "title", "upper"])
def test_a_hand_made_set_cookie_header_makes_the_response_private(tmp_path, case):
    """Bug: only ``Set-Cookie`` spelled so was seen; a lower-case one went out shared."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        reply = client.http.get(f"/handmade/{case}")
    assert reply.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in reply.headers


# -- limits ----------------------------------------------------------------------------------


def test_a_base64_body_over_the_form_limit_is_refused_before_decoding(tmp_path):
    """Bug: the base64 bound loosened, ``ex_multipart`` read a 7 MB body (limit 6 MB)."""
    app, _ = build(tmp_path, csrf=False)
    part = "x" * (3_500_000)
    body, content_type = multipart_body([("a", part), ("b", part)])
    event = make_event(app, "POST", "/legacy", {"Content-Type": content_type, "Accept": "*/*"})
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    result = app(event, lambda_context())
    assert result["statusCode"] == 413
    small, content_type = multipart_body([("a", "x" * 1000)])
    event["body"] = base64.b64encode(small).decode()
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    answer = app(event, lambda_context())
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"a": 1000}
