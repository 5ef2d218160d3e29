"""`pip install .` gives the seed's command: a wheel built offline, installed into a fresh
venv, scaffolds a project with `chalice-http-toolkit setup` exactly as `cli.py setup` does.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import chalice_http_toolkit
import cli

from conftest import ROOT
from localserver import run, run_python

#: Not part of a source tree: what a checkout may hold besides its files.
RUNNING = "{}.{}".format(*sys.version_info[:2])
NOT_SOURCES = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built offline from a copy (the checkout stays clean)."""
    if shutil.which("pip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("no pip beside this interpreter")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES, ".hypothesis"))
    built = run_python(
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", root / "dist", source),
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (root / "dist").glob("chalice_http_toolkit-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no dependencies: this environment's serve)."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    made = run_python("-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run_python(
        *("-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel),
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # The already-installed dependencies (chalice, Jinja2, ...) for importing the module.
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    outer = sysconfig.get_path("purelib")
    (Path(site.stdout.strip()) / "outer-site.pth").write_text(outer + "\n")
    return venv


def test_wheel_holds_the_module_cli_scaffold_bin_magic_and_licence(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert {"chalice_http_toolkit.py", "chalice_http_toolkit_cli/cli.py"} <= names
    data = "chalice_http_toolkit_cli"
    assert {f"{data}/scaffold/{source}" for _, source, _ in cli.SCAFFOLD_FILES} <= names
    assert {f"{data}/bin_magic/{name}" for name in cli.MAGIC_REQUIRED} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert any(name.endswith("licenses/LICENSE") for name in names)
    text = metadata.decode()
    assert "License-Expression: Apache-2.0" in text
    assert "Provides-Extra: layered" in text
    assert 'Requires-Dist: jinja2>=3.1; extra == "layered"' in text.replace("Jinja2", "jinja2")
    assert 'Requires-Dist: pillow>=10.0; extra == "layered"' in text.replace("Pillow", "pillow")
    assert b"chalice-http-toolkit = chalice_http_toolkit_cli.cli:main" in entry_points


def test_wheel_installs_no_top_level_cli_module(wheel):
    """Regression: `pip install` put a module named `cli` into site-packages, where it
    collides with any other package's `cli`. Only the toolkit's own names are top level."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"chalice_http_toolkit.py", "chalice_http_toolkit_cli"}


def test_installed_command_scaffolds_the_same_project_as_cli_py(venv, tmp_path):
    command = venv / "bin" / "chalice-http-toolkit"
    args = ["setup", "-n", "x", "-e", "magic", "--python", RUNNING]  # RUNNING: a .pyc too
    done = run([command, *args, "-p", tmp_path / "x"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "layers -r REGION" in done.stderr and "chalice-http-toolkit layers" in done.stderr
    same = run_python(ROOT / "cli.py", *args, "-p", tmp_path / "y")
    assert same.returncode == 0, same.stderr

    def files(root: Path) -> dict[str, bytes]:
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            # a .pyc names its source, the templates' compiled code theirs
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".bytecode"
        }

    project = files(tmp_path / "x")
    assert list((tmp_path / "x" / "chalicelib" / "__pycache__").glob("chalice_http_toolkit.*"))
    assert project == files(tmp_path / "y")
    assert {
        "app.py",
        "chalicelib/chalice_http_toolkit.py",
        "chalicelib/templates/404.html",
        "chalicelib/static/img/hero.png",
        "chalicelib/libs/magic.mgc",
        ".chalice/config.json",
        ".gitignore",
        "cloudfront.json",
        "chalicelib/chalice_http_toolkit.prepared.json",
    } <= set(project)
    assert (tmp_path / "x" / "chalicelib" / "chalice_http_toolkit.prepared.json.bytecode").is_file()
    assert 'app = Chalice(app_name="x")' in project["app.py"].decode()


@pytest.mark.parametrize("how", ["command", "module"])
def test_installed_program_is_cli_py(venv, how, tmp_path):
    start = [venv / "bin" / "chalice-http-toolkit"]
    if how == "module":
        start = [venv / "bin" / "python", "-m", "chalice_http_toolkit_cli.cli"]
    done = run([*start, "--help"], cwd=tmp_path)  # not the checkout: its cli.py would win
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: chalice-http-toolkit ")
    assert all(f"\n    {name}" in done.stdout for name in ("layers", "setup", "cloudfront"))
    usage = run([*start, "cloudfront", "--stage", "bad stage"], cwd=tmp_path)
    assert usage.returncode == cli.EXIT_USAGE
    template = run([*start, "cloudfront"], cwd=tmp_path)
    assert template.stdout == cli.cloudfront_json()
    version = run([*start, "--version"], cwd=tmp_path)
    assert version.stdout == f"chalice-http-toolkit {cli.toolkit_version()}\n"
    assert cli.toolkit_version() == chalice_http_toolkit.__version__


def test_the_repository_cli_py_is_not_the_installed_one(venv, tmp_path):
    """With the wheel installed, `import cli` finds nothing: the checkout's cli.py is the
    only `cli` (`python cli.py` there keeps working)."""
    found = run([venv / "bin" / "python", "-c", "import cli"], cwd=tmp_path)
    assert found.returncode == 1 and "ModuleNotFoundError" in found.stderr
    assert run_python(ROOT / "cli.py", "--version").stdout.startswith("cli.py ")


def test_installed_module_imports_from_site_packages(venv, tmp_path):
    done = run(
        [venv / "bin" / "python", "-c", "import chalice_http_toolkit as t; print(t.__file__)"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(venv))


def test_make_installs_the_emulator_last_so_pip_reports_no_conflict():
    """Regression: `make test` printed pip's 23-line "dependency resolver" ERROR block: tox was
    installed after aws-sam-cli, whose dependencies are left out on purpose (--no-deps)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.partition("\n$(TOOLS_STAMP): ")[2].split("\n\n")[0].splitlines()
    installs = [line.strip() for line in recipe if " pip install " in line]
    assert installs[-1].endswith("--no-deps -r requirements-rie.txt")
    assert any(line.endswith(" -r requirements-tools.txt") for line in installs[:-1])
    assert recipe[1].strip() == "$(PYTHON) -m venv --clear $(TOOLS_VENV)"  # nothing left over
