"""Templates: autoescape, static(), missing templates, and ETags computed without rendering."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import os
import subprocess
import sys
import uuid
from collections import OrderedDict, namedtuple
from pathlib import Path

import pytest
from chalice.test import Client

from chalice_http_toolkit import ContentManager, TemplateNotFoundError, pure, stable_digest

from conftest import ROOT, build_app


def counting(cm: ContentManager) -> list[str]:
    """Count real renders: a global the index template's base calls on every render.

    The counter is declared ``pure`` (its result follows from its argument): a helper
    of the site's own that is not would make the toolkit render every time.
    """
    renders: list[str] = []
    original = cm.env.globals["static"]

    def static(name: str) -> str:
        renders.append(name)
        return original(name)

    cm.env.globals["static"] = pure(static)
    return renders


def test_autoescape_on_for_html_and_xml(site_app):
    app, cm, _ = site_app
    with Client(app) as client:
        page = client.http.get("/")
        feed = client.http.get("/feed")
    assert b"Home &lt;&amp;&gt;" in page.body
    assert b"<title>&lt;x&gt;</title>" in feed.body
    assert feed.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert cm.render_template("note.txt", text="<b>") == "<b>"  # not an HTML template


def test_static_global_gives_fingerprinted_url(site_app):
    app, cm, _ = site_app
    with Client(app) as client:
        page = client.http.get("/")
    assert cm.static_url("css/site.css").encode() in page.body


def test_missing_template_is_a_clear_error_naming_it(site_app, caplog):
    app, cm, _ = site_app
    with pytest.raises(TemplateNotFoundError, match=r"'nope\.html' not found in .*templates"):
        cm.render_template("nope.html")
    with Client(app) as client:
        response = client.http.get("/missing")
    assert response.status_code == 500
    assert b"Traceback" not in response.body  # app.debug is off
    assert "nope.html" in caplog.text


def test_missing_included_template_names_both(tmp_path, site):
    templates, static = site
    (templates / "broken.html").write_text("{% include 'gone.html' %}")
    _, cm, _ = build_app(templates, static)
    with pytest.raises(TemplateNotFoundError, match=r"'gone\.html'.*needed by 'broken\.html'"):
        cm.render_template("broken.html")


def test_traceback_reaches_client_only_in_debug(site):
    app, _, _ = build_app(*site)
    app.debug = True
    with Client(app) as client:
        response = client.http.get("/missing")
    assert response.status_code == 500
    assert b"TemplateNotFoundError" in response.body


def test_template_304_without_rendering(site_app):
    app, cm, _ = site_app
    renders = counting(cm)
    with Client(app) as client:
        first = client.http.get("/")
        assert len(renders) == 1
        etag = first.headers["ETag"]
        again = client.http.get("/", headers={"If-None-Match": etag})
        weak = client.http.get("/", headers={"If-None-Match": f"W/{etag}"})
        head = client.http.head("/", headers={"If-None-Match": etag})
    assert len(renders) == 1  # three 304s, no render
    for response in (again, weak, head):
        assert response.status_code == 304 and response.body == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"].startswith("public, max-age=0, s-maxage=0,")
        assert "Accept-Encoding" in response.headers["Vary"]


def test_template_etag_matches_across_gzip_and_weakened_forms(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        zipped = client.http.get("/", headers={"Accept-Encoding": "gzip"})
        plain = client.http.get("/")
        check = client.http.get("/", headers={"If-None-Match": f"W/{zipped.headers['ETag']}"})
    if "Content-Encoding" in zipped.headers:
        assert zipped.headers["ETag"] != plain.headers["ETag"]
    assert check.status_code == 304


def test_post_with_matching_etag_is_412_not_304(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        etag = client.http.get("/page/x").headers["ETag"]
        response = client.http.post("/page/x", headers={"If-None-Match": etag})
    assert response.status_code == 412


EDITS = {
    "index.html": "<h1>",
    "base.html": "<body>",
    "footer.html": "<footer>",
    "macros.html": "made with chalice",
}


@pytest.mark.parametrize("edited", sorted(EDITS))
def test_editing_any_template_in_the_closure_changes_the_etag_without_restart(site, edited):
    templates, static = site
    app, cm, _ = build_app(templates, static, auto_reload=True)
    before = cm.template_etag("index.html", {"title": "t", "items": []})
    path = templates / edited
    marker = EDITS[edited]
    path.write_text(path.read_text().replace(marker, marker + "<!-- edited -->"))
    after = cm.template_etag("index.html", {"title": "t", "items": []})
    assert before != after
    with Client(app) as client:
        response = client.http.get("/", headers={"If-None-Match": before})
    assert response.status_code == 200
    assert b"<!-- edited -->" in response.body


def test_deployed_container_computes_dependencies_once(site):
    templates, static = site
    _, cm, _ = build_app(templates, static, auto_reload=False)
    first = cm.template_dependencies("index.html")
    (templates / "base.html").write_text("changed")
    assert cm.template_dependencies("index.html") is first


def test_etag_depends_on_arguments_and_referenced_static_files(site):
    templates, static = site
    _, cm, _ = build_app(templates, static, auto_reload=True)
    base = cm.template_etag("index.html", {"title": "t", "items": [1]})
    assert base == cm.template_etag("index.html", {"items": [1], "title": "t"})
    assert base != cm.template_etag("index.html", {"title": "t", "items": [2]})
    assert base != cm.template_etag("index.html", {"title": "t", "items": (1,)})
    assert base != cm.template_etag("index.html", {"title": "t", "items": [1], "extra": None})
    assert base != cm.template_etag("index.html", {"title": "t", "items": [1]}, salt="v2")
    (static / "css" / "site.css").write_text("changed css")  # the page's static() URL changes
    assert base != cm.template_etag("index.html", {"title": "t", "items": [1]})


def test_unreferenced_static_file_does_not_change_page_etag(site):
    templates, static = site
    _, cm, _ = build_app(templates, static, auto_reload=True)
    before = cm.template_etag("index.html", {"title": "t", "items": []})
    (static / "js" / "app.js").write_text("changed")
    assert cm.template_etag("index.html", {"title": "t", "items": []}) == before


def test_dynamic_static_argument_hashes_every_static_file(site):
    templates, static = site
    (templates / "dyn.html").write_text("{{ static(path) }}")
    _, cm, _ = build_app(templates, static, auto_reload=True)
    before = cm.template_etag("dyn.html", {"path": "js/app.js"})
    (static / "js" / "app.js").write_text("changed")
    assert cm.template_etag("dyn.html", {"path": "js/app.js"}) != before


def test_dynamic_include_falls_back_to_render_and_hash(site_app):
    app, cm, _ = site_app
    assert cm.template_etag("dynamic.html", {"name": "macros.html"}) is None
    with Client(app) as client:
        first = client.http.get("/dynamic?n=footer.html")
        same = client.http.get(
            "/dynamic?n=footer.html", headers={"If-None-Match": first.headers["ETag"]}
        )
        other = client.http.get(
            "/dynamic?n=404.html", headers={"If-None-Match": first.headers["ETag"]}
        )
    assert first.status_code == 200 and b"made with chalice" in first.body
    assert same.status_code == 304
    assert other.status_code == 200 and b"Page not found" in other.body


class Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_argument_without_canonical_form_falls_back_to_rendering(site):
    templates, static = site
    app, cm, cf = build_app(templates, static)
    assert cm.template_etag("index.html", {"title": Opaque(), "items": []}) is None

    @app.route("/opaque")
    def opaque():
        return cf.template("index.html", title=Opaque(), items=[])

    with Client(app) as client:
        first = client.http.get("/opaque")
        again = client.http.get("/opaque", headers={"If-None-Match": first.headers["ETag"]})
    assert b"opaque" in first.body
    assert again.status_code == 304


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


Pair = namedtuple("Pair", "a b")

DIGEST_CASES = {
    "none": None,
    "bools": [True, False],
    "ints": [0, -1, 2**80],
    "floats": [0.1, -0.0, 1e300],
    "text": "héllo ☃",
    "bytes": b"\x00\xff",
    "nested": {"a": [1, {"b": (2, 3)}], "c": {"d": None}},
    "set": {"banana", "apple", "cherry", "date", "elderberry", "fig"},
    "frozenset": frozenset({("x", 1), ("y", 2), ("z", 3)}),
    "date": datetime.date(2024, 2, 29),
    "datetime": datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.timezone.utc),
    "time": datetime.time(23, 59, 59),
    "decimal": decimal.Decimal("1.10"),
}

# Types that render through code of their own: no canonical form, render-and-hash instead.
FALLBACK_CASES = {
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "enum": Colour.RED,
    "dataclass": Point(1, 2.5),
    "namedtuple": Pair(1, "two"),
    "ordered": OrderedDict([("z", 1), ("a", 2)]),
    "path": Path("/tmp/x"),
}


@pytest.mark.parametrize("name", sorted(FALLBACK_CASES))
def test_stable_digest_falls_back_for_types_that_render_through_their_own_code(name):
    assert stable_digest(FALLBACK_CASES[name]) is None


def test_stable_digest_distinguishes_types_and_order():
    assert stable_digest([1, 2]) != stable_digest((1, 2))
    assert stable_digest([1, 2]) != stable_digest([2, 1])
    assert stable_digest({"a": 1, "b": 2}) != stable_digest({"b": 2, "a": 1})  # render order
    assert stable_digest({1, 2, 3}) == stable_digest({3, 2, 1})
    assert stable_digest(1) != stable_digest(1.0) != stable_digest(True)
    assert stable_digest("1") != stable_digest(b"1")
    assert stable_digest(["ab", "c"]) != stable_digest(["a", "bc"])
    assert stable_digest(datetime.date(2024, 1, 1)) != stable_digest("2024-01-01")


def test_stable_digest_markup_differs_from_plain_string():
    from markupsafe import Markup

    assert stable_digest(Markup("<b>")) != stable_digest("<b>")


@pytest.mark.parametrize("value", [Opaque(), object(), lambda: 1, [Opaque()], {"k": {1: object()}}])
def test_stable_digest_has_no_form_for_arbitrary_objects(value):
    assert stable_digest(value) is None


def test_stable_digest_recursive_structure_is_none():
    loop: list = []
    loop.append(loop)
    assert stable_digest(loop) is None


DIGEST_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
from test_templates import DIGEST_CASES
from chalice_http_toolkit import stable_digest
print(json.dumps({{name: stable_digest(value) for name, value in DIGEST_CASES.items()}}))
"""


def test_stable_digest_is_identical_across_processes_and_hash_seeds():
    script = DIGEST_SCRIPT.format(tests=str(Path(__file__).parent), root=str(ROOT))
    outputs = []
    for seed in ("0", "1", "12345", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(result.stdout))
    assert all(output == outputs[0] for output in outputs)
    assert all(value is not None for value in outputs[0].values())
    assert outputs[0] == {name: stable_digest(value) for name, value in DIGEST_CASES.items()}


def test_template_etag_identical_across_processes(site):
    templates, static = site
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from conftest import build_app\n"
        "from test_templates import DIGEST_CASES\n"
        f"_, cm, _ = build_app({str(templates)!r}, {str(static)!r})\n"
        "print(cm.template_etag('index.html', dict(title='t', items=DIGEST_CASES)))\n"
    )
    etags = {
        subprocess.run(
            [sys.executable, "-c", script],
            env=dict(os.environ, PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(etags) == 1
    assert etags.pop().startswith('"')


def test_env_is_lazy_and_jinja_not_imported_until_needed(site):
    templates, static = site
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from chalice import Chalice\n"
        "import chalice_http_toolkit as t\n"
        f"cm = t.ContentManager({str(templates)!r}, {str(static)!r}, Chalice('x'))\n"
        "assert 'jinja2' not in sys.modules, 'jinja2 imported at construction'\n"
        "assert 'PIL' not in sys.modules and 'magic' not in sys.modules\n"
        "cm.render_template('note.txt', text='x')\n"
        "assert 'jinja2' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_304_keeps_last_modified_and_expires_and_honours_if_modified_since(site):
    from chalice_http_toolkit import http_date

    app, _, cf = build_app(*site)
    stamp = 1_700_000_000
    extra = {"Last-Modified": http_date(stamp), "Expires": http_date(stamp + 3600)}

    @app.route("/dated", methods=["GET"])
    def dated():
        return cf.template("index.html", headers=dict(extra), title="d", items=[])

    with Client(app) as client:
        first = client.http.get("/dated")
        by_etag = client.http.get("/dated", headers={"If-None-Match": first.headers["ETag"]})
        by_date = client.http.get("/dated", headers={"If-Modified-Since": http_date(stamp)})
        older = client.http.get("/dated", headers={"If-Modified-Since": http_date(stamp - 1)})
        stale_etag = client.http.get(
            "/dated", headers={"If-None-Match": '"other"', "If-Modified-Since": http_date(stamp)}
        )
    for response in (by_etag, by_date):
        assert response.status_code == 304
        assert response.headers["Last-Modified"] == extra["Last-Modified"]
        assert response.headers["Expires"] == extra["Expires"]
    assert older.status_code == 200
    assert stale_etag.status_code == 200  # If-None-Match takes precedence
