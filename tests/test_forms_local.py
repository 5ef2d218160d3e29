"""Forms, cookies, sessions and url_for under `chalice local` (a subprocess on 127.0.0.1)."""

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

APP = """
from chalice import Chalice
from chalicelib.chalice_http_toolkit import ContentManager, set_cookie

app = Chalice(app_name="formsite")
cm = ContentManager("chalicelib", "chalicelib", app, secret_key="local-test-key-0123456789abcdefg")


@app.route("/plain")
def plain():
    return {"plain": True}


@app.route("/token")
def token():
    return cm.json({"token": cm.csrf_token(), "url": cm.url_for("upload")})


@app.route("/upload", methods=["POST"], content_types=["multipart/form-data"])
def upload():
    form = cm.form()
    photo = form.files.get("photo")
    cm.flash("uploaded " + photo.filename)
    response = cm.json({"size": photo.size, "sum": sum(photo.data), "who": form.get("who")})
    set_cookie(response, "extra", "1")
    return response


@app.route("/seen")
def seen():
    return cm.json({"flashes": cm.get_flashed_messages(), "cookies": sorted(cm.cookies())})
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("formsproj")
    (root / "chalicelib").mkdir()
    (root / "chalicelib" / "__init__.py").write_text("")
    shutil.copy(ROOT / "chalice_http_toolkit.py", root / "chalicelib" / "chalice_http_toolkit.py")
    (root / "app.py").write_text(APP)
    (root / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "formsite", "stages": {"dev": {}}}
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    port = free_port()
    log_path = root / "chalice-local.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "chalice"),
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-autoreload",
            ],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=offline_env(),
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/plain", process, log_path)
        yield port
    finally:
        stop(process)


def request(port, method, path, headers=None, body=None):
    """One request; returns status, the list of (name, value) header lines, and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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
            "Origin": f"http://127.0.0.1:{server}",
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
    status, _, body = request(
        server,
        "POST",
        "/upload",
        {"Content-Type": content_type, "Origin": f"http://127.0.0.1:{server + 1}"},
        form,
    )
    assert status == 403 and b"cross-origin" in body
