"""cli.py `layers` and `setup` against a fake Klayers API on loopback.

The cases run ``cli.main([...])`` in this process (``run``), asserting stdout,
stderr and the exit code; a few representative ones (section "As a subprocess")
run ``python cli.py ...`` (``run_cli``), which is the same ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import gzip
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

import chalice_http_toolkit
import cli

from conftest import ROOT, CliResult, run_cli
from fake_klayers import CATALOGUE, REGIONS, FakeKlayers, layer_arn
from localserver import LOOPBACK, free_port, run_python, wait_until_serving
from localserver import run as run_command

Result = CliResult
Runner = Callable[..., Result]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """The fake API is on loopback; a proxy from the environment must not be in the way."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def klayers(monkeypatch):
    server = FakeKlayers().start()
    monkeypatch.setenv("KLAYERS_API_URL", server.url)
    monkeypatch.setenv("KLAYERS_TIMEOUT", "5")
    yield server
    server.stop()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_failure(result: Result, code: int, *fragments: str) -> None:
    """One clear line on stderr, nothing on stdout, no traceback."""
    assert result.code == code, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# ---------------------------------------------------------------------------
# layers: the happy paths
# ---------------------------------------------------------------------------


def test_regions_match_the_issue_list():
    assert cli.REGIONS == REGIONS
    assert len(set(cli.REGIONS)) == 23


@pytest.mark.parametrize("region", REGIONS)
def test_layers_prints_latest_arns_for_every_region(run, klayers, region):
    result = run("layers", "-r", region, "--python", "3.12")
    assert result == Result(
        0,
        f"{layer_arn('p3.12', region, 'jinja2', 7)}\n{layer_arn('p3.12', region, 'Pillow', 9)}\n",
        "",
    )
    assert klayers.paths == [f"/api/v2/p3.12/layers/latest/{region}/json"]


LAYER_AVAILABILITY = [
    # python, arch, build, present (package, layer version), missing
    ("3.10", "x86_64", "p3.10", [("jinja2", 4), ("Pillow", 6)], []),
    ("3.11", "x86_64", "p3.11", [("jinja2", 5), ("Pillow", 8)], []),
    ("3.12", "x86_64", "p3.12", [("jinja2", 7), ("Pillow", 9)], []),
    ("3.14", "x86_64", "p3.14", [("jinja2", 2), ("Pillow", 3)], []),
    ("3.12", "arm64", "p3.12-arm64", [("jinja2", 6)], ["Pillow"]),
    ("3.14", "arm64", "p3.14-arm64", [("jinja2", 1)], ["Pillow"]),
    ("3.13", "x86_64", "p3.13", [], ["jinja2", "Pillow"]),
    ("3.13", "arm64", "p3.13-arm64", [], ["jinja2", "Pillow"]),
]


@pytest.mark.parametrize(("python", "arch", "build", "present", "missing"), LAYER_AVAILABILITY)
def test_layers_per_python_version_and_architecture(
    run, klayers, python, arch, build, present, missing
):
    result = run("layers", "-r", "eu-central-1", "--python", python, "--arch", arch)
    assert klayers.paths == [f"/api/v2/{build}/layers/latest/eu-central-1/json"]
    expected = "".join(
        layer_arn(build, "eu-central-1", package, number) + "\n" for package, number in present
    )
    assert result.stdout == expected
    assert result.code == (cli.EXIT_MISSING_LAYER if missing else cli.EXIT_OK)
    lines = [line for line in result.stderr.splitlines() if "warning: " not in line]
    assert len(lines) == len(missing)
    for line, package in zip(lines, missing):
        assert f"no {package} layer for Python {python} ({arch}" in line
        assert f"put {package} in requirements.txt instead" in line


def test_layers_arm64_arns_name_the_architecture(run, klayers):
    result = run("layers", "-r", "us-west-2", "--python", "3.12", "--arch", "arm64")
    assert result.stdout == (
        "arn:aws:lambda:us-west-2:770693421928:layer:Klayers-p312-arm64-jinja2:6\n"
    )


def test_layers_json(run, klayers):
    result = run("layers", "-r", "ap-southeast-5", "--python", "3.12", "--arch", "arm64", "-j")
    assert result.code == cli.EXIT_MISSING_LAYER
    assert json.loads(result.stdout) == {
        "region": "ap-southeast-5",
        "python": "3.12",
        "arch": "arm64",
        "layers": {
            "jinja2": {
                "arn": layer_arn("p3.12-arm64", "ap-southeast-5", "jinja2", 6),
                "version": "3.1.6",
            },
            "Pillow": None,
        },
    }
    assert "no Pillow layer" in result.stderr


def test_layers_json_all_found(run, klayers):
    result = run("layers", "-r", "us-east-1", "--python", "3.14", "--json")
    assert (result.code, result.stderr) == (0, "")
    layers = json.loads(result.stdout)["layers"]
    assert layers["Pillow"] == {
        "arn": layer_arn("p3.14", "us-east-1", "Pillow", 3),
        "version": "12.0.0",
    }


def test_default_python_is_the_newest_the_suite_runs_under(run, klayers):
    """tox.ini's environments are the Pythons the suite runs under; the newest is the default."""
    tox = (ROOT / "tox.ini").read_text()
    tested = sorted(re.findall(r"py3(\d+)", tox.partition("env_list =")[2].splitlines()[0]))
    assert tuple(f"3.{minor}" for minor in sorted(map(int, tested))) == cli.TESTED_PYTHONS
    assert cli.default_python() == cli.TESTED_PYTHONS[-1] == "3.13"
    result = run("layers", "-r", "us-east-1")
    assert klayers.paths == ["/api/v2/p3.13/layers/latest/us-east-1/json"]
    assert result.code == cli.EXIT_MISSING_LAYER  # Klayers has no p3.13 jinja2 or Pillow


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13", "3.14"])
def test_every_lambda_python_is_accepted(run, klayers, python):
    result = run("layers", "-r", "us-east-1", "--python", python)
    assert result.code in (cli.EXIT_OK, cli.EXIT_MISSING_LAYER), result.stderr
    assert klayers.paths == [f"/api/v2/p{python}/layers/latest/us-east-1/json"]


def test_deprecated_runtime_is_accepted_with_a_warning(run, klayers, tmp_path):
    """Regression: python3.10, deprecated by Lambda on 2026-10-31, was taken silently."""
    result = run("setup", "-n", "site", "-p", str(tmp_path / "site"), "--python", "3.10")
    assert result.code == cli.EXIT_OK
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning.startswith("setup: warning: Lambda deprecated python3.10 on 2026-10-31")
    assert "prefer --python 3.13" in warning
    layers = run("layers", "-r", "us-east-1", "--python", "3.10")
    assert "layers: warning: Lambda deprecated python3.10" in layers.stderr
    quiet = run("setup", "-n", "site", "-p", str(tmp_path / "other"), "--python", "3.12")
    assert "warning" not in quiet.stderr


def test_deprecation_warning_before_and_after_the_date():
    before = cli.deprecation_warning("3.10", datetime.date(2026, 10, 30))
    assert before.startswith("warning: Lambda deprecates python3.10 on 2026-10-31")
    after = cli.deprecation_warning("3.10", datetime.date(2026, 10, 31))
    assert after.startswith("warning: Lambda deprecated python3.10 on 2026-10-31")
    assert cli.deprecation_warning("3.13") is None


def test_version_prints_the_toolkit_version(run):
    import chalice_http_toolkit

    result = run("--version")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == f"cli.py {chalice_http_toolkit.__version__}\n"
    assert run_cli("--version").stdout == result.stdout


def test_layers_picks_the_highest_version_and_skips_unusable_entries(run, klayers):
    arn = "arn:aws:lambda:us-east-1:770693421928:layer:Klayers-p312-{}:{}"
    entries = [
        {"package": "jinja2", "packageVersion": "3.1.4", "arn": arn.format("jinja2", 3)},
        {"package": "jinja2", "packageVersion": "3.1.6", "arn": arn.format("jinja2", 12)},
        {"package": "Jinja2", "packageVersion": "3.1.5", "arn": arn.format("jinja2", 7)},
        {"package": "Pillow", "packageVersion": "11.3.0", "arn": "not an arn"},
        {"package": "Pillow", "arn": arn.format("Pillow", 2), "expiryDate": None},
        {"package": None, "arn": arn.format("Pillow", 99)},
        {"package": "pillow", "packageVersion": "11.0.0", "arn": arn.format("Pillow", 5)},
    ]
    klayers.respond(200, json.dumps(entries))
    result = run("layers", "-r", "us-east-1", "--python", "3.12")
    assert result == Result(0, arn.format("jinja2", 12) + "\n" + arn.format("Pillow", 5) + "\n", "")


def test_layers_empty_list_means_no_layers(run, klayers):
    klayers.respond(200, "[]")
    result = run("layers", "-r", "us-east-1", "--python", "3.12")
    assert result.code == cli.EXIT_MISSING_LAYER
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 2


# ---------------------------------------------------------------------------
# layers: failures are one line, no traceback, a meaningful exit code
# ---------------------------------------------------------------------------

FAILURES = [
    ("http-500", 500, "Internal error", "HTTP 500 Internal Server Error"),
    ("http-503", 503, "", "HTTP 503"),
    ("html", 200, "<html><body>maintenance</body></html>", "not JSON"),
    ("truncated-json", 200, '[{"package": "jinja2", "arn": ', "not JSON"),
    ("invalid-utf8", 200, b"\xff\xfe\x00[", "not JSON"),
    ("object", 200, '{"message": "Internal server error"}', "expected a JSON list of layers"),
    ("list-of-strings", 200, '["jinja2", "Pillow"]', "expected a JSON list of layers"),
    ("null", 200, "null", "expected a JSON list of layers"),
    ("no-usable-entry", 200, '[{"package": "jinja2"}, {"arn": 3}]', "no entry has a package"),
]


@pytest.mark.parametrize(
    ("status", "body", "message"), [case[1:] for case in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_layers_bad_answers(run, klayers, status, body, message):
    klayers.respond(status, body)
    result = run("layers", "-r", "us-east-1", "--python", "3.12")
    url = f"{klayers.url}/api/v2/p3.12/layers/latest/us-east-1/json"
    assert_failure(result, cli.EXIT_LOOKUP_FAILED, message, url)


def test_layers_unknown_build_is_http_404(run, klayers):
    result = run("layers", "-r", "us-east-1", "--python", "3.11", "--arch", "arm64")
    assert_failure(result, cli.EXIT_LOOKUP_FAILED, "HTTP 404", "/api/v2/p3.11-arm64/")


def test_layers_timeout(run, klayers, monkeypatch):
    monkeypatch.setenv("KLAYERS_TIMEOUT", "0.3")
    klayers.respond(200, "[]", delay=10)
    started = time.monotonic()
    result = run("layers", "-r", "us-east-1", "--python", "3.12")
    assert time.monotonic() - started < 5
    assert_failure(result, cli.EXIT_LOOKUP_FAILED, "could not reach", "no answer within 0.3 s")


def test_layers_connection_refused(run, monkeypatch):
    monkeypatch.setenv("KLAYERS_API_URL", closed_port_url())
    result = run("layers", "-r", "us-east-1", "--python", "3.12")
    assert_failure(result, cli.EXIT_LOOKUP_FAILED, "could not reach", "Connection refused")


USAGE_ERRORS = [
    ("unknown-region", ["layers", "-r", "mars-east-1"], "unknown region 'mars-east-1'"),
    ("region-case", ["layers", "-r", "US-EAST-1"], "unknown region"),
    ("region-empty", ["layers", "-r", ""], "unknown region"),
    ("no-region", ["layers"], "-r/--region"),
    ("python-major", ["layers", "-r", "us-east-1", "--python", "3"], "--python must look like"),
    ("python-name", ["layers", "-r", "us-east-1", "--python", "python3.12"], "--python"),
    ("python-patch", ["layers", "-r", "us-east-1", "--python", "3.12.1"], "--python"),
    ("python-2", ["layers", "-r", "us-east-1", "--python", "2.7"], "--python"),
    ("python-3.9", ["layers", "-r", "us-east-1", "--python", "3.9"], "3.9 is not a Lambda Python"),
    ("python-3.15", ["layers", "-r", "us-east-1", "--python", "3.15"], "3.10, 3.11, 3.12, 3.13"),
    ("python-3.0", ["layers", "-r", "us-east-1", "--python", "3.0"], "runtime this toolkit"),
    ("arch", ["layers", "-r", "us-east-1", "--arch", "x86"], "invalid choice: 'x86'"),
    ("no-command", [], "required: COMMAND"),
    ("unknown-command", ["deploy"], "invalid choice: 'deploy'"),
]


@pytest.mark.parametrize(
    ("args", "message"), [case[1:] for case in USAGE_ERRORS], ids=[c[0] for c in USAGE_ERRORS]
)
def test_usage_errors(run, klayers, args, message):
    result = run(*args)
    assert result.code == cli.EXIT_USAGE
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.startswith("usage: cli.py")
    assert "Traceback" not in result.stderr
    assert klayers.paths == []


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KLAYERS_API_URL", "ftp://example.invalid", "KLAYERS_API_URL must be an http(s) URL"),
        ("KLAYERS_API_URL", "127.0.0.1:9", "KLAYERS_API_URL must be an http(s) URL"),
        ("KLAYERS_TIMEOUT", "soon", "KLAYERS_TIMEOUT must be seconds"),
        ("KLAYERS_TIMEOUT", "0", "KLAYERS_TIMEOUT must be seconds"),
        ("KLAYERS_TIMEOUT", "-1", "KLAYERS_TIMEOUT must be seconds"),
        ("KLAYERS_TIMEOUT", "nan", "KLAYERS_TIMEOUT must be seconds"),
    ],
)
def test_bad_environment(run, klayers, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    result = run("layers", "-r", "us-east-1", "--python", "3.12")
    assert (result.code, result.stdout) == (cli.EXIT_USAGE, "")
    assert message in result.stderr
    assert klayers.paths == []


def test_help_documents_exit_codes(run):
    result = run("layers", "--help")
    assert result.code == 0
    assert "KLAYERS" not in result.stderr
    assert "3  layers: a package has no layer" in result.stdout


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------

PROJECT_FILES = [
    ".chalice/config.json",
    ".chalice/package-merge-function-url.json",
    ".chalice/package-merge.json",
    ".chalice/policy-prod.json",
    ".gitignore",
    "app.py",
    "chalicelib/__init__.py",
    "chalicelib/chalice_http_toolkit.py",
    "chalicelib/static/css/site.css",
    "chalicelib/static/favicon.svg",
    "chalicelib/static/img/hero.png",
    "chalicelib/templates/404.html",
    "chalicelib/templates/base.html",
    "chalicelib/templates/contact.html",
    "chalicelib/templates/index.html",
    "cloudfront.json",
    "requirements.txt",
]


#: What `setup` builds from the project's files (see test_setup_prepares_the_templates…).
PREPARED = [
    "chalicelib/chalice_http_toolkit.prepared.json",
    "chalicelib/chalice_http_toolkit.prepared.json.bytecode",
]
#: Where `prepare` puts the static files' gzip forms, when any is worth it.
GZIPPED = "chalicelib/chalice_http_toolkit.prepared.json.gzip"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, byte code and the prepared templates aside
    (see test_setup_byte_compiles… and test_setup_prepares_the_templates…)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.relative_to(root).as_posix() not in PREPARED
    }


RUNNING = "{}.{}".format(*sys.version_info[:2])
PYC = f"chalicelib/__pycache__/chalice_http_toolkit.{sys.implementation.cache_tag}.pyc"


def test_setup_byte_compiles_the_module_with_a_checked_hash(run, klayers, tmp_path):
    """Lambda cannot write __pycache__ and sees 1980 mtimes: only a hash-checked .pyc is valid."""
    import importlib.util

    project = tmp_path / "site"
    result = run("setup", "-n", "site", "-p", str(project), "--python", RUNNING)
    assert result.code == 0, result.stderr
    assert f"  compile   {PYC}\n" in result.stdout
    assert "compileall" not in result.stdout
    pyc = (project / PYC).read_bytes()
    source = (project / "chalicelib" / "chalice_http_toolkit.py").read_bytes()
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked against the source
    assert pyc[8:16] == importlib.util.source_hash(source)


def test_setup_for_another_python_says_how_to_compile(run, klayers, tmp_path):
    other = "3.14" if RUNNING != "3.14" else "3.12"
    project = tmp_path / "site"
    result = run("setup", "-n", "site", "-p", str(project), "--python", other)
    assert result.code == 0, result.stderr
    assert not (project / "chalicelib" / "__pycache__").exists()
    assert (
        f"python{other} -m compileall -q --invalidation-mode checked-hash chalicelib"
        in result.stdout
    )


def prepared_entries(project: Path) -> dict:
    data = json.loads((project / PREPARED[0]).read_text())
    return data["templates"]["templates"]["entries"]


def test_setup_prepares_the_templates_so_that_no_cold_start_parses_them(run, klayers, tmp_path):
    project = tmp_path / "site"
    result = run("setup", "-n", "site", "-p", str(project), "--python", RUNNING)
    assert result.code == 0 and "prepare" not in result.stderr
    for relpath in PREPARED:
        assert f"  prepare   {relpath}\n" in result.stdout
        assert (project / relpath).is_file()
    index = (project / "chalicelib" / "templates" / "index.html").read_text()
    entries = prepared_entries(project)
    assert {"404.html", "base.html", "contact.html", "index.html"} <= set(entries)
    [digest] = [d for name, d in entries["index.html"]["closure"].items() if name == "index.html"]
    assert digest == chalice_http_toolkit._digest(index.encode())
    steps = result.stdout.partition("Next steps:")[2]
    assert " prepare\n  (after editing templates or static files, before deploying" in steps


def test_prepare_after_editing_a_template(run, klayers, tmp_path):
    """`prepare` runs the project's own copy of the module with the project's Python."""
    project = tmp_path / "site"
    assert run("setup", "-n", "site", "-p", str(project), "--python", RUNNING).code == 0
    (project / "chalicelib" / "templates" / "about.html").write_text(
        "{% extends 'base.html' %}{% block content %}About{% endblock %}"
    )

    result = run_cli("prepare", "-p", str(project), "--interpreter", sys.executable)

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == "".join(f"  prepare   {relpath}\n" for relpath in PREPARED)
    assert set(prepared_entries(project)["about.html"]["closure"]) == {"about.html", "base.html"}


def test_prepare_writes_the_gzip_forms_of_the_static_files(run, klayers, tmp_path):
    """With ``chalicelib/static``, `prepare` gzips what is worth it beside the prepared file."""
    project = tmp_path / "site"
    assert run("setup", "-n", "site", "-p", str(project), "--python", RUNNING).code == 0
    assert not (project / GZIPPED).exists()  # the scaffold's files are too small or images
    bundle = "".join(f".c{i} {{ margin: {i % 97}px; color: #{i:06x}; }}\n" for i in range(900))
    (project / "chalicelib" / "static" / "css" / "bundle.css").write_text(bundle)

    result = run_cli("prepare", "-p", str(project), "--interpreter", sys.executable)

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == "".join(f"  prepare   {relpath}\n" for relpath in [*PREPARED, GZIPPED])
    data = json.loads((project / PREPARED[0]).read_text())
    [(relpath, entry)] = data["static"]["static"].items()
    assert relpath == "css/bundle.css"
    assert entry["digest"] == chalice_http_toolkit._digest(bundle.encode())
    form = (project / GZIPPED / f"{entry['digest']}.gz").read_bytes()
    assert len(form) == entry["gzip"] and gzip.decompress(form) == bundle.encode()


def test_prepare_a_project_whose_module_takes_no_static_dir(run, klayers, tmp_path):
    """A project set up by an earlier release: its copy's prepare_deployment is called as before."""
    project = tmp_path / "site"
    assert run("setup", "-n", "site", "-p", str(project), "--python", RUNNING).code == 0
    (project / "chalicelib" / "chalice_http_toolkit.py").write_text(
        "import os\n"
        "def prepare_deployment(templates_dir, *, path=None, environment=None):\n"
        "    path = os.path.join(os.path.dirname(__file__), 'done.json')\n"
        "    open(path, 'w').write(templates_dir)\n"
        "    return path\n"
    )

    result = run_cli("prepare", "-p", str(project), "--interpreter", sys.executable)

    assert (result.code, result.stderr) == (0, "")
    assert "chalicelib/done.json" in result.stdout
    assert (project / "chalicelib" / "done.json").read_text().endswith("templates")


def test_prepare_names_a_template_that_does_not_compile(run, klayers, tmp_path):
    project = tmp_path / "site"
    assert run("setup", "-n", "site", "-p", str(project), "--python", RUNNING).code == 0
    (project / "chalicelib" / "templates" / "broken.html").write_text("{% if %}")

    result = run("prepare", "-p", str(project))

    assert result.code == 0
    assert result.stderr.startswith("prepare: template broken.html does not compile: ")
    assert "broken.html" not in prepared_entries(project)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A Python with neither Jinja2 nor Chalice (a fresh venv without site packages)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    made = run_python("-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    return venv / "bin" / "python"


def test_prepare_with_a_python_without_jinja2_says_so(run, klayers, tmp_path, bare_python):
    project = tmp_path / "site"
    assert run("setup", "-n", "site", "-p", str(project), "--python", RUNNING).code == 0
    before = (project / PREPARED[0]).read_bytes()

    result = run("prepare", "-p", str(project), "--interpreter", str(bare_python))

    assert (result.code, result.stdout) == (cli.EXIT_PREPARE_FAILED, "")
    assert result.stderr == (
        f"prepare: Jinja2 is not installed for {bare_python}: install it there "
        f"(`{bare_python} -m pip install jinja2`) or pass --interpreter the Python that "
        "deploys the project\n"
    )
    assert (project / PREPARED[0]).read_bytes() == before


def test_setup_with_a_python_without_jinja2_writes_the_project_and_says_to_prepare(
    klayers, tmp_path, bare_python
):
    project = tmp_path / "site"
    done = run_command(
        [bare_python, ROOT / "cli.py", "setup", "-n", "site", "-p", project, "--python", RUNNING],
        **LOOPBACK,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(tree(project)) == PROJECT_FILES
    assert not (project / PREPARED[0]).exists()
    assert f"setup: the templates are not prepared: Jinja2 is not installed for {bare_python}" in (
        done.stderr
    )
    assert f"cli.py prepare -p {project}`" in done.stderr


@pytest.mark.parametrize(
    ("where", "interpreter", "message"),
    [
        ("elsewhere", sys.executable, "has no chalicelib/chalice_http_toolkit.py"),
        ("site", "/nonexistent/python3", "cannot run /nonexistent/python3: No such file"),
    ],
)
def test_prepare_refusals(run, klayers, tmp_path, where, interpreter, message):
    assert run("setup", "-n", "site", "-p", str(tmp_path / "site")).code == 0
    (tmp_path / "elsewhere").mkdir()
    result = run("prepare", "-p", str(tmp_path / where), "--interpreter", interpreter)
    assert (result.code, result.stdout) == (cli.EXIT_PREPARE_FAILED, "")
    assert result.stderr.startswith("prepare: ") and message in result.stderr


def requirement_names(project: Path) -> list[str]:
    lines = (project / "requirements.txt").read_text().splitlines()
    return [line.split(">=")[0] for line in lines if line and not line.startswith("#")]


def config_of(project: Path) -> dict:
    return json.loads((project / ".chalice" / "config.json").read_text())


def test_setup_writes_a_complete_project(run, klayers, tmp_path):
    project = tmp_path / "site"
    result = run("setup", "-n", "mysite", "-p", str(project), "-r", "us-east-1", "--python", "3.12")
    assert (result.code, result.stderr) == (0, "")
    assert klayers.paths == ["/api/v2/p3.12/layers/latest/us-east-1/json"]

    files = tree(project)
    assert sorted(files) == PROJECT_FILES
    assert (
        files["chalicelib/chalice_http_toolkit.py"]
        == (ROOT / "chalice_http_toolkit.py").read_bytes()
    )
    assert files["chalicelib/__init__.py"] == b""

    jinja2_arn = layer_arn("p3.12", "us-east-1", "jinja2", 7)
    pillow_arn = layer_arn("p3.12", "us-east-1", "Pillow", 9)
    assert config_of(project) == {
        "version": "2.0",
        "app_name": "mysite",
        "lambda_memory_size": 256,
        "lambda_timeout": 30,
        "lambda_architecture": "x86_64",
        "stages": {
            "dev": {"api_gateway_stage": "api"},
            "prod": {
                "api_gateway_stage": "api",
                "autogen_policy": False,
                "iam_policy_file": "policy-prod.json",
                "layers": [jinja2_arn, pillow_arn],
            },
        },
    }
    policy = json.loads(files[".chalice/policy-prod.json"])
    assert {
        "Sid": "KeepWarmInvokesTheApiHandler",
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": "arn:*:lambda:*:*:function:mysite-prod",
    } in policy["Statement"]
    assert requirement_names(project) == ["multipart"]  # the contact form's uploads

    app_py = files["app.py"].decode()
    compile(app_py, "app.py", "exec")
    assert 'app = Chalice(app_name="mysite")' in app_py
    assert "\nkeep_warm = register_keep_warm(app, cm)\n" in app_py
    assert "STAGE" not in app_py
    # The catch-all routes come after every route; then the other front doors' handler.
    _, found, tail = app_py.rpartition('cm.register_not_found_routes("404.html")')
    assert found and "@app.route" not in tail
    assert tail.rstrip().endswith("\nhandler = lambda_handler(app)")

    with Image.open(io.BytesIO(files["chalicelib/static/img/hero.png"])) as image:
        image.load()
        assert (image.format, image.size) == ("PNG", (960, 480))
    assert b"static('css/site.css')" in files["chalicelib/templates/base.html"]
    assert b"static('favicon.svg')" in files["chalicelib/templates/base.html"]
    assert files["chalicelib/static/favicon.svg"].startswith(b"<svg ")
    assert b"static('img/hero.png')" in files["chalicelib/templates/index.html"]
    assert b"srcset('img/hero.png')" in files["chalicelib/templates/index.html"]
    assert b'{% extends "base.html" %}' in files["chalicelib/templates/404.html"]
    assert b".chalice/deployments/" in files[".gitignore"]
    # The distribution template, its origin path the stage chalice deploys to.
    assert files["cloudfront.json"].decode() == cli.cloudfront_json()
    stage = json.loads(files["cloudfront.json"])["Parameters"]["Stage"]["Default"]
    assert stage == config_of(project)["stages"]["prod"]["api_gateway_stage"]

    out = result.stdout
    for relpath in PROJECT_FILES:
        assert f"  create    {relpath}\n" in out
    assert f"  layer     jinja2 3.1.6: {jinja2_arn}\n" in out
    assert f"Next steps:\n  cd {project}\n" in out
    assert "  chalice local " in out
    assert "  export AWS_DEFAULT_REGION=us-east-1\n" in out
    assert out.index("AWS_DEFAULT_REGION") < out.index("chalice deploy --stage prod")
    assert "CloudFront in front: cloudfront.json" in out


def test_setup_with_magic_ships_bin_magic(run, klayers, tmp_path):
    project = tmp_path / "site"
    args = ["setup", "-n", "magicsite", "-p", str(project), "-r", "us-east-1", "--python", "3.12"]
    result = run(*args, "-e", "magic")
    assert (result.code, result.stderr) == (0, "")
    files = tree(project)
    shipped = {
        name: data
        for name, data in tree(ROOT / "bin_magic").items()
        if name not in ("README.md", "SHA256SUMS") and not name.endswith(".py")
    }
    assert {"x86_64/libmagic.so.1", "aarch64/libmagic.so.1", "magic.mgc"} <= set(shipped)
    libs = {
        name.removeprefix("chalicelib/libs/"): data
        for name, data in files.items()
        if name.startswith("chalicelib/libs/")
    }
    assert libs == shipped
    assert sorted(set(files) - {f"chalicelib/libs/{name}" for name in libs}) == PROJECT_FILES
    assert requirement_names(project) == ["python-magic", "multipart"]
    assert "python -m pip install chalice jinja2 Pillow multipart python-magic" in result.stdout


@pytest.mark.parametrize(
    ("python", "arch", "layer_packages", "requirements"),
    [
        ("3.12", "arm64", ["jinja2"], ["Pillow"]),
        ("3.13", "x86_64", [], ["jinja2", "Pillow"]),
        ("3.14", "x86_64", ["jinja2", "Pillow"], []),
    ],
)
def test_setup_requires_what_no_layer_provides(
    run, klayers, tmp_path, python, arch, layer_packages, requirements
):
    project = tmp_path / "site"
    result = run(
        "setup", "-n", "site", "-p", str(project), "-r", "eu-west-1", "--python", python,
        "--arch", arch,
    )  # fmt: skip
    assert result.code == 0
    config = config_of(project)
    assert config["lambda_architecture"] == arch
    build = cli.klayers_build(python, arch)
    expected = [
        layer_arn(build, "eu-west-1", name, CATALOGUE[build][name][1]) for name in layer_packages
    ]
    assert config["stages"]["prod"].get("layers", []) == expected
    assert requirement_names(project) == [*requirements, "multipart"]
    for package in requirements:
        assert f"no {package} layer for Python {python}" in result.stderr


def unreachable(monkeypatch, klayers):
    monkeypatch.setenv("KLAYERS_API_URL", closed_port_url())


def server_error(monkeypatch, klayers):
    klayers.respond(500, "down")


def garbage(monkeypatch, klayers):
    klayers.respond(200, "<html>")


def slow(monkeypatch, klayers):
    monkeypatch.setenv("KLAYERS_TIMEOUT", "0.3")
    klayers.respond(200, "[]", delay=10)


@pytest.mark.parametrize(
    ("break_api", "reason"),
    [
        (unreachable, "Connection refused"),
        (server_error, "HTTP 500"),
        (garbage, "not JSON"),
        (slow, "no answer within 0.3 s"),
    ],
)
def test_setup_offline_still_writes_a_working_project(
    run, klayers, monkeypatch, tmp_path, break_api, reason
):
    break_api(monkeypatch, klayers)
    project = tmp_path / "site"
    result = run("setup", "-n", "site", "-p", str(project), "-r", "us-east-1", "--python", "3.12")
    assert result.code == 0
    assert "Traceback" not in result.stderr
    assert "could not look up Lambda layers" in result.stderr
    assert reason in result.stderr
    assert "jinja2 and Pillow go in requirements.txt" in result.stderr
    assert sorted(tree(project)) == PROJECT_FILES
    assert "layers" not in config_of(project)["stages"]["prod"]
    assert requirement_names(project) == ["jinja2", "Pillow", "multipart"]
    assert "could not be reached" in (project / "requirements.txt").read_text()
    assert "Next steps:" in result.stdout


def test_setup_without_region_asks_nobody(run, klayers, tmp_path):
    project = tmp_path / "site"
    result = run("setup", "-n", "site", "-p", str(project))
    assert result.code == 0
    assert klayers.paths == []
    assert "no region (-r) given" in result.stderr
    assert requirement_names(project) == ["jinja2", "Pillow", "multipart"]
    assert "  chalice deploy --stage prod\n" in result.stdout


def test_setup_next_steps_say_to_set_a_region_before_deploying(run, klayers, tmp_path):
    """Regression: `chalice package` built for a minute, then failed with "No region
    configured": nothing said to set one."""
    result = run("setup", "-n", "site", "-p", str(tmp_path / "site"))
    steps = result.stdout.partition("Next steps:")[2]
    assert "  export AWS_DEFAULT_REGION=eu-west-1   # your region\n" in steps
    assert "chalice package and deploy need a region" in steps and "~/.aws/config" in steps
    assert steps.index("AWS_DEFAULT_REGION") < steps.index("chalice deploy")


def test_setup_refuses_to_overwrite(run, klayers, tmp_path):
    project = tmp_path / "site"
    args = ["setup", "-n", "site", "-p", str(project), "-r", "us-east-1", "--python", "3.12"]
    assert run(*args).code == 0
    (project / "app.py").write_text("# my edits\n")
    before = tree(project)
    lookups = len(klayers.paths)

    result = run(*args)
    assert result.code == cli.EXIT_EXISTS
    assert result.stdout == ""
    assert f"{len(PROJECT_FILES)} file(s) already exist in {project}, nothing was written" in (
        result.stderr
    )
    assert "\n  app.py\n" in result.stderr
    assert "use --force" in result.stderr
    assert tree(project) == before
    assert len(klayers.paths) == lookups


def test_setup_refuses_when_any_file_exists(run, klayers, tmp_path):
    project = tmp_path / "site"
    project.mkdir()
    (project / "requirements.txt").write_text("requests\n")
    result = run("setup", "-n", "site", "-p", str(project), "-r", "us-east-1", "--python", "3.12")
    assert result.code == cli.EXIT_EXISTS
    assert "1 file(s) already exist" in result.stderr
    assert tree(project) == {"requirements.txt": b"requests\n"}
    assert klayers.paths == []


def test_setup_force_overwrites_its_files_only(run, klayers, tmp_path):
    project = tmp_path / "site"
    args = ["setup", "-n", "site", "-p", str(project), "-r", "us-east-1", "--python", "3.12"]
    assert run(*args).code == 0
    fresh = tree(project)
    (project / "app.py").write_text("# my edits\n")
    (project / "chalicelib" / "templates" / "about.html").write_text("mine")

    result = run(*args, "--force")
    assert (result.code, result.stderr) == (0, "")
    assert "  overwrite app.py\n" in result.stdout
    after = tree(project)
    assert after.pop("chalicelib/templates/about.html") == b"mine"
    assert after == fresh


@pytest.mark.parametrize(
    "name",
    ["", "1site", "-site", "_site", "my site", "my.site", "site/x", "sité", "a" * 33, "site\n"],
)
def test_setup_rejects_invalid_app_names(run, klayers, tmp_path, name):
    project = tmp_path / "site"
    result = run("setup", f"--name={name}", "-p", str(project))
    assert (result.code, result.stdout) == (cli.EXIT_USAGE, "")
    assert "invalid app name" in result.stderr
    assert not project.exists()


@pytest.mark.parametrize("name", ["a", "my-site", "My_Site2", "a" * 32])
def test_setup_accepts_valid_app_names(run, klayers, tmp_path, name):
    project = tmp_path / "site"
    result = run("setup", "-n", name, "-p", str(project), "-r", "us-east-1", "--python", "3.12")
    assert result.code == 0
    assert config_of(project)["app_name"] == name
    assert f'app = Chalice(app_name="{name}")' in (project / "app.py").read_text()


def test_setup_path_is_a_file(run, klayers, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = run("setup", "-n", "site", "-p", str(target))
    assert_failure(result, cli.EXIT_SETUP_FAILED, "is not a directory")
    assert target.read_text() == "x"


def copy_cli(
    tmp_path: Path, *, module: bool, magic: list[str] | None, scaffold: bool = True
) -> Path:
    """A checkout with only some of the sources cli.py copies from."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / "cli.py", checkout)
    if scaffold:
        shutil.copytree(ROOT / "scaffold", checkout / "scaffold")
    if module:
        shutil.copy(ROOT / "chalice_http_toolkit.py", checkout)
    for name in magic or []:
        (checkout / "bin_magic" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "bin_magic" / name, checkout / "bin_magic" / name)
    return checkout / "cli.py"


def run_copy(script: Path, *args: str) -> Result:
    done = run_python(script, *args, **LOOPBACK)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("module", "magic", "extra", "message"),
    [
        (False, None, [], "chalice_http_toolkit.py is missing"),
        (True, None, ["-e", "magic"], "x86_64/libmagic.so.1, aarch64/libmagic.so.1, magic.mgc"),
        (True, ["x86_64/libmagic.so.1", "magic.mgc"], ["-e", "magic"], "aarch64/libmagic.so.1;"),
    ],
)
def test_setup_missing_sources(klayers, tmp_path, module, magic, extra, message):
    script = copy_cli(tmp_path, module=module, magic=magic)
    project = tmp_path / "site"
    result = run_copy(script, "setup", "-n", "site", "-p", str(project), *extra)
    assert_failure(result, cli.EXIT_SETUP_FAILED, message)
    if extra:
        assert "run `make bin_magic`" in result.stderr
    assert not project.exists()
    assert klayers.paths == []


def test_setup_without_its_scaffold_folder_says_what_is_missing(klayers, tmp_path):
    script = copy_cli(tmp_path, module=True, magic=None, scaffold=False)
    project = tmp_path / "site"
    result = run_copy(script, "setup", "-n", "site", "-p", str(project))
    assert_failure(result, cli.EXIT_SETUP_FAILED, "scaffold/ lacks app.py, chalicelib/__init__.py")
    assert not project.exists()


def test_setup_from_a_copy_without_bin_magic_works_without_magic(klayers, tmp_path):
    script = copy_cli(tmp_path, module=True, magic=None)
    project = tmp_path / "site"
    result = run_copy(script, "setup", "-n", "site", "-p", str(project), "-r", "us-east-1")
    assert result.code == 0
    assert sorted(tree(project)) == PROJECT_FILES


def test_setup_cannot_write_names_the_file_in_the_way_and_writes_nothing(run, klayers, tmp_path):
    """Regression: app.py was left behind and the message said "File exists"."""
    project = tmp_path / "site"
    project.mkdir()
    (project / "chalicelib").write_text("a file where a directory must go")
    result = run("setup", "-n", "site", "-p", str(project))
    assert result.code == cli.EXIT_SETUP_FAILED
    assert (
        f"setup: {project / 'chalicelib'} is a file, where the project needs the folder "
        "chalicelib/; nothing was written"
    ) in result.stderr
    assert "File exists" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging folder left
    assert [p.name for p in project.iterdir()] == ["chalicelib"]


def test_setup_force_over_a_folder_where_a_file_goes(run, klayers, tmp_path):
    project = tmp_path / "site"
    (project / "app.py").mkdir(parents=True)
    result = run("setup", "-n", "site", "-p", str(project), "--force")
    assert result.code == cli.EXIT_SETUP_FAILED
    assert f"{project / 'app.py'} is a folder, where the project needs the file app.py" in (
        result.stderr
    )
    assert [p.name for p in project.iterdir()] == ["app.py"]
    assert list((project / "app.py").iterdir()) == []


def test_setup_that_fails_to_create_its_folder_leaves_nothing(run, klayers, tmp_path):
    """The project's own name is longer than the file system allows: the last step fails."""
    project = tmp_path / "parent" / ("x" * 300)
    result = run("setup", "-n", "site", "-p", str(project))
    assert result.code == cli.EXIT_SETUP_FAILED
    assert f"setup: cannot write {project}: File name too long; nothing was written" in (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []  # neither parent/ nor a staging folder


def test_setup_force_puts_every_old_file_back_when_a_move_fails(run, klayers, tmp_path):
    """Atomic --force: the 4th file cannot be moved into place (an injected rename failure,
    as a full disk or a crash would give), so the three already moved are undone."""
    project = tmp_path / "site"
    assert run("setup", "-n", "old", "-p", str(project)).code == 0
    (project / "app.py").write_text("# edited\n")
    before = tree(project)
    real_replace, calls = os.replace, []

    def failing_replace(source, target):
        calls.append(target)
        if len([c for c in calls if Path(c).parent.name != "saved"]) == 4:
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(source, target)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli.os, "replace", failing_replace)
        result = run("setup", "-n", "new", "-p", str(project), "--force")
    assert result.code == cli.EXIT_SETUP_FAILED
    assert "cannot write" in result.stderr and "Input/output error" in result.stderr
    assert tree(project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    assert not list(project.glob(".chalice-http-toolkit-setup-*"))  # staged inside, removed


def test_every_scaffold_file_is_in_the_table():
    """``SCAFFOLD_FILES`` is the one list of what goes where: nothing in scaffold/ is left out."""
    on_disk = {
        path.relative_to(cli.SCAFFOLD_SOURCE).as_posix()
        for path in cli.SCAFFOLD_SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    tables = [source for _, source, _ in cli.SCAFFOLD_FILES] + [s for _, s in cli.TASKS_FILES]
    assert on_disk == set(tables)


def test_scaffold_app_is_rendered_with_string_template(run, klayers, tmp_path):
    project = tmp_path / "site"
    assert run("setup", "-n", "my-site_2", "-p", str(project)).code == 0
    app_py = (project / "app.py").read_text()
    assert 'app = Chalice(app_name="my-site_2")' in app_py
    assert "$" not in app_py
    template = (cli.SCAFFOLD_SOURCE / "app.py").read_text()
    assert app_py == template.replace("$name", "my-site_2")
    assert (project / "chalicelib" / "static" / "img" / "hero.png").read_bytes() == (
        cli.SCAFFOLD_SOURCE / "chalicelib" / "static" / "img" / "hero.png"
    ).read_bytes()


# ---------------------------------------------------------------------------
# As a subprocess: `python cli.py ...`, the way users run it (one case per outcome)
# ---------------------------------------------------------------------------


def test_subprocess_layers_prints_arns(klayers):
    result = run_cli("layers", "-r", "eu-west-1", "--python", "3.12")
    arns = [
        layer_arn("p3.12", "eu-west-1", package, n) for package, n in (("jinja2", 7), ("Pillow", 9))
    ]
    assert result == Result(0, "".join(f"{arn}\n" for arn in arns), "")


def test_subprocess_layers_lookup_failure(monkeypatch):
    monkeypatch.setenv("KLAYERS_API_URL", closed_port_url())
    result = run_cli("layers", "-r", "us-east-1", "--python", "3.12")
    assert_failure(result, cli.EXIT_LOOKUP_FAILED, "could not reach", "Connection refused")


def test_subprocess_layers_missing_layer(klayers):
    result = run_cli("layers", "-r", "us-east-1", "--python", "3.13")
    assert (result.code, result.stdout) == (cli.EXIT_MISSING_LAYER, "")
    assert "Klayers has no jinja2 layer for Python 3.13" in result.stderr


def test_subprocess_usage_error(klayers):
    result = run_cli("layers", "-r", "mars-east-1")
    assert (result.code, result.stdout) == (cli.EXIT_USAGE, "")
    assert result.stderr.startswith("usage: cli.py layers")
    assert "unknown region 'mars-east-1'" in result.stderr


def test_subprocess_setup_writes_the_project_and_refuses_to_overwrite(klayers, tmp_path):
    project = tmp_path / "site"
    # Python 3.12: Klayers has both layers for it (none for p3.13, a message on stderr).
    result = run_cli(
        "setup", "-n", "site", "-p", str(project), "-r", "us-east-1", "--python", "3.12"
    )
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"Creating site in {project}\n")
    assert sorted(tree(project)) == PROJECT_FILES
    again = run_cli("setup", "-n", "site", "-p", str(project))
    assert (again.code, again.stdout) == (cli.EXIT_EXISTS, "")


def test_subprocess_cloudfront_prints_the_template():
    result = run_cli("cloudfront", "--stage", "my-stage")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == cli.cloudfront_json(stage="my-stage")


# ---------------------------------------------------------------------------
# demo: `make demo`
# ---------------------------------------------------------------------------


def demo_args(path: Path, *, fresh: bool = False) -> argparse.Namespace:
    return cli.build_parser().parse_args(["demo", "-p", str(path), *(["--fresh"] if fresh else [])])


def test_demo_keeps_an_edited_site_and_says_so(klayers, tmp_path, capsys):
    """Regression: `make demo` overwrote build/demo, losing the edits its page invites."""
    project = tmp_path / "demo"
    assert cli._demo_project(demo_args(project)) == cli.EXIT_OK
    said = capsys.readouterr()
    assert "Creating demo in" in said.out
    assert "Next steps" not in said.out and said.err == ""  # nothing about deploying
    index = project / "chalicelib" / "templates" / "index.html"
    index.write_text(index.read_text() + "<p>mine</p>\n")
    (project / "chalicelib" / "templates" / "about.html").write_text("<h1>About</h1>\n")
    (project / "chalicelib" / "__pycache__" / "x.pyc").write_bytes(b"not an edit")

    assert cli._demo_project(demo_args(project)) == cli.EXIT_OK
    said = capsys.readouterr()
    assert said.out == ""
    assert (
        f"demo: keeping {project} as it is: you edited chalicelib/templates/about.html, "
        "chalicelib/templates/index.html." in said.err
    )
    assert "`make demo FRESH=1`" in said.err
    assert index.read_text().endswith("<p>mine</p>\n")

    assert cli._demo_project(demo_args(project, fresh=True)) == cli.EXIT_OK
    assert "<p>mine</p>" not in index.read_text()
    assert not (project / "chalicelib" / "templates" / "about.html").exists()
    assert cli.demo_edits(project) == []


def test_demo_rewrites_an_unedited_site(klayers, tmp_path, capsys):
    """Nothing edited: the demo is written again (a changed module or scaffold shows)."""
    project = tmp_path / "demo"
    assert cli._demo_project(demo_args(project)) == cli.EXIT_OK
    (project / "chalicelib" / "chalice_http_toolkit.py").write_text("# old\n")
    record = json.loads((project / cli.DEMO_RECORD).read_text())
    record["chalicelib/chalice_http_toolkit.py"] = cli.demo_files(project)[
        "chalicelib/chalice_http_toolkit.py"
    ]
    (project / cli.DEMO_RECORD).write_text(json.dumps(record))  # as an older demo wrote it
    capsys.readouterr()
    assert cli._demo_project(demo_args(project)) == cli.EXIT_OK
    assert "  overwrite chalicelib/chalice_http_toolkit.py" in capsys.readouterr().out
    module = (project / "chalicelib" / "chalice_http_toolkit.py").read_bytes()
    assert module == (ROOT / "chalice_http_toolkit.py").read_bytes()


def test_demo_without_a_record_is_kept(klayers, tmp_path, capsys):
    project = tmp_path / "demo"
    assert cli.main(["setup", "-n", "demo", "-p", str(project)]) == 0  # an older make demo
    capsys.readouterr()
    assert cli._demo_project(demo_args(project)) == cli.EXIT_OK
    assert "it was not written by this command" in capsys.readouterr().err
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep")
    assert cli._demo_project(demo_args(elsewhere, fresh=True)) == cli.EXIT_SETUP_FAILED
    assert (elsewhere / "notes.txt").read_text() == "keep"


def start_demo(tmp_path: Path, *args: str) -> subprocess.Popen:
    """``python cli.py demo`` in its own process group, Ctrl-C (SIGINT) not ignored."""
    code = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"sys.argv = {[str(ROOT / 'cli.py'), 'demo', '-p', str(tmp_path / 'demo'), *args]!r}; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, **LOOPBACK},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def serving_port(process: subprocess.Popen, said: list[str]) -> int:
    for line in process.stderr:
        said.append(line)
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/ \(Ctrl-C stops it\)", line)
        if found:
            return int(found[1])
    raise AssertionError("".join(said))


@contextlib.contextmanager
def port_held(port: int) -> Iterator[bool]:
    """Listen on ``port`` (if nobody else does already) while the block runs."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            pass  # taken by someone else: taken all the same
        yield not cli.port_is_free("127.0.0.1", port)


def test_demo_serves_on_a_free_port_when_8000_is_taken_and_stops_on_ctrl_c(tmp_path):
    """Regression: `make demo` hard-coded port 8000: a traceback, then make hung."""
    with port_held(cli.DEMO_PORT) as taken:
        assert taken
        process = start_demo(tmp_path)
        said: list[str] = []
        try:
            port = serving_port(process, said)
            assert port != cli.DEMO_PORT
            assert f"demo: port 8000 is in use, so the demo takes port {port}\n" in said
            url = f"http://127.0.0.1:{port}/"
            wait_until_serving(url, process, tmp_path / "none.log")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=10) as page:
                assert page.status == 200
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    assert process.returncode == 0, "".join(said) + err
    assert err.endswith("demo: stopped\n")
    assert "Traceback" not in err + out
    assert cli.port_is_free("127.0.0.1", port)


def test_demo_port_asked_for_in_use_is_refused(tmp_path):
    port = free_port()
    with port_held(port):
        result = run_cli("demo", "-p", str(tmp_path / "demo"), "--port", str(port))
    assert result.code == cli.EXIT_DEMO_FAILED
    assert f"demo: port {port} on 127.0.0.1 is in use; choose another (make demo PORT=...)" in (
        result.stderr
    )
    assert not (tmp_path / "demo").exists()


def test_make_demo_passes_port_and_fresh():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.partition("\ndemo: ")[2].split("\n\n")[0]
    assert "cli.py demo -p build/demo $(if $(PORT),--port $(PORT)) $(if $(FRESH),--fresh)" in recipe
