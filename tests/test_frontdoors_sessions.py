"""Forms, cookies and sessions through every front door (lambda_handler).

A site's interactive half must work behind a Function URL or an ALB as behind API
Gateway REST: the 2.0 ``cookies`` array becomes the request's Cookie header, each
``set_cookie`` becomes its own entry of the response's ``cookies`` (ALB: its own
``Set-Cookie`` value), and the CSRF check sees the viewer's host.
"""

from __future__ import annotations

import re

import pytest
from frontdoor_events import (
    FUNCTION_URL_HOST,
    alb_event,
    deliver_v2,
    form,
    v2_event,
)

from chalice_http_toolkit import lambda_handler

from sites import SECRET_KEY, build_app

ORIGIN = f"https://{FUNCTION_URL_HOST}"


@pytest.fixture
def handler(site):
    """The site's app with its interactive half (tests/sites.py ``add_forms``)."""
    app, _, _ = build_app(*site, secret_key=SECRET_KEY)
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

    body = form({"message": "hello Zo\u00eb", "csrf_token": token})
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": ORIGIN}
    posted = deliver_v2(
        handler(v2_event("POST", "/flash", headers, cookies=[session], body=body), None)
    )
    assert (posted.status, posted.headers["location"]) == (303, "/form")

    shown = deliver_v2(
        handler(v2_event("GET", "/form", cookies=[_session(posted.set_cookies)]), None)
    )
    assert "<p class=flash>hello Zoë</p>" in shown.body.decode()


def test_a_cross_site_post_through_a_function_url_is_refused(handler):
    page = deliver_v2(handler(v2_event("GET", "/form"), None))
    token = re.search(rb'value="([^"]+)"', page.body)[1].decode()
    body = form({"message": "x", "csrf_token": token})
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "origin": "https://attacker.example",
        "sec-fetch-site": "cross-site",
    }
    event = v2_event("POST", "/flash", headers, cookies=[_session(page.set_cookies)], body=body)
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
