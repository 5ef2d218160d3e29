"""README.md says what is true: its Quickstart runs as written, its signatures and exit
codes match the code, and it cites nothing the repository does not hold.

(Its `>>>` examples and the module's docstring examples are doctests: see pyproject.toml.)
"""

from __future__ import annotations

import inspect
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client

import cli
from chalice_http_toolkit import CloudFront, ContentManager

from conftest import ROOT
from localserver import CHALICE, run
from sites import imported_project

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The text of the README section whose heading starts with ``title`` (to the next
    heading of the same or a higher level; ``#`` lines in code blocks are not headings)."""
    lines, found, level, fenced = [], False, 0, False
    for line in README.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) (.*)", line)
        if heading and found and len(heading[1]) <= level:
            break
        if found:
            lines.append(line)
        elif heading and heading[2].startswith(title):
            found, level = True, len(heading[1])
    assert found, title
    return "".join(lines)


#: A code block's first line names the file it is: ``# app.py``, ``{# path #}``, ``/* path */``.
FILE_COMMENT = re.compile(r"^(?:# (\S+)|\{# (\S+) #\}|/\* (\S+) \*/)$")


def quickstart_files() -> dict[str, str]:
    """The Quickstart's code blocks, by the file name each one starts with."""
    files = {}
    for block in re.findall(r"^```[\w+-]*\n(.*?)^```", section("Quickstart"), re.S | re.M):
        first = block.partition("\n")[0]
        match = FILE_COMMENT.match(first)
        assert match, f"a Quickstart block that names no file: {first!r}"
        files[next(name for name in match.groups() if name)] = block
    return files


@pytest.fixture(scope="module")
def quickstart_app(tmp_path_factory) -> Iterator[Chalice]:
    """`chalice new-project mysite`, the module in chalicelib/, the Quickstart's files."""
    root = tmp_path_factory.mktemp("quickstart")
    made = run([CHALICE, "new-project", "mysite"], cwd=root)
    assert made.returncode == 0, made.stderr
    project = root / "mysite"
    (project / "chalicelib").mkdir()
    shutil.copy(ROOT / "chalice_http_toolkit.py", project / "chalicelib")
    for name, text in quickstart_files().items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    with imported_project(project) as app:
        yield app.app


def test_quickstart_names_the_files_it_uses():
    assert set(quickstart_files()) == {
        "app.py",
        "chalicelib/templates/index.html",
        "chalicelib/templates/404.html",
        "chalicelib/static/css/site.css",
    }


def test_quickstart_page_links_a_content_hashed_stylesheet(quickstart_app, caplog):
    with Client(quickstart_app) as client:
        page = client.http.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert b"<h1>Hello</h1>" in page.body
        url = re.search(rb'href="([^"]+)"', page.body)[1].decode()
        assert re.fullmatch(r"/static/css/site\.[0-9a-f]{8,}\.css", url)
        css = client.http.get(url)
    assert css.status_code == 200
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


@pytest.mark.parametrize("path", ["/nope", "/a/b/c/d/e/f", "/static/a/b/c/d/e/f/g/h.css"])
def test_quickstart_unknown_paths_get_its_404_page(quickstart_app, path):
    """Regression: the Quickstart registered a 404 template it never showed (a 500)."""
    with Client(quickstart_app) as client:
        reply = client.http.get(path, headers={"Accept": "text/html"})
    assert reply.status_code == 404
    assert b"<h1>Page not found</h1>" in reply.body


def test_readme_claims_the_switch_from_0_6_2_only_when_every_name_is_here():
    """0.6.2 exports ex_multipart, ResponseWithBinary and TaskingControllerFactory too."""
    import chalice_http_toolkit as toolkit

    names = ("ContentManager", "CloudFront", "ex_multipart", "ResponseWithBinary")
    names += ("TaskingControllerFactory",)
    missing = [name for name in names if name not in toolkit.__all__]
    intro = README.split("## Commands")[0]
    if missing:
        assert "switches by changing its imports" not in intro
        assert all(name in intro for name in missing)
    else:
        assert "switches by changing its imports" in intro
        assert all(f"`{name}`" in intro for name in names)


@pytest.mark.parametrize("cls", [ContentManager, CloudFront])
def test_signature_headings_list_every_parameter(cls):
    heading = re.search(rf"^### `{cls.__name__}\((.*)\)`$", README, re.MULTILINE)
    assert heading, cls.__name__
    listed = [part.split("=")[0].strip() for part in heading[1].split(", ")]
    actual = list(inspect.signature(cls).parameters)
    assert [name for name in listed if name != "*"] == actual


def test_exit_codes_are_documented_for_every_command_that_uses_them():
    text = " ".join(section("CLI").split())
    assert "4 `setup`, `cloudfront`: files exist" in text
    assert "5 `setup`, `cloudfront`:" in text
    assert "4  setup, cloudfront: files already exist" in cli.EXIT_CODES_HELP


def test_make_test_row_says_what_it_installs():
    [row] = [line for line in README.splitlines() if line.startswith("| `make test` |")]
    assert "`libmagic1`" in row and "`nodejs`" in row
    makefile = (ROOT / "Makefile").read_text()
    assert "install -y -qq nodejs" in makefile and "install -y -qq libmagic1" in makefile


def test_nothing_cites_a_document_that_is_not_in_the_repository():
    tracked = run(["git", "-C", ROOT, "ls-files"], env=None)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    cited = []
    for name in tracked.stdout.split():
        path = ROOT / name
        readable = path.suffix in (".py", ".md", ".txt", ".toml") and path.is_file()
        if readable and re.search(r"DESIGN(\.md)? ?§", path.read_text(errors="replace")):
            cited.append(name)
    assert cited == []


def test_readme_anchor_links_resolve():
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", README, re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(anchor)
    linked = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert linked <= anchors


def test_licence_file_and_module_header():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in licence
    header = (ROOT / "chalice_http_toolkit.py").read_text().splitlines()[:6]
    assert any(line.startswith("License: Apache-2.0") for line in header)
    assert any(line.startswith("Homepage: https://") for line in header)


def test_paths_named_in_the_readme_exist():
    for name in re.findall(r"`((?:tests|bench|bin_magic|scaffold)/[\w./-]+\.\w+)`", README):
        assert (ROOT / name).exists(), name
    assert Path(ROOT / "scaffold" / "app.py").is_file()
