"""Shared fixtures: the site of tests/sites.py and its app, and the in-process CLI runner."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# The API Gateway and CloudFront models (apigw, cdn_model, cloudfront_function) live in
# bench/, which the benchmark scripts import them from as their own folder.
sys.path.append(str(ROOT / "bench"))

os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)

# The shared site and app builder, under the names the test files import from here.
from sites import CSS, TEMPLATES, build_app, write_site  # noqa: E402, F401


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    return write_site(tmp_path / "site")


@pytest.fixture
def site_app(site):
    return build_app(*site)


class CliResult(NamedTuple):
    """What ``cli.py`` printed and returned."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys) -> Callable[..., CliResult]:
    """Run ``cli.main([...])`` in this process; what it printed and returned.

    A few cases in tests/test_cli.py also run ``python cli.py`` as a subprocess
    (``run_cli``), which is the same ``main``.
    """

    def in_process(*args: str) -> CliResult:
        import cli

        try:
            code = cli.main(list(args))
        except SystemExit as exit:
            code = exit.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return in_process


def run_cli(*args: str, **env: str) -> CliResult:
    """``python cli.py ...`` as a subprocess, offline (``env`` added to its environment)."""
    from localserver import LOOPBACK, run_python

    done = run_python(ROOT / "cli.py", *args, **LOOPBACK, **env)
    return CliResult(done.returncode, done.stdout, done.stderr)
