"""A fake Klayers API on 127.0.0.1 for the CLI tests: the real v2 format, no internet.

``GET /api/v2/{build}/layers/latest/{region}/json`` answers a JSON list of objects
with ``arn``, ``package``, ``packageVersion``, ``region``, ``deployStatus`` and
``time``, with the availability Klayers really has: p3.12 and p3.14 (x86_64) have
jinja2 and Pillow, arm64 builds have jinja2 but not Pillow, p3.13 has neither;
p3.10/p3.11 still have both. An unknown build is a 404; a region Klayers does
not publish in is an empty list. ``respond()`` replaces every answer with a
canned one (status, body, delay) to fake outages.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "770693421928"
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

#: build -> package -> (packageVersion, layer version)
CATALOGUE: dict[str, dict[str, tuple[str, int]]] = {
    "p3.10": {"jinja2": ("3.1.4", 4), "Pillow": ("10.4.0", 6), "requests": ("2.32.3", 12)},
    "p3.11": {"jinja2": ("3.1.4", 5), "Pillow": ("10.4.0", 8), "requests": ("2.32.3", 14)},
    "p3.12": {
        "boto3": ("1.35.70", 19),
        "jinja2": ("3.1.6", 7),
        "Pillow": ("11.3.0", 9),
        "requests": ("2.32.3", 16),
    },
    "p3.12-arm64": {"jinja2": ("3.1.6", 6), "requests": ("2.32.3", 11)},
    "p3.13": {"boto3": ("1.35.70", 3), "requests": ("2.32.3", 4)},
    "p3.13-arm64": {"requests": ("2.32.3", 2)},
    "p3.14": {"jinja2": ("3.1.6", 2), "Pillow": ("12.0.0", 3), "requests": ("2.32.5", 2)},
    "p3.14-arm64": {"jinja2": ("3.1.6", 1), "requests": ("2.32.5", 1)},
}

_PATH = re.compile(r"/api/v2/(?P<build>[^/]+)/layers/latest/(?P<region>[^/]+)/json")


def layer_arn(build: str, region: str, package: str, number: int) -> str:
    name = "Klayers-" + build.replace(".", "") + "-" + package
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:{number}"


def layer_list(build: str, region: str) -> list[dict[str, str]]:
    """What the real API lists for one build and region."""
    if region not in REGIONS:
        return []
    return [
        {
            "arn": layer_arn(build, region, package, number),
            "package": package,
            "packageVersion": version,
            "region": region,
            "deployStatus": "latest",
            "time": "2025-06-02T10:26:48.812806",
        }
        for package, (version, number) in CATALOGUE[build].items()
    ]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.server.canned is not None:
            status, body, delay = self.server.canned
            if self.server.stopping.wait(delay):
                return
        else:
            match = _PATH.fullmatch(self.path)
            if match and match["build"] in CATALOGUE:
                status, body = 200, json.dumps(layer_list(match["build"], match["region"]))
            else:
                status, body = 404, json.dumps({"message": "Not Found"})
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []
        self.canned: tuple[int, str | bytes, float] | None = None
        self.stopping = threading.Event()


class FakeKlayers:
    """The fake API in a thread; ``url`` is its base URL, ``paths`` what was requested."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def paths(self) -> list[str]:
        return self._server.paths

    def respond(self, status: int, body: str | bytes, delay: float = 0.0) -> None:
        """Answer every request with ``status`` and ``body`` after ``delay`` seconds."""
        self._server.canned = (status, body, delay)

    def start(self) -> FakeKlayers:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
