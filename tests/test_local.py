"""`chalice local` as a subprocess on 127.0.0.1: the same bytes as the test client, the
site's forms, cookies and sessions, and forms without the ``multipart`` package."""

from __future__ import annotations

import http.client
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chalice.test import Client
from test_forms import multipart_body

from conftest import ROOT
from localserver import chalice_local
from sites import SECRET_KEY, build_app, write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("localproj") / "site", secret_key=SECRET_KEY)


@pytest.fixture(scope="module")
def server(project):
    with chalice_local(project, probe="/plain") as base:
        yield base


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def in_process(project):
    """The same app in this process, built by the same builder from the same folders."""
    folders = project / "chalicelib" / "templates", project / "chalicelib" / "static"
    app, _, _ = build_app(*folders, secret_key=SECRET_KEY)
    return app


CASES = [
    ("/", {"Accept": "text/html"}),
    ("/static/css/site.css", {}),
    ("/static/js/vendor/lib.mjs", {"Accept": "*/*"}),
    ("/static/data.bin", {"Accept": "text/html,*/*;q=0.8"}),
    ("/static/css/site.css", {"Accept-Encoding": "gzip"}),
    ("/static/data.bin", {"Range": "bytes=0-0"}),
    ("/plain", {}),
    ("/no/such/page", {"Accept": "text/html"}),
    ("/a/b/c/d/e/f", {"Accept": "text/html"}),
    ("/static/a/b/c/d/e/f/g/h.css", {}),
]


@pytest.mark.parametrize(("path", "headers"), CASES)
def test_chalice_local_matches_test_client(server, in_process, path, headers):
    status, response_headers, body = fetch(server + path, headers=headers)
    with Client(in_process) as client:
        expected = client.http.get(path, headers=headers)
    assert status == expected.status_code
    assert body == expected.body
    assert response_headers.get("ETag") == expected.headers.get("ETag")


def test_chalice_local_revalidation_and_head(server):
    status, headers, body = fetch(server + "/")
    assert status == 200 and b"<h1>Home &lt;&amp;&gt;</h1>" in body
    status, revalidated, body = fetch(server + "/", headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    assert revalidated["ETag"] == headers["ETag"]
    status, head_headers, body = fetch(server + "/static/css/site.css", method="HEAD")
    assert status == 200 and body == b""
    assert head_headers["Content-Type"] == "text/css; charset=utf-8"


def test_chalice_local_404_page_and_immutable_url(server, in_process):
    status, _, body = fetch(server + "/nope", headers={"Accept": "text/html"})
    assert status == 404 and b"Page not found" in body
    status, _, body = fetch(server + "/")
    url = body.split(b'href="')[1].split(b'"')[0].decode()
    status, headers, _ = fetch(server + url)
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"


DEEP = ["/a/b/c/d/e/f", "/a/b/c/d/e/f/g/h/i/j/k/l", "/static/a/b/c/d/e/f/g/h.css", "/x/y/z/"]


@pytest.mark.parametrize("path", DEEP)
def test_deep_unknown_paths_get_the_404_page_under_chalice_local(server, path):
    """Regression: deeper than the routes, chalice local answered API Gateway's 403
    "Missing Authentication Token"; deployed, the greedy ``{proxy+}`` route answers."""
    status, headers, body = fetch(server + path, headers={"Accept": "text/html"})
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<h1>Page not found</h1>" in body


@pytest.mark.parametrize("path", DEEP)
def test_deep_unknown_paths_get_the_404_page_in_the_test_client(in_process, path):
    with Client(in_process) as client:
        reply = client.http.get(path, headers={"Accept": "text/html"})
    assert reply.status_code == 404
    assert b"<h1>Page not found</h1>" in reply.body


def test_greedy_matching_keeps_exact_routes_first(in_process):
    """A route with as many segments as the path still wins over the greedy tail."""
    with Client(in_process) as client:
        assert client.http.get("/static/js/vendor/lib.mjs").status_code == 200
        assert client.http.get("/page/x").body.count(b"<h1>x</h1>") == 1
        missing = client.http.post("/a/b/c/d/e/f/g")  # no POST route: 405/403, not a page
        assert missing.status_code in (403, 405)


def test_an_apps_own_greedy_route_is_more_specific_than_the_404_tail(project):
    """As in API Gateway, /api/{proxy+} beats /{n0}/{n1}/{n2}/{n3}/{proxy+} for /api/..."""
    app, _, _ = build_app(project / "chalicelib" / "templates", project / "chalicelib" / "static")

    @app.route("/api/{proxy+}")
    def api():  # Chalice passes no greedy parameter; API Gateway names it "proxy"
        return {"proxy": app.current_request.uri_params["proxy"]}

    with Client(app) as client:
        reply = client.http.get("/api/a/b/c/d/e/f")
        assert (reply.status_code, reply.json_body) == (200, {"proxy": "a/b/c/d/e/f"})
        assert client.http.get("/apx/a/b/c/d/e/f").status_code == 404


# -- the site's forms, cookies and sessions ---------------------------------------------


def request(base: str, method: str, path: str, headers=None, body=None):
    """One request; returns status, the list of (name, value) header lines, and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(base).port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def test_upload_session_and_several_set_cookie_lines_under_chalice_local(server):
    status, headers, body = request(server, "GET", "/token")
    assert status == 200
    answer = json.loads(body)
    assert answer["url"] == "/upload"  # no stage prefix locally
    cookies = [value for name, value in headers if name.lower() == "set-cookie"]
    assert len(cookies) == 1 and cookies[0].startswith("session=")
    session = cookies[0].split(";")[0]
    data = bytes(range(256)) * 64
    form, content_type = multipart_body([("who", "Zoë")], [("photo", "p.png", "image/png", data)])
    status, headers, body = request(
        server,
        "POST",
        "/upload",
        {
            "Content-Type": content_type,
            "Cookie": session,
            "Origin": server,
            "X-CSRF-Token": answer["token"],
        },
        form,
    )
    assert status == 200, body
    assert json.loads(body) == {"size": len(data), "sum": sum(data), "who": "Zoë"}
    lines = [value for name, value in headers if name.lower() == "set-cookie"]
    assert sorted(line.split("=")[0] for line in lines) == ["extra", "session"]  # two lines
    assert dict(headers)["Cache-Control"] == "private, no-store"
    session = next(line for line in lines if line.startswith("session=")).split(";")[0]
    status, _, body = request(server, "GET", "/seen", {"Cookie": f"{session}; extra=1"})
    assert json.loads(body) == {"flashes": ["uploaded p.png"], "cookies": ["extra", "session"]}


def test_cross_origin_post_is_refused_under_chalice_local(server):
    form, content_type = multipart_body([("who", "x")], [("photo", "p.png", "image/png", b"x")])
    other = f"http://127.0.0.1:{urlsplit(server).port + 1}"
    headers = {"Content-Type": content_type, "Origin": other}
    status, _, body = request(server, "POST", "/upload", headers, form)
    assert status == 403 and b"cross-origin" in body


# -- forms without the multipart package (issue 25) -------------------------------------

# The project's Python cannot import multipart, as when requirements.txt lacks it.
NO_MULTIPART_APP = """
import sys

sys.modules["multipart"] = None

from chalice import Chalice
from chalicelib.chalice_http_toolkit import FORM_CONTENT_TYPES, ContentManager

app = Chalice(app_name="nomultipart")
cm = ContentManager("chalicelib", "chalicelib", app, secret_key="x" * 32, csrf=False)


@app.route("/plain")
def plain():
    return {"plain": True}


@app.route("/form", methods=["POST"], content_types=FORM_CONTENT_TYPES)
def form():
    return cm.json(dict(cm.form()))
"""


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    """A project without ``multipart`` served by ``chalice local``; its base URL and log."""
    root = tmp_path_factory.mktemp("nomultipart")
    (root / "chalicelib").mkdir()
    (root / "chalicelib" / "__init__.py").write_text("")
    shutil.copy(ROOT / "chalice_http_toolkit.py", root / "chalicelib" / "chalice_http_toolkit.py")
    (root / "app.py").write_text(NO_MULTIPART_APP)
    (root / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "nomultipart", "stages": {"dev": {}}}
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    log_path = root / "chalice-local.log"
    with chalice_local(root, probe="/plain", log_path=log_path) as base:
        yield base, log_path


def post_form(base: str, body: bytes, content_type: str):
    headers = {"Content-Type": content_type, "Origin": base}
    status, headers, page = request(base, "POST", "/form", headers, body)
    return status, dict(headers), page


def test_a_multipart_post_without_the_package_is_a_page_saying_what_to_install(bare_server):
    """Regression: a JSON 500 ("An internal server error occurred."), the hint in the log only."""
    base, log_path = bare_server
    body, content_type = multipart_body([("who", "Zoë")], [("f", "a.txt", "text/plain", b"x")])
    status, headers, page = post_form(base, body, content_type)
    assert status == 500
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"pip install multipart" in page and b"requirements.txt" in page
    assert "pip install multipart" in log_path.read_text()


def test_an_urlencoded_post_needs_no_package(bare_server):
    base, _ = bare_server
    status, _, body = post_form(base, b"who=Zo%C3%AB", "application/x-www-form-urlencoded")
    assert (status, json.loads(body)) == (200, {"who": "Zoë"})
