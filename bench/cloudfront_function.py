"""The CloudFront Function of ``cli.py cloudfront`` executed by node, for tests and the CDN model.

``run_batch`` sends many requests through one short-lived node process;
``ViewerRequestFunction`` keeps one process open and answers request by request
(memoised: the function's output depends only on the URI and the headers).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Union

HARNESS = Path(__file__).resolve().parent / "cloudfront_harness.js"

#: A header's value, or its values when the viewer repeated it.
HeaderValue = Union[str, list[str]]


class NodeMissingError(RuntimeError):
    """node is not installed (``make system-deps`` installs it)."""


def node_binary() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise NodeMissingError("node is not installed; `make system-deps` installs nodejs")
    return node


def _line(uri: str, headers: dict[str, HeaderValue]) -> str:
    return json.dumps({"uri": uri, "method": "GET", "headers": headers})


def run_batch(
    code: str, requests: Iterable[tuple[str, dict[str, HeaderValue]]]
) -> list[dict[str, str]]:
    """The request headers after the function, for each ``(uri, headers)``, in order."""
    requests = list(requests)
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "function.js"
        source.write_text(code, encoding="utf-8")
        done = subprocess.run(
            [node_binary(), str(HARNESS), str(source)],
            input="".join(_line(uri, headers) + "\n" for uri, headers in requests),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"node failed ({done.returncode}):\n{done.stderr}")
    results = [json.loads(line) for line in done.stdout.splitlines()]
    if len(results) != len(requests):
        raise RuntimeError(f"node answered {len(results)} of {len(requests)} requests")
    return results


class ViewerRequestFunction:
    """One long-lived node process running the function; call it per viewer request."""

    def __init__(self, code: str) -> None:
        self._directory = tempfile.TemporaryDirectory()
        source = Path(self._directory.name) / "function.js"
        source.write_text(code, encoding="utf-8")
        self._process = subprocess.Popen(
            [node_binary(), str(HARNESS), str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._memo: dict[str, dict[str, str]] = {}
        self.calls = 0

    def __call__(self, uri: str, headers: dict[str, str]) -> dict[str, str]:
        """The request headers (lower-case names) after the function."""
        self.calls += 1
        line = _line(uri, {name.lower(): value for name, value in sorted(headers.items())})
        if line not in self._memo:
            stdin, stdout = self._process.stdin, self._process.stdout
            if stdin is None or stdout is None:
                raise RuntimeError("the node harness has no pipes")
            stdin.write(line + "\n")
            stdin.flush()
            answer = stdout.readline()
            if not answer:
                raise RuntimeError("the node harness exited")
            self._memo[line] = json.loads(answer)
        return dict(self._memo[line])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._directory.cleanup()

    def __enter__(self) -> ViewerRequestFunction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
