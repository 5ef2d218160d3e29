"""examples/blog: one behavioural suite, run against the Flask site and the toolkit site.

A small browser drives each site through HTTP requests only: it keeps cookies, reads
the pages, fills in the forms it finds (hidden fields included) and follows redirects.
What it asserts is what a visitor sees; nothing here knows which site it is talking to
(issue 24: the proof that Flask code carries over, and the guide for moving a site).
"""

from __future__ import annotations

import contextlib
import html.parser
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

import pytest

from conftest import ROOT
from sites import imported_project

BLOG = ROOT / "examples" / "blog"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PASSWORD = "correct horse battery"

#: (method, path, headers, body) -> (status, [(header, value)], body)
Send = Callable[[str, str, dict[str, str], bytes], tuple[int, list[tuple[str, str]], bytes]]


class Page(NamedTuple):
    status: int
    location: str | None
    text: str

    def messages(self) -> list[str]:
        return [strip(m) for m in re.findall(r'<p class="message">(.*?)</p>', self.text, re.S)]

    def headings(self) -> list[str]:
        return [strip(h) for h in re.findall(r"<h[12]>(.*?)</h[12]>", self.text, re.S)]

    def links(self) -> dict[str, str]:
        found = re.findall(r'<a href="([^"]*)">(.*?)</a>', self.text, re.S)
        return {strip(text): href for href, text in found}

    def signed_in_as(self) -> str | None:
        found = re.search(r'<span class="writer">(.*?)</span>', self.text)
        return strip(found.group(1)) if found else None


def strip(text: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


class Form(NamedTuple):
    action: str | None
    fields: dict[str, str]


class _Forms(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form" and (values.get("method") or "").lower() == "post":
            self.forms.append(Form(values.get("action"), {}))
        elif tag in ("input", "textarea") and self.forms and values.get("name"):
            self.forms[-1].fields[values["name"]] = values.get("value") or ""


class Browser:
    """Cookies, forms and redirects, as a browser has them; ``send`` reaches the site."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, fields: dict[str, str] | None = None) -> Page:
        headers = {"Accept": BROWSER_ACCEPT, "Host": "localhost"}
        body = b""
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if fields is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = "http://localhost"
            headers["Sec-Fetch-Site"] = "same-origin"
            body = urlencode(fields).encode()
        status, pairs, data = self.send(method, path, headers, body)
        location = None
        for name, value in pairs:
            if name.lower() == "set-cookie":
                self._keep(value)
            elif name.lower() == "location":
                location = urlsplit(value).path or "/"
        return Page(status, location, data.decode("utf-8"))

    def _keep(self, set_cookie: str) -> None:
        pair, _, attributes = set_cookie.partition(";")
        name, _, value = pair.strip().partition("=")
        if not value or re.search(r"max-age=0\b", attributes, re.I):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def get(self, path: str) -> Page:
        return self.request("GET", path)

    def follow(self, page: Page) -> Page:
        """The page a redirect leads to (the browser GETs it), or ``page`` itself."""
        while page.status in (301, 302, 303, 307, 308):
            page = self.get(page.location)
        return page

    def forms(self, page: Page) -> list[Form]:
        parser = _Forms()
        parser.feed(page.text)
        return parser.forms

    def submit(self, path: str, action: str | None = None, **fields: str) -> Page:
        """Open ``path``, fill in its first post form that has ``fields`` (and posts to
        ``action``, when given) and send it, hidden fields included."""
        page = self.get(path)
        assert page.status == 200, (path, page)
        found = next(
            form
            for form in self.forms(page)
            if set(fields) <= set(form.fields) and action in (None, form.action)
        )
        return self.request("POST", found.action or path, {**found.fields, **fields})


# -- the two sites ------------------------------------------------------------------


def flask_send(tmp_path: Path) -> Iterator[Send]:
    sys.path.insert(0, str(BLOG / "flask_site"))
    try:
        from fieldnotes import create_app

        app = create_app({"DATABASE": str(tmp_path / "flask.sqlite3"), "TESTING": True})
        client = app.test_client(use_cookies=False)

        def send(method, path, headers, body):
            response = client.open(path, method=method, headers=headers, data=body)
            return response.status_code, list(response.headers.items()), response.get_data()

        yield send
    finally:
        sys.path.remove(str(BLOG / "flask_site"))
        for name in [n for n in sys.modules if n.split(".")[0] == "fieldnotes"]:
            del sys.modules[name]


def toolkit_send(tmp_path: Path, monkeypatch) -> Iterator[Send]:
    from chalice.test import Client

    monkeypatch.setenv("FIELDNOTES_DATABASE", str(tmp_path / "toolkit.sqlite3"))
    with imported_project(BLOG / "toolkit_site") as project, Client(project.app) as client:

        def send(method, path, headers, body):
            response = client.http.request(method, path, headers=headers, body=body)
            pairs = []
            for name, value in response.headers.items():
                values = value if isinstance(value, list) else [value]
                pairs.extend((name, item) for item in values)
            return response.status_code, pairs, response.body

        yield send


@pytest.fixture(params=["flask", "toolkit"])
def browser(request, tmp_path, monkeypatch) -> Iterator[Browser]:
    if request.param == "flask":
        sends = flask_send(tmp_path)
    else:
        sends = toolkit_send(tmp_path, monkeypatch)
    yield Browser(next(sends))
    sends.close()


def join_and_sign_in(browser: Browser, name: str) -> Page:
    browser.follow(browser.submit("/account/join", name=name, password=PASSWORD))
    return browser.follow(browser.submit("/account/sign-in", name=name, password=PASSWORD))


# -- the suite --------------------------------------------------------------------


def test_a_visitor_sees_the_empty_site_and_the_way_in(browser):
    page = browser.get("/")
    assert page.status == 200
    assert "No notes yet." in page.text
    assert page.links()["Join"] == "/account/join"
    assert page.links()["Sign in"] == "/account/sign-in"
    assert page.signed_in_as() is None


def test_joining_then_signing_in(browser):
    joined = browser.submit("/account/join", name="ann", password=PASSWORD)
    assert joined.status in (302, 303) and joined.location == "/account/sign-in"
    sign_in = browser.follow(joined)
    assert sign_in.messages() == ["Welcome, ann: sign in to write notes."]
    home = browser.submit("/account/sign-in", name="ann", password=PASSWORD)
    assert home.status in (302, 303) and home.location == "/"
    home = browser.follow(home)
    assert home.signed_in_as() == "ann"
    assert home.links()["Write a note"] == "/new"


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("", PASSWORD, "Choose a name."),
        ("bob", "short", "Choose a password of at least 8 characters."),
        ("ann", PASSWORD, "The name ann is taken."),
    ],
)
def test_joining_refuses_what_it_cannot_keep(browser, name, password, message):
    browser.follow(browser.submit("/account/join", name="ann", password=PASSWORD))
    page = browser.submit("/account/join", name=name, password=password)
    assert page.status == 200
    assert page.messages() == [message]
    assert page.headings()[-1] == "Join"


@pytest.mark.parametrize(("name", "password"), [("ann", "wrong password"), ("nobody", PASSWORD)])
def test_signing_in_with_a_wrong_name_or_password(browser, name, password):
    browser.follow(browser.submit("/account/join", name="ann", password=PASSWORD))
    page = browser.submit("/account/sign-in", name=name, password=password)
    assert page.status == 200
    assert page.messages() == ["That name and password do not match."]
    assert page.signed_in_as() is None


def test_signing_out(browser):
    home = join_and_sign_in(browser, "ann")
    assert home.signed_in_as() == "ann"
    out = browser.submit("/", action="/account/sign-out")
    assert out.status in (302, 303) and out.location == "/"
    assert browser.follow(out).signed_in_as() is None
    assert browser.get("/new").status in (302, 303)


def test_writing_needs_signing_in(browser):
    for path in ("/new", "/1/edit"):
        page = browser.get(path)
        assert page.status in (302, 303) and page.location == "/account/sign-in", path


def test_writing_a_note(browser):
    join_and_sign_in(browser, "ann")
    written = browser.submit("/new", heading="Tides", text="High water at 6 <am>.")
    assert written.status in (302, 303) and written.location == "/"
    home = browser.follow(written)
    assert "Tides" in home.headings()
    assert "by ann, " in home.text
    assert "High water at 6 &lt;am&gt;." in home.text  # escaped
    assert home.links()["Edit “Tides”"] == "/1/edit"


def test_a_note_needs_a_heading(browser):
    join_and_sign_in(browser, "ann")
    page = browser.submit("/new", heading="  ", text="no heading")
    assert page.status == 200
    assert page.messages() == ["A note needs a heading."]
    assert "no heading</textarea>" in page.text  # what was typed stays in the form
    assert "No notes yet." in browser.get("/").text


def test_changing_and_deleting_ones_own_note(browser):
    join_and_sign_in(browser, "ann")
    browser.submit("/new", heading="Tides", text="first")
    changed = browser.follow(browser.submit("/1/edit", heading="Tides, revised", text="second"))
    assert "Tides, revised" in changed.headings() and "second" in changed.text
    refused = browser.submit("/1/edit", heading="", text="third")
    assert refused.status == 200 and refused.messages() == ["A note needs a heading."]
    deleted = browser.submit("/1/edit", action="/1/delete")
    assert deleted.status in (302, 303) and deleted.location == "/"
    home = browser.follow(deleted)
    assert home.messages() == ["Deleted “Tides, revised”."]
    assert "No notes yet." in home.text


def test_another_writers_note_is_403(browser):
    join_and_sign_in(browser, "ann")
    browser.submit("/new", heading="Ann's", text="mine")
    browser.submit("/", action="/account/sign-out")
    home = join_and_sign_in(browser, "bob")
    assert "Ann's" in home.headings() and "Edit “Ann's”" not in home.links()
    page = browser.get("/1/edit")
    assert page.status == 403
    assert page.headings()[-1] == "403 Forbidden"
    token = {"csrf_token": browser.forms(home)[0].fields.get("csrf_token", "")}
    assert browser.request("POST", "/1/delete", token).status == 403
    assert browser.request("POST", "/1/edit", {**token, "heading": "x", "text": "y"}).status == 403
    assert "Ann's" in browser.get("/").headings()


def test_a_note_that_does_not_exist_is_404(browser):
    join_and_sign_in(browser, "ann")
    page = browser.get("/99/edit")
    assert page.status == 404
    assert page.headings()[-1] == "404 Not Found"
    assert "There is no note 99." in page.text


@pytest.mark.parametrize("path", ["/nowhere", "/1/nowhere", "/a/b/c/d/e/f", "/account/x"])
def test_an_unknown_url_is_the_404_page(browser, path):
    page = browser.get(path)
    assert page.status == 404
    assert page.headings()[-1] == "404 Not Found"


def test_a_form_without_a_field_is_400(browser):
    [form] = browser.forms(browser.get("/account/join"))
    fields = {name: value for name, value in form.fields.items() if name != "password"}
    page = browser.request("POST", "/account/join", {**fields, "name": "ann"})
    assert page.status == 400
    assert browser.submit("/account/sign-in", name="ann", password=PASSWORD).status == 200


def test_head_is_get_without_the_body(browser):
    page = browser.request("HEAD", "/")
    assert (page.status, page.text) == (200, "")
    assert browser.request("HEAD", "/nowhere").status == 404


# -- the toolkit site under `chalice local` ---------------------------------------------


def test_the_toolkit_site_under_chalice_local(tmp_path):
    """HEAD and the 404 page through the real local server too (not only the test client)."""
    import shutil
    import urllib.error
    import urllib.request

    from localserver import chalice_local

    project = tmp_path / "toolkit_site"
    shutil.copytree(BLOG / "toolkit_site", project)  # the module's symlink becomes a copy
    database = str(tmp_path / "local.sqlite3")

    def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, method=method, headers={"Accept": BROWSER_ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    with contextlib.ExitStack() as stack:
        base = stack.enter_context(chalice_local(project, FIELDNOTES_DATABASE=database))
        get = fetch(base + "/")
        head = fetch(base + "/", "HEAD")
        missing = fetch(base + "/a/b/c/d/e/f/g")
    assert get[0] == 200 and b"No notes yet." in get[2]
    assert (head[0], head[2]) == (200, b"")
    assert head[1]["Content-Type"] == get[1]["Content-Type"] == "text/html; charset=utf-8"
    assert missing[0] == 404 and b"<h1>404 Not Found</h1>" in missing[2]
