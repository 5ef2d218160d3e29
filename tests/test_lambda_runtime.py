"""The scaffolded project under the Lambda Runtime Interface Emulator, with awslambdaric.

`cli.py setup` writes the project; ``aws-lambda-rie`` (tests/rie.py) runs it with
``python -m awslambdaric app.app`` on 127.0.0.1, one invocation at a time, and API
Gateway's base64 rule (bench/apigw.py) turns each answer into what a client receives.
Every answer is also compared with the in-process model (``app(event, context)``
serialised by awslambdaric's marshaller): the model must say what the runtime does.
A small probe handler checks the runtime's own edges: the payload limit to the byte,
bytes bodies, handler errors, and an emulator that dies or hangs.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import apigw
from apigw import Delivered, deliver_payload, make_event
from conftest import ROOT
from rie import Emulator, EmulatorError, lambda_environment, rie_binary, session_pids
from sites import imported_project

pytestmark = pytest.mark.lambda_runtime

RUNNING = "{}.{}".format(*sys.version_info[:2])
PY = ["--python", RUNNING]
ZIP_EPOCH = 315532800  # 1980-01-01, the mtime of every file Chalice zips
CHROME_PAGE = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
IMAGE_ACCEPTS = {
    "chrome": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "firefox": "image/avif,image/webp,*/*",
    "safari": "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
}
GREETING = "Grüße ✓"  # added to the scaffold's page: text with non-ASCII characters
PRINT_CSS = "".join(f".é{i}::after {{ content: '→ {i} ✓'; }}\n" for i in range(400))
# Static files just under and just over the toolkit's limit once base64-encoded.
UNDER = 4_600_000  # about 6.13 MB of base64
OVER = 4_800_000  # about 6.40 MB of base64
PROBE = """\
import os, time

def handler(event, context):
    kind = event["kind"]
    if kind == "size":  # a JSON string of exactly event["n"] bytes
        return "x" * (event["n"] - 2)
    if kind == "result":
        result = event["result"]
        if "body_bytes" in event:
            result["body"] = bytes(event["body_bytes"])
        return result
    if kind == "raise":
        raise ValueError("boom")
    if kind == "sleep":
        time.sleep(event["seconds"])
        return "slept"
"""


def emulator_binary() -> Path:
    """The emulator, or a skip (a failure when ``RIE_REQUIRED=1``, as ``make test`` sets)."""
    binary = rie_binary()
    if binary is not None and binary.is_file():
        return binary
    message = f"aws-lambda-rie not found ({binary or '.venv-tools'}): run `make tools`"
    if os.environ.get("RIE_REQUIRED") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def invoke(emulator: Emulator, event: Any) -> Any:
    """The emulator's answer; an emulator failure fails the test with its one-line message."""
    try:
        return emulator.invoke(event)
    except EmulatorError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)  # outside the except: one line, no chained traceback


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Show ``line`` in the test run's output (a figure to report, not an assertion)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


# ---------------------------------------------------------------------------
# The scaffolded project under the emulator
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """`cli.py setup` for this Python (its .pyc too) plus test files, with Lambda's mtimes."""
    project = tmp_path_factory.mktemp("runtime") / "site"
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "setup", "-n", "site", "-p", str(project), *PY],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    index = project / "chalicelib" / "templates" / "index.html"
    page = index.read_text(encoding="utf-8")
    index.write_text(page.replace("</h1>", f"</h1>\n    <p>{GREETING}</p>"), encoding="utf-8")
    static = project / "chalicelib" / "static"
    (static / "css" / "print.css").write_text(PRINT_CSS, encoding="utf-8")
    (static / "big").mkdir()
    noise = random.Random(13)
    (static / "big" / "under.bin").write_bytes(noise.randbytes(UNDER))
    (static / "big" / "over.bin").write_bytes(noise.randbytes(OVER))
    for path in project.rglob("*"):
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))
    return project


@pytest.fixture(scope="module")
def model_app(project) -> Iterator[Any]:
    """The same project imported in-process: routes for the events, and the model's answers."""
    with imported_project(project) as app:
        yield app.app


@pytest.fixture(scope="module")
def emulator(project, model_app, request) -> Iterator[Emulator]:
    binary = emulator_binary()
    env = lambda_environment("site-dev")
    emulator = Emulator(binary, "app.app", project, env, project.parent / "rie.log")
    try:
        emulator.start()
        first = invoke(emulator, make_event(model_app, "GET", "/", {"Accept": CHROME_PAGE}))
        assert first.status == 200, emulator.last_output()
        report(
            request,
            f"\naws-lambda-rie + awslambdaric (Python {RUNNING}): "
            f"{emulator.first_answer_seconds:.2f} s from start to the first answer",
        )
        yield emulator
    finally:
        emulator.stop()
    assert session_pids(emulator.process.pid) == [], "processes left behind"


@pytest.fixture(scope="module")
def fetch(emulator, model_app):
    """A request through the emulator and API Gateway's rule; checked against the model."""

    def fetch(
        path: str, headers: dict[str, str] | None = None, method: str = "GET", compare=True
    ) -> Delivered:
        headers = headers or {}
        event = make_event(model_app, method, path, headers)
        answer = invoke(emulator, event)
        binary_types = model_app.api.binary_types
        if answer.status != 200:
            delivered = Delivered(502, {}, apigw.GATEWAY_ERROR)
        else:
            delivered = deliver_payload(answer.payload, headers, binary_types)
        if compare:
            modelled = apigw.invoke(model_app, method, path, headers)
            assert (modelled.status, modelled.headers, modelled.body) == delivered, path
        return delivered

    return fetch


def static_file(project: Path, relative: str) -> bytes:
    return (project / "chalicelib" / "static" / relative).read_bytes()


def image_type(body: bytes) -> str | None:
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    if body[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return None


def test_the_page(fetch):
    reply = fetch("/", {"Accept": CHROME_PAGE})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<h1>" in reply.body and b"/static/css/site." in reply.body


def test_nested_static(fetch, project):
    reply = fetch("/static/css/site.css", {"Accept": "text/css,*/*;q=0.1"})
    assert (reply.status, reply.body) == (200, static_file(project, "css/site.css"))


def test_non_ascii_text_as_the_runtime_for_this_python_sends_it(fetch, emulator, model_app):
    """AWS_EXECUTION_ENV: python3.12+ runtimes send UTF-8, older ones \\u-escape (ensure_ascii)."""
    reply = fetch("/", {"Accept": CHROME_PAGE})
    assert GREETING.encode() in reply.body
    raw = invoke(emulator, make_event(model_app, "GET", "/", {"Accept": CHROME_PAGE}))
    if sys.version_info >= (3, 12):
        assert GREETING.encode() in raw.payload
    else:
        assert b"Gr\\u00fc\\u00dfe \\u2713" in raw.payload


@pytest.mark.parametrize("browser", sorted(IMAGE_ACCEPTS))
def test_an_image_for_each_browser(fetch, browser):
    page = fetch("/", {"Accept": CHROME_PAGE}).body.decode()
    [src] = [part.split('"')[0] for part in page.split('src="')[1:] if "/img/hero" in part]
    accept = IMAGE_ACCEPTS[browser]
    reply = fetch(src, {"Accept": accept, "Accept-Encoding": "gzip, deflate, br"})
    assert reply.status == 200
    kind = image_type(reply.body)
    assert kind == reply.headers["Content-Type"], (browser, reply.headers)
    assert kind in accept or kind == "image/png"


def test_a_gzip_body(fetch):
    reply = fetch("/static/css/print.css", {"Accept": "text/css", "Accept-Encoding": "gzip"})
    assert reply.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(reply.body) == PRINT_CSS.encode()


def test_a_304(fetch):
    first = fetch("/", {"Accept": CHROME_PAGE})
    again = fetch("/", {"Accept": CHROME_PAGE, "If-None-Match": first.headers["ETag"]})
    assert (again.status, again.body) == (304, b"")


def test_the_404_page(fetch):
    reply = fetch("/no/such/page", {"Accept": CHROME_PAGE})
    assert reply.status == 404
    assert b"<h1>Page not found</h1>" in reply.body


def test_a_head(fetch):
    get = fetch("/", {"Accept": CHROME_PAGE})
    head = fetch("/", {"Accept": CHROME_PAGE}, method="HEAD")
    assert (head.status, head.body, head.headers) == (200, b"", get.headers)


def test_the_keep_warm_event(emulator):
    import chalice_http_toolkit as toolkit

    answer = invoke(emulator, toolkit.keep_warm_event())
    result = json.loads(answer.payload)
    assert (answer.status, result["statusCode"]) == (200, 200)
    assert json.loads(result["body"])["warm"] is True


def test_a_response_just_under_the_payload_limit(fetch, project, emulator, model_app):
    reply = fetch("/static/big/under.bin", {"Accept": "*/*"}, compare=False)
    assert (reply.status, reply.body) == (200, static_file(project, "big/under.bin"))
    raw = invoke(emulator, make_event(model_app, "GET", "/static/big/under.bin", {}))
    assert 6_000_000 < len(raw.payload) <= apigw.LAMBDA_PAYLOAD_LIMIT


def test_a_response_just_over_the_payload_limit_is_the_toolkits_500(fetch):
    reply = fetch("/static/big/over.bin", {"Accept": "*/*"})
    assert reply.status == 500
    assert b"too large" in reply.body.lower()


def test_the_runtime_loads_the_checked_hash_pyc_setup_wrote(project, model_app, tmp_path):
    """As on Lambda (1980 mtimes, nothing written), awslambdaric imports the module from
    the .pyc `setup` wrote for this Python: ``python -v`` says it matched the source."""
    env = lambda_environment("site-dev")
    log = tmp_path / "rie-verbose.log"
    emulator = Emulator(
        emulator_binary(), "app.app", project, env, log, python_options=("-v",)
    ).start()
    try:
        answer = invoke(emulator, make_event(model_app, "GET", "/", {"Accept": CHROME_PAGE}))
    finally:
        emulator.stop()
    assert answer.status == 200
    chalicelib = project / "chalicelib"
    pyc = chalicelib / "__pycache__" / f"chalice_http_toolkit.{sys.implementation.cache_tag}.pyc"
    output = log.read_text(errors="replace")
    assert f"{pyc} matches {chalicelib / 'chalice_http_toolkit.py'}" in output
    assert "bytecode is stale for 'chalicelib.chalice_http_toolkit'" not in output


# ---------------------------------------------------------------------------
# The runtime's edges, with a probe handler
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("probe")
    (root / "probe.py").write_text(PROBE)
    return root


def probe_emulator(root: Path, **options: Any) -> Emulator:
    env = lambda_environment("probe")
    return Emulator(emulator_binary(), "probe.handler", root, env, root / "rie.log", **options)


@pytest.fixture(scope="module")
def probe(probe_root) -> Iterator[Emulator]:
    emulator = probe_emulator(probe_root)
    try:
        yield emulator.start()
    finally:
        emulator.stop()


def test_the_payload_limit_is_the_runtimes_to_the_byte(probe):
    """The model's limit is the emulator's: exactly the limit passes, one byte more is refused."""
    limit = apigw.LAMBDA_PAYLOAD_LIMIT
    at = invoke(probe, {"kind": "size", "n": limit})
    assert (at.status, len(at.payload)) == (200, limit)
    over = invoke(probe, {"kind": "size", "n": limit + 1})
    assert over.status == 502
    assert b"Function.ResponseSizeTooLarge" in over.payload
    assert str(limit).encode() in over.payload


@pytest.mark.parametrize(
    ("body_bytes", "delivered"),
    [(list("a::after { content: 'é' }".encode()), True), ([0x89, 0x50, 0xFF, 0x00], False)],
    ids=["utf-8", "not-utf-8"],
)
def test_bytes_bodies_as_the_runtime_marshals_them(probe, body_bytes, delivered):
    result = {"statusCode": 200, "headers": {"Content-Type": "text/css"}, "body": None}
    answer = invoke(probe, {"kind": "result", "result": result, "body_bytes": body_bytes})
    local = {**result, "body": bytes(body_bytes)}
    if delivered:
        assert answer.payload == apigw.lambda_payload(local)
        reply = deliver_payload(answer.payload, {"Accept": "text/css"}, ["*/*"])
        assert (reply.status, reply.body) == (200, bytes(body_bytes))
        assert apigw.deliver(local, {"Accept": "text/css"}, ["*/*"]) == reply  # the model agrees
    else:
        assert b'"errorType": "Runtime.MarshalError"' in answer.payload
        with pytest.raises(apigw.MarshalError, match=r"Runtime\.MarshalError"):
            apigw.lambda_payload(local)
        assert apigw.deliver(local, {}, ["*/*"]).status == 502
    assert answer.status == 200  # errors come back as 200 with an error body


def test_a_handler_error_is_a_200_with_an_error_body_and_a_502(probe):
    answer = invoke(probe, {"kind": "raise"})
    assert answer.status == 200
    assert json.loads(answer.payload)["errorType"] == "ValueError"
    assert deliver_payload(answer.payload, {}, ["*/*"]).status == 502


# ---------------------------------------------------------------------------
# Bad input: an emulator that does not start, dies, or does not answer
# ---------------------------------------------------------------------------


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_emulator_that_cannot_run(probe_root, tmp_path):
    env = lambda_environment("probe")
    missing = Emulator(tmp_path / "no-rie", "probe.handler", probe_root, env, tmp_path / "log")
    with pytest.raises(EmulatorError) as error:
        missing.start()
    assert one_line(error).startswith("aws-lambda-rie did not start: cannot run")


def test_an_emulator_that_exits_at_once(probe_root):
    emulator = probe_emulator(probe_root, rie_address="not-an-address")
    emulator.start()
    try:
        with pytest.raises(EmulatorError) as error:
            emulator.invoke({"kind": "size", "n": 10})
    finally:
        emulator.stop()
    message = one_line(error)
    assert "exited with code" in message and "before answering" in message
    assert "not-an-address" in message  # the emulator's own complaint


def test_an_emulator_killed_mid_invocation(probe_root):
    emulator = probe_emulator(probe_root).start()
    try:
        invoke(emulator, {"kind": "size", "n": 10})  # the runtime is up
        session = emulator.process.pid
        assert len(session_pids(session)) >= 2  # the emulator and the runtime
        killer = threading.Timer(0.5, os.kill, (emulator.process.pid, 9))
        killer.start()
        with pytest.raises(EmulatorError) as error:
            emulator.invoke({"kind": "sleep", "seconds": 20})
        killer.join()
    finally:
        emulator.stop()
    message = one_line(error)
    assert message.startswith("aws-lambda-rie exited with code -9 during an invocation")
    assert "last output:" in message
    assert session_pids(session) == []  # the orphaned runtime was killed too


def test_an_emulator_that_does_not_answer_in_time(probe_root):
    emulator = probe_emulator(probe_root, answer_timeout=1.5).start()
    try:
        with pytest.raises(EmulatorError) as error:
            emulator.invoke({"kind": "sleep", "seconds": 20})
    finally:
        emulator.stop()
    assert one_line(error).startswith("aws-lambda-rie did not answer within 1.5 s")
