"""Forms and uploads: parse_form, cm.form(), ex_multipart, ResponseWithBinary (issue 15).

Last section: the example of docs/forms.md runs as written.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import types
import uuid
from urllib.parse import urlencode

import pytest
from chalice import Chalice
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chalice_http_toolkit
from chalice_http_toolkit import (
    ContentManager,
    FormError,
    FormLimits,
    ResponseWithBinary,
    csrf_exempt,
    ex_multipart,
    parse_form,
)

from apigw import deliver, lambda_context, make_event
from conftest import ROOT

URLENCODED = "application/x-www-form-urlencoded"


def multipart_body(
    fields: list[tuple[str, str]] = (),
    files: list[tuple[str, str, str, bytes]] = (),
    boundary: str = "----toolkit-boundary-7MA4YWxk",
) -> tuple[bytes, str]:
    """A multipart/form-data body as a browser sends it, and its Content-Type."""
    out = b""
    for name, value in fields:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    for name, filename, content_type, data in files:
        out += (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="{name}"; filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


# -- parse_form: the pure parser ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a=1&b=2", {"a": ["1"], "b": ["2"]}),
        (b"a=1&a=2&a=3", {"a": ["1", "2", "3"]}),
        (b"name=%C3%A9l%C3%A8ve&x=a+b", {"name": ["élève"], "x": ["a b"]}),
        ("name=élève".encode(), {"name": ["élève"]}),  # raw UTF-8 (curl --data)
        (b"empty=&flag", {"empty": [""], "flag": [""]}),
        (b"bad=%zz%4", {"bad": ["%zz%4"]}),  # bad percent-encoding is kept as sent
        (b"", {}),
        (b"&&&", {}),
    ],
)
def test_urlencoded_forms(body, expected):
    form = parse_form(body, URLENCODED)
    assert {name: form.getlist(name) for name in form} == expected
    for name, values in expected.items():
        assert form.get(name) == form[name] == values[0]
    assert form.get("missing") is None and form.get("missing", "d") == "d"
    assert form.getlist("missing") == [] and not form.files


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"a=%C3%28", URLENCODED, 400, "UTF-8"),  # percent-encoded invalid UTF-8
        (b"a=\xff\xfe", URLENCODED, 400, "UTF-8"),  # raw invalid UTF-8
        (b"a=1&" * 1000, URLENCODED, 413, "fields"),
        (b"x" * 101, URLENCODED, 413, "larger"),
        (b"--b\r\n", "multipart/form-data", 400, "boundary"),  # no boundary
        (b"--b\r\n", 'multipart/form-data; boundary=""', 400, "boundary"),
        (b"garbage", "multipart/form-data; boundary=b", 400, "malformed"),
        (  # truncated: no closing delimiter
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue',
            "multipart/form-data; boundary=b",
            400,
            "malformed",
        ),
        (  # a header line that never ends
            b"--b\r\nContent-Disposition: form-data; name=" + b"a" * 5000,
            "multipart/form-data; boundary=b",
            413,
            "too large",
        ),
    ],
)
def test_malformed_and_oversized_bodies_raise_form_errors(body, content_type, status, words):
    limits = FormLimits(max_bytes=100) if len(body) == 101 else FormLimits()
    with pytest.raises(FormError) as raised:
        parse_form(body, content_type, limits)
    assert raised.value.status_code == status
    assert words in raised.value.message


def test_multipart_fields_files_repeats_and_utf8():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10 + b"\r\n--not-the-boundary"
    body, content_type = multipart_body(
        [("name", "Zoë ✓"), ("tag", "a"), ("tag", "b"), ("empty", "")],
        [("photo", "café.png", "image/png", png), ("nothing", "", "application/octet-stream", b"")],
    )
    form = parse_form(body, content_type)
    assert form["name"] == "Zoë ✓" and form.getlist("tag") == ["a", "b"]
    assert form.get("empty") == "" and "photo" not in form
    photo = form.files.get("photo")
    assert (photo.filename, photo.content_type, photo.data, photo.size) == (
        "café.png",
        "image/png",
        png,
        len(png),
    )
    # A file input left empty arrives as a part with an empty filename (Flask keeps it too).
    assert form.files["nothing"].filename == "" and form.files["nothing"].size == 0


@pytest.mark.parametrize(
    ("limits", "status", "words"),
    [
        (FormLimits(max_fields=3), 413, "too large"),
        (FormLimits(max_part_bytes=1000), 413, "too large"),
        (FormLimits(max_bytes=1000), 413, "larger than 1000"),
    ],
)
def test_multipart_limits(limits, status, words):
    body, content_type = multipart_body(
        [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], [("f", "f.bin", "x/y", b"z" * 2000)]
    )
    with pytest.raises(FormError) as raised:
        parse_form(body, content_type, limits)
    assert (raised.value.status_code, words in raised.value.message) == (status, True)


def test_multipart_text_charset_and_invalid_utf8():
    boundary = "b"
    latin = (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Type: text/plain; charset=latin-1\r\n\r\ncaf\xe9\r\n--b--\r\n"
    )
    assert parse_form(latin, f"multipart/form-data; boundary={boundary}")["a"] == "café"
    for body, words in [
        (latin.replace(b"latin-1", b"klingon"), "charset"),
        (latin.replace(b"; charset=latin-1", b""), "UTF-8"),
    ]:
        with pytest.raises(FormError, match=words) as raised:
            parse_form(body, "multipart/form-data; boundary=b")
        assert raised.value.status_code == 400


def test_other_content_types_give_an_empty_form():
    assert len(parse_form(b'{"a": 1}', "application/json")) == 0
    assert len(parse_form(b"a=1", None)) == 0


# -- hypothesis: the parsers never fail any other way, and round-trip --------------

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        [
            URLENCODED,
            "multipart/form-data; boundary=b",
            "multipart/form-data; boundary=--",
            "multipart/form-data",
            "text/plain",
            None,
        ]
    ),
)
def test_any_body_parses_or_raises_form_error(body, content_type):
    try:
        form = parse_form(body, content_type)
    except FormError as error:
        assert error.status_code in (400, 413)
    else:
        assert all(isinstance(value, str) for name in form for value in form.getlist(name))


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(TEXT, TEXT), max_size=8))
def test_urlencoded_round_trip(fields):
    form = parse_form(urlencode(fields).encode(), URLENCODED)
    expected: dict[str, list[str]] = {}
    for name, value in fields:
        expected.setdefault(name, []).append(value)
    assert {name: form.getlist(name) for name in form} == expected


NAME = st.text(
    st.characters(codec="utf-8", exclude_characters='"\r\n\\%\x00'), min_size=1, max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.tuples(NAME, TEXT.filter(lambda t: "\r" not in t)), max_size=5),
    files=st.lists(st.tuples(NAME, NAME, st.binary(max_size=300)), max_size=3),
)
def test_multipart_round_trip(fields, files):
    boundary = "hypothesis-" + uuid.uuid4().hex
    body, content_type = multipart_body(
        fields, [(n, f, "application/octet-stream", d) for n, f, d in files], boundary
    )
    form = parse_form(body, content_type)
    assert {n: form.getlist(n) for n in form} == grouped(fields)
    got = {n: [(f.filename, f.data) for f in form.files.getlist(n)] for n in form.files}
    assert got == grouped([(n, (f, d)) for n, f, d in files])


def grouped(pairs):
    out = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


# -- through Chalice: cm.form(), the 400/413 pages, base64 bodies -------------------


@pytest.fixture
def form_app(site):
    templates, static = site
    app = Chalice(app_name="forms")
    cm = ContentManager(str(templates), str(static), app, form_limits=FormLimits(max_bytes=4096))

    @app.route("/echo", methods=["POST"], content_types=[URLENCODED, "multipart/form-data"])
    def echo():
        form = cm.form()
        files = {
            name: [f.filename, f.content_type, f.size, base64.b64encode(f.data).decode()]
            for name, f in form.files.items()
        }
        return cm.json({"fields": {n: form.getlist(n) for n in form}, "files": files})

    @app.route("/legacy", methods=["POST"], content_types=["multipart/form-data"])
    @csrf_exempt
    def legacy():
        parts = ex_multipart(app)
        return cm.json(
            {n: [base64.b64encode(p["data"]).decode(), p["filename"]] for n, p in parts.items()}
        )

    @app.route("/binary", methods=["GET"])
    def binary():
        return ResponseWithBinary(
            body=bytes(range(256)), headers={"Content-Type": "image/png"}, status_code=200
        )

    return app


def test_form_through_the_test_client(form_app):
    body, content_type = multipart_body(
        [("a", "é"), ("a", "2")], [("f", "x.txt", "text/plain", b"hi")]
    )
    with Client(form_app) as client:
        reply = client.http.post("/echo", headers={"Content-Type": content_type}, body=body)
    assert reply.status_code == 200
    assert json.loads(reply.body) == {
        "fields": {"a": ["é", "2"]},
        "files": {"f": ["x.txt", "text/plain", 2, "aGk="]},
    }


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"garbage", "multipart/form-data; boundary=b", 400),
        (b"--b\r\n", "multipart/form-data", 400),
        (b"a=%ff", URLENCODED, 400),
        (b"a=" + b"x" * 5000, URLENCODED, 413),
    ],
)
def test_bad_forms_are_answered_with_a_page_never_a_500(form_app, body, content_type, status):
    with Client(form_app) as client:
        reply = client.http.post("/echo", headers={"Content-Type": content_type}, body=body)
    assert reply.status_code == status
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<h1>{status} " in reply.body.decode()


def _post_event(app, path, body: bytes, content_type: str, base64_body: bool) -> dict:
    event = make_event(app, "POST", path, {"Content-Type": content_type, "Accept": "*/*"})
    event["body"] = base64.b64encode(body).decode() if base64_body else body.decode("latin-1")
    event["isBase64Encoded"] = base64_body
    return event


def test_a_base64_multipart_body_through_api_gateway_is_parsed(form_app):
    data = bytes(range(256)) * 10
    body, content_type = multipart_body([("who", "Zoë")], [("f", "b.bin", "application/x", data)])
    result = form_app(_post_event(form_app, "/echo", body, content_type, True), lambda_context())
    delivered = deliver(result, {"Accept": "*/*"}, form_app.api.binary_types)
    assert delivered.status == 200, delivered.body
    answer = json.loads(delivered.body)
    assert answer["fields"] == {"who": ["Zoë"]}
    assert base64.b64decode(answer["files"]["f"][3]) == data


def test_garbage_base64_is_a_400(form_app):
    event = _post_event(form_app, "/echo", b"a=1", URLENCODED, True)
    event["body"] = "!!!not base64!!!"
    result = form_app(event, lambda_context())
    assert result["statusCode"] == 400


def test_ex_multipart_keeps_062s_shape(form_app):
    body, content_type = multipart_body(
        [("title", "é"), ("title", "last")], [("file", "a.bin", "application/x", b"\x00\xff")]
    )
    with Client(form_app) as client:
        reply = client.http.post("/legacy", headers={"Content-Type": content_type}, body=body)
    assert json.loads(reply.body) == {
        "title": [base64.b64encode(b"last").decode(), None],
        "file": [base64.b64encode(b"\x00\xff").decode(), "a.bin"],
    }


@pytest.mark.parametrize("accept", [None, "text/html", "image/webp,*/*", "*/*", "application/json"])
def test_response_with_binary_reaches_the_client_intact_for_every_accept(form_app, accept):
    headers = {"Accept": accept} if accept else {}
    result = form_app(make_event(form_app, "GET", "/binary", headers), lambda_context())
    delivered = deliver(result, headers, form_app.api.binary_types)
    assert (delivered.status, delivered.body) == (200, bytes(range(256)))


# == The example of docs/forms.md ==========================================================
# The example of docs/forms.md ("Forms, cookies and sessions") runs as written (issue 15),
# with a SECRET_KEY and, under `chalice local` and in tests, without one.


def section_blocks() -> dict[str, list[str]]:
    section = (ROOT / "docs" / "forms.md").read_text()
    blocks: dict[str, list[str]] = {}
    for language, code in re.findall(r"```([\w+-]+)\n(.*?)```", section, re.S):
        blocks.setdefault(language, []).append(code)
    return blocks


@pytest.mark.parametrize("secret_key", ["readme-key-0123456789abcdefghijklmnop", None])
def test_the_readme_example_runs(tmp_path, monkeypatch, secret_key):
    """Regression (None): without SECRET_KEY the example stopped with a KeyError at import."""
    blocks = section_blocks()
    app_code, template = blocks["python"][0], blocks["html+jinja"][0]
    (tmp_path / "chalicelib" / "templates").mkdir(parents=True)
    (tmp_path / "chalicelib" / "static").mkdir()
    (tmp_path / "chalicelib" / "templates" / "contact.html").write_text(template)
    package = types.ModuleType("chalicelib")
    package.chalice_http_toolkit = chalice_http_toolkit
    monkeypatch.setitem(sys.modules, "chalicelib", package)
    monkeypatch.setitem(sys.modules, "chalicelib.chalice_http_toolkit", chalice_http_toolkit)
    if secret_key is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret_key)
    namespace = {"__file__": str(tmp_path / "app.py"), "__name__": "readme_app"}
    exec(compile(app_code, "README.md", "exec"), namespace)
    app = namespace["app"]
    same = {"Host": "www.example.com", "Origin": "https://www.example.com"}
    with Client(app) as client:
        page = client.http.get("/contact")
        cookie = page.headers["Set-Cookie"][0].split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.body).group(1).decode()
        fields = [("csrf_token", token), ("name", ""), ("topic", "sales")]
        body, content_type = multipart_body(fields)
        headers = {**same, "Cookie": cookie, "Content-Type": content_type}
        invalid = client.http.post("/contact", headers=headers, body=body)
        assert invalid.status_code == 422 and b"Please tell us your name." in invalid.body
        fields[1] = ("name", "Zoë")
        body, content_type = multipart_body(
            fields, [("attachment", "a.txt", "text/plain", b"12345")]
        )
        headers["Content-Type"] = content_type
        sent = client.http.post("/contact", headers=headers, body=body)
        assert (sent.status_code, sent.headers["Location"]) == (303, "/contact")
        cookie = sent.headers["Set-Cookie"][0].split(";")[0]
        shown = client.http.get("/contact", headers={"Cookie": cookie})
        assert "Thanks Zoë, we got your message (5 bytes attached)." in shown.body.decode()
        themed = client.http.get("/theme/dark")
        assert themed.headers["Set-Cookie"][0].startswith("theme=dark;")
        who = client.http.get("/whoami", headers={"Cookie": f"{cookie}; theme=dark"})
        assert json.loads(who.body) == {"name": "Zoë", "theme": "dark"}
        api = client.http.post(
            "/api/notes", headers={"Content-Type": "application/json"}, body=b'{"n": 1}'
        )
        assert api.status_code == 201
        hook = client.http.post(
            "/webhook",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "https://x.test",
            },
            body=b"a=1",
        )
        assert hook.status_code == 200
        refused = client.http.post(
            "/contact",
            headers={**headers, "Origin": "https://evil.test", "Host": "www.example.com"},
            body=body,
        )
        assert refused.status_code == 403
