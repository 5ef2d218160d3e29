"""`chalice local` as a subprocess on 127.0.0.1 sees the same bytes as the test client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chalice.test import Client

from conftest import ROOT, write_site
from localserver import free_port, stop, wait_until_serving

APP = """
import os
from chalice import Chalice
from chalicelib.chalice_http_toolkit import CloudFront, ContentManager

app = Chalice(app_name="localsite")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chalicelib")
cm = ContentManager(os.path.join(HERE, "templates"), os.path.join(HERE, "static"), app)
cm.set_static_handler_prefix("/static")
cf = CloudFront(cm, app)
cm.register_static_routes()


@app.route("/", methods=["GET", "HEAD"])
def index():
    return cf.template("index.html", title="Local", items=[1, 2])


@app.route("/plain")
def plain():
    return {"plain": True}


cm.register_not_found_routes("404.html")
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("localproj")
    chalicelib = root / "chalicelib"
    write_site(chalicelib)
    (chalicelib / "__init__.py").write_text("")
    shutil.copy(ROOT / "chalice_http_toolkit.py", chalicelib / "chalice_http_toolkit.py")
    (root / "app.py").write_text(APP)
    (root / ".chalice").mkdir()
    config = {
        "version": "2.0",
        "app_name": "localsite",
        "stages": {"dev": {"api_gateway_stage": "api"}},
    }
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    (root / "requirements.txt").write_text("")
    return root


@pytest.fixture(scope="module")
def server(project):
    port = free_port()
    chalice = Path(sys.executable).parent / "chalice"
    log_path = project / "chalice-local.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(chalice), "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + "/plain", process, log_path)
        yield base
    finally:
        stop(process)
        log.close()


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def in_process(project):
    sys.path.insert(0, str(project))
    try:
        import app as project_app

        yield project_app.app
    finally:
        sys.path.remove(str(project))
        for name in [n for n in sys.modules if n == "app" or n.startswith("chalicelib")]:
            del sys.modules[name]


CASES = [
    ("/", {"Accept": "text/html"}),
    ("/static/css/site.css", {}),
    ("/static/js/vendor/lib.mjs", {"Accept": "*/*"}),
    ("/static/data.bin", {"Accept": "text/html,*/*;q=0.8"}),
    ("/static/css/site.css", {"Accept-Encoding": "gzip"}),
    ("/static/data.bin", {"Range": "bytes=0-0"}),
    ("/plain", {}),
    ("/no/such/page", {"Accept": "text/html"}),
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
    assert status == 200 and b"<h1>Local</h1>" in body
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
