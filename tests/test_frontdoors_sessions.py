"""Forms, cookies and sessions through every front door (lambda_handler).

A site's interactive half must work behind a Function URL or an ALB as behind API
Gateway REST: the 2.0 ``cookies`` array becomes the request's Cookie header, each
``set_cookie`` becomes its own entry of the response's ``cookies`` (ALB: its own
``Set-Cookie`` value), and the CSRF check sees the viewer's host.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chalice import Chalice
from frontdoor_events import (
    FUNCTION_URL_HOST,
    alb_event,
    deliver_v2,
    form,
    v2_event,
)

from chalice_http_toolkit import CloudFront, ContentManager, lambda_handler, set_cookie

SECRET = "a test key that is long enough to sign sessions"
ORIGIN = f"https://{FUNCTION_URL_HOST}"


@pytest.fixture
def handler(tmp_path: Path):
    templates, static = tmp_path / "templates", tmp_path / "static"
    templates.mkdir()
    static.mkdir()
    (templates / "form.html").write_text(
        "{% for m in get_flashed_messages() %}<p>{{ m }}</p>{% endfor %}"
        '<input name="csrf_token" value="{{ csrf_token() }}">'
    )
    app = Chalice(app_name="doors")
    cm = ContentManager(str(templates), str(static), app, secret_key=SECRET)
    cf = CloudFront(cm, app)

    @app.route("/form", methods=["GET"])
    def show():
        return cf.template("form.html")

    @app.route("/form", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
    def post():
        cm.flash(f"hello {cm.form().get('name')}")
        return cm.redirect("/form", 303)

    @app.route("/two-cookies", methods=["GET"])
    def two_cookies():
        response = cm.html("<p>two</p>")
        set_cookie(response, "a", "1")
        return set_cookie(response, "b", "2", httponly=False)

    return lambda_handler(app)


def _session(set_cookies: list[str]) -> str:
    [session] = [c.split(";")[0] for c in set_cookies if c.startswith("session=")]
    return session


def test_a_form_post_with_its_session_through_a_function_url(handler):
    page = deliver_v2(handler(v2_event("GET", "/form"), None))
    assert page.status == 200 and page.headers["cache-control"] == "private, no-store"
    assert "set-cookie" not in page.headers  # cookies travel in the 2.0 cookies array
    session = _session(page.set_cookies)
    token = re.search(rb'value="([^"]+)"', page.body)[1].decode()

    body = form({"name": "Zo\u00eb", "csrf_token": token})
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": ORIGIN}
    posted = deliver_v2(
        handler(v2_event("POST", "/form", headers, cookies=[session], body=body), None)
    )
    assert (posted.status, posted.headers["location"]) == (303, "/form")

    shown = deliver_v2(
        handler(v2_event("GET", "/form", cookies=[_session(posted.set_cookies)]), None)
    )
    assert "<p>hello Zoë</p>" in shown.body.decode()


def test_a_cross_site_post_through_a_function_url_is_refused(handler):
    page = deliver_v2(handler(v2_event("GET", "/form"), None))
    token = re.search(rb'value="([^"]+)"', page.body)[1].decode()
    body = form({"name": "x", "csrf_token": token})
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "origin": "https://attacker.example",
        "sec-fetch-site": "cross-site",
    }
    event = v2_event("POST", "/form", headers, cookies=[_session(page.set_cookies)], body=body)
    assert deliver_v2(handler(event, None)).status == 403


def test_each_cookie_is_its_own_entry_through_a_function_url(handler):
    delivered = deliver_v2(handler(v2_event("GET", "/two-cookies"), None))
    assert [c.split(";")[0] for c in delivered.set_cookies] == ["a=1", "b=2"]
    assert "HttpOnly" in delivered.set_cookies[0] and "HttpOnly" not in delivered.set_cookies[1]


def test_each_cookie_is_its_own_set_cookie_through_an_alb(handler):
    result = handler(alb_event("GET", "/two-cookies", multi_value=True), None)
    headers = {name.lower(): values for name, values in result["multiValueHeaders"].items()}
    assert [c.split(";")[0] for c in headers["set-cookie"]] == ["a=1", "b=2"]


def test_an_alb_without_multi_value_headers_keeps_one_cookie_and_says_so(handler, caplog):
    result = handler(alb_event("GET", "/two-cookies"), None)
    assert [n for n in result["headers"] if n.lower() == "set-cookie"] == ["Set-Cookie"]
    assert "multi_value_headers.enabled" in caplog.text
