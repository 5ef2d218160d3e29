"""The Lambda Runtime Interface Emulator (``aws-lambda-rie``) on 127.0.0.1, without a container.

The binary is the one AWS SAM runs (``samcli/local/rapid/aws-lambda-rie-<arch>`` in the
``aws-sam-cli`` wheel, which ``make`` installs into ``.venv-tools``); the runtime client is
``awslambdaric`` (``python -m awslambdaric module.handler``), as in Lambda's Python images.

This build of the emulator crashes on a second invocation while one runs, so `Emulator`
invokes one at a time. A handler error comes back as HTTP 200 with an error body
(``errorType``); a response over the payload limit as HTTP 502. Anything else going wrong
(the emulator does not start, dies, or does not answer in time) raises `EmulatorError`,
whose message is one line naming what happened and the emulator's last output.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

from localserver import free_port, offline_env

ROOT = Path(__file__).resolve().parent.parent
#: Where the emulator binary is, when not in ``.venv-tools`` (set by ``make``).
RIE_ENV = "AWS_LAMBDA_RIE"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class EmulatorError(RuntimeError):
    """The emulator did not start, died, or did not answer in time (a one-line message)."""


class Invocation(NamedTuple):
    """The emulator's HTTP answer to one invocation."""

    status: int
    payload: bytes


def rie_binary() -> Path | None:
    """The emulator for this machine's architecture: ``$AWS_LAMBDA_RIE`` or ``.venv-tools``."""
    configured = os.environ.get(RIE_ENV)
    if configured:
        return Path(configured)
    arch = _ARCH.get(platform.machine().lower(), platform.machine())
    pattern = f"lib/python*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"
    found = sorted((ROOT / ".venv-tools").glob(pattern))
    return found[-1] if found else None


def lambda_environment(function_name: str, **extra: str) -> dict[str, str]:
    """The variables Lambda sets for a Python function (offline: no proxy, no AWS)."""
    version = "{}.{}".format(*sys.version_info[:2])
    return offline_env(
        AWS_LAMBDA_FUNCTION_NAME=function_name,
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_TIMEOUT="30",
        AWS_EXECUTION_ENV=f"AWS_Lambda_python{version}",
        AWS_REGION="us-east-1",
        PYTHONDONTWRITEBYTECODE="1",  # /var/task is read-only on Lambda
        **extra,
    )


def session_pids(session: int) -> list[int]:
    """Every live process in ``session`` (the emulator and the runtime it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


class Emulator:
    """``aws-lambda-rie`` running ``python -m awslambdaric <handler>`` in ``task_root``."""

    def __init__(
        self,
        binary: Path,
        handler: str,
        task_root: Path,
        env: dict[str, str],
        log_path: Path,
        *,
        answer_timeout: float = 60,
        python: str = sys.executable,
        python_options: tuple[str, ...] = (),
        rie_address: str | None = None,
    ) -> None:
        self.binary = binary
        self.handler = handler
        self.task_root = task_root
        self.env = env
        self.log_path = log_path
        self.answer_timeout = answer_timeout
        self.python = python
        self.python_options = python_options
        self.rie_address = rie_address
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.first_answer_seconds: float | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.rie_address}{INVOKE_PATH}"

    def start(self) -> Emulator:
        rie_port = free_port()
        api_port = free_port()
        while api_port == rie_port:
            api_port = free_port()
        self.rie_address = self.rie_address or f"127.0.0.1:{rie_port}"
        command = [
            str(self.binary),
            "--runtime-interface-emulator-address",
            self.rie_address,
            "--runtime-api-address",
            f"127.0.0.1:{api_port}",
            self.python,
            *self.python_options,
            "-m",
            "awslambdaric",
            self.handler,
        ]
        self.started_at = time.monotonic()
        with self.log_path.open("wb") as log:
            try:
                self.process = subprocess.Popen(
                    command,
                    cwd=self.task_root,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session: stop() finds the runtime too
                )
            except OSError as error:
                raise EmulatorError(
                    f"aws-lambda-rie did not start: cannot run {self.binary} ({error})"
                ) from None
        return self

    def last_output(self, lines: int = 3) -> str:
        """The emulator's last lines of output, on one line."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) if tail else "(no output)"

    def _fail(self, what: str) -> EmulatorError:
        return EmulatorError(f"aws-lambda-rie {what}; last output: {self.last_output()}")

    def _died(self, when: str) -> EmulatorError:
        code = self.process.returncode if self.process else None
        return self._fail(f"exited with code {code} {when}")

    def invoke(self, event: Any) -> Invocation:
        """POST ``event`` and wait for the answer (one invocation at a time)."""
        if self.process is None:
            raise EmulatorError("aws-lambda-rie was not started")
        data = json.dumps(event).encode()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with self._lock:
            deadline = time.monotonic() + self.answer_timeout
            while True:
                if self.process.poll() is not None:
                    raise self._died("before answering")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._fail(f"did not answer within {self.answer_timeout:g} s")
                request = urllib.request.Request(self.url, data=data, method="POST")
                try:
                    with opener.open(request, timeout=remaining) as response:
                        answer = Invocation(response.status, response.read())
                except urllib.error.HTTPError as error:
                    answer = Invocation(error.code, error.read())
                except (TimeoutError, OSError, http.client.HTTPException) as error:
                    reason = getattr(error, "reason", error)
                    if isinstance(reason, ConnectionRefusedError):
                        time.sleep(0.05)  # not listening yet
                        continue
                    if self.process.poll() is not None or _wait_exit(self.process, 1.0):
                        # urllib wraps only failures to connect or send in URLError
                        sent = not isinstance(error, urllib.error.URLError)
                        when = "during an invocation" if sent else "before answering"
                        raise self._died(when) from None
                    if isinstance(reason, TimeoutError):
                        raise self._fail(
                            f"did not answer within {self.answer_timeout:g} s"
                        ) from None
                    raise self._fail(f"broke the connection ({reason})") from None
                if self.first_answer_seconds is None:
                    self.first_answer_seconds = time.monotonic() - self.started_at
                return answer

    def stop(self) -> None:
        """Kill the emulator and every process it started (its session); close nothing else."""
        if self.process is None:
            return
        for pid in session_pids(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while session_pids(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # SIGKILL is delivered asynchronously


def _wait_exit(process: subprocess.Popen, seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True
