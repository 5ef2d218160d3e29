"""The example of docs/forms.md ("Forms, cookies and sessions") runs as written (issue 15),
with a SECRET_KEY and, under `chalice local` and in tests, without one."""

from __future__ import annotations

import json
import re
import sys
import types

import pytest
from chalice.test import Client
from test_forms import multipart_body

import chalice_http_toolkit

from conftest import ROOT


def section_blocks() -> dict[str, list[str]]:
    section = (ROOT / "docs" / "forms.md").read_text()
    blocks: dict[str, list[str]] = {}
    for language, code in re.findall(r"```([\w+-]+)\n(.*?)```", section, re.S):
        blocks.setdefault(language, []).append(code)
    return blocks


@pytest.mark.parametrize("secret_key", ["readme-example-key", None])
def test_the_readme_example_runs(tmp_path, monkeypatch, secret_key):
    """Regression (None): without SECRET_KEY the example stopped with a KeyError at import."""
    blocks = section_blocks()
    app_code, template = blocks["python"][0], blocks["html+jinja"][0]
    (tmp_path / "chalicelib" / "templates").mkdir(parents=True)
    (tmp_path / "chalicelib" / "static").mkdir()
    (tmp_path / "chalicelib" / "templates" / "contact.html").write_text(template)
    package = types.ModuleType("chalicelib")
    package.chalice_http_toolkit = chalice_http_toolkit
    monkeypatch.setitem(sys.modules, "chalicelib", package)
    monkeypatch.setitem(sys.modules, "chalicelib.chalice_http_toolkit", chalice_http_toolkit)
    if secret_key is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret_key)
    namespace = {"__file__": str(tmp_path / "app.py"), "__name__": "readme_app"}
    exec(compile(app_code, "README.md", "exec"), namespace)
    app = namespace["app"]
    same = {"Host": "www.example.com", "Origin": "https://www.example.com"}
    with Client(app) as client:
        page = client.http.get("/contact")
        cookie = page.headers["Set-Cookie"][0].split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.body).group(1).decode()
        fields = [("csrf_token", token), ("name", ""), ("topic", "sales")]
        body, content_type = multipart_body(fields)
        headers = {**same, "Cookie": cookie, "Content-Type": content_type}
        invalid = client.http.post("/contact", headers=headers, body=body)
        assert invalid.status_code == 422 and b"Please tell us your name." in invalid.body
        fields[1] = ("name", "Zoë")
        body, content_type = multipart_body(
            fields, [("attachment", "a.txt", "text/plain", b"12345")]
        )
        headers["Content-Type"] = content_type
        sent = client.http.post("/contact", headers=headers, body=body)
        assert (sent.status_code, sent.headers["Location"]) == (303, "/contact")
        cookie = sent.headers["Set-Cookie"][0].split(";")[0]
        shown = client.http.get("/contact", headers={"Cookie": cookie})
        assert "Thanks Zoë, we got your message (5 bytes attached)." in shown.body.decode()
        themed = client.http.get("/theme/dark")
        assert themed.headers["Set-Cookie"][0].startswith("theme=dark;")
        who = client.http.get("/whoami", headers={"Cookie": f"{cookie}; theme=dark"})
        assert json.loads(who.body) == {"name": "Zoë", "theme": "dark"}
        api = client.http.post(
            "/api/notes", headers={"Content-Type": "application/json"}, body=b'{"n": 1}'
        )
        assert api.status_code == 201
        hook = client.http.post(
            "/webhook",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "https://x.test",
            },
            body=b"a=1",
        )
        assert hook.status_code == 200
        refused = client.http.post(
            "/contact",
            headers={**headers, "Origin": "https://evil.test", "Host": "www.example.com"},
            body=body,
        )
        assert refused.status_code == 403
