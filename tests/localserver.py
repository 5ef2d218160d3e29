"""Running `chalice local` and other subprocesses offline, on loopback only.

``run`` is the one way tests start a command (``run_python`` for this interpreter),
``chalice_local`` the one way they serve a project with ``chalice local``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

#: The ``chalice`` command of this interpreter's environment.
CHALICE = Path(sys.executable).parent / "chalice"
#: Environment for a subprocess that talks to servers on loopback (fake APIs, chalice local).
LOOPBACK = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env(**extra: str) -> dict[str, str]:
    """This environment with every way out blocked: a dead proxy, no package index, no AWS."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        http_proxy=dead,
        https_proxy=dead,
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        no_proxy="",
        NO_PROXY="",
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def wait_until_serving(
    url: str, process: subprocess.Popen, log_path: Path, timeout: float = 30
) -> None:
    """Poll ``url`` until it answers; fail with the server's log if it dies or never does."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(urllib.request.Request(url, method="HEAD"), timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chalice local did not start:\n{log_path.read_text()}")
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """Terminate ``process``; kill it if it has not exited within ten seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(
    command: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    **extra_env: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and capture its text output; the caller asserts on the outcome.

    The environment is :func:`offline_env` with ``extra_env`` unless ``env`` is given.
    """
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=offline_env(**extra_env) if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_python(*args: str | Path, **options) -> subprocess.CompletedProcess[str]:
    """``run`` with this interpreter: ``run_python("-c", code)``, ``run_python(script, ...)``."""
    return run([sys.executable, *args], **options)


@contextlib.contextmanager
def chalice_local(
    project: Path, *, probe: str = "/", log_path: Path | None = None, **extra_env: str
) -> Iterator[str]:
    """Serve ``project`` with ``chalice local`` on 127.0.0.1; yields the base URL.

    The server's output goes to ``log_path`` (default: ``{project}-chalice-local.log``
    beside the project), which a failure to start quotes.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = log_path or project.parent / f"{project.name}-chalice-local.log"
    command = [CHALICE, "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=offline_env(**LOOPBACK, **extra_env),
        )
        try:
            wait_until_serving(base + probe, process, log_path)
            yield base
        finally:
            stop(process)
