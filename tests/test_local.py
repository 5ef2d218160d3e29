"""`chalice local` as a subprocess on 127.0.0.1 sees the same bytes as the test client."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chalice.test import Client

from localserver import chalice_local
from sites import build_app, write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("localproj") / "site")


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
    app, _, _ = build_app(project / "chalicelib" / "templates", project / "chalicelib" / "static")
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
