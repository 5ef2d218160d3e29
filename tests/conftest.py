"""Shared fixtures: a small real site (templates + nested static files) and its Chalice app."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The API Gateway and CloudFront models (apigw, cdn_model, cloudfront_function) live in
# bench/, which the benchmark scripts import them from as their own folder.
sys.path.append(str(ROOT / "bench"))

os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)

CSS = "body { color: #123456; }\n" + "".join(f".c{i} {{ margin: {i}px; }}\n" for i in range(200))
TEMPLATES = {
    "base.html": (
        "<!doctype html><html><head><title>{% block title %}{% endblock %}</title>"
        '<link rel="stylesheet" href="{{ static(\'css/site.css\') }}"></head>'
        "<body>{% block body %}{% endblock %}{% include 'footer.html' %}</body></html>"
    ),
    "footer.html": "<footer>{% from 'macros.html' import stamp %}{{ stamp() }}</footer>",
    "macros.html": "{% macro stamp() %}made with chalice{% endmacro %}",
    "index.html": (
        "{% extends 'base.html' %}{% block title %}{{ title }}{% endblock %}"
        "{% block body %}<h1>{{ title }}</h1>{% for item in items %}<p>{{ item }}</p>{% endfor %}"
        "{% endblock %}"
    ),
    "404.html": "{% extends 'base.html' %}{% block body %}<h1>Page not found</h1>{% endblock %}",
    "feed.xml": "<feed><title>{{ title }}</title></feed>",
    "note.txt": "{{ text }}",
    "dynamic.html": "{% include name %}",
}


def write_site(root: Path) -> tuple[Path, Path]:
    templates = root / "templates"
    static = root / "static"
    templates.mkdir(parents=True)
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    (static / "css").mkdir(parents=True)
    (static / "js" / "vendor").mkdir(parents=True)
    (static / "css" / "site.css").write_text(CSS)
    (static / "js" / "app.js").write_text("console.log('hi');\n")
    (static / "js" / "vendor" / "lib.mjs").write_text("export const x = 1;\n" * 100)
    (static / "robots.txt").write_text("User-agent: *\n")
    (static / "data.bin").write_bytes(bytes(range(256)) * 4)
    (static / "noext").write_bytes(b"%PDF-1.4 fake pdf")
    return templates, static


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    return write_site(tmp_path / "site")


def build_app(templates: Path, static: Path, **options):
    from chalice import Chalice

    from chalice_http_toolkit import CloudFront, ContentManager

    app = Chalice(app_name="site")
    cm = ContentManager(str(templates), str(static), app, **options)
    cm.set_static_handler_prefix("/static")
    cf = CloudFront(cm, app)
    cm.register_static_routes()

    @app.route("/", methods=["GET", "HEAD"])
    def index():
        return cf.template("index.html", title="Home <&>", items=["a", "b"])

    @app.route("/page/{name}", methods=["GET", "HEAD", "POST"])
    def page(name):
        return cf.template("index.html", title=name, items=[])

    @app.route("/feed", methods=["GET"])
    def feed():
        return cm.xml(cm.render_template("feed.xml", title="<x>"))

    @app.route("/api/data", methods=["GET"])
    def data():
        return cm.json({"numbers": [1, 2, 3], "text": "é"})

    @app.route("/plain", methods=["GET"])
    def plain():
        return {"plain": True}

    @app.route("/old", methods=["GET"])
    def old():
        return cm.redirect("/")

    @app.route("/missing", methods=["GET"])
    def missing():
        return cf.template("nope.html")

    @app.route("/dynamic", methods=["GET"])
    def dynamic():
        return cf.template("dynamic.html", name=app.current_request.query_params["n"])

    @app.route("/cors-route", methods=["GET"], cors=True)
    def cors_route():
        return {"cors": True}

    @app.route("/asset", methods=["GET"])
    def asset():
        return cm.asset(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    cm.register_not_found_routes("404.html")
    return app, cm, cf


@pytest.fixture
def site_app(site):
    return build_app(*site)


class CliResult(NamedTuple):
    """What ``cli.py`` printed and returned."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture(params=["in-process", "subprocess"])
def run(request, capsys) -> Callable[..., CliResult]:
    """Run ``cli.py`` with arguments, in this process and as a subprocess (two params)."""

    def in_process(*args: str) -> CliResult:
        import cli

        try:
            code = cli.main(list(args))
        except SystemExit as exit:
            code = exit.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    def as_subprocess(*args: str) -> CliResult:
        done = subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return in_process if request.param == "in-process" else as_subprocess
