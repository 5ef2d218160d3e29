"""Sessions, flash, CSRF and privacy attacked as a stranger would (issue 25).

Pins behaviours that deliberate one-line bugs slipped past: a CSRF token cut
short, a session-reading request answered 304; and the session's size as
browsers count it, the oversized flash, login rotation and logout.
"""

from __future__ import annotations

import logging
import re

import pytest
from chalice.test import Client

from chalice_http_toolkit import SESSION_COOKIE_LIMIT

from sites import SECRET_KEY, URLENCODED, build_app, cookie_of, token_of, write_site

SAME_ORIGIN = {"Host": "www.example.com", "Origin": "https://www.example.com"}


def build(tmp_path, **options):
    """The site's app with its interactive half (tests/sites.py ``add_forms``)."""
    options.setdefault("secret_key", SECRET_KEY)
    app, cm, _ = build_app(*write_site(tmp_path / "site"), **options)
    return app, cm


def post(client, path, body, cookie, name="session"):
    headers = {"Content-Type": URLENCODED, **SAME_ORIGIN}
    if cookie is not None:
        headers["Cookie"] = f"{name}={cookie}"
    return client.http.post(path, headers=headers, body=body)


# -- CSRF: only the whole token of this session passes ---------------------------------------


def test_a_csrf_token_cut_short_or_changed_is_refused(tmp_path):
    """Regression: a CSRF check that compared a prefix accepted the token's first character."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        page = client.http.get("/form")
        cookie, token = cookie_of(page.headers), token_of(page.body)
        other = client.http.get("/form")
        forged = [
            token[:1],
            token[:-1],
            token + "A",
            token[1:],
            token.upper() if token.upper() != token else token.lower(),
            token_of(other.body),  # another visitor's
            " " + token,
        ]
        for candidate in forged:
            refused = post(client, "/flash", f"csrf_token={candidate}&message=hi", cookie)
            assert refused.status_code == 403, candidate
        for candidate in (token + "%00", "%00" + token):  # never reaches the comparison
            refused = post(client, "/flash", f"csrf_token={candidate}&message=hi", cookie)
            assert refused.status_code == 400, candidate
        header = {"Content-Type": URLENCODED, **SAME_ORIGIN, "Cookie": f"session={cookie}"}
        for candidate in (token[:1], token[:-1], "\udc80" + token[1:]):
            refused = client.http.post(
                "/flash", headers={**header, "X-CSRF-Token": candidate}, body="message=hi"
            )
            assert refused.status_code == 403, candidate
        accepted = post(client, "/flash", f"csrf_token={token}&message=hi", cookie)
        assert accepted.status_code == 303


# -- privacy: a session-reading request is never answered 304 ----------------------------


@pytest.mark.parametrize(
    ("path", "public_path"), [("/personal", "/"), ("/personal-asset", "/asset")]
)
def test_a_session_reading_request_is_never_answered_304(tmp_path, path, public_path):
    """Regression: a request that read the session, with a matching If-None-Match, got a 304."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        shared = client.http.get(public_path)
        etag = shared.headers["ETag"]
        assert client.http.get(public_path, headers={"If-None-Match": etag}).status_code == 304
        session = cookie_of(client.http.get("/form").headers)  # a visitor with a session
        for if_none_match in (etag, "*", f'"other", {etag}', etag.replace('"', 'W/"', 1)):
            headers = {"If-None-Match": if_none_match, "Cookie": f"session={session}"}
            got = client.http.get(path, headers=headers)
            assert got.status_code == 200, if_none_match
            assert got.headers["Cache-Control"] == "private, no-store"
            assert "ETag" not in got.headers and got.body


# -- size as browsers count it -----------------------------------------------------------


@pytest.mark.parametrize("name", ["session", "a_much_longer_name_for_the_session_cookie"])
def test_every_session_cookie_sent_fits_in_what_browsers_keep(tmp_path, name):
    """Regression: 4,090-4,093-byte values were sent; with the name, Chromium dropped them."""
    app, _ = build(tmp_path, session_cookie=name)
    largest = 0
    with Client(app) as client:
        for size in range(2950, 3080):
            got = client.http.get(f"/fill/{size}")
            cookie = cookie_of(got.headers, name)
            if got.json_body["error"] is None:
                assert cookie is not None
                total = len(name) + len(cookie)
                assert total <= SESSION_COOKIE_LIMIT == 4096
                largest = max(largest, total)
            else:
                assert cookie is None and "4096" in got.json_body["error"]
    assert largest > 4096 - 4  # the limit is used, not undercut


def test_an_oversized_flash_gives_the_page_without_it_not_a_500(tmp_path, caplog):
    """Regression: a 3,000-character name flashed back was a SessionTooLargeError, a 500."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        page = client.http.get("/form")
        cookie, token = cookie_of(page.headers), token_of(page.body)
        with caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
            posted = post(
                client,
                "/flash",
                f"csrf_token={token}&message={'n' * 3000}&message=short&message={'é' * 1200}",
                cookie,
            )
        assert posted.status_code == 303
        assert caplog.text.count("flash message dropped") == 2
        cookie = cookie_of(posted.headers)
        assert len("session") + len(cookie) <= 4096
        shown = client.http.get("/form", headers={"Cookie": f"session={cookie}"})
        assert shown.status_code == 200
        assert re.findall(rb"<p class=message>([^<]*)</p>", shown.body) == [b"short"]
        assert token_of(shown.body) == token  # the rest of the session is intact


def test_session_values_other_than_flashes_still_raise_where_they_are_set(tmp_path):
    app, _ = build(tmp_path)
    with Client(app) as client:
        assert "browsers keep" in client.http.get("/fill/4000").json_body["error"]


# -- login and logout ---------------------------------------------------------------------


def test_login_regenerates_the_session_and_its_csrf_token(tmp_path):
    """A session cookie planted before the login (and its CSRF token) is worthless after it."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        planted = client.http.get("/form")  # the attacker's own visit
        cookie, token = cookie_of(planted.headers), token_of(planted.body)
        logged_in = post(client, "/login", f"csrf_token={token}&user=ada", cookie)
        assert logged_in.status_code == 303
        session = cookie_of(logged_in.headers)
        page = client.http.get("/form", headers={"Cookie": f"session={session}"})
        assert token_of(page.body) != token
        stale = post(client, "/flash", f"csrf_token={token}&message=x", session)
        assert stale.status_code == 403
        fresh = post(client, "/flash", f"csrf_token={token_of(page.body)}&message=x", session)
        assert fresh.status_code == 303


def test_a_per_user_generation_revokes_cookies_issued_before_a_logout(tmp_path):
    """The scheme docs/security.md describes: a copied cookie dies at the logout."""
    app, _ = build(tmp_path)
    with Client(app) as client:
        page = client.http.get("/form")
        logged_in = post(
            client, "/login", f"csrf_token={token_of(page.body)}&user=ada", cookie_of(page.headers)
        )
        session = cookie_of(logged_in.headers)
        stolen = session  # a copy, e.g. from a shared computer
        assert client.http.get("/me", headers={"Cookie": f"session={stolen}"}).json_body == {
            "user": "ada"
        }
        page = client.http.get("/form", headers={"Cookie": f"session={session}"})
        out = post(
            client,
            "/logout",
            f"csrf_token={token_of(page.body)}",
            cookie_of(page.headers) or session,
        )
        assert out.status_code == 303
        assert client.http.get("/me", headers={"Cookie": f"session={stolen}"}).json_body == {
            "user": None
        }
