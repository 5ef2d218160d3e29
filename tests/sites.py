"""One small real site for the tests, and the one builder of its Chalice app.

``write_site`` writes the templates and nested static files, ``build_app`` the app
that serves them (in-process with ``chalice.test.Client`` or ``app(event, context)``),
``write_project`` a Chalice project whose ``app.py`` calls ``build_app`` (for
``chalice local``), ``imported_project`` a project's ``app.py`` imported in-process. Given a
``secret_key`` (e.g. :data:`SECRET_KEY`), ``build_app`` adds the interactive half
(:func:`add_forms`): a form page with its CSRF token and flashes, login and logout,
an upload, and cookies. Needs only chalice and the module, so a project can copy it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from chalice import Chalice

from chalice_http_toolkit import (
    CloudFront,
    ContentManager,
    SessionTooLargeError,
    register_keep_warm,
    set_cookie,
)

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
    "form.html": (
        '<form method="post" action="{{ url_for(\'flash\') }}">'
        '<input name="csrf_token" value="{{ csrf_token() }}"></form>'
        "{% for category, m in get_flashed_messages(with_categories=True) %}"
        "<p class={{ category }}>{{ m }}</p>{% endfor %}"
    ),
}
#: A key of 32+ characters for the sessions of :func:`add_forms`.
SECRET_KEY = "k7Qx2-Lm9vRt4YbN8cWz1Hs6JdPf3GaE0uKo5iXq"
URLENCODED = "application/x-www-form-urlencoded"
FORMS = [URLENCODED, "multipart/form-data"]
#: The same page's bytes, for ``/asset`` (shared) and ``/personal-asset`` (reads cookies).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def write_site(root: Path) -> tuple[Path, Path]:
    """The site's templates and static folders under ``root`` (written again if there)."""
    templates = root / "templates"
    static = root / "static"
    templates.mkdir(parents=True, exist_ok=True)
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    (static / "css").mkdir(parents=True, exist_ok=True)
    (static / "js" / "vendor").mkdir(parents=True, exist_ok=True)
    (static / "css" / "site.css").write_text(CSS)
    (static / "js" / "app.js").write_text("console.log('hi');\n")
    (static / "js" / "vendor" / "lib.mjs").write_text("export const x = 1;\n" * 100)
    (static / "robots.txt").write_text("User-agent: *\n")
    (static / "data.bin").write_bytes(bytes(range(256)) * 4)
    (static / "noext").write_bytes(b"%PDF-1.4 fake pdf")
    return templates, static


def build_app(
    templates: Path | str, static: Path | str, *, keep_warm: dict | None = None, **options: Any
) -> tuple[Chalice, ContentManager, CloudFront]:
    """The site's app: a page, a feed, JSON, a redirect, an asset, static and 404 routes.

    ``options`` go to ``ContentManager`` (a ``secret_key`` adds :func:`add_forms`);
    ``keep_warm`` (options of ``register_keep_warm``) adds the keep-warm schedule,
    named ``keep_warm`` by default.
    """
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
        return cm.asset(PNG)

    if options.get("secret_key"):
        add_forms(app, cm, cf)
    if keep_warm is not None:
        register_keep_warm(app, cm, **keep_warm)
    cm.register_not_found_routes("404.html")
    return app, cm, cf


def add_forms(app: Chalice, cm: ContentManager, cf: CloudFront) -> None:
    """The interactive half: sessions, flash, CSRF, login/logout, uploads and cookies.

    ``/form`` shows a CSRF token and the flashes; ``POST /flash`` flashes each
    ``message`` (in ``category``) and answers 303 to ``/form``; ``/login``
    regenerates the session; ``/logout`` bumps the user's generation, revoking every
    cookie issued before; ``/me`` says who is logged in; ``/fill/{size}`` stores
    ``size`` characters; ``/personal`` and ``/personal-asset`` read the session or
    cookies; ``/token``, ``/upload`` and ``/seen`` are a JSON upload round trip;
    ``/two-cookies`` sets two cookies.
    """
    users = {"ada": {"generation": 0}}  # what an app keeps per user (a table, in real life)

    def current_user() -> str | None:
        user = cm.session.get("user")
        if user is None or cm.session.get("generation") != users[user]["generation"]:
            return None
        return user

    @app.route("/form", methods=["GET"])
    def form_page():
        return cf.template("form.html")

    @app.route("/flash", methods=["POST"], content_types=FORMS)
    def flash():
        form = cm.form()
        for message in form.getlist("message"):
            cm.flash(message, form.get("category", "message"))
        return cm.redirect(cm.url_for("form_page"), 303)

    @app.route("/fill/{size}", methods=["GET"])
    def fill(size):
        try:
            cm.session["blob"] = "x" * int(size)
        except SessionTooLargeError as error:
            return cm.json({"error": str(error)})
        return cm.json({"error": None})

    @app.route("/login", methods=["POST"], content_types=[URLENCODED])
    def login():
        user = cm.form()["user"]
        cm.session.regenerate()
        cm.session["user"] = user
        cm.session["generation"] = users[user]["generation"]
        return cm.redirect("/form", 303)

    @app.route("/logout", methods=["POST"], content_types=[URLENCODED])
    def logout():
        user = current_user()
        if user is not None:
            users[user]["generation"] += 1  # every cookie issued before is refused from now on
        cm.session.clear()
        return cm.redirect("/form", 303)

    @app.route("/me", methods=["GET"])
    def me():
        return cm.json({"user": current_user()})

    @app.route("/personal", methods=["GET"])
    def personal():
        cm.session.get("user")  # reads the session: the answer is this visitor's
        return cf.template("index.html", title="Home <&>", items=["a", "b"])

    @app.route("/personal-asset", methods=["GET"])
    def personal_asset():
        cm.cookies()
        return cm.asset(PNG)

    @app.route("/token", methods=["GET"])
    def token():
        return cm.json({"token": cm.csrf_token(), "url": cm.url_for("upload")})

    @app.route("/upload", methods=["POST"], content_types=["multipart/form-data"])
    def upload():
        form = cm.form()
        photo = form.files.get("photo")
        cm.flash("uploaded " + photo.filename)
        response = cm.json({"size": photo.size, "sum": sum(photo.data), "who": form.get("who")})
        return set_cookie(response, "extra", "1")

    @app.route("/seen", methods=["GET"])
    def seen():
        return cm.json({"flashes": cm.get_flashed_messages(), "cookies": sorted(cm.cookies())})

    @app.route("/two-cookies", methods=["GET"])
    def two_cookies():
        response = cm.html("<p>two</p>")
        set_cookie(response, "a", "1")
        return set_cookie(response, "b", "2", httponly=False)


def cookie_of(headers: Any, name: str = "session") -> str | None:
    """The value of the cookie ``name`` that a response's ``Set-Cookie`` headers set."""
    values = headers.get("Set-Cookie") or headers.get("set-cookie") or []
    for line in values if isinstance(values, list) else [values]:
        pair = line.split(";")[0]
        if pair.startswith(name + "="):
            return pair.split("=", 1)[1]
    return None


def token_of(body: bytes) -> str:
    """The CSRF token of a page's ``csrf_token`` field (``/form``)."""
    return re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()


#: ``app.py`` of :func:`write_project`: the same app, from the project's own folders.
PROJECT_APP = """\
import os

from sites import build_app

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chalicelib")
app, cm, cf = build_app(
    os.path.join(HERE, "templates"), os.path.join(HERE, "static"), secret_key={secret_key!r}
)
"""


def write_project(root: Path, secret_key: str | None = None) -> Path:
    """A Chalice project serving the site; the module and this file sit beside app.py.

    With a ``secret_key`` its app has the interactive half too (:func:`add_forms`).
    """
    write_site(root / "chalicelib")
    here = Path(__file__).resolve().parent
    shutil.copy(here.parent / "chalice_http_toolkit.py", root)
    shutil.copy(here / "sites.py", root)
    (root / "app.py").write_text(PROJECT_APP.format(secret_key=secret_key))
    (root / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "site", "stages": {"dev": {"api_gateway_stage": "api"}}}
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    (root / "requirements.txt").write_text("")
    return root


@contextlib.contextmanager
def imported_project(project: Path) -> Iterator[ModuleType]:
    """``project``'s ``app.py`` imported as Lambda and ``chalice.test.Client`` do, then forgotten.

    Its folder goes first on ``sys.path``; afterwards ``app`` and ``chalicelib`` leave
    ``sys.modules``, so the next project imports its own.
    """
    sys.path.insert(0, str(project))
    try:
        import app

        yield app
    finally:
        sys.path.remove(str(project))
        for name in [n for n in sys.modules if n == "app" or n.split(".")[0] == "chalicelib"]:
            del sys.modules[name]


_COPIES = itertools.count()


def module_copy(lib: Path) -> ModuleType:
    """``lib``'s copy of the module, imported as a fresh container imports it (a new one
    each call, under a name of its own)."""
    name = f"cht_copy_{next(_COPIES)}"
    spec = importlib.util.spec_from_file_location(name, lib / "chalice_http_toolkit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
