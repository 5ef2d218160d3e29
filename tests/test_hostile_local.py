"""Forms without the ``multipart`` package, under a real ``chalice local`` (issue 25)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_forms import multipart_body

from conftest import ROOT
from localserver import free_port, offline_env, stop, wait_until_serving

# The project's Python cannot import multipart, as when requirements.txt lacks it.
APP = """
import sys

sys.modules["multipart"] = None

from chalice import Chalice
from chalicelib.chalice_http_toolkit import FORM_CONTENT_TYPES, ContentManager

app = Chalice(app_name="nomultipart")
cm = ContentManager(
    "chalicelib",
    "chalicelib",
    app,
    secret_key="k7Qx2-Lm9vRt4YbN8cWz1Hs6JdPf3GaE0uKo5iXq",
    csrf=False,  # this app is about packages; tests/test_forms_local.py covers CSRF
)


@app.route("/plain")
def plain():
    return {"plain": True}


@app.route("/form", methods=["POST"], content_types=FORM_CONTENT_TYPES)
def form():
    return cm.json(dict(cm.form()))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("nomultipart")
    (root / "chalicelib").mkdir()
    (root / "chalicelib" / "__init__.py").write_text("")
    shutil.copy(ROOT / "chalice_http_toolkit.py", root / "chalicelib" / "chalice_http_toolkit.py")
    (root / "app.py").write_text(APP)
    (root / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "nomultipart", "stages": {"dev": {}}}
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    port = free_port()
    log_path = root / "chalice-local.log"
    command = [str(Path(sys.executable).parent / "chalice"), "local", "--host", "127.0.0.1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--no-autoreload"],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=offline_env(),
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/plain", process, log_path)
        yield port, log_path
    finally:
        stop(process)


def post(port: int, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": content_type, "Origin": f"http://127.0.0.1:{port}"}
        connection.request("POST", "/form", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_a_multipart_post_without_the_package_is_a_page_saying_what_to_install(server):
    """Regression: a JSON 500 ("An internal server error occurred."), the hint in the log only."""
    port, log_path = server
    body, content_type = multipart_body([("who", "Zoë")], [("f", "a.txt", "text/plain", b"x")])
    status, headers, page = post(port, body, content_type)
    assert status == 500
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"pip install multipart" in page and b"requirements.txt" in page
    assert "pip install multipart" in log_path.read_text()


def test_an_urlencoded_post_needs_no_package(server):
    port, _ = server
    status, _, body = post(port, b"who=Zo%C3%AB", "application/x-www-form-urlencoded")
    assert (status, json.loads(body)) == (200, {"who": "Zoë"})
