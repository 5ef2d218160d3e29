"""The scaffold's contact page in Chromium: a form post, a flash after the redirect, the
session cookie's flags, an upload round trip and a cross-site post refused (issue 15)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from typing import Callable

import pytest

from .browsing import Site, Tab
from localserver import free_port

pytestmark = pytest.mark.e2e

OpenTab = Callable[..., Tab]


def contact(tab: Tab, site: Site) -> None:
    response = tab.page.goto(site.base_url + "/contact", wait_until="networkidle")
    assert response is not None and response.status == 200
    assert response.headers["cache-control"] == "private, no-store"


def test_contact_form_flash_upload_and_cookie_flags(open_tab: OpenTab, site: Site) -> None:
    tab = open_tab()
    page = tab.page
    contact(tab, site)
    # Invalid: the page comes back with the messages and what was typed.
    page.fill("input[name=name]", "Zoë")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == site.base_url + "/contact"
    assert page.inner_text("#email-error") == "Please give an email address we can answer."
    assert page.input_value("input[name=name]") == "Zoë"
    # Valid, with a file: the 303 leads back to the page, which shows the flash once.
    data = bytes(range(256)) * 300 + "é✓".encode()
    page.fill("input[name=email]", "zoe@example.com")
    page.fill("textarea[name=message]", "Bonjour ✓")
    page.set_input_files(
        "input[name=attachment]",
        files=[{"name": "notes.bin", "mimeType": "application/octet-stream", "buffer": data}],
    )
    with page.expect_navigation():
        page.click("button[type=submit]")
    flash = page.inner_text(".flash.success")
    digest = hashlib.sha256(data).hexdigest()[:16]
    assert flash.startswith("Thank you, Zoë")
    assert f"notes.bin ({len(data)} bytes, {digest})" in flash  # the upload, byte for byte
    statuses = [(r.request.method, r.status) for r in tab.responses if r.url.endswith("/contact")]
    assert statuses[-2:] == [("POST", 303), ("GET", 200)]
    # The session cookie: HttpOnly, Secure, SameSite=Lax, scoped to the whole site.
    [cookie] = [c for c in tab.context.cookies() if c["name"] == "session"]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (
        True,
        True,
        "Lax",
        "/",
    )
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    # Back and forth: the page is fetched again (no-store), and the flash does not come back.
    page.goto(site.base_url + "/", wait_until="networkidle")
    before = len(tab.responses)
    page.go_back(wait_until="networkidle")
    again = [r for r in tab.responses[before:] if r.url == site.base_url + "/contact"]
    assert again and again[-1].status == 200
    assert page.query_selector(".flash") is None
    # The only console message: Chromium reports the 422 of the invalid post.
    assert ["422" in error for error in tab.console_errors] == [True]


def test_another_visitor_never_sees_the_first_ones_page(open_tab: OpenTab, site: Site) -> None:
    first, second = open_tab(), open_tab()
    contact(first, site)
    first.page.fill("input[name=name]", "Alice")
    first.page.fill("input[name=email]", "alice@example.com")
    first.page.fill("textarea[name=message]", "Hi")
    with first.page.expect_navigation():
        first.page.click("button[type=submit]")
    assert "Alice" in first.page.inner_text(".flash")
    contact(second, site)
    second.page.go_back(wait_until="networkidle")
    second.page.go_forward(wait_until="networkidle")
    assert "Alice" not in second.page.content()
    first_token = first.page.input_value("input[name=csrf_token]")
    assert second.page.input_value("input[name=csrf_token]") != first_token


EVIL_PAGE = """<!doctype html><title>another site</title>
<form method="post" action="%(target)s/contact">
  <input name="csrf_token" value="guessed"><input name="name" value="Mallory">
  <input name="email" value="m@evil.test"><input name="message" value="pwned">
  <button type="submit">Win a prize</button>
</form>"""


@pytest.fixture
def other_site(site: Site) -> Iterator[str]:
    """A page on another 127.0.0.1 port with a form that posts to the site."""
    page = (EVIL_PAGE % {"target": site.base_url}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cross_site_post_is_refused(open_tab: OpenTab, site: Site, other_site: str) -> None:
    tab = open_tab()
    contact(tab, site)  # the visitor has a session: its cookie goes along (same site, Lax)
    offset = site.log_offset()
    tab.page.goto(other_site, wait_until="networkidle")
    with tab.page.expect_response(site.base_url + "/contact") as answer:
        tab.page.click("button[type=submit]")
    assert answer.value.status == 403
    assert "refused" in answer.value.text()
    assert ("POST", "/contact", 403) in site.hits_since(offset)
