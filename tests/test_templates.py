"""Templates: autoescape, static(), missing templates, and ETags computed without rendering.

Later sections: prepare_deployment (templates parsed and compiled at build time), and a
Hypothesis property of template ETags.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import os
import shutil
import subprocess
import sys
import uuid
import zoneinfo
from collections import OrderedDict, namedtuple
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from chalice_http_toolkit import ContentManager, TemplateNotFoundError, pure, stable_digest

from conftest import ROOT, build_app
from sites import module_copy


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


def test_template_globals_behave_as_jinja2s(tmp_path):
    """The manager's environment looks globals up without an exception per name; what a
    template sees is what Jinja2's own ChainMap gives: its own globals over the
    environment's, later changes to either included, a missing name undefined."""
    import jinja2

    (tmp_path / "t.html").write_text("{{ shade }}|{{ size }}|{{ missing is defined }}")
    cm = ContentManager(str(tmp_path), str(tmp_path))
    assert isinstance(cm.env, jinja2.Environment)
    cm.env.globals["shade"] = "red"
    plain = cm.env.get_template("t.html")  # no globals of its own: the environment's, listed
    assert list(plain.globals) == list(cm.env.globals) and "shade" in plain.globals
    assert dict(plain.globals) == dict(collections.ChainMap({}, cm.env.globals))
    template = cm.env.get_template("t.html", globals={"size": 1})
    assert template.render() == "red|1|False"
    cm.env.globals["shade"] = "blue"  # after the template was loaded
    template.globals["size"] = 2
    assert template.render() == "blue|2|False"
    assert template.globals["shade"] == "blue" and "missing" not in template.globals
    with pytest.raises(KeyError):
        template.globals["missing"]
    assert dict(template.globals) == {**cm.env.globals, "size": 2}
    assert list(template.globals) == list(collections.ChainMap({"size": 2}, cm.env.globals))


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


# == prepare_deployment ====================================================================
# prepare_deployment: templates parsed and compiled at build time, trusted only while unchanged.
#
# A project's copy of the module (``chalicelib/chalice_http_toolkit.py``) reads the files
# ``prepare_deployment`` wrote beside it. Whether a container parsed or compiled a template
# is seen on Jinja2's own ``Environment.parse`` and ``Environment.compile``, counted.


TEMPLATES = {
    "base.html": "<title>{% block title %}{% endblock %}</title>{% include 'nav.html' %}"
    "<main>{% block body %}{% endblock %}</main>"
    "<link href=\"{{ static('site.css') }}\">",
    "nav.html": "<nav>{% for link in links %}<a>{{ link|upper }}</a>{% endfor %}</nav>",
    "page.html": "{% extends 'base.html' %}{% block title %}{{ title }}{% endblock %}"
    "{% block body %}<p>{{ body }}</p>{% include 'extra.html' ignore missing %}{% endblock %}",
    "plain.txt": "Hello {{ name }} & co",
}
ARGS = {"title": "A <b>", "body": "x & y", "links": ["a", "b"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with its own copy of the module, templates and static files."""
    lib = tmp_path / "chalicelib"
    (lib / "templates").mkdir(parents=True)
    (lib / "static").mkdir()
    (lib / "static" / "site.css").write_text("body { color: red; }\n")
    for name, text in TEMPLATES.items():
        (lib / "templates" / name).write_text(text)
    shutil.copy2(ROOT / "chalice_http_toolkit.py", lib / "chalice_http_toolkit.py")
    return lib


def manager(module, lib: Path):
    cm = module.ContentManager(str(lib / "templates"), str(lib / "static"), auto_reload=False)
    counts = {"parse": 0, "compile": 0}
    env = cm.env
    parse, compile_ = env.parse, env.compile

    def counted_parse(*args, **kwargs):
        counts["parse"] += 1
        return parse(*args, **kwargs)

    def counted_compile(*args, **kwargs):
        counts["compile"] += 1
        return compile_(*args, **kwargs)

    env.parse, env.compile = counted_parse, counted_compile
    return cm, counts


def prepare(lib: Path) -> None:
    module = module_copy(lib)
    written = module.prepare_deployment(str(lib / "templates"))
    assert written == str(lib / module.PREPARED_FILE)


def fresh_analysis(lib: Path, name: str):
    cm, _ = manager(module_copy(lib), lib)
    (lib / "chalice_http_toolkit.prepared.json").rename(lib / "moved.json")
    try:
        return cm.template_dependencies(name)
    finally:
        (lib / "moved.json").rename(lib / "chalice_http_toolkit.prepared.json")


def test_a_prepared_container_neither_parses_nor_compiles(project):
    unprepared, counts = manager(module_copy(project), project)
    expected = (
        unprepared.template_dependencies("page.html"),
        unprepared.render_template("page.html", **ARGS),
    )
    assert counts["parse"] > 0 and counts["compile"] > 0
    prepare(project)

    cm, counts = manager(module_copy(project), project)
    got = cm.template_dependencies("page.html"), cm.render_template("page.html", **ARGS)

    assert counts == {"parse": 0, "compile": 0}
    assert got[0]._replace(files=()) == expected[0]._replace(files=())  # every field
    assert sorted(got[0].files) == sorted(expected[0].files)
    assert got[0].static_refs == frozenset({"site.css"})
    assert "upper" in got[0].filters
    assert got[1] == expected[1]
    assert "A &lt;b&gt;" in got[1]
    assert cm.render_template("plain.txt", name="<you>") == "Hello <you> & co"


def test_the_same_etag_with_or_without_the_prepared_files(project):
    before = manager(module_copy(project), project)[0].template_etag("base.html", ARGS)
    prepare(project)
    after = manager(module_copy(project), project)[0].template_etag("base.html", ARGS)
    assert before == after is not None


def test_an_edited_template_is_parsed_and_compiled_again(project):
    prepare(project)
    (project / "templates" / "nav.html").write_text("<nav>{{ links|length }} links</nav>")

    cm, counts = manager(module_copy(project), project)
    deps = cm.template_dependencies("page.html")
    page = cm.render_template("page.html", **ARGS)

    assert counts["parse"] > 0 and counts["compile"] > 0
    assert deps.digest == fresh_analysis(project, "page.html").digest
    assert "2 links" in page


def test_a_template_missing_at_build_time_is_not_ignored_once_it_exists(project):
    prepare(project)
    (project / "templates" / "extra.html").write_text("{{ csrf_token() }}")

    cm, counts = manager(module_copy(project), project)
    deps = cm.template_dependencies("page.html")

    assert counts["parse"] > 0
    assert "csrf_token" in deps.names


def test_another_parser_setting_parses_again(project):
    prepare(project)
    cm, counts = manager(module_copy(project), project)
    cm.env.trim_blocks = True
    cm.template_dependencies("page.html")
    assert counts["parse"] > 0


def test_a_filter_that_takes_its_context_now_is_compiled_again(project):
    import jinja2

    prepare(project)
    cm, counts = manager(module_copy(project), project)
    cm.env.filters["upper"] = jinja2.pass_context(lambda context, value: f"<{value}>")
    page = cm.render_template("page.html", **ARGS)
    assert counts["compile"] > 0
    assert "&lt;a&gt;" in page


def test_another_python_or_a_garbled_file_is_ignored(project):
    prepare(project)
    bytecode = project / "chalice_http_toolkit.prepared.json.bytecode"
    bytecode.write_bytes(b"\x00garbage")
    prepared = project / "chalice_http_toolkit.prepared.json"
    data = json.loads(prepared.read_text())
    data["format"] = -1
    prepared.write_text(json.dumps(data))

    cm, counts = manager(module_copy(project), project)
    assert cm.template_dependencies("page.html").names
    assert cm.render_template("page.html", **ARGS).startswith("<title>A &lt;b&gt;</title>")
    assert counts["parse"] > 0 and counts["compile"] > 0


def test_prepare_keeps_the_sections_of_other_template_folders(project):
    other = project / "mail"
    other.mkdir()
    (other / "welcome.txt").write_text("Welcome {{ name }}")
    module = module_copy(project)
    module.prepare_deployment(str(project / "templates"))
    module.prepare_deployment(str(other))
    data = json.loads((project / module.PREPARED_FILE).read_text())
    assert set(data["templates"]) == {"templates", "mail"}
    assert "page.html" in data["templates"]["templates"]["entries"]


@pytest.mark.parametrize(
    "name",
    [
        "page.html",
        "./page.html",
        "sub/inner.html",
        "sub//inner.html",
        "sub/./inner.html",
        "crlf.html",
        "sub\\back.html",
        "missing.html",
        "../outside.html",
        "sub/../page.html",
        "sub",
    ],
)
def test_a_template_read_without_jinja2_is_what_its_filesystem_loader_reads(tmp_path, name):
    import jinja2

    from chalice_http_toolkit import _template_source

    templates = tmp_path / "templates"
    (templates / "sub").mkdir(parents=True)
    (templates / "page.html").write_text("<p>{{ x }}</p>\n")
    (templates / "sub" / "inner.html").write_text("inner é")
    (templates / "sub\\back.html").write_text("a backslash is a character here")
    (templates / "crlf.html").write_bytes(b"line one\r\nline two\r\n")
    (tmp_path / "outside.html").write_text("outside")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)))

    assert _template_source(None, str(templates), name) == _template_source(
        env, str(templates), name
    )


# Before its environment is made (a cold start's 304), a manager plans a page from the
# prepared file alone: the plan must be the one it makes once Jinja2 is imported.
HELPER_TEMPLATES = {
    "plain.html": "{{ title }}",
    "request-g.html": "{{ g.user }}",
    "csrf.html": "<input value='{{ csrf_token() }}'>",
    "flashes.html": "{% for m in get_flashed_messages() %}{{ m }}{% endfor %}",
    "lipsum.html": "{{ lipsum(1) }}",
    "random-filter.html": "{{ items|random }}",
    "random-argument.html": "{{ random }}",
    "jinja-globals.html": "{% for i in range(2) %}{{ dict(a=i) }}{{ cycler(1, 2).next() }}"
    "{% endfor %}",
    "tests.html": "{% if 4 is divisibleby 2 %}{{ title|upper }}{% endif %}",
    "helpers.html": "{{ static('site.css') }} {{ srcset('site.css') }}",
    "include-missing.html": "{% include 'none.html' ignore missing %}{{ title }}",
}


@pytest.mark.parametrize("name", sorted(HELPER_TEMPLATES))
def test_a_page_planned_before_the_environment_has_the_etag_of_one_planned_after(project, name):
    for template, text in HELPER_TEMPLATES.items():
        (project / "templates" / template).write_text(text)
    prepare(project)
    arguments = {"title": "t", "items": [1, 2], "random": 4}

    module = module_copy(project)
    cold = module.ContentManager(
        str(project / "templates"), str(project / "static"), auto_reload=False
    )
    before = cold.template_etag(name, arguments)
    assert cold._pages._env is None  # planned from the prepared file alone
    warm = manager(module_copy(project), project)[0]  # its environment made first

    assert before == warm.template_etag(name, arguments)
    assert cold.env is not None and cold.template_etag(name, arguments) == before


def test_a_prepared_file_made_with_other_jinja2_defaults_is_caught_once_jinja2_loads(
    project, caplog
):
    (project / "templates" / "lipsum.html").write_text("{{ lipsum(1) }}")
    prepare(project)
    prepared = project / "chalice_http_toolkit.prepared.json"
    data = json.loads(prepared.read_text())
    data["templates"]["templates"]["defaults"]["globals"].remove("lipsum")  # unknown to it
    prepared.write_text(json.dumps(data))
    cm = module_copy(project).ContentManager(
        str(project / "templates"), str(project / "static"), auto_reload=False
    )
    assert cm.template_etag("lipsum.html", {}) is not None  # the build's word for it

    with caplog.at_level("WARNING", logger="chalice_http_toolkit"):
        cm.env  # noqa: B018  (made now: Jinja2's defaults are checked)

    assert "another Jinja2" in caplog.text
    assert cm.template_etag("lipsum.html", {}) is None  # volatile after all: rendered


def test_a_prepared_file_without_jinja2_defaults_is_used_once_jinja2_loads(project):
    expected = manager(module_copy(project), project)[0].template_etag("page.html", ARGS)
    prepare(project)
    prepared = project / "chalice_http_toolkit.prepared.json"
    data = json.loads(prepared.read_text())
    del data["templates"]["templates"]["defaults"]  # as an earlier version wrote it
    prepared.write_text(json.dumps(data))

    cm, counts = manager(module_copy(project), project)

    assert cm.template_etag("page.html", ARGS) == expected
    assert counts["parse"] == 0


# == ETag property =========================================================================
# Hypothesis: two argument values that render differently never share a template ETag.
#
# Values are drawn over every type the canonical form covers (str, Markup,
# bytes, int, float, bool, None, Decimal, lists, tuples, dicts, sets, dates,
# times and tz-aware datetimes across zones and fixed offsets) and some it
# refuses (bytearray, str subclasses); the second value is often a near twin of
# the first (the same instant in another zone with the same offset, a list as a
# tuple, bytes as a bytearray, 1 as True) — the pairs that used to collide.

ZONES = [
    "UTC",
    "Europe/Paris",
    "Africa/Lagos",
    "Europe/London",
    "Africa/Abidjan",
    "America/New_York",
    "America/Toronto",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
]
PROBE = "{{ v }}|{{ v | pprint }}|{% if v.tzinfo is defined %}{{ v.strftime('%Z %z') }}{% endif %}"


@pytest.fixture(scope="module")
def cm(tmp_path_factory):
    root = tmp_path_factory.mktemp("property")
    (root / "t").mkdir()
    (root / "s").mkdir()
    (root / "t" / "probe.html").write_text(PROBE)
    return ContentManager(str(root / "t"), str(root / "s"), auto_reload=False)


class Loud(str):
    """A str subclass: renders like a str, but is not one."""


zones = st.sampled_from(ZONES).map(zoneinfo.ZoneInfo)
offsets = st.integers(-18 * 60, 18 * 60).map(lambda minutes: datetime.timedelta(minutes=minutes))
fixed = st.builds(datetime.timezone, offsets) | st.builds(
    datetime.timezone, offsets, st.sampled_from(["CET", "WAT", "GMT", "X"])
)
tzinfos = st.none() | zones | fixed
text = st.text(alphabet="ab<&é😀", max_size=4)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3) | st.integers(),
    st.floats(allow_nan=False),
    text,
    text.map(Markup),
    text.map(Loud),
    st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(),
    st.times(timezones=st.none() | fixed),
    st.datetimes(
        min_value=datetime.datetime(1990, 1, 1),
        max_value=datetime.datetime(2040, 1, 1),
        timezones=tzinfos,
    ),
)
aware = st.datetimes(
    min_value=datetime.datetime(1990, 1, 1),
    max_value=datetime.datetime(2040, 1, 1),
    timezones=zones | fixed,
)
hashable = st.one_of(st.integers(-3, 3), text, st.booleans())
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(text | st.integers(-2, 2), children, max_size=3),
        st.frozensets(hashable, max_size=3),
        st.sets(hashable, max_size=3),
    ),
    max_leaves=6,
)


def twins(value: Any) -> list[Any]:
    """Values that are equal, or nearly, to ``value`` but may render differently."""
    out: list[Any] = []
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        for name in ZONES:
            out.append(value.astimezone(zoneinfo.ZoneInfo(name)))
        offset = value.utcoffset()
        out.append(value.replace(tzinfo=datetime.timezone(offset)))
        out.append(value.replace(tzinfo=datetime.timezone(offset, "X")))
    if type(value) is bytes:
        out += [bytearray(value), memoryview(value)]
    if type(value) is str:
        out += [Markup(value), Loud(value)]
    if type(value) is int and value in (0, 1):
        out += [bool(value), float(value), decimal.Decimal(value)]
    if type(value) is list:
        out.append(tuple(value))
        if value:  # a twin inside the list
            out += [[twin, *value[1:]] for twin in twins(value[0])]
    if type(value) is tuple:
        out.append(list(value))
    if type(value) is dict:
        out.append(dict(reversed(list(value.items()))))
    return out or [value]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=values | aware | st.lists(aware | values, max_size=2), data=st.data())
def test_values_that_render_differently_never_share_an_etag(cm, first, data):
    second = data.draw(st.sampled_from(twins(first)) | values, label="second")
    one = cm.template_etag("probe.html", {"v": first})
    other = cm.template_etag("probe.html", {"v": second})
    assert cm.template_etag("probe.html", {"v": first}) == one  # memo hit or not, the same
    if one is not None and one == other:
        assert cm.render_template("probe.html", v=first) == cm.render_template(
            "probe.html", v=second
        ), (first, second)
