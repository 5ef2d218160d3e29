"""prepare_deployment: templates parsed and compiled at build time, trusted only while unchanged.

A project's copy of the module (``chalicelib/chalice_http_toolkit.py``) reads the files
``prepare_deployment`` wrote beside it. Whether a container parsed or compiled a template
is seen on Jinja2's own ``Environment.parse`` and ``Environment.compile``, counted.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_NAMES = itertools.count()

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


def load_module(lib: Path):
    """The project's copy of the module, as a container imports it (a fresh module each time)."""
    name = f"cht_prepared_{next(_NAMES)}"
    spec = importlib.util.spec_from_file_location(name, lib / "chalice_http_toolkit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
    module = load_module(lib)
    written = module.prepare_deployment(str(lib / "templates"))
    assert written == str(lib / module.PREPARED_FILE)


def fresh_analysis(lib: Path, name: str):
    cm, _ = manager(load_module(lib), lib)
    (lib / "chalice_http_toolkit.prepared.json").rename(lib / "moved.json")
    try:
        return cm.template_dependencies(name)
    finally:
        (lib / "moved.json").rename(lib / "chalice_http_toolkit.prepared.json")


def test_a_prepared_container_neither_parses_nor_compiles(project):
    unprepared, counts = manager(load_module(project), project)
    expected = (
        unprepared.template_dependencies("page.html"),
        unprepared.render_template("page.html", **ARGS),
    )
    assert counts["parse"] > 0 and counts["compile"] > 0
    prepare(project)

    cm, counts = manager(load_module(project), project)
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
    before = manager(load_module(project), project)[0].template_etag("base.html", ARGS)
    prepare(project)
    after = manager(load_module(project), project)[0].template_etag("base.html", ARGS)
    assert before == after is not None


def test_an_edited_template_is_parsed_and_compiled_again(project):
    prepare(project)
    (project / "templates" / "nav.html").write_text("<nav>{{ links|length }} links</nav>")

    cm, counts = manager(load_module(project), project)
    deps = cm.template_dependencies("page.html")
    page = cm.render_template("page.html", **ARGS)

    assert counts["parse"] > 0 and counts["compile"] > 0
    assert deps.digest == fresh_analysis(project, "page.html").digest
    assert "2 links" in page


def test_a_template_missing_at_build_time_is_not_ignored_once_it_exists(project):
    prepare(project)
    (project / "templates" / "extra.html").write_text("{{ csrf_token() }}")

    cm, counts = manager(load_module(project), project)
    deps = cm.template_dependencies("page.html")

    assert counts["parse"] > 0
    assert "csrf_token" in deps.names


def test_another_parser_setting_parses_again(project):
    prepare(project)
    cm, counts = manager(load_module(project), project)
    cm.env.trim_blocks = True
    cm.template_dependencies("page.html")
    assert counts["parse"] > 0


def test_a_filter_that_takes_its_context_now_is_compiled_again(project):
    import jinja2

    prepare(project)
    cm, counts = manager(load_module(project), project)
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

    cm, counts = manager(load_module(project), project)
    assert cm.template_dependencies("page.html").names
    assert cm.render_template("page.html", **ARGS).startswith("<title>A &lt;b&gt;</title>")
    assert counts["parse"] > 0 and counts["compile"] > 0


def test_prepare_keeps_the_sections_of_other_template_folders(project):
    other = project / "mail"
    other.mkdir()
    (other / "welcome.txt").write_text("Welcome {{ name }}")
    module = load_module(project)
    module.prepare_deployment(str(project / "templates"))
    module.prepare_deployment(str(other))
    data = json.loads((project / module.PREPARED_FILE).read_text())
    assert set(data["templates"]) == {"templates", "mail"}
    assert "page.html" in data["templates"]["templates"]["entries"]
