"""CloudFront's Cache-Control defaults: pages answered at the edge (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client

from chalice_http_toolkit import (
    IMMUTABLE_CACHE_CONTROL,
    CloudFront,
    ContentManager,
    edge_cache_control,
)

EDGE = "public, max-age=0, s-maxage=0, stale-while-revalidate=3600, stale-if-error=86400"


def build(root: Path, *args, **options) -> Chalice:
    (root / "templates").mkdir()
    (root / "static").mkdir()
    (root / "templates" / "page.html").write_text("<h1>{{ title }}</h1>")
    (root / "static" / "site.css").write_text("h1 { color: red; }\n")
    app = Chalice(app_name="edge")
    cm = ContentManager(str(root / "templates"), str(root / "static"), app, secret_key="k" * 32)
    page_cache_control = options.pop("page_cache_control", None)
    cf = CloudFront(cm, app, *args, **options)
    if page_cache_control is not None:
        cf.page_cache_control = page_cache_control

    @app.route("/")
    def index():
        return cf.template("page.html", title="home")

    @app.route("/fresh")
    def always_fresh():
        return cf.template("page.html", title="fresh", cache_control="no-cache")

    @app.route("/gone")
    def gone():
        return cf.template("page.html", title="gone", status_code=404)

    @app.route("/broken")
    def broken():
        return cf.template("page.html", title="broken", status_code=503)

    @app.route("/who")
    def who():
        return cf.template("page.html", title=cm.session.get("name", "stranger"))

    @app.route("/css")
    def css():
        return cf.static("site.css")

    @app.route("/hashed")
    def hashed():
        return cf.static(cm.static_url("site.css").rsplit("/", 1)[1])

    @app.route("/asset")
    def asset():
        return cf.asset(lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, lambda: "v1")

    return app


def cache_controls(app: Chalice) -> dict[str, str]:
    """Each route's Cache-Control; ``/who`` for a visitor who sends a session cookie."""
    with Client(app) as client:
        controls = {
            path: client.http.get(path).headers.get("Cache-Control")
            for path in ("/", "/fresh", "/gone", "/broken", "/css", "/hashed", "/asset")
        }
        who = client.http.get("/who", headers={"Cookie": "session=someone"})
    return {**controls, "/who": who.headers.get("Cache-Control")}


def test_each_kind_of_response_gets_its_cache_control_by_default(tmp_path):
    assert cache_controls(build(tmp_path)) == {
        "/": EDGE,  # a public page: answered at the edge
        "/fresh": "no-cache",  # the route asked to be revalidated every time
        "/gone": "no-store",  # error pages are never stored
        "/broken": "no-store",
        "/who": "private, no-store",  # read the session: personal
        "/css": "no-cache",  # an unversioned static URL: revalidated
        "/hashed": IMMUTABLE_CACHE_CONTROL,  # a content-hashed URL keeps its year
        "/asset": "no-cache",
    }


@pytest.mark.parametrize(
    ("args", "options"),
    [(("no-cache",), {}), ((), {"default_cache_control": "no-cache"})],
    ids=["positional, as 0.6.2", "keyword"],
)
def test_an_explicit_default_means_what_it_meant_in_0_6_2(tmp_path, args, options):
    """``CloudFront(cm, app, 'no-cache')``: every response revalidated, errors too."""
    controls = cache_controls(build(tmp_path, *args, **options))
    assert controls["/who"] == "private, no-store"
    assert controls["/hashed"] == IMMUTABLE_CACHE_CONTROL
    del controls["/who"], controls["/hashed"]
    assert set(controls.values()) == {"no-cache"}


def test_the_manager_says_how_long_pages_stay_fresh(tmp_path):
    app = build(tmp_path, page_cache_control=edge_cache_control(60, 600, 3600))
    controls = cache_controls(app)
    assert controls["/"] == (
        "public, max-age=0, s-maxage=60, stale-while-revalidate=600, stale-if-error=3600"
    )
    assert controls["/gone"] == "no-store" and controls["/fresh"] == "no-cache"


def test_a_304_carries_the_same_cache_control(tmp_path):
    app = build(tmp_path)
    with Client(app) as client:
        first = client.http.get("/")
        again = client.http.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"] == EDGE


@pytest.mark.parametrize(
    "options",
    [
        {"fresh": -1},
        {"fresh": 1.5},
        {"fresh": "60"},
        {"stale_while_revalidate": True},
        {"stale_if_error": None},
    ],
)
def test_bad_freshness_numbers_are_refused(options):
    with pytest.raises(ValueError, match="whole number of seconds"):
        edge_cache_control(**options)
