#!/usr/bin/env python3
"""Scaffold a chalice-http-toolkit project and look up its Lambda layers.

Installed by pip as the ``chalice-http-toolkit`` command (the same program, installed as
``chalice_http_toolkit_cli/cli.py``, so that no module called ``cli`` lands in
site-packages):

    python cli.py layers -r us-east-1 [--python 3.13] [--arch x86_64|arm64] [-j]
    python cli.py setup -n mysite -p mysite [-e magic] [-e tasks] [-r us-east-1] [--force]
    python cli.py cloudfront [-o cloudfront.json] [--stage api] [--static-prefix /static]
    python cli.py prepare [-p mysite] [--interpreter .venv/bin/python]  # before deploying
    python cli.py demo [-p build/demo] [--port 8000] [--fresh]      # `make demo`
    python cli.py --version

Standard library only, so it runs before anything is installed. Layer ARNs come
from the Klayers API (``KLAYERS_API_URL`` overrides its base URL and
``KLAYERS_TIMEOUT`` the time-out in seconds). Messages go to stderr; ``layers``
prints only ARNs (or JSON) on stdout, ``setup`` its progress and next steps,
``cloudfront`` the CloudFormation template of a distribution in front of the API
(or, with ``-o``, writes it to a file).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import py_compile
import re
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple, Union

# ---------------------------------------------------------------------------
# Exit codes and settings
# ---------------------------------------------------------------------------

EXIT_OK = 0
#: The Klayers API could not be reached, timed out, answered an error or garbage.
EXIT_LOOKUP_FAILED = 1
#: Bad arguments (argparse's own code).
EXIT_USAGE = 2
#: ``layers``: Klayers has no layer for a package on that Python/architecture.
EXIT_MISSING_LAYER = 3
#: ``setup``/``cloudfront``: files exist and ``--force`` was not given; nothing was written.
EXIT_EXISTS = 4
#: ``setup``/``cloudfront``: a source file is missing or a file could not be written.
EXIT_SETUP_FAILED = 5
#: ``demo``: the port asked for is taken, or ``chalice`` is not installed.
EXIT_DEMO_FAILED = 6
#: ``prepare``: the project's Python lacks Jinja2 or Chalice, or cannot run the module.
EXIT_PREPARE_FAILED = 7

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  the Klayers API could not be reached, timed out or answered an error or garbage
  2  usage error
  3  layers: a package has no layer for that Python version and architecture
  4  setup, cloudfront: files already exist (use --force); nothing was written
  5  setup, cloudfront: a source file is missing or a file could not be written
  6  demo: the port asked for is in use, or chalice is not installed
  7  prepare: the project's Python lacks Jinja2 or Chalice, or could not prepare
"""

#: Default base URL of the Klayers API (environment variable ``KLAYERS_API_URL``).
KLAYERS_API_URL = "https://api.klayers.cloud"
#: Seconds to wait for the Klayers API (environment variable ``KLAYERS_TIMEOUT``).
KLAYERS_TIMEOUT = 5.0
#: A region's layer list is tens of kilobytes; anything far larger is not one.
MAX_BODY_BYTES = 8 * 1024 * 1024

#: Regions Klayers publishes layers in.
REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-south-1",
    "ap-east-1",
    "sa-east-1",
    "af-south-1",
    "me-south-1",
)
ARCHITECTURES = ("x86_64", "arm64")

#: The packages the toolkit wants from layers, as Klayers names them.
LAYER_PACKAGES = ("jinja2", "Pillow")
#: requirements.txt lines for what no layer provides.
REQUIREMENTS = {
    "jinja2": "jinja2>=3.1",
    "Pillow": "Pillow>=10.0",
    "magic": "python-magic>=0.4.27",
    "multipart": "multipart>=1.2",
}

HERE = Path(__file__).resolve().parent
#: The package pip installs this file into, as ``chalice_http_toolkit_cli/cli.py`` (so
#: nothing called ``cli`` lands in site-packages); ``scaffold/`` and ``bin_magic/`` sit
#: beside it there, as they do beside cli.py in a checkout (pyproject.toml).
INSTALLED_PACKAGE = "chalice_http_toolkit_cli"
INSTALLED = __package__ == INSTALLED_PACKAGE
#: The module ``setup`` copies: beside cli.py in a checkout, in site-packages when installed.
MODULE_SOURCE = (HERE.parent if INSTALLED else HERE) / "chalice_http_toolkit.py"
MAGIC_SOURCE = HERE / "bin_magic"
#: The files of a new project (``SCAFFOLD_FILES`` says where each goes).
SCAFFOLD_SOURCE = HERE / "scaffold"
#: The program's name in messages: the console script's when installed.
PROG = "chalice-http-toolkit" if INSTALLED else "cli.py"
#: Files ``setup -e magic`` needs from ``bin_magic/``.
MAGIC_REQUIRED = ("x86_64/libmagic.so.1", "aarch64/libmagic.so.1", "magic.mgc")
#: ``bin_magic/`` files that describe or rebuild the binaries rather than ship them.
MAGIC_SKIPPED = ("README.md", "SHA256SUMS")
MAGIC_SKIPPED_SUFFIXES = (".py", ".sh", ".pyc")
#: Where the reference documentation lives (the next steps point into it).
DOCS = "chalice-http-toolkit's docs"
#: The API Gateway stage of new projects (``api_gateway_stage``), the template's origin path.
STAGE = "api"

# Chalice has no name check of its own: it derives the Lambda function names
# ``{app_name}-{stage}`` and ``{app_name}-{stage}-{handler}``, the IAM role and
# CloudFormation IDs from it (chalice/deploy/appgraph.py, chalice.utils
# .to_cfn_resource_name), so a bad name fails late, at deploy. Lambda function
# names are letters, digits, '-' and '_', at most 64 characters; the limit here
# leaves room for "-prod-" and handler names up to 26 characters (``keep_warm``).
_APP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
MAX_APP_NAME_LENGTH = 32
_PYTHON_VERSION = re.compile(r"3\.(0|[1-9][0-9]?)")
#: The Lambda Python runtimes ``--python`` accepts (python3.14: on Lambda since 2025-11).
LAMBDA_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
#: The Pythons the test suite runs under here (``make matrix``); the newest is the default.
#: 3.14 is accepted but untested: these machines have no 3.14 interpreter.
TESTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
#: Lambda runtimes with their deprecation date: functions keep running, but AWS then
#: blocks creating and later updating them.
DEPRECATED_PYTHONS = {"3.10": datetime.date(2026, 10, 31)}
_VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
_LAYER_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_.-]+:(?P<number>[0-9]+)"
)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------------------
# Klayers lookup
# ---------------------------------------------------------------------------


class LayerLookupError(Exception):
    """The Klayers API gave no usable answer; the message is one line for the user."""


class Layer(NamedTuple):
    package: str
    version: str
    arn: str
    number: int


def klayers_build(python: str, arch: str) -> str:
    """Klayers' name for a build: ``p3.12`` or ``p3.12-arm64``."""
    return f"p{python}" + ("-arm64" if arch == "arm64" else "")


def klayers_url(base_url: str, region: str, python: str, arch: str) -> str:
    build = klayers_build(python, arch)
    return f"{base_url.rstrip('/')}/api/v2/{build}/layers/latest/{region}/json"


def _network_reason(error: OSError | http.client.HTTPException, timeout: float) -> str:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def fetch_layer_list(url: str, timeout: float) -> bytes:
    """GET ``url`` and return the body; any failure becomes a one-line ``LayerLookupError``."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "chalice-http-toolkit-cli"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as error:
        error.close()
        hint = " (no such build or region?)" if error.code == 404 else ""
        raise LayerLookupError(
            f"the Klayers API answered HTTP {error.code} {error.reason} for {url}{hint}"
        ) from None
    except (OSError, http.client.HTTPException) as error:
        reason = _network_reason(error, timeout)
        raise LayerLookupError(f"could not reach the Klayers API at {url}: {reason}") from None
    if len(body) > MAX_BODY_BYTES:
        raise LayerLookupError(f"malformed answer from {url}: more than {MAX_BODY_BYTES} bytes")
    return body


def parse_layer_list(body: bytes, url: str) -> list[Layer]:
    """Read the v2 format, a JSON list of objects with ``package``, ``packageVersion``, ``arn``.

    Entries without a package name or a layer ARN are skipped; a body that is not
    a list of objects, or has entries but none usable, is an error.
    """
    try:
        entries = json.loads(body)
    except ValueError:
        raise LayerLookupError(f"malformed answer from {url}: not JSON") from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise LayerLookupError(f"malformed answer from {url}: expected a JSON list of layers")
    layers = []
    for entry in entries:
        package, arn = entry.get("package"), entry.get("arn")
        match = _LAYER_ARN.fullmatch(arn) if isinstance(arn, str) else None
        if isinstance(package, str) and match:
            version = entry.get("packageVersion")
            layers.append(Layer(package, str(version or "?"), arn, int(match["number"])))
    if entries and not layers:
        raise LayerLookupError(f"malformed answer from {url}: no entry has a package and an ARN")
    return layers


def latest_layers(layers: list[Layer], packages: tuple[str, ...]) -> dict[str, Layer | None]:
    """The highest layer version per package (names compared case-insensitively)."""
    found: dict[str, Layer | None] = {}
    for package in packages:
        candidates = [layer for layer in layers if layer.package.lower() == package.lower()]
        found[package] = max(candidates, key=lambda layer: layer.number, default=None)
    return found


def lookup_layers(args: argparse.Namespace) -> dict[str, Layer | None]:
    """Latest layer per ``LAYER_PACKAGES`` for ``args.region``/``python``/``arch``."""
    url = klayers_url(args.api_url, args.region, args.python, args.arch)
    body = fetch_layer_list(url, args.timeout)
    return latest_layers(parse_layer_list(body, url), LAYER_PACKAGES)


def _missing_layer(package: str, args: argparse.Namespace) -> str:
    build = klayers_build(args.python, args.arch)
    return (
        f"Klayers has no {package} layer for Python {args.python} ({args.arch}, {build}) "
        f"in {args.region}; put {package} in requirements.txt instead"
    )


# ---------------------------------------------------------------------------
# `layers`
# ---------------------------------------------------------------------------


def command_layers(args: argparse.Namespace) -> int:
    """Print the latest jinja2 and Pillow layer ARNs (or JSON with ``-j``)."""
    try:
        found = lookup_layers(args)
    except LayerLookupError as error:
        _say(f"layers: {error}")
        return EXIT_LOOKUP_FAILED
    if args.json:
        document = {
            "region": args.region,
            "python": args.python,
            "arch": args.arch,
            "layers": {
                package: layer and {"arn": layer.arn, "version": layer.version}
                for package, layer in found.items()
            },
        }
        print(json.dumps(document, indent=2))
    else:
        for layer in found.values():
            if layer:
                print(layer.arn)
    missing = [package for package, layer in found.items() if layer is None]
    for package in missing:
        _say(f"layers: {_missing_layer(package, args)}")
    return EXIT_MISSING_LAYER if missing else EXIT_OK


# ---------------------------------------------------------------------------
# `setup`: the files of a new project
# ---------------------------------------------------------------------------

#: What ``setup`` writes from the scaffold folder: a path in the new project, the file
#: under ``scaffold/`` it comes from, and whether it is rendered with ``string.Template``
#: (``$name``, ``$arch``, ``$stage``; ``$$`` is a dollar sign). A rendered ``.json`` file is
#: parsed and written back with two-space indents, so a broken template fails here, not
#: at deploy. Everything else is copied byte for byte.
SCAFFOLD_FILES = (
    ("app.py", "app.py", True),
    ("chalicelib/__init__.py", "chalicelib/__init__.py", False),
    ("chalicelib/templates/base.html", "chalicelib/templates/base.html", False),
    ("chalicelib/templates/index.html", "chalicelib/templates/index.html", False),
    ("chalicelib/templates/contact.html", "chalicelib/templates/contact.html", False),
    ("chalicelib/templates/404.html", "chalicelib/templates/404.html", False),
    ("chalicelib/static/css/site.css", "chalicelib/static/css/site.css", False),
    ("chalicelib/static/favicon.svg", "chalicelib/static/favicon.svg", False),
    ("chalicelib/static/img/hero.png", "chalicelib/static/img/hero.png", False),
    (".chalice/config.json", "chalice/config.json", True),
    (".chalice/policy-prod.json", "chalice/policy-prod.json", True),
    (".chalice/package-merge.json", "chalice/package-merge.json", True),
    (".chalice/package-merge-function-url.json", "chalice/function-url.json", True),
    (".gitignore", "gitignore", False),
)

#: For ``chalice package --merge-template``: CloudFormation names the functions, so the
#: keep-warm learns the API handler's name from a Ref and may invoke it by its ARN.
PACKAGE_MERGE_FILENAME = ".chalice/package-merge.json"


#: For ``chalice package --merge-template``: the API handler behind a Function URL
#: (``package-merge.json`` plus ``scaffold/chalice/function-url.json``).
FUNCTION_URL_MERGE_FILENAME = ".chalice/package-merge-function-url.json"


def render_scaffold_file(source: str, values: dict[str, str]) -> str:
    """The text of ``scaffold/{source}`` with ``values`` substituted (``string.Template``).

    A ``$placeholder`` that ``values`` lacks is a ``KeyError``, a stray ``$`` a
    ``ValueError``: strict, because the scaffold is the toolkit's own input.
    """
    text = (SCAFFOLD_SOURCE / source).read_text(encoding="utf-8")
    return string.Template(text).substitute(values)


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=2) + "\n"


def _merge_json(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in: objects recursively, lists extended, else replaced."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_json(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list):
            base[key].extend(value)
        else:
            base[key] = value
    return base


#: ``-e tasks``: fragments merged into the files ``SCAFFOLD_FILES`` writes (JSON objects
#: merged, lists extended; the worker's lines go into ``app.py`` after the keep-warm).
#: The FIFO queue, its dead-letter queue and ``ReportBatchItemFailures`` for
#: ``chalice package`` (Chalice sets no ``FunctionResponseTypes``), and the IAM statement
#: every function gets (Chalice gives each the same policy file).
TASKS_FILES = (
    ("app.py", "tasks/app.py.in"),
    (".chalice/policy-prod.json", "tasks/policy-prod.json"),
    (".chalice/package-merge.json", "tasks/package-merge.json"),
)

_APP_IMPORT_ANCHOR = "    ContentManager,\n"
_APP_KEEP_WARM_ANCHOR = "keep_warm = register_keep_warm(app, cm)\n"


def task_queue_names(name: str) -> tuple[str, str]:
    """``-e tasks``: the FIFO queue of app ``name`` and its dead-letter queue."""
    return f"{name}-tasks.fifo", f"{name}-tasks-dead.fifo"


def _app_with_tasks(app_py: str, worker: str) -> str:
    """``app.py`` importing ``TaskingControllerFactory`` and declaring the worker."""
    for anchor in (_APP_IMPORT_ANCHOR, _APP_KEEP_WARM_ANCHOR):
        if app_py.count(anchor) != 1:
            raise ValueError(f"scaffold/app.py must hold {anchor!r} once for -e tasks")
    app_py = app_py.replace(
        _APP_IMPORT_ANCHOR, _APP_IMPORT_ANCHOR + "    TaskingControllerFactory,\n"
    )
    return app_py.replace(_APP_KEEP_WARM_ANCHOR, _APP_KEEP_WARM_ANCHOR + worker)


def requirements_txt(needed: list[str], layers_note: str) -> str:
    lines = [
        "# Installed into the deployment package by `chalice deploy` / `chalice package`:",
        f"# what no Lambda layer provides. {layers_note}",
    ]
    lines += [REQUIREMENTS[package] for package in needed] or ["# (nothing)"]
    return "\n".join(lines) + "\n"


def magic_files(source: Path) -> dict[str, Path]:
    """``bin_magic/`` files to ship, keyed by their path under ``chalicelib/libs/``."""
    files = {}
    for path in sorted(source.rglob("*")):
        relpath = path.relative_to(source).as_posix()
        skipped = path.name in MAGIC_SKIPPED or path.suffix in MAGIC_SKIPPED_SUFFIXES
        if path.is_file() and not skipped and "__pycache__" not in path.parts:
            files[f"chalicelib/libs/{relpath}"] = path
    return files


#: A file's content: text or bytes to write, or a source file to copy byte for byte.
Content = Union[str, bytes, Path]


def project_files(
    args: argparse.Namespace, magic: dict[str, Path], layers: list[Layer], layers_note: str
) -> dict[str, Content]:
    """Every file of the new project, by path relative to the project directory.

    ``SCAFFOLD_FILES`` from the scaffold folder, the module, libmagic (``-e magic``),
    and what depends on the layers: prod's ``layers`` in ``.chalice/config.json`` and
    ``requirements.txt`` (what no layer provides).
    """
    provided = {layer.package.lower() for layer in layers}
    needed = [package for package in LAYER_PACKAGES if package.lower() not in provided]
    if magic:
        needed.append("magic")
    needed.append("multipart")  # the contact form's uploads (multipart/form-data)
    queue, dead_letter_queue = task_queue_names(args.name)
    values = {  # valid names need no escaping
        "name": args.name,
        "arch": args.arch,
        "stage": STAGE,
        "queue": queue,
        "dead_letter_queue": dead_letter_queue,
    }
    files: dict[str, Content] = {}
    documents: dict[str, dict] = {}
    for target, source, rendered in SCAFFOLD_FILES:
        if not rendered:
            files[target] = SCAFFOLD_SOURCE / source
        elif source.endswith(".json"):
            documents[target] = json.loads(render_scaffold_file(source, values))
        else:
            files[target] = render_scaffold_file(source, values)
    if layers:
        prod = documents[".chalice/config.json"]["stages"]["prod"]
        prod["layers"] = [layer.arn for layer in layers]
    if "tasks" in (args.extra or []):
        for target, source in TASKS_FILES:
            fragment = render_scaffold_file(source, values)
            if target in documents:
                _merge_json(documents[target], json.loads(fragment))
            else:
                files[target] = _app_with_tasks(str(files[target]), fragment)
    # chalice package takes one merge template: the Function URL's repeats the other's.
    documents[FUNCTION_URL_MERGE_FILENAME] = _merge_json(
        json.loads(_json_text(documents[PACKAGE_MERGE_FILENAME])),
        documents[FUNCTION_URL_MERGE_FILENAME],
    )
    for target, document in documents.items():
        files[target] = _json_text(document)
    files["chalicelib/chalice_http_toolkit.py"] = MODULE_SOURCE
    files.update(magic)
    files["requirements.txt"] = requirements_txt(needed, layers_note)
    files[_TEMPLATE_FILENAME] = cloudfront_json(stage=STAGE)
    return files


def compile_for_lambda(source: Path) -> Path:
    """Byte-compile ``source`` into ``__pycache__`` with a checked-hash .pyc (PEP 552).

    Lambda cannot write ``__pycache__`` into /var/task, and Chalice's zip stamps every
    file 1980-01-01, so a usual (timestamp) .pyc is stale there and the module is
    compiled again on every cold start. A checked-hash .pyc is valid wherever the
    source is unchanged. Chalice packages all of ``chalicelib/``, this file included.
    """
    cfile = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(
        str(source),
        cfile=str(cfile),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    return cfile


def _write(target: Path, content: Content) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, target)
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")


class SetupWriteError(Exception):
    """``setup`` could not write the project; nothing of it was left behind."""


def path_conflicts(project: Path, relpaths: list[str]) -> list[str]:
    """What stands where ``setup`` must write: a file where it needs a folder, a folder
    where it writes a file. One line each; empty when every path can be written."""
    problems: dict[str, str] = {}
    for relpath in relpaths:
        parts = Path(relpath).parts
        for depth in range(1, len(parts) + 1):
            here = project.joinpath(*parts[:depth])
            name = Path(*parts[:depth]).as_posix()
            is_folder = depth < len(parts)
            if is_folder and os.path.lexists(here) and not here.is_dir():
                problems[name] = f"{here} is a file, where the project needs the folder {name}/"
                break
            if not is_folder and here.is_dir():
                problems[name] = f"{here} is a folder, where the project needs the file {name}"
    return list(problems.values())


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.is_dir():
        path = path.parent
    return path


def write_project(project: Path, contents: dict[str, Content]) -> None:
    """Write ``contents`` into ``project`` all at once, or not at all.

    Every file is written first into a staging folder on the same file system (inside an
    existing project, else in the nearest folder that exists), then moved into place: a
    new project by one rename, files of an existing one (``--force``) one ``os.replace``
    each, with the files they replace kept until the end so that a failure puts them
    back. Raises ``SetupWriteError`` naming the path and the system's reason; the staging
    folder never survives.
    """
    near = project if project.is_dir() else _existing_ancestor(project.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".chalice-http-toolkit-setup-", dir=near))
    except OSError as error:
        raise SetupWriteError(_os_reason(near, error)) from None
    try:
        tree, saved = staging / "tree", staging / "saved"
        for relpath, content in contents.items():
            try:
                _write(tree / relpath, content)
            except OSError as error:
                raise SetupWriteError(_os_reason(project / relpath, error)) from None
        if not os.path.lexists(project):
            _move_new_project(tree, project)
        else:
            _move_into_project(tree, saved, project, list(contents))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _os_reason(path: Path, error: OSError) -> str:
    return f"cannot write {path}: {error.strerror or error}"


def _move_new_project(tree: Path, project: Path) -> None:
    made = []
    for folder in reversed(project.absolute().parents):
        if not folder.exists():
            made.append(folder)
    try:
        for folder in made:
            folder.mkdir()
        os.rename(tree, project)
    except OSError as error:
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise SetupWriteError(_os_reason(project, error)) from None


def _move_into_project(tree: Path, saved: Path, project: Path, relpaths: list[str]) -> None:
    made: list[Path] = []  # folders created, in order
    moved: list[str] = []  # files whose old version (if any) is in ``saved``
    target = project
    try:
        for relpath in relpaths:
            target = project / relpath
            for folder in reversed(target.parents):
                if not folder.exists():
                    folder.mkdir()
                    made.append(folder)
            if os.path.lexists(target):
                (saved / relpath).parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, saved / relpath)
            moved.append(relpath)
            os.replace(tree / relpath, target)
    except OSError as error:
        for relpath in reversed(moved):  # undo: the new file out, the old one back
            if not os.path.lexists(tree / relpath):
                os.unlink(project / relpath)
            if os.path.lexists(saved / relpath):
                os.replace(saved / relpath, project / relpath)
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise SetupWriteError(_os_reason(target, error)) from None


# ---------------------------------------------------------------------------
# `prepare`: the templates parsed and compiled, static files gzipped, before deploying
# ---------------------------------------------------------------------------

#: The project's copy of the module, its templates and static files, relative to the project.
PROJECT_MODULE = "chalicelib/chalice_http_toolkit.py"
PROJECT_TEMPLATES = "chalicelib/templates"
PROJECT_STATIC = "chalicelib/static"

#: What the project's Python runs: the copy's ``prepare_deployment`` (exit codes below); the
#: static folder, when given, only to a copy that takes it.
PREPARE_SCRIPT = """\
import importlib.util, inspect, logging, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
for needed, code in (("jinja2", 10), ("chalice", 11)):
    if importlib.util.find_spec(needed) is None:
        raise SystemExit(code)
spec = importlib.util.spec_from_file_location("chalice_http_toolkit", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["chalice_http_toolkit"] = module
spec.loader.exec_module(module)
options = {}
if sys.argv[3:] and "static_dir" in inspect.signature(module.prepare_deployment).parameters:
    options["static_dir"] = sys.argv[3]
print(module.prepare_deployment(sys.argv[2], **options))
"""
_PREPARE_MISSING = {10: "Jinja2", 11: "Chalice"}
PREPARE_TIMEOUT = 300.0


class PrepareError(Exception):
    """The project's Python could not prepare the templates (the message says why)."""


def prepare_templates(project: Path, interpreter: str) -> list[Path]:
    """Run the project's module's ``prepare_deployment`` with ``interpreter``; the files written.

    A subprocess: this program is standard library only, the module needs Chalice and
    Jinja2, which the Python that deploys the project has. With a static folder, its
    files' gzip forms too (a folder beside the prepared file, when any is worth it).
    """
    module = project / PROJECT_MODULE
    templates = project / PROJECT_TEMPLATES
    static = project / PROJECT_STATIC
    if not module.is_file() or not templates.is_dir():
        raise PrepareError(f"{project} has no {PROJECT_MODULE} and {PROJECT_TEMPLATES}/")
    # -B: the module is imported by path to run it, and no .pyc of this Python is left in
    # chalicelib/__pycache__ (setup writes the deploying Python's own, checked-hash one).
    command = [interpreter, "-B", "-c", PREPARE_SCRIPT, str(module), str(templates)]
    if static.is_dir():
        command.append(str(static))
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PREPARE_TIMEOUT, check=False
        )
    except OSError as error:
        raise PrepareError(f"cannot run {interpreter}: {error.strerror or error}") from None
    except subprocess.TimeoutExpired:
        raise PrepareError(f"{interpreter} took over {PREPARE_TIMEOUT:.0f} s") from None
    sys.stderr.write(done.stderr)  # the templates that do not compile, if any
    missing = _PREPARE_MISSING.get(done.returncode)
    if missing is not None:
        raise PrepareError(
            f"{missing} is not installed for {interpreter}: install it there "
            f"(`{interpreter} -m pip install {missing.lower()}`) or pass --interpreter "
            "the Python that deploys the project"
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise PrepareError(f"{interpreter} exited with code {done.returncode}")
    written = Path(lines[-1])
    gzipped = written.with_name(written.name + ".gzip")
    return [
        written,
        written.with_name(written.name + ".bytecode"),
        *([gzipped] if gzipped.is_dir() else []),
    ]


def _prepare_command() -> str:
    """How the user runs ``prepare`` from the project's directory."""
    return f"{PROG} prepare" if INSTALLED else f"python {PROG} prepare"


def _relative(path: Path, project: Path) -> str:
    return Path(os.path.relpath(path, project)).as_posix()


def command_prepare(args: argparse.Namespace) -> int:
    """Parse and compile the project's templates and gzip its static files now, so that no
    cold start does."""
    project = Path(args.path)
    try:
        written = prepare_templates(project, args.interpreter)
    except PrepareError as error:
        _say(f"prepare: {error}")
        return EXIT_PREPARE_FAILED
    for path in written:
        print(f"  prepare   {_relative(path, project)}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# `setup`
# ---------------------------------------------------------------------------


def _setup_layers(args: argparse.Namespace) -> tuple[list[Layer], str]:
    """The layers prod gets and a note for requirements.txt; failures are reported, not fatal."""
    if args.region is None:
        if not getattr(args, "demo", False):  # the demo is never deployed
            _say("setup: no region (-r) given, so no Lambda layers: jinja2 and Pillow go in")
            _say(f"       requirements.txt. Run `{PROG} layers -r REGION` later to find them.")
        return [], "No layers were looked up (no region given)."
    try:
        found = lookup_layers(args)
    except LayerLookupError as error:
        _say(f"setup: could not look up Lambda layers: {error}")
        _say("setup: writing the project without layers; jinja2 and Pillow go in requirements.txt")
        return [], "The Klayers API could not be reached when this was written."
    for package, layer in found.items():
        if layer is None:
            _say(f"setup: {_missing_layer(package, args)}")
    layers = [layer for layer in found.values() if layer]
    build = klayers_build(args.python, args.arch)
    return layers, f"Layers: Klayers {build} in {args.region}."


def command_setup(args: argparse.Namespace) -> int:
    """Write a complete, working project into ``args.path``."""
    project = Path(args.path)
    if not MODULE_SOURCE.is_file():
        _say(f"setup: {MODULE_SOURCE} is missing; run cli.py from a chalice-http-toolkit checkout")
        return EXIT_SETUP_FAILED
    sources = [source for _, source, _ in SCAFFOLD_FILES] + [source for _, source in TASKS_FILES]
    absent = [source for source in sources if not (SCAFFOLD_SOURCE / source).is_file()]
    if absent:
        _say(f"setup: {SCAFFOLD_SOURCE}/ lacks {', '.join(absent)}; reinstall chalice-http-toolkit")
        return EXIT_SETUP_FAILED
    magic: dict[str, Path] = {}
    if "magic" in (args.extra or []):
        absent = [name for name in MAGIC_REQUIRED if not (MAGIC_SOURCE / name).is_file()]
        if absent:
            needs = ", ".join(absent)
            _say(f"setup: -e magic needs {MAGIC_SOURCE}/ with {needs}; run `make bin_magic`")
            return EXIT_SETUP_FAILED
        magic = magic_files(MAGIC_SOURCE)
    if project.exists() and not project.is_dir():
        _say(f"setup: {project} exists and is not a directory")
        return EXIT_SETUP_FAILED
    paths = list(project_files(args, magic, [], ""))  # the same paths whatever the layers
    existing = [relpath for relpath in paths if os.path.lexists(project / relpath)]
    conflicts = path_conflicts(project, paths)
    if conflicts:
        for problem in conflicts:
            _say(f"setup: {problem}; nothing was written")
        return EXIT_SETUP_FAILED
    if existing and not args.force:
        _say(f"setup: {len(existing)} file(s) already exist in {project}, nothing was written:")
        for relpath in existing:
            _say(f"  {relpath}")
        _say("setup: use --force to overwrite them")
        return EXIT_EXISTS

    layers, layers_note = _setup_layers(args)
    contents = project_files(args, magic, layers, layers_note)
    try:
        write_project(project, {relpath: contents[relpath] for relpath in paths})
    except SetupWriteError as error:
        _say(f"setup: {error}; nothing was written")
        return EXIT_SETUP_FAILED
    print(f"Creating {args.name} in {project}")
    for relpath in paths:
        verb = "overwrite" if relpath in existing else "create"
        print(f"  {verb:9} {relpath}")
    compiled = args.python == running_python()  # a .pyc is per version
    if compiled:
        module = project / "chalicelib" / "chalice_http_toolkit.py"
        try:
            cfile = compile_for_lambda(module)
        except (OSError, py_compile.PyCompileError) as error:
            _say(f"setup: cannot byte-compile {module} ({error}); it compiles on each cold start")
            compiled = False
        else:
            print(f"  compile   {cfile.relative_to(project).as_posix()}")
    if not getattr(args, "demo", False):  # `chalice local` reads templates as they change
        try:
            for path in prepare_templates(project, sys.executable):
                print(f"  prepare   {_relative(path, project)}")
        except PrepareError as error:
            _say(f"setup: the templates are not prepared: {error}")
            _say(f"       Before deploying, run `{_prepare_command()} -p {project}`.")
    for layer in layers:
        print(f"  layer     {layer.package} {layer.version}: {layer.arn}")
    if not getattr(args, "demo", False):  # `demo` serves the project at once
        _print_next_steps(args, project, magic=bool(magic), layers=layers, compiled=compiled)
    return EXIT_OK


def _print_next_steps(
    args: argparse.Namespace, project: Path, *, magic: bool, layers: list[Layer], compiled: bool
) -> None:
    local = ["chalice", "jinja2", "Pillow", "multipart"] + (["python-magic"] if magic else [])
    region = args.region or "eu-west-1"
    print()
    print("Next steps:")
    print(f"  cd {project}")
    print(f"  python -m pip install {' '.join(local)}")
    print("  chalice local                     # http://127.0.0.1:8000/")
    if not compiled:
        print(f"  python{args.python} -m compileall -q --invalidation-mode checked-hash chalicelib")
        print("  (before deploying: spares Lambda compiling the module on every cold start)")
    interpreter = "" if args.python == running_python() else f" --interpreter python{args.python}"
    print(f"  {_prepare_command()}{interpreter}")
    print("  (after editing templates or static files, before deploying: no cold start parses,")
    print("   compiles or gzips them)")
    print(f"  export AWS_DEFAULT_REGION={region}" + ("" if args.region else "   # your region"))
    print("  (chalice package and deploy need a region: this variable, or region in")
    print("   ~/.aws/config; .chalice/config.json has no setting for it)")
    print("  chalice deploy --stage prod")
    if args.python != running_python() or layers:
        match = " and must match the layers)" if layers else ")"
        print(f"  (run chalice with Python {args.python}: Lambda's runtime follows the")
        print(f"   interpreter that runs chalice{match}")
    if "tasks" in (args.extra or []):
        queue, dead = task_queue_names(args.name)
        print(f"  (-e tasks: first create the queues {queue} and {dead}:")
        print(f"   {DOCS}/tasks.md; chalice package declares them)")
    print(f"  CloudFront in front: {_TEMPLATE_FILENAME} ({DOCS}/cloudfront.md)")
    print(f"  (CloudFormation instead: chalice package --merge-template {PACKAGE_MERGE_FILENAME})")
    print(
        "  No API Gateway charge: chalice package --merge-template "
        f"{FUNCTION_URL_MERGE_FILENAME} ({DOCS}/front-doors.md)"
    )


# ---------------------------------------------------------------------------
# `demo`: a scaffolded site under `chalice local` (`make demo`)
# ---------------------------------------------------------------------------

#: The port ``chalice local`` uses by default; the demo takes another when it is in use.
DEMO_PORT = 8000
#: What the demo wrote (path -> SHA-256), kept in the project: what differs is an edit.
DEMO_RECORD = ".demo-files.json"
#: Written by ``chalice local`` and Python, never by the user.
_DEMO_IGNORED = ("__pycache__", ".chalice/deployments", ".chalice/venv", DEMO_RECORD)


def demo_files(project: Path) -> dict[str, str]:
    """Every file of ``project`` that the user may have edited, with its SHA-256."""
    files = {}
    for path in sorted(project.rglob("*")):
        relpath = path.relative_to(project).as_posix()
        ignored = "__pycache__" in path.parts or relpath.startswith(_DEMO_IGNORED)
        if path.is_file() and not ignored:
            files[relpath] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def demo_edits(project: Path) -> list[str] | None:
    """The files changed, added or removed since the demo wrote ``project``; ``None`` when
    there is no record of what it wrote (a project made by hand or by an older ``make demo``).
    """
    try:
        recorded = json.loads((project / DEMO_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    current = demo_files(project)
    return sorted(
        name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name)
    )


def port_is_free(host: str, port: int) -> bool:
    """Whether ``chalice local`` could listen on ``host:port`` now (it reuses addresses too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port the system has no use for at the moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _demo_project(args: argparse.Namespace) -> int:
    """Write the demo site unless the user has edited it; say which it is."""
    project = Path(args.path)
    edits = demo_edits(project) if project.is_dir() else []
    if args.fresh and project.is_dir():
        if edits is None and not (project / ".chalice" / "config.json").is_file():
            _say(f"demo: {project} is not a demo project; not deleting it (choose another -p)")
            return EXIT_SETUP_FAILED
        shutil.rmtree(project)
        edits = []
    if edits is None or edits:
        why = (
            "it was not written by this command"
            if edits is None
            else "you edited " + ", ".join(edits[:5])
        )
        more = f" and {len(edits) - 5} more" if edits and len(edits) > 5 else ""
        _say(f"demo: keeping {project} as it is: {why}{more}.")
        _say("demo: `make demo FRESH=1` (or `demo --fresh`) starts it over from the scaffold.")
        return EXIT_OK
    python = running_python() if running_python() in LAMBDA_PYTHONS else default_python()
    setup = build_parser().parse_args(
        ["setup", "-n", args.name, "-p", str(project), "--force", "--python", python]
    )
    _check_arguments(setup.command_parser, setup)
    setup.demo = True
    code = command_setup(setup)
    if code == EXIT_OK:
        record = json.dumps(demo_files(project), indent=2, sort_keys=True) + "\n"
        (project / DEMO_RECORD).write_text(record, encoding="utf-8")
    return code


def command_demo(args: argparse.Namespace) -> int:
    """Scaffold the demo site (keeping the user's edits) and serve it with ``chalice local``
    until Ctrl-C, on ``--port`` or 8000, or a free port when 8000 is taken."""
    chalice = shutil.which("chalice", path=str(Path(sys.executable).parent)) or shutil.which(
        "chalice"
    )
    if chalice is None:
        _say(
            "demo: chalice is not installed: python -m pip install chalice jinja2 Pillow multipart"
        )
        return EXIT_DEMO_FAILED
    port = args.port if args.port is not None else DEMO_PORT
    if not port_is_free(args.host, port):
        if args.port is not None:
            _say(f"demo: port {port} on {args.host} is in use; choose another (make demo PORT=...)")
            return EXIT_DEMO_FAILED
        port = free_port(args.host)
        _say(f"demo: port {DEMO_PORT} is in use, so the demo takes port {port}")
    code = _demo_project(args)
    if code != EXIT_OK:
        return code
    _say(f"demo: serving {args.path} on http://{args.host}:{port}/ (Ctrl-C stops it)")
    server = subprocess.Popen(
        [chalice, "local", "--host", args.host, "--port", str(port)], cwd=args.path
    )
    try:
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C reached chalice too: it stops on its own
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.terminate()
            server.wait()
        _say("demo: stopped")
        return EXIT_OK


# ---------------------------------------------------------------------------
# `cloudfront`: a CloudFormation template for a distribution in front of the API
# ---------------------------------------------------------------------------

#: The CloudFront Function (viewer request, ``cloudfront-js-2.0``). It sets ``Accept`` to
#: one of the module's three ``IMAGE_ACCEPT_*`` values by the rule of
#: ``normalise_image_accept()`` (q-values parsed as ``parse_accept_header()`` parses them),
#: so the cache key holds at most three values per URL. A ``string.Template``, as the
#: scaffold's files are: ``$avif`` and ``$extensions`` are filled in by
#: :func:`cloudfront_function_code` (``$$`` is a dollar sign).
CLOUDFRONT_FUNCTION_JS = r"""// chalice-http-toolkit: one of three Accept values.
// Image requests (an image extension, or an Accept that starts with image/) get the value
// of the module's normalise_image_accept(): AVIF and WebP count only when named explicitly
// with q > 0, the higher q wins, a tie goes to AVIF. Other requests get */*: the toolkit's
// pages, CSS, JS and JSON do not vary on Accept, so one cache entry serves every browser.
var AVIF = "image/avif,image/webp,*/*";
var WEBP = "image/webp,*/*";
var ANY = "*/*";
// false when the origin's Pillow cannot write AVIF (cli.py cloudfront --no-avif).
var AVIF_COUNTS = $avif;
var IMAGE_EXTENSIONS = $extensions;
// Python's str.strip() whitespace and float() syntax: q-values parse as in the module.
var SPACE = "[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
var EDGES = new RegExp("^" + SPACE + "+|" + SPACE + "+$$", "g");
var DIGITS = "[0-9](?:_?[0-9])*";
var MANTISSA = "(?:" + DIGITS + "(?:\\.(?:" + DIGITS + ")?)?|\\." + DIGITS + ")";
var NUMBER = new RegExp("^[+-]?" + MANTISSA + "(?:[eE][+-]?" + DIGITS + ")?$$");

function strip(text) {
    return text.replace(EDGES, "");
}

// The weight of an element from its parameters; -1 drops the element (malformed q, or
// q outside 0..1), as parse_accept_header() does.
function quality(params) {
    var q = 1;
    if (params === "") {
        return q;
    }
    var parts = params.split(";");
    for (var i = 0; i < parts.length; i++) {
        var eq = parts[i].indexOf("=");
        var name = strip(eq < 0 ? parts[i] : parts[i].slice(0, eq)).toLowerCase();
        if (name !== "q") {
            continue;
        }
        var raw = strip(eq < 0 ? "" : parts[i].slice(eq + 1));
        if (!NUMBER.test(raw)) {
            return -1;
        }
        q = Number(raw.replace(/_/g, ""));
        if (!(q >= 0 && q <= 1)) {
            return -1;
        }
    }
    return q;
}

function normalise(accept) {
    var avif = null;
    var webp = null;
    var elements = accept ? accept.split(",") : [];
    for (var i = 0; i < elements.length; i++) {
        var semi = elements[i].indexOf(";");
        var token = strip(semi < 0 ? elements[i] : elements[i].slice(0, semi)).toLowerCase();
        if (token === "") {
            continue;
        }
        var q = quality(semi < 0 ? "" : elements[i].slice(semi + 1));
        if (q < 0) {
            continue;
        }
        // The first occurrence of a media range counts.
        if (token === "image/avif" && avif === null) {
            avif = q;
        } else if (token === "image/webp" && webp === null) {
            webp = q;
        }
    }
    var a = AVIF_COUNTS && avif !== null ? avif : 0;
    var w = webp !== null ? webp : 0;
    if (a <= 0 && w <= 0) {
        return ANY;
    }
    return a >= w ? AVIF : WEBP;
}

function isImageRequest(uri, accept) {
    var name = uri.slice(uri.lastIndexOf("/") + 1);
    var dot = name.lastIndexOf(".");
    if (dot >= 0 && IMAGE_EXTENSIONS.indexOf(name.slice(dot + 1).toLowerCase()) >= 0) {
        return true;
    }
    if (!accept) {
        return false;
    }
    return strip(accept.split(",")[0].split(";")[0]).toLowerCase().indexOf("image/") === 0;
}

function handler(event) {
    var request = event.request;
    var header = request.headers.accept;
    var accept;
    if (header && header.multiValue) {
        accept = header.multiValue.map(function (item) { return item.value; }).join(",");
    } else if (header) {
        accept = header.value;
    }
    var value = isImageRequest(request.uri, accept) ? normalise(accept) : ANY;
    request.headers.accept = { value: value };
    // The origin sees API Gateway's Host: pass the viewer's, for CSRF's Origin check and
    // url_for (never the viewer's own X-Forwarded-Host).
    if (request.headers.host) {
        request.headers["x-forwarded-host"] = { value: request.headers.host.value };
    } else {
        delete request.headers["x-forwarded-host"];
    }
    return request;
}
"""

#: File extensions whose requests the function treats as image requests: the types the
#: module converts between (``IMAGE_FORMATS``).
IMAGE_EXTENSIONS = ("avif", "jpeg", "jpg", "png", "webp")
#: CloudFront price classes (``PriceClass_100``: North America and Europe, the cheapest).
PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
#: One year: content-hashed static URLs are sent with ``max-age=31536000, immutable``.
ONE_YEAR = 31536000
#: A URL path segment: the static prefix and the stage.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
#: API Gateway stage names: letters, digits, '-' and '_', at most 128 characters.
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TEMPLATE_FILENAME = "cloudfront.json"
#: A cookie name (an RFC 6265 token).
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}")

#: What the distribution's origin is: the Chalice REST API, or the API handler's Function URL.
ORIGINS = ("rest-api", "function-url")

#: Origin time-outs of the pages' origin. CloudFront's Developer Guide ("Origin settings"):
#: the response (read) timeout is how long CloudFront waits for a response, or for the next
#: packet of one, before it drops the connection; for GET and HEAD it then tries again, up to
#: the connection attempts, so a hanging origin holds a viewer attempts x read timeout (default
#: 3 x 30 s). The connection timeout bounds each attempt to connect; the keep-alive timeout is
#: how long CloudFront keeps an idle connection to the origin open for the next request. Pages
#: render in milliseconds, so 10 s and one attempt: an expired page that stale-if-error covers
#: is answered after at most 10 s (5 s when the origin cannot be reached at all).
PAGE_ORIGIN_TIMEOUTS = {
    "OriginReadTimeout": 10,
    "OriginKeepaliveTimeout": 60,
    "ConnectionAttempts": 1,
    "ConnectionTimeout": 5,
}
#: Static files keep CloudFront's default read timeout and attempts: converting a large
#: image on a cold 256 MB container may take seconds, and content-hashed URLs are fetched
#: once per version; only the keep-alive is longer.
STATIC_ORIGIN_TIMEOUTS = {
    "OriginReadTimeout": 30,
    "OriginKeepaliveTimeout": 60,
    "ConnectionAttempts": 3,
    "ConnectionTimeout": 10,
}
#: The 4xx and 5xx codes CloudFront caches (its Developer Guide, "HTTP 4xx and 5xx status
#: codes that CloudFront caches") that a distribution may configure: the template caches none
#: of them (ErrorCachingMinTTL 0). 410, 412 and 415 cannot be configured: CloudFront honours
#: ``no-store`` on a 410, and caches 412 and 415 only when they carry max-age or s-maxage.
CACHED_ERROR_CODES = (400, 403, 404, 405, 414, 500, 501, 502, 503, 504)


def _origin(origin_id: str, domain: Any, timeouts: dict[str, int]) -> dict:
    """A custom origin (HTTPS only) with its time-outs (see :data:`PAGE_ORIGIN_TIMEOUTS`)."""
    return {
        "Id": origin_id,
        "DomainName": domain,
        "OriginPath": {"Fn::Sub": "/${Stage}"},
        "ConnectionAttempts": timeouts["ConnectionAttempts"],
        "ConnectionTimeout": timeouts["ConnectionTimeout"],
        "CustomOriginConfig": {
            "OriginProtocolPolicy": "https-only",
            "HTTPSPort": 443,
            "OriginSSLProtocols": ["TLSv1.2"],
            "OriginReadTimeout": timeouts["OriginReadTimeout"],
            "OriginKeepaliveTimeout": timeouts["OriginKeepaliveTimeout"],
        },
    }


#: The origin custom header CloudFront adds and the module's ``lambda_handler`` checks
#: (its ``ORIGIN_SECRET_HEADER``); the value is the stack parameter ``OriginSecret``.
ORIGIN_SECRET_HEADER = "X-Origin-Verify"


def cloudfront_function_code(avif: bool = True) -> str:
    """The viewer-request function's JavaScript (``avif``: the origin can write AVIF)."""
    return string.Template(CLOUDFRONT_FUNCTION_JS).substitute(
        avif="true" if avif else "false", extensions=json.dumps(list(IMAGE_EXTENSIONS))
    )


def _cache_policy(
    name: str, comment: str, default_ttl: int, query_strings: str, cookies: tuple[str, ...] = ()
) -> dict:
    """TTLs from the origin's Cache-Control (MinTTL 0); Accept, gzip/brotli and ``cookies`` in
    the key (a request that carries one of them gets its own entry)."""
    cookie_config = (
        {"CookieBehavior": "whitelist", "Cookies": list(cookies)}
        if cookies
        else {"CookieBehavior": "none"}
    )
    return {
        "Type": "AWS::CloudFront::CachePolicy",
        "Properties": {
            "CachePolicyConfig": {
                "Name": {"Fn::Sub": "${AWS::StackName}-" + name},
                "Comment": comment,
                "MinTTL": 0,
                "DefaultTTL": default_ttl,
                "MaxTTL": ONE_YEAR,
                "ParametersInCacheKeyAndForwardedToOrigin": {
                    "EnableAcceptEncodingGzip": True,
                    "EnableAcceptEncodingBrotli": True,
                    "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": ["Accept"]},
                    "CookiesConfig": cookie_config,
                    "QueryStringsConfig": {"QueryStringBehavior": query_strings},
                },
            }
        },
    }


#: HSTS max-age of the template's response headers policy: one year, in seconds.
HSTS_MAX_AGE = ONE_YEAR


def security_headers_policy() -> dict:
    """A response headers policy: HSTS, Referrer-Policy, nosniff and frame-ancestors.

    Added at the edge to every response that lacks them; the origin's own headers
    (the toolkit's ``security_headers`` option) win, except ``nosniff``, which is
    always set. Framing: ``X-Frame-Options: SAMEORIGIN`` and a CSP of
    ``frame-ancestors 'self'`` (nothing else, so it restricts no content).
    """
    return {
        "Type": "AWS::CloudFront::ResponseHeadersPolicy",
        "Properties": {
            "ResponseHeadersPolicyConfig": {
                "Name": {"Fn::Sub": "${AWS::StackName}-security"},
                "Comment": "Security headers the origin did not set (chalice-http-toolkit)",
                "SecurityHeadersConfig": {
                    "StrictTransportSecurity": {
                        "AccessControlMaxAgeSec": HSTS_MAX_AGE,
                        "IncludeSubdomains": False,
                        "Preload": False,
                        "Override": False,
                    },
                    "ReferrerPolicy": {
                        "ReferrerPolicy": "strict-origin-when-cross-origin",
                        "Override": False,
                    },
                    "ContentTypeOptions": {"Override": True},
                    "FrameOptions": {"FrameOption": "SAMEORIGIN", "Override": False},
                    "ContentSecurityPolicy": {
                        "ContentSecurityPolicy": "frame-ancestors 'self'",
                        "Override": False,
                    },
                },
            }
        },
    }


def cloudfront_template(
    *,
    stage: str = "api",
    static_prefix: str = "/static",
    price_class: str = "PriceClass_100",
    avif: bool = True,
    origin: str = "rest-api",
    session_cookie: str = "session",
) -> dict:
    """A CloudFormation template: a distribution in front of a Chalice REST API.

    The origin is ``{RestApiId}.execute-api.{region}`` with the stage as origin path,
    or with ``origin="function-url"`` the API handler's Function URL, to which
    CloudFront adds the header :data:`ORIGIN_SECRET_HEADER` (the parameter
    ``OriginSecret``) so that ``lambda_handler`` refuses requests that bypass it.
    Pages (default behaviour) are cached by the origin's Cache-Control (the toolkit's
    ``stale-while-revalidate``/``stale-if-error`` pages, answered at the edge; or
    ``no-cache``: stored and revalidated with the ETag on every request) and keyed on
    ``session_cookie`` (the toolkit's session), so a request that carries it never gets
    the shared copy; their origin gives up after :data:`PAGE_ORIGIN_TIMEOUTS`. The static
    prefix gets a behaviour whose key ignores query strings and whose TTL follows the
    year-long ``immutable`` Cache-Control of content-hashed URLs. Both run the Accept
    function on viewer requests and add the security headers of
    :func:`security_headers_policy`; Host is never forwarded (API Gateway rejects it), the
    function passes it as ``X-Forwarded-Host``. No error response is cached.
    """
    function = {"FunctionARN": {"Fn::GetAtt": ["AcceptFunction", "FunctionARN"]}}
    association = {"FunctionAssociations": [{"EventType": "viewer-request", **function}]}
    static_behaviour = {
        "PathPattern": static_prefix.strip("/") + "/*",
        "TargetOriginId": "chalice-api-static",
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": ["GET", "HEAD"],
        "CachedMethods": ["GET", "HEAD"],
        "Compress": True,
        "CachePolicyId": {"Ref": "StaticCachePolicy"},
        "ResponseHeadersPolicyId": {"Ref": "SecurityHeadersPolicy"},
        **association,
    }
    default_behaviour = {
        "TargetOriginId": "chalice-api",
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
        "CachedMethods": ["GET", "HEAD"],
        "Compress": True,
        "CachePolicyId": {"Ref": "PageCachePolicy"},
        "OriginRequestPolicyId": {"Ref": "PageOriginRequestPolicy"},
        "ResponseHeadersPolicyId": {"Ref": "SecurityHeadersPolicy"},
        **association,
    }
    api_domain = {
        "Fn::If": [
            "ApiInStackRegion",
            {"Fn::Sub": "${RestApiId}.execute-api.${AWS::Region}.${AWS::URLSuffix}"},
            {"Fn::Sub": "${RestApiId}.execute-api.${ApiRegion}.${AWS::URLSuffix}"},
        ]
    }
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
    origins = [
        _origin("chalice-api", api_domain, PAGE_ORIGIN_TIMEOUTS),
        _origin("chalice-api-static", api_domain, STATIC_ORIGIN_TIMEOUTS),
    ]
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "chalice-http-toolkit: CloudFront in front of a Chalice REST API (written by "
            "cli.py cloudfront)"
        ),
        "Parameters": {
            "RestApiId": {
                "Type": "String",
                "AllowedPattern": "^[a-z0-9]{10}$",
                "ConstraintDescription": "the 10-character id in the Rest API URL",
                "Description": (
                    "The id in the Rest API URL that chalice deploy prints: "
                    "https://{RestApiId}.execute-api.{region}.amazonaws.com/{stage}/"
                ),
            },
            "ApiRegion": {
                "Type": "String",
                "Default": "",
                "AllowedPattern": "^([a-z]{2}(-[a-z]+)+-[0-9])?$",
                "Description": "The API's region; empty: the region of this stack",
            },
            "Stage": {
                "Type": "String",
                "Default": stage,
                "AllowedPattern": "^[A-Za-z0-9_-]{1,128}$",
                "Description": "The API Gateway stage (api_gateway_stage in .chalice/config.json)",
            },
            "PriceClass": {
                "Type": "String",
                "Default": price_class,
                "AllowedValues": list(PRICE_CLASSES),
                "Description": "Edge locations to serve from (PriceClass_100: NA and Europe)",
            },
        },
        "Conditions": {"ApiInStackRegion": {"Fn::Equals": [{"Ref": "ApiRegion"}, ""]}},
        "Resources": {
            "AcceptFunction": {
                "Type": "AWS::CloudFront::Function",
                "Properties": {
                    "Name": {"Fn::Sub": "${AWS::StackName}-accept"},
                    "AutoPublish": True,
                    "FunctionConfig": {
                        "Comment": "Normalise Accept to three values (chalice-http-toolkit)",
                        "Runtime": "cloudfront-js-2.0",
                    },
                    "FunctionCode": cloudfront_function_code(avif),
                },
            },
            "PageCachePolicy": _cache_policy(
                "pages",
                "Pages: TTL and stale-while-revalidate/-if-error from the origin's "
                "Cache-Control; the session cookie in the key",
                0,
                "all",
                (session_cookie,),
            ),
            "StaticCachePolicy": _cache_policy(
                "static",
                "Static files: content-hashed URLs are immutable for a year",
                86400,
                "none",
            ),
            "SecurityHeadersPolicy": security_headers_policy(),
            "PageOriginRequestPolicy": {
                "Type": "AWS::CloudFront::OriginRequestPolicy",
                "Properties": {
                    "OriginRequestPolicyConfig": {
                        "Name": {"Fn::Sub": "${AWS::StackName}-pages"},
                        "Comment": (
                            "Bodies, CORS preflights and CSRF checks of the app's own routes; "
                            "no Host"
                        ),
                        "HeadersConfig": {
                            "HeaderBehavior": "whitelist",
                            "Headers": [
                                "Content-Type",
                                "Origin",
                                "Access-Control-Request-Method",
                                "Access-Control-Request-Headers",
                                "Sec-Fetch-Site",
                                "X-CSRF-Token",
                                "X-Forwarded-Host",
                            ],
                        },
                        # The session cookie is in the cache key, and so forwarded already.
                        "CookiesConfig": {"CookieBehavior": "none"},
                        "QueryStringsConfig": {"QueryStringBehavior": "all"},
                    }
                },
            },
            "Distribution": {
                "Type": "AWS::CloudFront::Distribution",
                "Properties": {
                    "DistributionConfig": {
                        "Enabled": True,
                        "Comment": {"Fn::Sub": "${AWS::StackName}: chalice-http-toolkit site"},
                        "HttpVersion": "http2and3",
                        "IPV6Enabled": True,
                        "PriceClass": {"Ref": "PriceClass"},
                        "Origins": origins,
                        "DefaultCacheBehavior": default_behaviour,
                        "CacheBehaviors": [static_behaviour],
                        # No error is cached for CloudFront's default 10 s: a failing Lambda
                        # is asked again (an expired page it held is served meanwhile).
                        "CustomErrorResponses": [
                            {"ErrorCode": code, "ErrorCachingMinTTL": 0}
                            for code in CACHED_ERROR_CODES
                        ],
                    }
                },
            },
        },
        "Outputs": {
            "DistributionDomainName": {
                "Description": "The site's CloudFront domain name",
                "Value": {"Fn::GetAtt": ["Distribution", "DomainName"]},
            },
            "DistributionId": {
                "Description": "For aws cloudfront create-invalidation --distribution-id",
                "Value": {"Ref": "Distribution"},
            },
            "SiteUrl": {
                "Description": "The site behind CloudFront",
                "Value": {"Fn::Sub": "https://${Distribution.DomainName}/"},
            },
        },
    }
    if origin == "function-url":
        _function_url_origin(template, origins)
    return template


def _function_url_origin(template: dict, origins: list[dict]) -> None:
    """Point ``template``'s origin at a Function URL that checks the origin secret header."""
    parameters = template["Parameters"]
    for name in ("RestApiId", "ApiRegion", "Stage"):
        del parameters[name]
    del template["Conditions"]
    template["Description"] = (
        "chalice-http-toolkit: CloudFront in front of a Chalice app's Lambda Function URL "
        "(written by cli.py cloudfront --origin function-url)"
    )
    parameters["FunctionUrlDomain"] = {
        "Type": "String",
        "AllowedPattern": r"^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$",
        "ConstraintDescription": "the host of the Function URL, without https:// and /",
        "Description": (
            "The host of the API handler's Function URL (the FunctionUrlDomain output of the "
            "chalice package stack): {url-id}.lambda-url.{region}.on.aws"
        ),
    }
    parameters["OriginSecret"] = {
        "Type": "String",
        "NoEcho": True,
        "MinLength": 16,
        "AllowedPattern": "^[A-Za-z0-9_-]+$",
        "Description": (
            f"Sent as {ORIGIN_SECRET_HEADER} on every origin request; the same value as the "
            "function's CHALICE_HTTP_TOOLKIT_ORIGIN_SECRET (the OriginSecret of its stack)"
        ),
    }
    for origin_config in origins:
        origin_config["DomainName"] = {"Ref": "FunctionUrlDomain"}
        del origin_config["OriginPath"]
        origin_config["OriginCustomHeaders"] = [
            {"HeaderName": ORIGIN_SECRET_HEADER, "HeaderValue": {"Ref": "OriginSecret"}}
        ]


def cloudfront_json(**options: Any) -> str:
    """The template as a file's text (``options``: see :func:`cloudfront_template`)."""
    return json.dumps(cloudfront_template(**options), indent=2) + "\n"


def command_cloudfront(args: argparse.Namespace) -> int:
    """Write the distribution template to ``args.output`` (``-``: standard output)."""
    text = cloudfront_json(
        stage=args.stage,
        static_prefix=args.static_prefix,
        price_class=args.price_class,
        avif=args.avif,
        origin=args.origin,
        session_cookie=args.session_cookie,
    )
    if args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(args.output)
    if target.is_dir():
        _say(f"cloudfront: {target} is a directory; give a file name such as {_TEMPLATE_FILENAME}")
        return EXIT_SETUP_FAILED
    if not target.parent.is_dir():
        _say(
            f"cloudfront: {target.parent} is not a directory, nothing was written; create it first"
        )
        return EXIT_SETUP_FAILED
    if os.path.lexists(target) and not args.force:
        _say(
            f"cloudfront: {target} already exists, nothing was written; use --force to overwrite it"
        )
        return EXIT_EXISTS
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        _say(f"cloudfront: cannot write {target}: {error.strerror or error}")
        return EXIT_SETUP_FAILED
    print(f"Wrote {target}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def default_python() -> str:
    """The newest Python the test suite runs under (``TESTED_PYTHONS``)."""
    return TESTED_PYTHONS[-1]


def running_python() -> str:
    """This interpreter's X.Y: the Lambda runtime ``chalice deploy`` picks when run by it."""
    return "{}.{}".format(*sys.version_info[:2])


def toolkit_version() -> str:
    """The ``__version__`` of the module ``setup`` copies, read from its source (no import:
    the module needs Chalice, this program only the standard library)."""
    try:
        source = MODULE_SOURCE.read_text(encoding="utf-8")
    except OSError:
        return "unknown (chalice_http_toolkit.py is missing)"
    found = _VERSION_LINE.search(source)
    return found[1] if found else "unknown"


def deprecation_warning(python: str, today: datetime.date | None = None) -> str | None:
    """A one-line warning when Lambda has deprecated (or will deprecate) ``python``."""
    deprecated = DEPRECATED_PYTHONS.get(python)
    if deprecated is None:
        return None
    newest = default_python()
    when = "deprecated" if (today or datetime.date.today()) >= deprecated else "deprecates"
    return (
        f"warning: Lambda {when} python{python} on {deprecated.isoformat()}: functions keep "
        f"running, but AWS then blocks creating and updating them; prefer --python {newest}"
    )


def _add_lookup_options(parser: argparse.ArgumentParser, region_required: bool) -> None:
    parser.add_argument(
        "-r",
        "--region",
        required=region_required,
        help="AWS region of the layers (e.g. us-east-1)",
    )
    parser.add_argument(
        "--python",
        default=default_python(),
        metavar="X.Y",
        help=(
            f"Lambda Python runtime, {LAMBDA_PYTHONS[0]} to {LAMBDA_PYTHONS[-1]} "
            "(default: %(default)s, the newest this toolkit is tested under)"
        ),
    )
    parser.add_argument(
        "--arch", choices=ARCHITECTURES, default="x86_64", help="Lambda architecture"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Scaffold chalice-http-toolkit projects and look up their Lambda layers.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {toolkit_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    layers = commands.add_parser(
        "layers",
        help="print the latest Klayers ARNs for jinja2 and Pillow",
        description="Print the latest Klayers layer ARNs for jinja2 and Pillow, one per line.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_lookup_options(layers, region_required=True)
    layers.add_argument("-j", "--json", action="store_true", help="print JSON instead")
    layers.set_defaults(handler=command_layers, command_parser=layers)

    setup = commands.add_parser(
        "setup",
        help="write a new project",
        description="Write a complete, working chalice-http-toolkit project into PATH.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    setup.add_argument("-n", "--name", required=True, help="Chalice app name")
    setup.add_argument("-p", "--path", required=True, help="project directory")
    setup.add_argument(
        "-e",
        "--extra",
        action="append",
        choices=["magic", "tasks"],
        help=(
            "magic: ship libmagic for Lambda in chalicelib/libs/ and require python-magic; "
            "tasks: a background-task worker on an SQS FIFO queue (repeat -e for both)"
        ),
    )
    _add_lookup_options(setup, region_required=False)
    setup.add_argument("--force", action="store_true", help="overwrite existing files")
    setup.set_defaults(handler=command_setup, command_parser=setup)

    prepare = commands.add_parser(
        "prepare",
        help="parse and compile the project's templates, gzip its static files, before deploying",
        description=(
            "Run the project's chalice_http_toolkit.prepare_deployment with the project's "
            f"Python: {PROJECT_TEMPLATES}/ parsed and compiled, and the gzip forms of "
            f"{PROJECT_STATIC}/, into files beside {PROJECT_MODULE}, which a cold start "
            f"reads instead (see {DOCS}/performance.md)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument(
        "-p", "--path", default=".", help="project directory (default: %(default)s)"
    )
    prepare.add_argument(
        "--interpreter",
        default=sys.executable,
        help="the Python that deploys the project, with Chalice and Jinja2 (default: this one)",
    )
    prepare.set_defaults(handler=command_prepare, command_parser=prepare)

    demo = commands.add_parser(
        "demo",
        help="scaffold a demo site and serve it with chalice local",
        description=(
            "Write a demo site with setup (kept as it is once you have edited it) and serve it "
            "with `chalice local` until Ctrl-C."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "-p", "--path", default="build/demo", help="demo folder (default: %(default)s)"
    )
    demo.add_argument("-n", "--name", default="demo", help=argparse.SUPPRESS)
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    demo.add_argument(
        "--port",
        type=int,
        help=f"port to listen on (default: {DEMO_PORT}, or a free one when it is taken)",
    )
    demo.add_argument(
        "--fresh", action="store_true", help="start the demo folder over, even if you edited it"
    )
    demo.set_defaults(handler=command_demo, command_parser=demo)

    cloudfront = commands.add_parser(
        "cloudfront",
        help="write the CloudFront distribution template (CloudFormation JSON)",
        description=(
            "Write a CloudFormation template for a CloudFront distribution in front of the "
            "Chalice REST API: an Accept-normalising CloudFront Function, cache and origin "
            "request policies, a long-cache behaviour for the static prefix. Deploy it with "
            f"`aws cloudformation deploy` (see {DOCS}/cloudfront.md)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cloudfront.add_argument(
        "-o", "--output", default="-", help="file to write (default: standard output)"
    )
    cloudfront.add_argument(
        "--stage",
        default=STAGE,
        help="API Gateway stage, the origin path (default: %(default)s)",
    )
    cloudfront.add_argument(
        "--static-prefix",
        default="/static",
        help="URL prefix of static files, as in set_static_handler_prefix (default: %(default)s)",
    )
    cloudfront.add_argument(
        "--price-class",
        choices=PRICE_CLASSES,
        default="PriceClass_100",
        help="default edge locations (default: %(default)s)",
    )
    cloudfront.add_argument(
        "--no-avif",
        dest="avif",
        action="store_false",
        help="the origin's Pillow cannot write AVIF: two Accept values for images instead of three",
    )
    cloudfront.add_argument(
        "--origin",
        choices=ORIGINS,
        default="rest-api",
        help=(
            "the Chalice REST API, or the API handler's Function URL (no API Gateway charge; "
            f"CloudFront sends the secret header {ORIGIN_SECRET_HEADER}) (default: %(default)s)"
        ),
    )
    cloudfront.add_argument(
        "--session-cookie",
        default="session",
        help=(
            "the session cookie's name (ContentManager's session_cookie): in the pages' cache "
            "key, so a visitor who carries it never gets the shared copy (default: %(default)s)"
        ),
    )
    cloudfront.add_argument("--force", action="store_true", help="overwrite an existing file")
    cloudfront.set_defaults(handler=command_cloudfront, command_parser=cloudfront)
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Strict with developer input: every mistake is a usage error (exit 2)."""
    if args.command == "cloudfront":
        _check_cloudfront_arguments(parser, args)
        return
    if args.command == "demo":
        if args.port is not None and not 0 < args.port < 65536:
            parser.error(f"--port must be 1 to 65535, not {args.port}")
        return
    if args.command == "prepare":
        return
    if args.region is not None and args.region not in REGIONS:
        parser.error(f"unknown region {args.region!r}; Klayers regions: {', '.join(REGIONS)}")
    if not _PYTHON_VERSION.fullmatch(args.python):
        parser.error(f"--python must look like 3.12, not {args.python!r}")
    if args.python not in LAMBDA_PYTHONS:
        parser.error(
            f"--python {args.python} is not a Lambda Python runtime this toolkit accepts: "
            f"{', '.join(LAMBDA_PYTHONS)}"
        )
    name = getattr(args, "name", None)
    if name is not None and not (_APP_NAME.fullmatch(name) and len(name) <= MAX_APP_NAME_LENGTH):
        parser.error(
            f"invalid app name {name!r}: start with a letter, then letters, digits, '-' or '_', "
            f"at most {MAX_APP_NAME_LENGTH} characters (Chalice builds Lambda function names "
            "from it)"
        )
    args.api_url = os.environ.get("KLAYERS_API_URL") or KLAYERS_API_URL
    if not args.api_url.startswith(("http://", "https://")):
        parser.error(f"KLAYERS_API_URL must be an http(s) URL, not {args.api_url!r}")
    timeout = os.environ.get("KLAYERS_TIMEOUT") or str(KLAYERS_TIMEOUT)
    try:
        args.timeout = float(timeout)
    except ValueError:
        args.timeout = 0.0
    if not 0 < args.timeout < 600:
        parser.error(f"KLAYERS_TIMEOUT must be seconds between 0 and 600, not {timeout!r}")


def _check_cloudfront_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not _STAGE.fullmatch(args.stage):
        parser.error(
            f"--stage must be 1 to 128 letters, digits, '-' and '_' (API Gateway's rule), "
            f"not {args.stage!r}"
        )
    segments = args.static_prefix.strip("/").split("/")
    if not args.static_prefix.startswith("/") or not all(
        _PATH_SEGMENT.fullmatch(segment) for segment in segments
    ):
        parser.error(
            f"--static-prefix must be a URL path such as /static, not {args.static_prefix!r}"
        )
    if args.output == "":
        parser.error("-o/--output must be a file name, or - for standard output")
    if not _COOKIE_NAME.fullmatch(args.session_cookie):
        parser.error(f"--session-cookie must be a cookie name, not {args.session_cookie!r}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(args.command_parser, args)
    warning = deprecation_warning(args.python) if hasattr(args, "python") else None
    if warning:
        _say(f"{args.command}: {warning}")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
