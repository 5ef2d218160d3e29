"""lambda_handler: HTTP APIs, Function URLs and ALBs in front of a Chalice app.

Sections: every front door gets the same requests (a page, a 304, an image for
Chrome's Accept, two cookies, a POSTed form, a 404, a binary round trip); the site's
forms and sessions through the doors; CloudFront in front of a Function URL. Static
files answered before Chalice runs are in test_frontdoors_static.py (docs name it).
The events and the delivery rules are in ``frontdoor_events.py`` (after AWS's
documentation); REST goes through ``apigw.py``'s model of API Gateway.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import re
from email.utils import formatdate
from urllib.parse import parse_qs

import pytest
from chalice import Chalice
from frontdoor_events import (
    FUNCTION_URL_HOST,
    Delivered,
    alb_event,
    deliver_alb,
    deliver_v2,
    form,
    v2_event,
)
from test_cloudfront import cfn_lint

import chalice_http_toolkit as toolkit
import cli
from chalice_http_toolkit import lambda_handler

from apigw import Delivered as OriginReply
from apigw import deliver as deliver_rest
from apigw import lambda_context, make_event
from cdn_model import CloudFrontModel, SimClock
from sites import SECRET_KEY, build_app, write_site

# == Every front door, the same requests ===================================================

CHROME_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SECRET = "s3cr3t-origin-value-0123456789"
DOORS = ["rest", "function-url", "http-api", "http-api-stage", "alb", "alb-multi"]


def photo_jpeg() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 48))
    for x in range(64):
        for y in range(48):
            image.putpixel((x, y), (x * 4, y * 5, 128))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def add_routes(app, cm):
    from chalice import Response

    @app.route("/cookies", methods=["GET"])
    def cookies():
        return Response(
            body="two cookies",
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "Set-Cookie": ["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure"],
                "X-Many": ["one", "two"],
            },
        )

    @app.route("/echo", methods=["GET"])
    def echo():
        request = app.current_request
        return {
            "cookie": request.headers.get("cookie"),
            "headers": sorted(request.headers.keys()),
            "query": {k: request.query_params.getlist(k) for k in request.query_params or {}},
            "path": request.context.get("path"),
            "stage": request.context.get("stage"),
            "sourceIp": request.context["identity"].get("sourceIp"),
        }

    @app.route("/form", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
    def post_form():
        fields = parse_qs(app.current_request.raw_body.decode(), keep_blank_values=True)
        return cm.html(f"<p>hello {fields['name'][0]}: {fields['tags']}</p>")

    @app.route("/binary", methods=["POST"], content_types=["application/octet-stream"])
    def binary():
        return Response(
            body=app.current_request.raw_body,
            headers={"Content-Type": "application/octet-stream"},
        )

    @app.route("/files/{proxy+}", methods=["GET"])
    def files():
        return {"proxy": app.current_request.uri_params["proxy"]}


@pytest.fixture(scope="module")
def front_app(tmp_path_factory):
    templates, static = write_site(tmp_path_factory.mktemp("frontdoors"))
    (static / "img").mkdir()
    (static / "img" / "photo.jpg").write_bytes(photo_jpeg())
    app, cm, _cf = build_app(templates, static)
    add_routes(app, cm)
    return app


def send(
    door: str,
    app,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    cookies: list[str] | None = None,
    body: bytes | str | None = None,
    binary: bool = False,
    handler=None,
) -> Delivered:
    """One request through ``door`` and ``lambda_handler(app)``; what the client gets."""
    handler = handler or toolkit.lambda_handler(app)
    headers = dict(headers or {})
    if door in ("function-url", "http-api", "http-api-stage"):
        event = v2_event(
            method,
            path,
            headers,
            cookies=cookies,
            body=body,
            binary=binary,
            function_url=door == "function-url",
            stage="prod" if door == "http-api-stage" else "$default",
        )
        return deliver_v2(handler(event, lambda_context()))
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    if door in ("alb", "alb-multi"):
        multi = door == "alb-multi"
        event = alb_event(method, path, headers, multi_value=multi, body=body, binary=binary)
        return deliver_alb(handler(event, lambda_context()), multi)
    event = make_event(app, method, path, headers)
    if body is not None:
        data = body.encode() if isinstance(body, str) else body
        event["body"] = base64.b64encode(data).decode() if binary else data.decode()
        event["isBase64Encoded"] = binary
    result = handler(event, lambda_context())
    delivered = deliver_rest(result, headers, app.api.binary_types)
    set_cookies = (result.get("multiValueHeaders") or {}).get("Set-Cookie", [])
    plain = {k.lower(): v for k, v in delivered.headers.items() if k.lower() != "set-cookie"}
    return Delivered(delivered.status, plain, delivered.body, set_cookies)


@pytest.mark.parametrize("door", DOORS)
def test_a_page(front_app, door):
    got = send(door, front_app, "GET", "/", {"Accept": "text/html"})
    assert got.status == 200
    assert got.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<h1>Home &lt;&amp;&gt;</h1>" in got.body
    assert got.headers["etag"].startswith('"')


@pytest.mark.parametrize("door", DOORS)
def test_a_gzip_page(front_app, door):
    got = send(door, front_app, "GET", "/static/css/site.css", {"Accept-Encoding": "gzip"})
    assert got.status == 200
    assert got.headers["content-encoding"] == "gzip"
    assert gzip.decompress(got.body).startswith(b"body { color: #123456; }")


@pytest.mark.parametrize("door", DOORS)
def test_a_304(front_app, door):
    first = send(door, front_app, "GET", "/page/about", {"Accept": "text/html"})
    again = send(door, front_app, "GET", "/page/about", {"If-None-Match": first.headers["etag"]})
    assert (first.status, again.status) == (200, 304)
    assert again.body == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == first.headers["cache-control"]


@pytest.mark.parametrize("door", DOORS)
def test_an_image_for_chrome(front_app, door):
    got = send(door, front_app, "GET", "/static/img/photo.jpg", {"Accept": CHROME_IMAGE_ACCEPT})
    assert got.status == 200
    assert got.headers["content-type"] in ("image/avif", "image/webp")
    signature = got.body[4:12] in (b"ftypavif", b"ftypavis") or got.body[8:12] == b"WEBP"
    assert signature, got.body[:16]
    assert "Accept" in got.headers["vary"]


@pytest.mark.parametrize("door", [d for d in DOORS if d != "alb"])
def test_two_cookies_reach_the_client(front_app, door):
    got = send(door, front_app, "GET", "/cookies")
    assert got.status == 200
    assert got.set_cookies == ["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure"]
    assert got.body == b"two cookies"


def test_payload_2_joins_other_repeated_headers_with_commas(front_app):
    result = toolkit.lambda_handler(front_app)(v2_event("GET", "/cookies"), lambda_context())
    assert result["headers"]["X-Many"] == "one,two"
    assert "Set-Cookie" not in result["headers"]
    assert result["cookies"] == ["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure"]


def test_alb_without_multi_value_headers_keeps_one_cookie_and_says_so(front_app, caplog):
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        got = send("alb", front_app, "GET", "/cookies")
    assert got.set_cookies == ["b=2; Path=/; Secure"]
    assert "multi_value_headers" in caplog.text


@pytest.mark.parametrize("door", DOORS)
def test_request_cookies_arrive_as_one_cookie_header(front_app, door):
    got = send(door, front_app, "GET", "/echo", cookies=["session=abc", "theme=dark"])
    assert json.loads(got.body)["cookie"] == "session=abc; theme=dark"


def test_alb_multi_value_cookie_headers_are_joined(front_app):
    event = alb_event("GET", "/echo", {"Cookie": ["a=1", "b=2"]}, multi_value=True)
    result = toolkit.lambda_handler(front_app)(event, lambda_context())
    assert json.loads(result["body"])["cookie"] == "a=1; b=2"


@pytest.mark.parametrize("door", DOORS)
def test_a_posted_form(front_app, door):
    body = form({"name": "Zoë & co", "tags": "x"}) + "&tags=y"
    got = send(
        door,
        front_app,
        "POST",
        "/form",
        {"Content-Type": "application/x-www-form-urlencoded"},
        body=body,
        binary=door == "function-url",  # Function URLs base64 bodies that are not text
    )
    assert got.status == 200
    assert got.body.decode() == "<p>hello Zoë & co: ['x', 'y']</p>"


@pytest.mark.parametrize("door", DOORS)
def test_the_sites_404_page(front_app, door):
    got = send(door, front_app, "GET", "/no/such/page", {"Accept": "text/html"})
    assert got.status == 404
    assert b"Page not found" in got.body


@pytest.mark.parametrize("door", [d for d in DOORS if d != "rest"])
def test_the_sites_404_page_through_the_greedy_tail(front_app, door):
    got = send(door, front_app, "GET", "/no/such/page/at/all/anywhere", {"Accept": "text/html"})
    assert got.status == 404
    assert b"Page not found" in got.body


@pytest.mark.parametrize("door", [d for d in DOORS if d != "rest"])
def test_a_path_no_route_matches_is_a_404(door):

    app = Chalice(app_name="bare")

    @app.route("/")
    def index():
        return {"hello": "world"}

    got = send(door, app, "GET", "/elsewhere")
    assert got.status == 404
    assert json.loads(got.body) == {"message": "Not Found"}


@pytest.mark.parametrize("door", DOORS)
def test_a_binary_body_round_trip(front_app, door):
    data = bytes(range(256)) * 8
    got = send(
        door,
        front_app,
        "POST",
        "/binary",
        {"Content-Type": "application/octet-stream", "Accept": "*/*"},
        body=data,
        binary=True,
    )
    assert got.status == 200
    assert got.body == data


@pytest.mark.parametrize("door", [d for d in DOORS if d != "rest"])
def test_base64_exactly_where_the_body_is_binary(front_app, door):
    handler = toolkit.lambda_handler(front_app)
    page = v2_event("GET", "/") if door.startswith(("function", "http")) else alb_event("GET", "/")
    image = (
        v2_event("GET", "/asset")
        if door.startswith(("function", "http"))
        else alb_event("GET", "/asset")
    )
    assert handler(page, lambda_context())["isBase64Encoded"] is False
    assert handler(image, lambda_context())["isBase64Encoded"] is True


@pytest.mark.parametrize("door", [d for d in DOORS if d != "rest"])
def test_query_strings_with_repeats_and_encoding(front_app, door):
    got = send(door, front_app, "GET", "/echo?a=1&a=2&b=x%20y%2Cz&c=&d=caf%C3%A9")
    query = json.loads(got.body)["query"]
    # Without multi-value headers an ALB keeps the last of repeated parameters.
    repeated = ["2"] if door == "alb" else ["1", "2"]
    assert query == {"a": repeated, "b": ["x y,z"], "c": [""], "d": ["café"]}


@pytest.mark.parametrize("door", ["function-url", "alb", "alb-multi"])
def test_encoded_path_parameters_reach_the_view_decoded(front_app, door):
    got = send(door, front_app, "GET", "/files/caf%C3%A9/a%20b.txt")
    assert json.loads(got.body) == {"proxy": "café/a b.txt"}


def test_http_api_paths_arrive_decoded():
    # HTTP APIs decode rawPath before invoking; it is not decoded a second time.

    app = Chalice(app_name="paths")

    @app.route("/files/{name}")
    def files(name):
        return {"name": name}

    event = v2_event("GET", "/files/100%25", function_url=False)
    result = toolkit.lambda_handler(app)(event, lambda_context())
    assert json.loads(result["body"]) == {"name": "100%25"}


def test_greedy_and_literal_precedence(front_app):
    handler = toolkit.lambda_handler(front_app)
    deep = handler(v2_event("GET", "/files/a/b/c"), lambda_context())
    assert json.loads(deep["body"])["proxy"] == "a/b/c"
    nested = handler(v2_event("GET", "/static/js/vendor/lib.mjs"), lambda_context())
    assert nested["statusCode"] == 200
    assert nested["headers"]["Content-Type"].startswith("text/javascript")


def test_http_api_named_stage_is_not_part_of_the_route(front_app):
    got = send("http-api-stage", front_app, "GET", "/echo")
    echoed = json.loads(got.body)
    assert got.status == 200
    assert (echoed["path"], echoed["stage"]) == ("/prod/echo", "prod")


def test_request_context_fields_chalice_reads(front_app):
    echoed = json.loads(send("function-url", front_app, "GET", "/echo").body)
    assert echoed["stage"] == "$default"
    assert echoed["sourceIp"] == "198.51.100.7"
    alb = json.loads(send("alb", front_app, "GET", "/echo").body)
    assert alb["sourceIp"] == "198.51.100.7"


def test_alb_status_description(front_app):
    handler = toolkit.lambda_handler(front_app)
    assert handler(alb_event("GET", "/"), None)["statusDescription"] == "200 OK"
    missing = handler(alb_event("GET", "/a/b/c/d/e/f"), None)
    assert missing["statusDescription"] == "404 Not Found"


def test_method_not_allowed_through_a_function_url(front_app):
    got = send("function-url", front_app, "DELETE", "/echo")
    assert got.status == 405


def test_keep_warm_event_is_still_recognised(tmp_path):
    templates, static = write_site(tmp_path)
    app, cm, _cf = build_app(templates, static)
    toolkit.register_keep_warm(app, cm)
    handler = toolkit.lambda_handler(app, origin_secret=SECRET)
    result = handler(toolkit.keep_warm_event(), lambda_context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["warm"] is True


def test_a_2_0_event_without_cookies_or_query_string(front_app):
    event = v2_event("GET", "/echo")
    for field in ("cookies", "queryStringParameters", "rawQueryString", "body"):
        event.pop(field, None)
    result = toolkit.lambda_handler(front_app)(event, lambda_context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["query"] == {}


# -- what the view sees: the REST event the adapter builds -----------------------------------


def seen_app() -> Chalice:
    """An app whose views report what ``app.current_request`` holds."""
    from chalice import Response

    app = Chalice(app_name="seen")

    def seen():
        request = app.current_request
        event = request.to_original_event()
        return {
            "method": request.method,
            "headers": dict(request.headers),
            "query": {k: request.query_params.getlist(k) for k in request.query_params or {}},
            "uri_params": request.uri_params,
            "context": request.context,
            "stage_vars": request.stage_vars,
            "body": base64.b64encode(request.raw_body).decode() if request.raw_body else None,
            "event_keys": sorted(event),
        }

    app.route("/seen")(seen)

    @app.route("/seen/{name}", methods=["POST"], content_types=["application/octet-stream"])
    def seen_name(name):
        return seen()

    @app.route("/mutate/{name}")
    def mutate(name):
        params = app.current_request.uri_params
        answer = dict(params)
        params["name"] = "changed by the view"
        return answer

    @app.route("/answer")
    def answer():
        return Response(
            body="x",
            headers={"Content-Type": "text/plain", "set-cookie": "a=1"},
        )

    return app


REST_EVENT_KEYS = [
    "body",
    "headers",
    "httpMethod",
    "isBase64Encoded",
    "multiValueQueryStringParameters",
    "path",
    "pathParameters",
    "queryStringParameters",
    "requestContext",
    "resource",
    "stageVariables",
]


@pytest.mark.parametrize("door", ["function-url", "http-api-stage"])
def test_what_the_view_sees_through_payload_2(door):
    data = bytes(range(200, 256))
    event = v2_event(
        "POST",
        "/seen/caf%C3%A9%2Fx?a=1&a=2&b=x%20y&c=",
        {"Content-Type": "application/octet-stream", "Accept": "*/*"},
        cookies=["session=abc", "theme=dark"],
        body=data,
        binary=True,
        function_url=door == "function-url",
        stage="prod" if door == "http-api-stage" else "$default",
    )
    if door == "http-api-stage":  # an HTTP API decodes the path before invoking
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/prod/seen/café%2Fx"
    result = lambda_handler(seen_app())(event, lambda_context())
    assert result["statusCode"] == 200, result
    seen = json.loads(result["body"])
    function_url = door == "function-url"
    host = FUNCTION_URL_HOST if function_url else "r4nd0m1d42.execute-api.us-east-1.amazonaws.com"
    assert seen == {
        "method": "POST",
        "headers": {
            "host": host,
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            "x-forwarded-for": "198.51.100.7",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36",
            "x-amzn-trace-id": "Root=1-67a1b2c3-0123456789abcdef01234567",
            "content-type": "application/octet-stream",
            "accept": "*/*",
            "cookie": "session=abc; theme=dark",
        },
        "query": {"a": ["1", "2"], "b": ["x y"], "c": [""]},
        "uri_params": {"name": "café/x"} if function_url else {"name": "café%2Fx"},
        "context": {
            "path": event["rawPath"],
            "stage": "$default" if function_url else "prod",
            "requestId": "c0ffee00-1234-4321-abcd-0123456789ab",
            "domainName": host,
            "apiId": event["requestContext"]["apiId"],
            "accountId": event["requestContext"]["accountId"],
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": 1796162400000,
            "identity": {
                "sourceIp": "198.51.100.7",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36",
            },
            "authorizer": None,
            "resourcePath": "/seen/{name}",
            "httpMethod": "POST",
        },
        "stage_vars": None,
        "body": base64.b64encode(data).decode(),
        "event_keys": REST_EVENT_KEYS,  # no multiValueHeaders: Chalice reads none
    }


@pytest.mark.parametrize("multi_value", [False, True], ids=["alb", "alb-multi"])
def test_what_the_view_sees_through_an_alb(multi_value):
    event = alb_event(
        "GET", "/seen?a=1&a=2&b=x%20y", {"Cookie": "session=abc"}, multi_value=multi_value
    )
    seen = json.loads(lambda_handler(seen_app())(event, lambda_context())["body"])
    assert seen["query"] == {"a": ["1", "2"] if multi_value else ["2"], "b": ["x y"]}
    assert seen["headers"]["cookie"] == "session=abc"
    assert seen["uri_params"] is None
    assert seen["context"] == {
        "path": "/seen",
        "stage": "$default",
        "elb": event["requestContext"]["elb"],
        "identity": {
            "sourceIp": "198.51.100.7",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36",
        },
        "resourcePath": "/seen",
        "httpMethod": "GET",
    }
    assert seen["event_keys"] == sorted([*REST_EVENT_KEYS, "multiValueHeaders"])


def test_a_view_that_changes_its_path_parameters_leaves_the_next_request_alone():
    handler = lambda_handler(seen_app())
    for _ in range(2):
        result = handler(v2_event("GET", "/mutate/abc"), lambda_context())
        assert json.loads(result["body"]) == {"name": "abc"}


def test_the_event_is_left_as_it_came():
    event = v2_event("GET", "/seen?a=1", {"Accept": "*/*"}, cookies=["a=1", "b=2"])
    before = json.loads(json.dumps(event))
    result = lambda_handler(seen_app())(event, lambda_context())
    assert json.loads(result["body"])["headers"]["cookie"] == "a=1; b=2"
    assert event == before


def test_header_names_in_capitals_through_payload_2(front_app):
    # AWS sends 2.0 names in lower case; another caller may not. Both ways answer alike.
    handler = lambda_handler(front_app)
    for path in ("/static/css/site.css", "/page/about"):  # the static door, and Chalice
        first = handler(v2_event("GET", path), lambda_context())
        again = v2_event("GET", path)
        again["headers"]["If-None-Match"] = first["headers"]["ETag"]
        assert handler(again, lambda_context())["statusCode"] == 304, path
    echo = v2_event("GET", "/echo")
    echo["headers"]["X-Capital"] = "1"
    assert "x-capital" in json.loads(handler(echo, lambda_context())["body"])["headers"]


def test_a_2_0_event_with_query_string_parameters_only():
    event = v2_event("GET", "/seen?a=1&b=x")
    del event["rawQueryString"]
    seen = json.loads(lambda_handler(seen_app())(event, lambda_context())["body"])
    assert seen["query"] == {"a": ["1"], "b": ["x"]}


def test_payload_2_answers_a_set_cookie_string_in_cookies():
    result = lambda_handler(seen_app())(v2_event("GET", "/answer"), lambda_context())
    assert result["cookies"] == ["a=1"]
    assert result["headers"] == {"Content-Type": "text/plain"}


# -- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        ["a", "list"],
        "text",
        {},
        {"Records": [{"eventSource": "aws:s3"}]},
        {"detail-type": "Scheduled Event", "source": "aws.events"},
    ],
    ids=["none", "list", "str", "empty", "s3", "schedule"],
)
def test_an_event_of_unknown_shape_is_a_logged_500(front_app, caplog, event):
    with caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        result = toolkit.lambda_handler(front_app)(event, lambda_context())
    assert result["statusCode"] == 500
    assert "Traceback" not in result["body"]
    assert "not an HTTP event" in caplog.text
    json.dumps(result)


@pytest.mark.parametrize(
    "event",
    [
        {"version": "2.0", "requestContext": {}},
        {"version": "2.0", "requestContext": {"http": {"method": "GET"}}, "rawPath": 7},
        {**v2_event("GET", "/"), "headers": {"accept": ["a", "list"]}},
        {**v2_event("GET", "/"), "cookies": "a=1"},
        {**v2_event("POST", "/form"), "body": {"an": "object"}},
        {"requestContext": {"elb": {}}, "httpMethod": "GET"},
        {**alb_event("GET", "/"), "headers": ["x"]},
        {**alb_event("GET", "/", multi_value=True), "multiValueHeaders": {"a": "not a list"}},
    ],
    ids=["no-http", "bad-path", "bad-headers", "bad-cookies", "bad-body", "alb-no-path",
         "alb-bad-headers", "alb-bad-multi"],
)  # fmt: skip
def test_a_malformed_event_is_a_logged_400(front_app, caplog, event):
    with caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        result = toolkit.lambda_handler(front_app)(event, lambda_context())
    assert result["statusCode"] == 400
    assert "malformed" in caplog.text
    json.dumps(result)


def test_an_alb_response_over_one_megabyte_is_a_clear_error(caplog):
    from chalice import Response

    app = Chalice(app_name="big")

    @app.route("/big")
    def big():
        return Response(body="x" * (1024 * 1024 + 10), headers={"Content-Type": "text/plain"})

    with caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        got = send("alb", app, "GET", "/big")
    assert got.status == 500
    assert "1 MB" in caplog.text


# -- origin protection ---------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_origin_secret_refuses_requests_without_it(front_app, door, caplog):
    handler = toolkit.lambda_handler(front_app, origin_secret=SECRET)
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        missing = send(door, front_app, "GET", "/echo", handler=handler)
        wrong = send(
            door, front_app, "GET", "/echo", {"X-Origin-Verify": SECRET[:-1] + "!"}, handler=handler
        )
    assert (missing.status, wrong.status) == (403, 403)
    assert "origin secret" in caplog.text


@pytest.mark.parametrize("door", DOORS)
def test_origin_secret_admits_cloudfront_and_hides_the_header(front_app, door):
    handler = toolkit.lambda_handler(front_app, origin_secret=SECRET)
    got = send(door, front_app, "GET", "/echo", {"X-Origin-Verify": SECRET}, handler=handler)
    assert got.status == 200
    assert "x-origin-verify" not in json.loads(got.body)["headers"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"x-origin-verify": SECRET}, 200),
        ({"X-Origin-Verify": SECRET}, 200),
        ({"x-origin-verify": SECRET, "X-ORIGIN-VERIFY": SECRET}, 200),
        ({"x-origin-verify": "wrong-secret-0123456789", "X-Origin-Verify": SECRET}, 200),
        ({"x-origin-verify": SECRET[:-1] + "!"}, 403),
        ({"x-origin-verify": "caf\u00e9-" + SECRET}, 403),
    ],
    ids=["lower", "capitals", "both", "one-of-two", "wrong", "not-ascii"],
)
def test_origin_secret_in_any_spelling_through_payload_2(front_app, headers, status):
    handler = toolkit.lambda_handler(front_app, origin_secret=SECRET)
    event = v2_event("GET", "/echo")
    event["headers"].update(headers)
    before = json.loads(json.dumps(event))
    result = handler(event, lambda_context())
    assert result["statusCode"] == status
    if status == 200:
        assert not [h for h in json.loads(result["body"])["headers"] if "origin" in h]
    assert event == before


@pytest.fixture(scope="module")
def event_echo():
    """An app whose view answers the header fields of the event Chalice handed it."""
    app = Chalice(app_name="event_echo")

    @app.route("/echo")
    def echo():
        event = app.current_request.to_original_event()
        return {"headers": event["headers"], "multi": event["multiValueHeaders"]}

    return app


WRONG = "wrong-secret-0123456789"


@pytest.mark.parametrize(
    "headers, multi, status",
    [
        ({"X-Origin-Verify": SECRET}, {"X-Origin-Verify": [SECRET]}, 200),
        ({"x-origin-verify": SECRET}, {"x-origin-verify": [SECRET]}, 200),
        ({"X-ORIGIN-VERIFY": SECRET}, {"X-ORIGIN-VERIFY": [SECRET]}, 200),
        ({"x-Origin-verify": SECRET}, {"x-Origin-verify": [SECRET]}, 200),
        ({"X-Origin-Verify": SECRET}, None, 200),
        ({"X-Origin-Verify": SECRET}, {"x-origin-verify": [SECRET]}, 200),
        ({"X-Origin-Verify": SECRET}, {"X-Origin-Verify": [WRONG, SECRET]}, 200),
        ({"X-Origin-Verify": WRONG}, {"X-Origin-Verify": [SECRET, WRONG]}, 200),
        ({"X-Origin-Verify": SECRET}, {"X-Origin-Verify": [SECRET, SECRET]}, 200),
        (
            {"X-Origin-Verify": WRONG, "x-origin-verify": SECRET},
            {"X-Origin-Verify": [WRONG], "x-origin-verify": [SECRET]},
            200,
        ),
        (
            {"X-Origin-Verify": SECRET, "x-origin-verify": WRONG},
            {"X-Origin-Verify": [SECRET], "x-origin-verify": [WRONG]},
            200,
        ),
        ({}, {"X-Origin-Verify": [SECRET]}, 200),
        (
            {"X-Origin-Verify": SECRET, "X-Origin-Verify-Trace": "1"},
            {"X-Origin-Verify": [SECRET], "X-Origin-Verify-Trace": ["1"]},
            200,
        ),
        ({}, {}, 403),
        ({"X-Origin-Verify": WRONG}, {"X-Origin-Verify": [WRONG]}, 403),
        ({"X-Origin-Verify": WRONG, "x-origin-verify": WRONG}, None, 403),
        ({"X-Origin-Verify": "caf\u00e9-" + SECRET}, None, 403),
        ({"X-Origin-Verify": SECRET + " "}, None, 403),
    ],
    ids=[
        "cloudfront",
        "lower",
        "upper",
        "mixed",
        "no-multi-value-field",
        "multi-value-spelt-otherwise",
        "duplicates-secret-last",
        "duplicates-secret-first",
        "duplicates-same",
        "two-spellings-secret-second",
        "two-spellings-secret-first",
        "multi-value-only",
        "a-longer-name-stays",
        "absent",
        "wrong",
        "wrong-in-two-spellings",
        "not-ascii",
        "trailing-space",
    ],
)
def test_origin_secret_in_any_spelling_through_a_rest_event(event_echo, headers, multi, status):
    handler = toolkit.lambda_handler(event_echo, origin_secret=SECRET)
    event = make_event(event_echo, "GET", "/echo")
    event["headers"].update(headers)
    if multi is None:
        event["multiValueHeaders"] = None
    else:
        event["multiValueHeaders"].update(multi)
    before = json.loads(json.dumps(event))
    result = handler(event, lambda_context())
    assert result["statusCode"] == status
    assert event == before  # the caller's event, its dicts included, left as it came
    if status == 403:
        return
    seen = json.loads(result["body"])
    secret_names = {
        name for name in (*headers, *(multi or {})) if name.lower() == "x-origin-verify"
    }
    assert seen["headers"] == {k: v for k, v in before["headers"].items() if k not in secret_names}
    assert seen["multi"] == (
        None
        if multi is None
        else {k: v for k, v in before["multiValueHeaders"].items() if k not in secret_names}
    )


@pytest.mark.parametrize("name", ["X-Origin-Verify", "x-origin-verify"])
def test_cloudfronts_rest_event_is_admitted_in_one_look_up(event_echo, name):
    """The usual shape takes the short way: one spelling, the secret, no other spelling."""
    event = make_event(event_echo, "GET", "/echo", {name: SECRET})
    before = json.loads(json.dumps(event))
    admitted = toolkit._admitted_rest(event, toolkit._origin_secrets(SECRET))
    assert event == before
    assert name not in admitted["headers"] and name not in admitted["multiValueHeaders"]
    assert admitted["headers"]["Host"] == before["headers"]["Host"]
    assert admitted["requestContext"] is event["requestContext"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-ORIGIN-VERIFY": SECRET},
        {"X-Origin-Verify": WRONG},
        {"X-Origin-Verify": SECRET, "x-origin-verify": SECRET},
        {"X-Origin-Verify": SECRET, "X-Origin-Verify-Trace": "1"},
        {"X-Origin-Verify": SECRET, 7: "a name that is not a string"},
        {"X-Origin-Verify": SECRET, "multiValueHeaders": ["not", "an", "object"]},
    ],
    ids=["other-spelling", "wrong", "two-spellings", "longer-name", "odd-name", "odd-multi"],
)
def test_other_rest_events_take_the_long_way(event_echo, headers):
    headers = dict(headers)
    multi = headers.pop("multiValueHeaders", None)
    event = make_event(event_echo, "GET", "/echo", headers)
    if multi is not None:
        event["multiValueHeaders"] = multi
    assert toolkit._admitted_rest(event, toolkit._origin_secrets(SECRET)) is None


def test_origin_secret_from_the_environment_with_rotation(front_app, monkeypatch):
    old, new = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
    monkeypatch.setenv(toolkit.ORIGIN_SECRET_ENV, f"{new}, {old}")
    handler = toolkit.lambda_handler(front_app)
    for secret, status in ((new, 200), (old, 200), ("other-secret-0123456789", 403)):
        got = send(
            "function-url", front_app, "GET", "/echo", {"x-origin-verify": secret}, handler=handler
        )
        assert got.status == status


def test_no_origin_secret_configured_admits_everything(front_app, monkeypatch):
    monkeypatch.delenv(toolkit.ORIGIN_SECRET_ENV, raising=False)
    assert send("function-url", front_app, "GET", "/echo").status == 200


def test_a_short_origin_secret_is_refused():

    with pytest.raises(ValueError, match="16 characters"):
        toolkit.lambda_handler(Chalice(app_name="x"), origin_secret="short")


def test_lambda_handler_is_public():
    assert "lambda_handler" in toolkit.__all__
    assert os.environ.get(toolkit.ORIGIN_SECRET_ENV) is None


def test_a_function_url_request_cannot_pose_as_the_keep_warm(tmp_path, monkeypatch):
    """The warm-up marker is a top-level key: an HTTP request cannot set it."""
    templates, static = write_site(tmp_path)
    app, cm, _cf = build_app(templates, static)
    toolkit.register_keep_warm(app, cm)
    primed = []
    monkeypatch.setattr(cm, "prime", lambda: primed.append(1) or {})
    handler = toolkit.lambda_handler(app, origin_secret=SECRET)
    path = toolkit.keep_warm_event()["path"]
    event = v2_event("GET", path, {"chalice_http_toolkit_keep_warm": "true"})
    event["body"] = json.dumps(toolkit.keep_warm_event())
    got = deliver_v2(handler(event, lambda_context()))
    assert got.status == 403
    admitted = v2_event("GET", path, {"x-origin-verify": SECRET})
    assert deliver_v2(handler(admitted, lambda_context())).status == 404
    assert primed == []


# == Forms, cookies and sessions through the doors =========================================
# Forms, cookies and sessions through every front door (lambda_handler).
#
# A site's interactive half must work behind a Function URL or an ALB as behind API
# Gateway REST: the 2.0 ``cookies`` array becomes the request's Cookie header, each
# ``set_cookie`` becomes its own entry of the response's ``cookies`` (ALB: its own
# ``Set-Cookie`` value), and the CSRF check sees the viewer's host.

ORIGIN = f"https://{FUNCTION_URL_HOST}"


@pytest.fixture
def handler(site):
    """The site's app with its interactive half (tests/sites.py ``add_forms``)."""
    app, _, _ = build_app(*site, secret_key=SECRET_KEY)
    return lambda_handler(app)


def _session(set_cookies: list[str]) -> str:
    [session] = [c.split(";")[0] for c in set_cookies if c.startswith("session=")]
    return session


def test_a_form_post_with_its_session_through_a_function_url(handler):
    page = deliver_v2(handler(v2_event("GET", "/form"), None))
    assert page.status == 200 and page.headers["cache-control"] == "private, no-store"
    assert "set-cookie" not in page.headers  # cookies travel in the 2.0 cookies array
    session = _session(page.set_cookies)
    token = re.search(rb'value="([^"]+)"', page.body)[1].decode()

    body = form({"message": "hello Zo\u00eb", "csrf_token": token})
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": ORIGIN}
    posted = deliver_v2(
        handler(v2_event("POST", "/flash", headers, cookies=[session], body=body), None)
    )
    assert (posted.status, posted.headers["location"]) == (303, "/form")

    shown = deliver_v2(
        handler(v2_event("GET", "/form", cookies=[_session(posted.set_cookies)]), None)
    )
    assert "<p class=message>hello Zoë</p>" in shown.body.decode()


def test_a_cross_site_post_through_a_function_url_is_refused(handler):
    page = deliver_v2(handler(v2_event("GET", "/form"), None))
    token = re.search(rb'value="([^"]+)"', page.body)[1].decode()
    body = form({"message": "x", "csrf_token": token})
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "origin": "https://attacker.example",
        "sec-fetch-site": "cross-site",
    }
    event = v2_event("POST", "/flash", headers, cookies=[_session(page.set_cookies)], body=body)
    assert deliver_v2(handler(event, None)).status == 403


def test_each_cookie_is_its_own_entry_through_a_function_url(handler):
    delivered = deliver_v2(handler(v2_event("GET", "/two-cookies"), None))
    assert [c.split(";")[0] for c in delivered.set_cookies] == ["a=1", "b=2"]
    assert "HttpOnly" in delivered.set_cookies[0] and "HttpOnly" not in delivered.set_cookies[1]


def test_each_cookie_is_its_own_set_cookie_through_an_alb(handler):
    result = handler(alb_event("GET", "/two-cookies", multi_value=True), None)
    headers = {name.lower(): values for name, values in result["multiValueHeaders"].items()}
    assert [c.split(";")[0] for c in headers["set-cookie"]] == ["a=1", "b=2"]


def test_an_alb_without_multi_value_headers_keeps_one_cookie_and_says_so(handler, caplog):
    result = handler(alb_event("GET", "/two-cookies"), None)
    assert [n for n in result["headers"] if n.lower() == "set-cookie"] == ["Set-Cookie"]
    assert "multi_value_headers.enabled" in caplog.text


# == CloudFront in front of a Function URL =================================================
# `cli.py cloudfront --origin function-url`: CloudFront in front of a Function URL.
#
# The template lints clean, names the Function URL as a custom HTTPS origin and adds the
# origin secret header that ``lambda_handler`` checks; through the CloudFront model,
# pages are served and revalidated, while a request that bypasses CloudFront is a 403.


def distribution(template: dict) -> dict:
    return template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]


def test_function_url_origin_shape():
    template = cli.cloudfront_template(origin="function-url")
    origin, static_origin = distribution(template)["Origins"]  # pages, static files
    assert static_origin["OriginCustomHeaders"] == origin["OriginCustomHeaders"]
    assert static_origin["DomainName"] == origin["DomainName"]
    assert origin["DomainName"] == {"Ref": "FunctionUrlDomain"}
    assert "OriginPath" not in origin  # a Function URL has no stage in its path
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["OriginCustomHeaders"] == [
        {"HeaderName": "X-Origin-Verify", "HeaderValue": {"Ref": "OriginSecret"}}
    ]
    assert cli.ORIGIN_SECRET_HEADER == toolkit.ORIGIN_SECRET_HEADER
    parameters = template["Parameters"]
    assert parameters["OriginSecret"]["NoEcho"] is True
    assert parameters["OriginSecret"]["MinLength"] == 16
    assert not {"RestApiId", "ApiRegion", "Stage"} & set(parameters)
    assert "Conditions" not in template
    # Host is never forwarded: a Function URL answers only to its own host name.
    policy = template["Resources"]["PageOriginRequestPolicy"]["Properties"]
    assert "Host" not in policy["OriginRequestPolicyConfig"]["HeadersConfig"]["Headers"]


def test_rest_api_origin_is_unchanged_by_default():
    assert cli.cloudfront_template() == cli.cloudfront_template(origin="rest-api")
    for origin in distribution(cli.cloudfront_template())["Origins"]:
        assert "OriginCustomHeaders" not in origin


def test_unknown_origin_is_a_value_error():
    with pytest.raises(ValueError, match="function-url"):
        cli.cloudfront_template(origin="s3")


def test_function_url_template_passes_cfn_lint(tmp_path):
    path = tmp_path / "function-url.json"
    assert cli.main(["cloudfront", "--origin", "function-url", "-o", str(path)]) == 0
    done = cfn_lint(path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_cloudfront_origin_option(run):
    done = run("cloudfront", "--origin", "function-url")
    assert done.code == 0
    assert json.loads(done.stdout)["Parameters"]["FunctionUrlDomain"]
    bad = run("cloudfront", "--origin", "s3")
    assert bad.code == 2
    assert "invalid choice" in bad.stderr


class FunctionUrlOrigin:
    """The origin as CloudFront reaches it: the template's custom headers, a 2.0 event."""

    def __init__(self, app, template: dict, clock: SimClock) -> None:
        self.handler = toolkit.lambda_handler(app, origin_secret=SECRET)
        origin = distribution(template)["Origins"][0]
        parameters = {"OriginSecret": SECRET}
        self.custom = {
            header["HeaderName"].lower(): parameters[header["HeaderValue"]["Ref"]]
            for header in origin["OriginCustomHeaders"]
        }
        self.clock = clock
        self.statuses: list[int] = []

    def __call__(self, url: str, headers: dict[str, str]) -> OriginReply:
        event = v2_event("GET", url, {**headers, **self.custom})
        got = deliver_v2(self.handler(event, lambda_context()))
        self.statuses.append(got.status)
        out = dict(got.headers)
        out["content-length"] = str(len(got.body))
        out["date"] = formatdate(self.clock(), usegmt=True)
        return OriginReply(got.status, out, got.body)


def test_pages_through_cloudfront_to_a_function_url(site_app):
    app, _cm, _cf = site_app
    template = cli.cloudfront_template(origin="function-url")
    clock = SimClock()
    origin = FunctionUrlOrigin(app, template, clock)
    cdn = CloudFrontModel(template, origin, clock)
    viewer = {"accept": "text/html", "accept-encoding": "gzip, br"}
    first = cdn.request("/", viewer)
    clock.now += 60
    again = cdn.request("/", viewer)
    css = cdn.request("/static/css/site.css", {"accept": "text/css"})
    assert (first.status, first.source) == (200, "Miss")
    assert (again.status, again.source) == (200, "StaleHit")  # 304 in the background
    assert b"Home" in again.content
    assert css.status == 200
    assert origin.statuses == [200, 304, 200]


def test_a_request_that_bypasses_cloudfront_is_refused(site_app):
    app, _cm, _cf = site_app
    handler = toolkit.lambda_handler(app, origin_secret=SECRET)
    got = deliver_v2(handler(v2_event("GET", "/", {"accept": "text/html"}), lambda_context()))
    assert got.status == 403
    assert b"Home" not in got.body
