"""Binary delivery through API Gateway REST, the Lambda payload limit, CORS and errors.

`apigw.deliver` models what API Gateway hands the client; every toolkit
response and the app's own routes must arrive byte-for-byte for every Accept
header, deployed (modelled) and locally (`chalice.test.Client`).
"""

from __future__ import annotations

import base64
import gzip
import logging
import sys

import pytest
from chalice import Chalice, Response
from chalice.test import Client

from chalice_http_toolkit import LAMBDA_RESPONSE_LIMIT, ContentManager, install_gateway_support

import apigw
from apigw import deliver, invoke, lambda_context, make_event
from conftest import CSS, build_app

ACCEPTS = {
    "none": None,
    "any": "*/*",
    "navigation": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,*/*;q=0.8",
    "image": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "html": "text/html",
}
ENCODINGS = {"identity": None, "gzip": "gzip, deflate, br"}
PATHS = [
    "/",
    "/static/css/site.css",
    "/static/js/vendor/lib.mjs",
    "/static/data.bin",
    "/static/noext",
    "/feed",
    "/api/data",
    "/plain",
    "/asset",
    "/old",
    "/does/not/exist",
]


def headers_for(accept: str | None, encoding: str | None) -> dict[str, str]:
    headers = {}
    if accept is not None:
        headers["Accept"] = accept
    if encoding is not None:
        headers["Accept-Encoding"] = encoding
    return headers


def decoded(body: bytes, headers: dict[str, str]) -> bytes:
    return gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body


@pytest.fixture(scope="module")
def matrix_app(tmp_path_factory):
    from conftest import write_site

    return build_app(*write_site(tmp_path_factory.mktemp("matrix") / "site"))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("accept", sorted(ACCEPTS))
@pytest.mark.parametrize("path", PATHS)
def test_every_response_reaches_the_client_intact(matrix_app, path, accept, encoding):
    app, _, _ = matrix_app
    headers = headers_for(ACCEPTS[accept], ENCODINGS[encoding])
    deployed = invoke(app, "GET", path, headers)
    with Client(app) as client:
        local = client.http.get(path, headers=headers)
    assert deployed.status == local.status_code
    assert deployed.body == local.body, "API Gateway would deliver other bytes than local"
    assert deployed.status in (200, 301, 404)
    body = decoded(deployed.body, deployed.headers)
    if path == "/static/css/site.css":
        assert body == CSS.encode()
    elif path == "/static/data.bin":
        assert body == bytes(range(256)) * 4
    elif path == "/asset":
        assert body.startswith(b"\x89PNG")
    elif path == "/api/data":
        assert body.decode() == '{"numbers": [1, 2, 3], "text": "\\u00e9"}'
    elif path == "/plain":
        assert body == b'{"plain":true}'
    elif path == "/does/not/exist":
        assert deployed.status == 404 and b"Page not found" in body
    elif path == "/":
        assert b"<h1>Home &lt;&amp;&gt;</h1>" in body


def test_toolkit_adds_star_binary_type_for_browsers():
    app = Chalice(app_name="x")
    ContentManager("/nonexistent-templates", "/nonexistent-static", app)
    assert "*/*" in app.api.binary_types


def test_without_the_toolkit_an_image_breaks_for_a_browser():
    """The model is not a tautology: plain Chalice defaults corrupt an image for a browser."""
    app = Chalice(app_name="plain")

    @app.route("/img")
    def img():
        return Response(b"\x89PNG\r\n\x1a\n\xff\x00", headers={"Content-Type": "image/png"})

    browser = {"Accept": ACCEPTS["navigation"]}
    result = app(make_event(app, "GET", "/img", browser), lambda_context())
    delivered = deliver(result, browser, app.api.binary_types)
    assert delivered.body != b"\x89PNG\r\n\x1a\n\xff\x00"


def test_gzip_text_body_travels_base64(site_app):
    """aws/chalice#1776: a gzip body with a text type must still be marked base64."""
    app, _, _ = site_app
    headers = {"Accept": "text/html", "Accept-Encoding": "gzip"}
    result = app(make_event(app, "GET", "/static/css/site.css", headers), lambda_context())
    assert result["headers"]["Content-Encoding"] == "gzip"
    assert result["isBase64Encoded"] is True


def test_text_bodies_travel_as_text(site_app):
    app, _, _ = site_app
    result = app(make_event(app, "GET", "/", {"Accept": "text/html"}), lambda_context())
    assert result.get("isBase64Encoded", False) is False
    assert "<h1>" in result["body"]


class _Cookies(list):
    """A list subclass: Chalice sends it as multi-value headers too."""


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("", {"ETag": '"x"', "Vary": "Accept-Encoding"}),
        ("<p>é</p>", {"Content-Type": "text/html; charset=utf-8"}),
        (b"\x89PNG\r\n", {"Content-Type": "image/png"}),
        ({"json": [1, 2]}, {"Content-Type": "application/json"}),
        ("x", {"Set-Cookie": ["a=1", "b=2"], "Vary": "Cookie"}),
        ("x", {"Set-Cookie": _Cookies(["a=1"])}),
        ("x", {"X-Count": 5}),
        (b"", {}),
    ],
)
def test_a_gateway_response_marshals_as_chalice_does_then_base64s_bytes(body, headers):
    """Regression for _GatewayResponse.to_dict's shortcut (str values, str or bytes body)."""
    from chalice_http_toolkit import _GatewayResponse

    ours = _GatewayResponse(body, dict(headers), 203).to_dict(["*/*"])
    chalices = Response(body, dict(headers), 203).to_dict(None)
    if isinstance(chalices["body"], bytes):
        chalices["body"] = base64.b64encode(chalices["body"]).decode("ascii")
        chalices["isBase64Encoded"] = True
    assert ours == chalices


def test_head_requests_through_the_gateway(site_app):
    app, _, _ = site_app
    for path in ("/", "/static/css/site.css", "/static/data.bin"):
        get = invoke(app, "GET", path, {"Accept": "*/*"})
        head = invoke(app, "HEAD", path, {"Accept": "*/*"})
        assert head.status == 200 and head.body == b""
        assert head.headers == get.headers


def test_cors_preflight_still_works(site_app):
    """Preflight through Chalice's local gateway (what `chalice local` and API Gateway answer)."""
    from chalice.config import Config
    from chalice.local import LocalGateway

    app, _, _ = site_app
    gateway = LocalGateway(app, Config())
    preflight = gateway.handle_request(
        "OPTIONS",
        "/cors-route",
        {"origin": "https://example.org", "access-control-request-method": "GET"},
        None,
    )
    with Client(app) as client:
        actual = client.http.get("/cors-route", headers={"Origin": "https://example.org"})
    assert preflight["statusCode"] == 200
    assert "GET" in preflight["headers"]["Access-Control-Allow-Methods"]
    assert actual.status_code == 200
    assert actual.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_is_off_by_default(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        for path in ("/", "/static/css/site.css", "/asset", "/api/data"):
            assert "Access-Control-Allow-Origin" not in client.http.get(path).headers


def test_cors_opt_in_is_kept_on_304_206_416(site):
    app, _, _ = build_app(*site, cors="https://example.org")
    with Client(app) as client:
        full = client.http.get("/static/data.bin")
        not_modified = client.http.get(
            "/static/data.bin", headers={"If-None-Match": full.headers["ETag"]}
        )
        partial = client.http.get("/static/data.bin", headers={"Range": "bytes=0-1"})
        unsatisfiable = client.http.get("/static/data.bin", headers={"Range": "bytes=5000-"})
    for response in (full, not_modified, partial, unsatisfiable):
        assert response.headers["Access-Control-Allow-Origin"] == "https://example.org"
        assert "Origin" in response.headers["Vary"]
    assert (not_modified.status_code, partial.status_code, unsatisfiable.status_code) == (
        304,
        206,
        416,
    )


def test_response_over_lambda_limit_is_a_clear_error(tmp_path, caplog):
    from conftest import write_site

    templates, static = write_site(tmp_path / "site")
    (static / "huge.bin").write_bytes(b"\x01" * (5 * 1024 * 1024))  # 6.7 MB once base64-encoded
    app, _, _ = build_app(templates, static)
    with caplog.at_level(logging.ERROR), Client(app) as client:
        local = client.http.get("/static/huge.bin")
        ranged = client.http.get("/static/huge.bin", headers={"Range": "bytes=0-1048575"})
    deployed = invoke(app, "GET", "/static/huge.bin", {"Accept": "*/*"})
    assert local.status_code == deployed.status == 500
    assert local.body == deployed.body
    assert b"too large" in local.body
    assert "S3" in caplog.text and "limit" in caplog.text
    assert ranged.status_code == 206 and len(ranged.body) == 1024 * 1024


def test_app_route_over_limit_is_a_clear_error_too():
    app = Chalice(app_name="big")
    install_gateway_support(app)

    @app.route("/big")
    def big():
        return Response("x" * (LAMBDA_RESPONSE_LIMIT + 10), headers={"Content-Type": "text/plain"})

    with Client(app) as client:
        response = client.http.get("/big")
    deployed = invoke(app, "GET", "/big", {"Accept": "*/*"})
    assert response.status_code == deployed.status == 500
    assert b"too large" in response.body


def test_no_print_anywhere_in_the_module():
    import ast
    from pathlib import Path

    from conftest import ROOT

    tree = ast.parse(Path(ROOT / "chalice_http_toolkit.py").read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert calls == []


def test_redirect_validates_developer_input(site_app):
    _, cm, _ = site_app
    for status in (200, 300, 304, 305):
        with pytest.raises(ValueError, match="301, 302, 303, 307 or 308"):
            cm.redirect("/x", status_code=status)
    with pytest.raises(ValueError, match="control characters"):
        cm.redirect("/x\r\nSet-Cookie: a=b")
    assert cm.redirect("/x", status_code=302).headers == {
        "Location": "/x",
        "X-Content-Type-Options": "nosniff",
    }


# ---------------------------------------------------------------------------
# The Lambda runtime's serialisation is awslambdaric's (bench/apigw.py)
# ---------------------------------------------------------------------------


def proxy_result(body: object, content_type: str = "text/css; charset=utf-8") -> dict:
    return {"statusCode": 200, "headers": {"Content-Type": content_type}, "body": body}


def test_a_utf8_bytes_body_is_delivered_as_text():
    """simplejson decodes a bytes body as UTF-8: the runtime delivers it (no 502)."""
    css = "a::before { content: 'é→' }\n".encode()
    delivered = deliver(proxy_result(css), {"Accept": "text/css"}, ["*/*"])
    assert (delivered.status, delivered.body) == (200, css)


def test_a_non_utf8_bytes_body_is_a_marshal_error():
    with pytest.raises(apigw.MarshalError, match=r"Runtime\.MarshalError"):
        apigw.lambda_payload(proxy_result(b"\x89PNG\r\n\x1a\n\xff"))
    delivered = deliver(proxy_result(b"\xff\xfe"), {"Accept": "*/*"}, ["*/*"])
    assert (delivered.status, delivered.body) == (502, apigw.GATEWAY_ERROR)


def test_the_execution_env_decides_ensure_ascii():
    """Lambda's python3.12+ runtimes send non-ASCII characters as UTF-8, older ones escape them."""
    payload = apigw.lambda_payload(proxy_result("é"))
    if sys.version_info >= (3, 12):
        assert '"body": "é"'.encode() in payload
    else:
        assert b'"body": "\\u00e9"' in payload
    assert "AWS_Lambda_python{}.{}".format(*sys.version_info[:2]) == apigw.EXECUTION_ENV


def test_the_payload_limit_counts_bytes_not_characters():
    """Fewer characters than the limit, more bytes: Lambda refuses it (API Gateway: 502)."""
    body = "é" * (apigw.LAMBDA_PAYLOAD_LIMIT // 2)
    assert len(body) < apigw.LAMBDA_PAYLOAD_LIMIT
    delivered = deliver(proxy_result(body, "text/plain; charset=utf-8"), {}, ["*/*"])
    assert delivered.status == 502


def test_the_payload_limit_boundary():
    """A JSON string of exactly the limit is sent; one byte more is refused."""
    assert len(apigw.lambda_payload("x" * (apigw.LAMBDA_PAYLOAD_LIMIT - 2))) == (
        apigw.LAMBDA_PAYLOAD_LIMIT
    )
    with pytest.raises(apigw.MarshalError, match="over"):
        apigw.lambda_payload("x" * (apigw.LAMBDA_PAYLOAD_LIMIT - 1))


def test_a_function_error_payload_is_a_502():
    error = b'{"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}'
    assert apigw.deliver_payload(error, {}, ["*/*"]).status == 502
