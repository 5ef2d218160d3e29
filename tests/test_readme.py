"""README.md and docs/ say what is true: the Quickstart runs as written and in its order,
the tour's claims hold on the demo site, signatures and exit codes match the code, every
link resolves, and nothing is cited that the repository does not hold.

(Their `>>>` examples and the module's docstring examples are doctests: see pyproject.toml.)
"""

from __future__ import annotations

import inspect
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client

import cli
from chalice_http_toolkit import CloudFront, ContentManager

from conftest import ROOT
from fake_klayers import FakeKlayers
from localserver import LOOPBACK, offline_env, run, run_python
from sites import imported_project

README = (ROOT / "README.md").read_text()
#: The reference documentation, by file name (README.md links each one).
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}


def doc_text(name: str) -> str:
    return " ".join(DOCS[name].split())


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


def quickstart_blocks() -> list[tuple[str, str]]:
    """The Quickstart's code blocks in order: (language, text)."""
    return re.findall(r"^```([\w+-]*)\n(.*?)^```", section("Quickstart"), re.S | re.M)


def quickstart_files() -> dict[str, str]:
    """The Quickstart's file blocks, by the file name each one starts with."""
    files = {}
    for language, block in quickstart_blocks():
        if language == "console":
            continue
        first = block.partition("\n")[0]
        match = FILE_COMMENT.match(first)
        assert match, f"a Quickstart block that names no file: {first!r}"
        files[next(name for name in match.groups() if name)] = block
    return files


def quickstart_commands() -> list[str]:
    """The commands of the Quickstart's console block, in order, without the prompt."""
    [commands] = [block for language, block in quickstart_blocks() if language == "console"]
    return [line[2:] for line in commands.splitlines() if line.startswith("$ ")]


#: A checkout holds these besides its sources (copied without them, as a clone would be).
NOT_SOURCES = (".git", ".venv*", ".tox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


def run_quickstart_commands(root: Path) -> subprocess.CompletedProcess[str]:
    """The Quickstart's commands in one shell from an empty directory, offline.

    Stand-ins, because no package index is reachable: ``python3`` is this interpreter; the
    new venv sees this environment's packages (chalice, Jinja2, Pillow, setuptools) through
    a ``.pth`` file, so pip finds them already installed, and loses the old setuptools some
    Pythons bundle; pip builds without isolation; the ``chalice`` command comes from this
    environment. ``/path/to/chalice-http-toolkit`` is a copy of this checkout. Everything
    else runs exactly as written.
    """
    checkout = root / "chalice-http-toolkit"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*NOT_SOURCES, ".hypothesis"))
    work = root / "empty"
    work.mkdir()
    outer = shlex.quote(sysconfig.get_path("purelib"))
    site = '"$(python -c "import sysconfig; print(sysconfig.get_path(\'purelib\'))")"'
    stand_ins = [
        f"echo {outer} > {site}/outer-site.pth",
        "python -m pip uninstall --quiet --yes setuptools",
    ]
    script = ["set -eux"]
    for command in quickstart_commands():
        command = command.replace("/path/to/chalice-http-toolkit", str(checkout))
        if command.startswith("python3 -m venv .venv"):
            command = command.replace("python3", shlex.quote(sys.executable), 1)
            script += [command, *stand_ins]
        else:
            script.append(command)
    env = offline_env(PIP_NO_BUILD_ISOLATION="false", PIP_NO_INPUT="1")
    env["PATH"] = f"{env['PATH']}:{Path(sys.executable).parent}"  # chalice, last
    return run(["bash", "-c", "\n".join(script)], cwd=work, env=env, timeout=300)


@pytest.fixture(scope="module")
def quickstart_project(tmp_path_factory) -> Path:
    """The Quickstart's commands run from an empty directory, then its four files."""
    root = tmp_path_factory.mktemp("quickstart")
    done = run_quickstart_commands(root)
    assert done.returncode == 0, done.stdout + done.stderr
    project = root / "empty" / "mysite"
    for name, text in quickstart_files().items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return project


@pytest.fixture
def quickstart_app(quickstart_project) -> Iterator[Chalice]:
    """Imported per test: another project's ``app`` may be imported in between."""
    with imported_project(quickstart_project) as app:
        yield app.app


def test_quickstart_commands_come_in_an_order_that_works():
    """Regression: the Quickstart said to `pip install chalice` after `chalice new-project`,
    and not where to get the module."""
    commands = quickstart_commands()
    venv = next(i for i, c in enumerate(commands) if c.startswith("python3 -m venv"))
    pip = next(i for i, c in enumerate(commands) if "pip install" in c)
    new_project = next(i for i, c in enumerate(commands) if "chalice new-project" in c)
    copy = next(i for i, c in enumerate(commands) if "chalicelib/" in c)
    assert venv < pip < new_project < copy
    assert "chalice" in commands[pip].split() and "chalice-http-toolkit" in commands[pip]


def test_quickstart_runs_from_an_empty_directory(quickstart_project):
    """pip installs the toolkit, `chalice new-project` makes the project, and the module
    is copied from where pip put it: the very file of this checkout."""
    module = quickstart_project / "chalicelib" / "chalice_http_toolkit.py"
    assert module.read_bytes() == (ROOT / "chalice_http_toolkit.py").read_bytes()
    assert (quickstart_project / ".chalice" / "config.json").is_file()
    venv = quickstart_project.parent / ".venv"
    assert list(venv.glob("lib/python*/site-packages/chalice_http_toolkit.py"))


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
    heading = re.search(rf"^## `{cls.__name__}\((.*)\)`$", DOCS["api.md"], re.MULTILINE)
    assert heading, cls.__name__
    listed = [part.split("=")[0].strip() for part in heading[1].split(", ")]
    actual = list(inspect.signature(cls).parameters)
    assert [name for name in listed if name != "*"] == actual


def test_exit_codes_are_documented_for_every_command_that_uses_them():
    text = doc_text("cli.md")
    assert "4 `setup`, `cloudfront`: files exist" in text
    assert "5 `setup`, `cloudfront`:" in text
    assert "6 `demo`: the port asked for is in use" in text
    assert "7 `prepare`: the Python given lacks Jinja2 or Chalice" in text
    assert "4  setup, cloudfront: files already exist" in cli.EXIT_CODES_HELP
    codes = re.findall(r"^  (\d)  ", cli.EXIT_CODES_HELP, re.MULTILINE)
    assert codes == [str(n) for n in range(8)]


def test_make_test_row_says_what_it_installs():
    [row] = [line for line in DOCS["testing.md"].splitlines() if line.startswith("| `make test` |")]
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


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text (not ``#`` lines in code)."""
    found, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#+ (.+)$", line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-"))
    return found


def test_links_between_readme_and_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists, and a
    heading of it when it has an #anchor."""
    pages = {ROOT / "README.md": README} | {
        ROOT / "docs" / name: text for name, text in DOCS.items()
    }
    broken = []
    for page, text in pages.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            name, _, anchor = target.partition("#")
            linked = (page.parent / name).resolve() if name else page
            if not linked.is_file() or (anchor and anchor not in anchors(linked.read_text())):
                broken.append(f"{page.name}: {target}")
    assert broken == []


def test_readme_is_short_and_its_first_screen_says_what_it_is_and_how_to_start():
    """Regression: 1,255 lines, and `make demo` was the fourth row of a table after a
    753-character cell."""
    lines = README.splitlines()
    assert len(lines) < 500
    first_screen = "\n".join(lines[:30])
    assert "one file" in first_screen.lower() and "chalice_http_toolkit.py" in first_screen
    demo, test = first_screen.index("$ make demo"), first_screen.index("$ make test")
    tour = first_screen.index("## A 60-second tour")
    assert demo < test < tour
    assert first_screen.count("```console") == 2  # one command each, nothing else to read


def test_readme_table_of_contents_lists_every_docs_file():
    listed = re.findall(r"^\| \[docs/([\w.-]+\.md)\]\(docs/\1\) \|", section("Documentation"), re.M)
    assert sorted(listed) == sorted(DOCS)


def test_licence_file_and_module_header():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in licence
    header = (ROOT / "chalice_http_toolkit.py").read_text().splitlines()[:6]
    assert any(line.startswith("License: Apache-2.0") for line in header)
    assert any(line.startswith("Homepage: https://") for line in header)


def test_paths_named_in_the_readme_and_docs_exist():
    for text in [README, *DOCS.values()]:
        for name in re.findall(r"`((?:tests|bench|bin_magic|scaffold)/[\w./-]+\.\w+)`", text):
            assert (ROOT / name).exists(), name
    assert Path(ROOT / "scaffold" / "app.py").is_file()


# ---------------------------------------------------------------------------
# The 60-second tour, on the demo site (`make demo` writes it with `cli.py setup`)
# ---------------------------------------------------------------------------

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"


@pytest.fixture
def demo_site(tmp_path, capsys) -> Iterator[tuple[Path, Chalice]]:
    project = tmp_path / "demo"
    assert cli._demo_project(cli.build_parser().parse_args(["demo", "-p", str(project)])) == 0
    capsys.readouterr()
    with imported_project(project) as app:
        yield project, app.app


def test_tour_claims_hold_on_the_demo_site(demo_site):
    tour = " ".join(section("A 60-second tour").split())
    project, app = demo_site
    assert 'cf.template("index.html"' in (project / "app.py").read_text()
    with Client(app) as client:
        page = client.http.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200
        again = client.http.get("/", headers={"If-None-Match": page.headers["ETag"]})
        assert "`304 Not Modified`" in tour and again.status_code == 304
        css = re.search(rb'href="(/static/css/site\.[0-9a-f]+\.css)"', page.body)[1].decode()
        assert "`/static/css/site.<content hash>.css`, cached for a year" in tour
        cached = client.http.get(css).headers["Cache-Control"]
        assert cached == "public, max-age=31536000, immutable"
        assert "to Chrome as AVIF, to Safari as WebP and to curl as the PNG" in tour
        for accept, content_type in [(CHROME, "avif"), (SAFARI, "webp"), ("*/*", "png")]:
            image = client.http.get("/static/img/hero.png", headers={"Accept": accept})
            assert image.headers["Content-Type"] == f"image/{content_type}"
        contact = client.http.get("/contact", headers={"Accept": "text/html"})
        assert b'name="csrf_token"' in contact.body and b'type="file"' in contact.body
        assert "`build/demo/chalicelib/templates/index.html` and reload: the page changes" in tour
        index = project / "chalicelib" / "templates" / "index.html"
        index.write_text(index.read_text().replace("</h1>", "</h1><p>edited on the tour</p>"))
        edited = client.http.get("/", headers={"Accept": "text/html"})
        assert b"edited on the tour" in edited.body  # no restart


def test_python_versions_table_says_what_cli_accepts_and_what_is_tested():
    rows = {}
    for line in section("Python versions").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0][:1].isdigit():
            for version in cells[0].split(", "):
                rows[version] = cells[2]
    assert tuple(rows) == cli.LAMBDA_PYTHONS
    assert [v for v, here in rows.items() if here.startswith("tested")] == list(cli.TESTED_PYTHONS)
    assert "not tested" in rows["3.14"] and "no 3.14 interpreter" in rows["3.14"]
    assert "the default" in rows[cli.default_python()]
    assert all("warns" in rows[version] for version in cli.DEPRECATED_PYTHONS)
    tox = (ROOT / "tox.ini").read_text()
    assert all(f"py{v.replace('.', '')}" in tox for v in cli.TESTED_PYTHONS)


def test_cli_doc_setup_transcript_is_what_setup_prints(tmp_path):
    """docs/cli.md's `setup` session, run against the fake Klayers API (its "..." lines
    stand for lines left out)."""
    doc = DOCS["cli.md"]
    session = doc[doc.index("$ python cli.py setup -n mysite") :].split("```")[0]
    command, *shown = session.splitlines()
    server = FakeKlayers().start()
    try:
        done = run_python(
            ROOT / "cli.py",
            *shlex.split(command)[3:],
            cwd=tmp_path,
            KLAYERS_API_URL=server.url,
            **LOOPBACK,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    printed = iter(done.stdout.splitlines())
    running = "{}.{}".format(*sys.version_info[:2])
    for line in shown:
        if f"python{running} -m compileall" in line or "spares Lambda compiling" in line:
            continue  # setup under the Python it writes for compiles the module itself
        if f"prepare --interpreter python{running}" in line:
            continue  # ... and prepares with the Python that runs it
        if line.strip() != "...":
            assert line in printed, line  # in order: `in` consumes the iterator


def test_deploying_sets_a_region_before_chalice_package_or_deploy():
    """Regression: `chalice package` built for a minute, then said "No region configured":
    nothing in the README said to set one (and `.chalice/config.json` cannot)."""
    steps = " ".join(section("Deploying").split())
    region = steps.index("export AWS_DEFAULT_REGION=")
    assert region < steps.index("`chalice deploy --stage prod`")
    assert "`~/.aws/config`" in steps and "`.chalice/config.json` has no region setting" in steps


def test_every_public_name_is_documented():
    """DESIGN: every name of ``__all__`` is in the README or a docs/ page."""
    import chalice_http_toolkit as toolkit

    text = README + "".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
    assert [name for name in toolkit.__all__ if name not in text] == []
