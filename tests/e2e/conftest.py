"""Fixtures for the browser tests: the scaffolded demo under `chalice local`, Debian's Chromium.

The browser reaches 127.0.0.1 only: host names do not resolve
(``--host-resolver-rules``) and any other address goes to a proxy on a dead
loopback port. Without Chromium or Playwright the tests skip, except in CI
(``CI=true``) and under ``make e2e`` (``E2E_REQUIRED=1``), where that fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn

import pytest

from .browsing import Site, Tab
from localserver import chalice_local, free_port, run_python

try:
    from playwright import sync_api
except ImportError:  # reported by the `browser` fixture: a skip, or a failure in CI
    sync_api = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots and network logs; ``build/`` is git-ignored.
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS") or ROOT / "build" / "e2e-artifacts")
#: Debian's browser binary, then its launcher script (``CHROMIUM`` overrides both).
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
APP_NAME = "e2e-demo"
DESKTOP = {"width": 1280, "height": 800}

_REPORT = pytest.StashKey[list[str]]()


def browser_required() -> bool:
    """CI and `make e2e` must run the browser tests, never skip them."""
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    return ci or os.environ.get("E2E_REQUIRED") == "1"


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else Debian's; ``None`` if absent."""
    configured = os.environ.get("CHROMIUM")
    candidates = [configured] if configured else [*CHROMIUM_CANDIDATES, shutil.which("chromium")]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def _unavailable(reason: str) -> NoReturn:
    if browser_required():
        pytest.fail(f"{reason}: `make e2e` installs it", pytrace=False)
    pytest.skip(f"{reason} (run `make e2e`)")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`cli.py setup` as a user runs it (no region: no lookup), then `chalice local`."""
    root = tmp_path_factory.mktemp("e2e")
    project = root / APP_NAME
    dead = f"http://127.0.0.1:{free_port()}"  # no Klayers: no region is given anyway
    done = run_python(ROOT / "cli.py", "setup", "-n", APP_NAME, "-p", project, KLAYERS_API_URL=dead)
    assert done.returncode == 0, done.stdout + done.stderr
    log_path = root / "chalice-local.log"
    with chalice_local(project, log_path=log_path, KLAYERS_API_URL=dead) as base_url:
        yield Site(APP_NAME, base_url, project, log_path)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, that can reach loopback addresses only."""
    if sync_api is None:
        _unavailable("Playwright is not installed")
    executable = find_chromium()
    if executable is None:
        _unavailable(f"Chromium is not installed ({os.environ.get('CHROMIUM') or 'chromium'})")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                # 127.0.0.1 directly, anything else to a proxy on a dead loopback port.
                f"--proxy-server=http://127.0.0.1:{free_port()}",
                "--proxy-bypass-list=127.0.0.1",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[Callable[..., Tab]]:
    """``open_tab(viewport=..., device_scale_factor=...)``: a page in a fresh context (cache)."""
    contexts = []

    def open_tab(viewport: dict[str, int] | None = None, device_scale_factor: float = 1) -> Tab:
        context = browser.new_context(
            viewport=viewport or DESKTOP, device_scale_factor=device_scale_factor
        )
        contexts.append(context)
        return Tab(context)

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def report(request: pytest.FixtureRequest, artifacts: Path) -> Callable[[str, str], None]:
    """``report(name, text)``: save ``text`` as an artifact and print it after the run."""

    def add(name: str, text: str) -> None:
        (artifacts / name).write_text(text + "\n", encoding="utf-8")
        request.config.stash.setdefault(_REPORT, []).append(text)

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config):
    texts = config.stash.get(_REPORT, [])
    if texts:
        terminalreporter.section(f"browser network logs (also in {ARTIFACTS})")
        for text in texts:
            terminalreporter.write_line(text)
            terminalreporter.write_line("")
