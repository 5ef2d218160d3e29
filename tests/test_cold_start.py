"""A cold start pays only for what its first request needs.

Each case is a fresh interpreter, as a Lambda container starts: the project's copy of the
module with the files ``prepare_deployment`` wrote beside it, a site built as a user
builds one, and one first request through ``lambda_handler``. What the process imported
is read from ``sys.modules`` afterwards: a static file, a JSON view or a page's 304
(CloudFront revalidating after the container was recycled) imports neither Jinja2 nor
``inspect`` nor OpenSSL (``hashlib``, ``hmac``). The 304 carries the ETag a warm container
gave for the page, and the page rendered after it in the same container has it too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from frontdoor_events import v2_event

from conftest import ROOT

TEMPLATES = {
    "base.html": "<title>{% block title %}{% endblock %}</title>"
    "<link href=\"{{ static('site.css') }}\">{% include 'nav.html' %}"
    "<main>{% block body %}{% endblock %}</main>",
    "nav.html": "<nav>{% for i in range(3) %}<a>{{ i }}</a>{% endfor %}</nav>",
    "page.html": "{% extends 'base.html' %}{% block title %}{{ title|title }}{% endblock %}"
    "{% block body %}{% for item in items %}<p>{{ item }}</p>{% endfor %}{% endblock %}",
}

APP = """
import json, logging, os, sys
from chalice import Chalice
import chalice_http_toolkit as cht

HERE = os.path.dirname(cht.__file__)
app = Chalice(app_name="cold")
cm = cht.ContentManager(
    os.path.join(HERE, "templates"), os.path.join(HERE, "static"), app,
    secret_key="cold-start-secret-0123456789abcdefghij",
)
cm.register_static_routes()
cf = cht.CloudFront(cm, app)


@app.route("/")
def index():
    return cf.template("page.html", title="cold start", items=["a", "b & c"])


@app.route("/api")
def api():
    return {"ok": True}


handler = cht.lambda_handler(app)
warnings = []
logging.getLogger("chalice_http_toolkit").addHandler(logging.Handler())
logging.getLogger("chalice_http_toolkit").handlers[-1].emit = lambda record: warnings.append(
    record.getMessage()
)
answers = []
for event in json.load(sys.stdin):
    result = handler(event, None)
    headers = {name.lower(): value for name, value in (result.get("headers") or {}).items()}
    answers.append(
        {
            "status": result["statusCode"],
            "etag": headers.get("etag"),
            "imported": sorted(m for m in WATCHED if m in sys.modules),
        }
    )
print(json.dumps({"answers": answers, "warnings": warnings}))
"""

#: What a cold start answered from the prepared files should not import.
WATCHED = ("jinja2", "inspect", "hashlib", "_hashlib", "hmac")


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A project's ``chalicelib``: the module, templates, a static file, the prepared files."""
    lib = tmp_path / "chalicelib"
    (lib / "templates").mkdir(parents=True)
    (lib / "static").mkdir()
    (lib / "static" / "site.css").write_text("body { color: red; }\n" * 80)
    for name, text in TEMPLATES.items():
        (lib / "templates" / name).write_text(text)
    shutil.copy2(ROOT / "chalice_http_toolkit.py", lib / "chalice_http_toolkit.py")
    prepare = "import sys, chalice_http_toolkit as m; m.prepare_deployment(sys.argv[1])"
    prepared = subprocess.run(
        [sys.executable, "-c", prepare, str(lib / "templates")],
        cwd=lib,
        capture_output=True,
        text=True,
    )
    assert prepared.returncode == 0, prepared.stderr
    (lib / "app.py").write_text(f"WATCHED = {WATCHED!r}\n" + APP)
    return lib


def container(lib: Path, *events: dict) -> dict:
    """A fresh interpreter on Lambda answering ``events`` in turn: answers and warnings."""
    env = dict(os.environ, AWS_LAMBDA_FUNCTION_NAME="cold", PYTHONPATH=str(lib))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        [sys.executable, str(lib / "app.py")],
        input=json.dumps(list(events)),
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get(path: str, **headers: str) -> dict:
    accept = "text/html,application/xhtml+xml,*/*;q=0.8"
    return v2_event("GET", path, {"accept": accept, "accept-encoding": "gzip", **headers})


def test_a_warm_container_gives_the_page_its_etag(lib: Path) -> None:
    first, again = container(lib, get("/"), get("/"))["answers"]
    assert first["status"] == again["status"] == 200
    assert first["etag"] == again["etag"] and first["etag"].startswith('"')
    assert "jinja2" in first["imported"]  # rendering a page needs Jinja2


def test_a_page_304_at_cold_start_imports_neither_jinja2_nor_openssl(lib: Path) -> None:
    etag = container(lib, get("/"), get("/"))["answers"][1]["etag"]

    cold = container(lib, get("/", **{"if-none-match": etag}), get("/"))

    revalidated, rendered = cold["answers"]
    assert revalidated == {"status": 304, "etag": etag, "imported": []}
    assert rendered["status"] == 200 and rendered["etag"] == etag
    assert not cold["warnings"]


def test_a_stale_etag_at_cold_start_gets_the_page(lib: Path) -> None:
    [answer] = container(lib, get("/", **{"if-none-match": '"0123456789abcdef"'}))["answers"]
    assert answer["status"] == 200 and answer["etag"] != '"0123456789abcdef"'


@pytest.mark.parametrize("conditional", [False, True], ids=["200", "304"])
def test_a_static_file_at_cold_start_imports_nothing_it_does_not_need(
    lib: Path, conditional: bool
) -> None:
    headers = {"accept": "text/css,*/*;q=0.1"}
    if conditional:
        [first] = container(lib, v2_event("GET", "/static/site.css", headers))["answers"]
        headers["if-none-match"] = first["etag"]
    [answer] = container(lib, v2_event("GET", "/static/site.css", headers))["answers"]
    assert answer["status"] == (304 if conditional else 200)
    assert answer["imported"] == []


def test_a_json_view_at_cold_start_imports_nothing_it_does_not_need(lib: Path) -> None:
    [answer] = container(lib, v2_event("GET", "/api", {"accept": "application/json"}))["answers"]
    assert answer["status"] == 200 and answer["imported"] == []


def test_an_unprepared_cold_start_still_answers_the_warm_etag(lib: Path) -> None:
    etag = container(lib, get("/"))["answers"][0]["etag"]
    (lib / "chalice_http_toolkit.prepared.json").unlink()

    [answer] = container(lib, get("/", **{"if-none-match": etag}))["answers"]

    assert answer["status"] == 304 and answer["etag"] == etag
    assert "jinja2" in answer["imported"]  # nothing prepared: the templates are parsed


def test_the_digest_taken_without_hashlib_is_hashlibs_blake2b() -> None:
    import hashlib

    import chalice_http_toolkit as cht

    for data in (b"", b"x", bytes(range(256)) * 1000):
        expected = hashlib.blake2b(data, digest_size=16).hexdigest()
        assert cht._digest(data) == expected
        assert cht._digest(data[:7], data[7:]) == expected
