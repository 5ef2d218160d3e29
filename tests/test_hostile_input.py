"""Hostile input through forms, front doors, payload limits and tasks (issue 25).

Each case was a 500, a Lambda error or silently accepted before; each now gets a
4xx (or, for a missing package, a 500 page that says what to install).
"""

from __future__ import annotations

import json
import logging
import sys

import pytest
from chalice import Chalice
from chalice.test import Client
from frontdoor_events import alb_event, deliver_alb, deliver_v2, v2_event

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager, FormError, parse_form

from apigw import invoke, lambda_context

KEY = "k7Qx2-Lm9vRt4YbN8cWz1Hs6JdPf3GaE0uKo5iXq"
ORIGIN_SECRET = "origin-secret-0123456789abcdef"
URLENCODED = "application/x-www-form-urlencoded"
BOUNDARY = "hostile-boundary-7MA4"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def part(disposition: str, data: bytes, content_type: str | None = None) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def build(tmp_path, **options):
    app = Chalice(app_name="hostile-input")
    options = {"secret_key": KEY, "csrf": False, **options}
    cm = ContentManager(str(tmp_path), str(tmp_path), app, **options)

    @app.route("/echo", methods=["POST"], content_types=toolkit.FORM_CONTENT_TYPES)
    def echo():
        form = cm.form()
        return cm.html("".join(f"<p>{name}={value}</p>" for name, value in form.items()))

    @app.route("/text/{count}")
    def text(count):
        return "é" * int(count)

    @app.route("/page/{count}")
    def page(count):
        return cm.html("é" * int(count))

    @app.route("/files/{name}")
    def files(name):
        return {"name": name}

    @app.route("/deep/{proxy+}")
    def deep():
        return {"proxy": app.current_request.uri_params["proxy"]}

    return app, cm


# -- part charsets, NULs and lone surrogates -----------------------------------------------


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (b"+2D3cAA-", "utf-7"),  # a lone surrogate
        (b"+AAA-", "utf-7"),  # a NUL
        (b"\\ud800", "unicode_escape"),
        (b"\\x00", "raw_unicode_escape"),
        (b"nopqr", "rot13"),
        (b"\xff\xfea\x00", "utf-16"),
        (b"x", "hex"),
        (b"x", "base64"),
        (b"x", "cp1252"),
        (b"x", "no-such-charset"),
    ],
)
def test_a_part_charset_other_than_utf8_ascii_latin1_is_a_400(data, charset):
    with pytest.raises(FormError) as raised:
        parse_form(multipart(part('name="a"', data, f"text/plain; charset={charset}")), MULTIPART)
    assert raised.value.status_code == 400


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"caf\xc3\xa9", "utf-8", "café"),
        (b"caf\xc3\xa9", "UTF8", "café"),
        (b"caf\xe9", "latin-1", "café"),
        (b"caf\xe9", "ISO-8859-1", "café"),
        (b"caf\xe9", "latin1", "café"),
        (b"cafe", "us-ascii", "cafe"),
        (b"cafe", "ASCII", "cafe"),
        (b"caf\xc3\xa9", None, "café"),
    ],
)
def test_utf8_ascii_and_latin1_parts_and_their_aliases_are_read(data, charset, expected):
    content_type = f"text/plain; charset={charset}" if charset else None
    form = parse_form(multipart(part('name="a"', data, content_type)), MULTIPART)
    assert form["a"] == expected


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"a=%00", URLENCODED),
        (b"a=x%00y&b=1", URLENCODED),
        (b"%00=1", URLENCODED),
        (b"a=\x00", URLENCODED),
        (b"a=%ED%A0%80", URLENCODED),  # a surrogate encoded in UTF-8
        (multipart(part('name="a"', b"x\x00y")), MULTIPART),
        (multipart(part('name="a\x00"', b"x")), MULTIPART),
        (multipart(part('name="a"', b"\xed\xa0\x80")), MULTIPART),
        (multipart(part('name="a"; filename="x\x00.png"', b"x", "image/png")), MULTIPART),
        (multipart(part('name="a"', b"x\x00", "text/plain; charset=latin-1")), MULTIPART),
    ],
)
def test_no_nul_or_lone_surrogate_reaches_the_app(tmp_path, body, content_type):
    with pytest.raises(FormError) as raised:
        parse_form(body, content_type)
    assert raised.value.status_code == 400
    app, _ = build(tmp_path)
    with Client(app) as client:
        got = client.http.post("/echo", headers={"Content-Type": content_type}, body=body)
    assert got.status_code == 400
    assert got.headers["Content-Type"] == "text/html; charset=utf-8"


def test_clean_fields_still_echo(tmp_path):
    app, _ = build(tmp_path)
    with Client(app) as client:
        got = client.http.post(
            "/echo", headers={"Content-Type": URLENCODED}, body="a=caf%C3%A9&b=1"
        )
    assert got.status_code == 200 and got.body.decode() == "<p>a=café</p><p>b=1</p>"


# -- forms without the multipart package --------------------------------------------------


def test_without_multipart_a_multipart_post_is_a_500_page_naming_the_package(
    tmp_path, monkeypatch, caplog
):
    """Regression: a generic JSON 500, the hint only in the log."""
    monkeypatch.setitem(sys.modules, "multipart", None)  # import multipart raises ImportError
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    app, _ = build(tmp_path)
    body = multipart(part('name="a"', b"1"))
    with Client(app) as client, caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        got = client.http.post("/echo", headers={"Content-Type": MULTIPART}, body=body)
        plain = client.http.post("/echo", headers={"Content-Type": URLENCODED}, body="a=1")
    assert got.status_code == 500
    assert got.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "pip install multipart" in got.body.decode()
    assert "requirements.txt" in got.body.decode()
    assert "pip install multipart" in caplog.text
    assert (plain.status_code, plain.body) == (200, b"<p>a=1</p>")  # urlencoded needs nothing


def test_without_multipart_on_lambda_the_page_hides_the_hint_and_the_log_keeps_it(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "multipart", None)
    app, _ = build(tmp_path)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "site-prod")
    with Client(app) as client, caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        got = client.http.post(
            "/echo", headers={"Content-Type": MULTIPART}, body=multipart(part('name="a"', b"1"))
        )
    assert got.status_code == 500 and b"text/html" in got.headers["Content-Type"].encode()
    assert b"pip" not in got.body and b"log" in got.body
    assert "pip install multipart" in caplog.text


def test_the_layered_extra_installs_multipart():
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10 has no tomllib; pip's tomli reads the same
        tomllib = pytest.importorskip("tomli")

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    layered = project["project"]["optional-dependencies"]["layered"]
    assert any(requirement.lower().startswith("multipart") for requirement in layered)


# -- front doors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["\udc80", "origin-secret-0123456789abcde\udc80", "\ud800" * 30, "é" * 30]
)
@pytest.mark.parametrize("door", ["function-url", "alb"])
def test_a_lone_surrogate_in_the_origin_header_is_a_403_not_a_lambda_error(tmp_path, door, value):
    """Regression: ``value.encode()`` raised out of the handler (a Lambda invocation error)."""
    app, _ = build(tmp_path)
    handler = toolkit.lambda_handler(app, origin_secret=ORIGIN_SECRET)
    headers = {"x-origin-verify": value}
    if door == "function-url":
        got = deliver_v2(handler(v2_event("GET", "/files/a", headers), lambda_context()))
    else:
        got = deliver_alb(handler(alb_event("GET", "/files/a", headers), lambda_context()), False)
    assert got.status == 403
    admitted = {"x-origin-verify": ORIGIN_SECRET}
    assert (
        deliver_v2(handler(v2_event("GET", "/files/a", admitted), lambda_context())).status == 200
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/files/%2541", {"name": "%41"}),
        ("/files/%252F", {"name": "%2F"}),
        ("/files/a%2Fb", {"name": "a/b"}),  # one segment, as a REST API hands it
        ("/deep/%2541/%25%32%35", {"proxy": "%41/%25"}),
    ],
)
@pytest.mark.parametrize("door", ["function-url", "alb"])
def test_a_function_url_path_is_decoded_exactly_once(tmp_path, door, path, expected):
    """Regression: a path decoded twice let ``%2541`` reach the view as ``A``."""
    app, _ = build(tmp_path)
    handler = toolkit.lambda_handler(app)
    if door == "function-url":
        got = deliver_v2(handler(v2_event("GET", path), lambda_context()))
    else:
        got = deliver_alb(handler(alb_event("GET", path), lambda_context()), False)
    assert (got.status, json.loads(got.body)) == (200, expected)


# -- the 6 MB payload limit counts bytes, not characters --------------------------------------


@pytest.mark.parametrize("route", ["text", "page"])
def test_non_ascii_text_over_6_mb_is_refused_though_it_has_fewer_characters(tmp_path, route):
    """Regression: 9 MB of 'é' (4.7 million characters) passed the 6 MB check."""
    app, _ = build(tmp_path)
    over = invoke(app, "GET", f"/{route}/{4_700_000}")
    assert over.status == 500
    assert b"too large" in over.body.lower()
    just_over = invoke(app, "GET", f"/{route}/{3_200_000}")  # 6.4 MB of UTF-8
    assert just_over.status == 500
    under = invoke(app, "GET", f"/{route}/{400_000}")  # 0.8 MB however it is escaped
    assert under.status == 200


# -- task attributes as SQS documents them ----------------------------------------------------


@pytest.fixture
def tasks(monkeypatch):
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(toolkit.TASKS_MODE_ENV, "local")
    controller = toolkit.TaskingControllerFactory("hostile.fifo", "g")
    seen = []
    controller.set_message_handler(seen.append)
    controller.register_handler(Chalice(app_name="hostile-tasks"))
    controller.seen = seen
    return controller


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (float("nan"), "not a Number"),
        (float("inf"), "not a Number"),
        (float("-inf"), "not a Number"),
        (10**130, "range"),
        (10**126, "range"),
        (1e-129, "range"),
        (123456789012345678901234567890123456789, "39 significant digits"),
        ({"DataType": "Number", "StringValue": "NaN"}, "not a Number"),
        ({"DataType": "Number", "StringValue": "1_000"}, "not a Number"),
        ({"DataType": "Number", "StringValue": " 5"}, "not a Number"),
        ({"DataType": "Number", "StringValue": "0x10"}, "not a Number"),
        ({"DataType": "Number.price", "StringValue": "1e200"}, "range"),
        ({"DataType": "Number", "StringValue": "1." + "1" * 38}, "39 significant digits"),
    ],
)
def test_number_attributes_sqs_refuses_are_refused_before_sending(tasks, value, words):
    with pytest.raises(ValueError, match=words):
        tasks.post("hello", {"n": value})
    assert tasks.seen == []


@pytest.mark.parametrize(
    "value",
    [
        0,
        -7,
        1.5,
        10**125,
        9.99e125,
        1e-128,
        12345678901234567890123456789012345678,
        10**40,  # one significant digit: trailing zeros are trimmed
        {"DataType": "Number", "StringValue": "-.5"},
        {"DataType": "Number", "StringValue": "1.2000000000000000000000000000000000000000000"},
        {"DataType": "Number", "StringValue": "0.00000"},
    ],
)
def test_number_attributes_sqs_keeps_are_sent(tasks, value):
    tasks.post("hello", {"n": value})
    assert len(tasks.seen) == 1


# -- the scaffold's contact page -----------------------------------------------------------------


def test_the_scaffold_contact_page_never_echoes_unbounded_input_into_the_session(tmp_path, caplog):
    """Regression: a 3,000-character name on the contact form was a 500."""
    import re

    from test_forms import multipart_body
    from test_scaffold import scaffold

    from sites import imported_project

    project = scaffold(tmp_path)
    with imported_project(project) as site, Client(site.app) as client:
        page = client.http.get("/contact")
        cookie = page.headers["Set-Cookie"]
        cookie = (cookie[0] if isinstance(cookie, list) else cookie).split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)[1].decode()
        fields = [("csrf_token", token), ("name", "Ж" * 3000), ("email", "a@b.c")]
        body, content_type = multipart_body(
            [*fields, ("message", "m" * 100_000)],
            [("attachment", "f" * 3000 + ".txt", "text/plain", b"hello")],
        )
        headers = {"Content-Type": content_type, "Cookie": cookie, "Sec-Fetch-Site": "same-origin"}
        with caplog.at_level(logging.ERROR):
            sent = client.http.post("/contact", headers=headers, body=body)
        assert sent.status_code == 303
        assert "flash message dropped" not in caplog.text
        new_cookie = sent.headers["Set-Cookie"]
        new_cookie = (new_cookie[0] if isinstance(new_cookie, list) else new_cookie).split(";")[0]
        assert len(new_cookie) <= 4096
        shown = client.http.get("/contact", headers={"Cookie": new_cookie}).body.decode()
        assert "Thank you, " + "Ж" * 60 + ":" in shown and "Ж" * 61 not in shown
        assert "f" * 60 + " (5 bytes" in shown


# -- headers nobody sends: lone surrogates and NULs from JSON-escaped events ------------------

HOSTILE_HEADER_VALUES = [
    "\udc80",
    "\ud800\udc00",  # a surrogate pair, unjoined
    "a\x00b",
    "é",
    "session=\udc80; x=\x00",
    "bytes=0-\udc80",
    '"\udc80", W/"\x00"',
    "multipart/form-data; boundary=\udc80",
    "multipart/form-data; boundary=a\x00b",
    "application/x-www-form-urlencoded; charset=\udc80",
]
HEADERS_UNDER_ATTACK = [
    "cookie",
    "origin",
    "sec-fetch-site",
    "host",
    "x-forwarded-host",
    "if-none-match",
    "if-modified-since",
    "accept",
    "accept-encoding",
    "range",
    "content-type",
    "x-csrf-token",
]


@pytest.mark.parametrize("header", HEADERS_UNDER_ATTACK)
def test_a_lone_surrogate_or_nul_in_any_header_is_never_a_500(tmp_path, header):
    """Function URL events are JSON: ``\\udc80`` escapes arrive as lone surrogates."""
    (tmp_path / "page.html").write_text("<p>{{ n }}</p><i>{{ csrf_token() }}</i>")
    (tmp_path / "site.css").write_text("body { color: red }")
    app, cm = build(tmp_path, csrf=True)
    cf = toolkit.CloudFront(cm, app)
    cm.register_static_routes()

    @app.route("/page")
    def page():
        return cf.template("page.html", n=1)

    handler = toolkit.lambda_handler(app, origin_secret=ORIGIN_SECRET)
    requests = [("GET", "/page"), ("HEAD", "/page"), ("GET", "/static/site.css")]
    requests.append(("POST", "/echo"))
    for value in HOSTILE_HEADER_VALUES:
        for method, path in requests:
            headers = {header: value, "x-origin-verify": ORIGIN_SECRET}
            body = "a=1" if method == "POST" else None
            got = handler(v2_event(method, path, headers, body=body), lambda_context())
            assert got["statusCode"] < 500, (method, path, value, got.get("body", "")[:200])
