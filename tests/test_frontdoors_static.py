"""lambda_handler answers static files and the keep-warm payload before Chalice runs.

A Function URL, HTTP API or REST API request for a file of ``register_static_routes`` is
answered from the static index; every such answer must be the one Chalice's route gives for
the same event, header by header and byte by byte. Whether Chalice ran is seen on
``app.current_request``, which Chalice sets for every request it handles.
"""

from __future__ import annotations

import copy
import json
from urllib.parse import unquote

import pytest
from chalice import Chalice
from frontdoor_events import v2_event

import chalice_http_toolkit as toolkit

from apigw import lambda_context, make_event
from conftest import build_app, write_site
from sites import SECRET_KEY

CSS_ACCEPT = "text/css,*/*;q=0.1"
NOT_CHALICE = object()


def chalice_answer(app, event):
    """What the handler answers when Chalice routes the event (the long way)."""
    rest = toolkit._event_from_v2(event, toolkit._route_table(app))
    return toolkit._in_format("v2", event, app(rest, lambda_context()))


def door_answer(app, event):
    """What ``lambda_handler(app)`` answers, and whether Chalice ran for it."""
    app.current_request = NOT_CHALICE
    answer = toolkit.lambda_handler(app)(event, lambda_context())
    return answer, app.current_request is not NOT_CHALICE


@pytest.fixture(
    params=[
        {},
        {"security_headers": True, "cors": "https://shop.example"},
        {"cors": True},
        {"secret_key": SECRET_KEY},
    ],
    ids=["plain", "security-and-named-origin", "cors-star", "sessions"],
)
def static_app(tmp_path, request):
    templates, static = write_site(tmp_path / "site")
    (static / "img").mkdir()
    (static / "img" / "pixel.png").write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
    )
    app, cm, _cf = build_app(templates, static, **request.param)
    return app, cm


def first_etag(app, path, headers=None):
    answer, _ = door_answer(app, v2_event("GET", path, headers or {}))
    return answer["headers"]["ETag"]


def assert_same(app, event):
    answer, chalice_ran = door_answer(app, event)
    assert not chalice_ran, "the static door let Chalice answer"
    expected = chalice_answer(app, event)
    assert list(answer["headers"].items()) == list(expected["headers"].items())
    assert answer == expected
    json.dumps(answer)
    return answer


#: Static requests both doors must answer as the Chalice route does: (path, headers), id.
STATIC_CASES = [
    pytest.param("/static/css/site.css", {"accept": CSS_ACCEPT}, id="css"),
    pytest.param(
        "/static/css/site.css",
        {"accept": CSS_ACCEPT, "accept-encoding": "gzip, br"},
        id="css-gzip",
    ),
    pytest.param("/static/js/vendor/lib.mjs", {"accept-encoding": "gzip"}, id="nested-gzip"),
    pytest.param("/static/robots.txt", {}, id="text"),
    pytest.param("/static/data.bin", {"accept": "*/*"}, id="binary"),
    pytest.param("/static/noext", {}, id="sniffed"),
    pytest.param("/static/css/site.css", {"range": "bytes=0-9"}, id="range"),
    pytest.param("/static/css/site.css", {"range": "bytes=99999-"}, id="range-416"),
    pytest.param(
        "/static/css/site.css",
        {"range": "bytes=0-9", "if-range": '"stale"'},
        id="if-range-stale",
    ),
    pytest.param("/static/css/s%69te.css", {}, id="encoded-segment"),
]


@pytest.mark.parametrize(("path", "headers"), STATIC_CASES)
def test_a_static_file_is_answered_as_the_chalice_route_answers(static_app, path, headers):
    app, _cm = static_app
    answer = assert_same(app, v2_event("GET", path, headers))
    assert answer["statusCode"] in (200, 206, 416)


@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
def test_a_static_304_is_answered_as_the_chalice_route_answers(static_app, gzip):
    app, _cm = static_app
    headers = {"accept-encoding": "gzip"} if gzip else {}
    etag = first_etag(app, "/static/css/site.css", headers)
    answer = assert_same(
        app, v2_event("GET", "/static/css/site.css", {**headers, "if-none-match": etag})
    )
    assert answer["statusCode"] == 304
    assert answer["body"] == ""


def test_head_gets_the_headers_of_get_and_no_body(static_app):
    app, _cm = static_app
    answer = assert_same(app, v2_event("HEAD", "/static/css/site.css", {}))
    assert answer["statusCode"] == 200
    assert answer["body"] == ""
    assert answer["headers"]["Content-Type"].startswith("text/css")


def test_a_fingerprinted_url_is_immutable_through_the_door(static_app):
    app, cm = static_app
    url = cm.static_url("css/site.css")
    answer = assert_same(app, v2_event("GET", url, {}))
    assert answer["headers"]["Cache-Control"] == toolkit.IMMUTABLE_CACHE_CONTROL


def test_an_http_api_stage_and_a_prefix_of_its_own(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app = Chalice(app_name="assets")
    cm = toolkit.ContentManager(str(templates), str(static), app, security_headers=True)
    cm.register_static_routes("/assets", cache_control="public, max-age=60")
    event = v2_event("GET", "/assets/css/site.css", {}, function_url=False, stage="prod")
    answer = assert_same(app, event)
    assert answer["headers"]["Cache-Control"] == "public, max-age=60"
    assert "Strict-Transport-Security" in answer["headers"]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/static/missing.css", {}),
        ("GET", "/static/img/pixel.png", {"accept": "image/webp,*/*"}),
        ("GET", "/static/css/site.css", {"content-type": "text/plain"}),
        ("POST", "/static/css/site.css", {}),
        ("GET", "/static/css/%2e%2e/robots.txt", {}),
        ("GET", "/page/static", {}),
    ],
    ids=["not-in-index", "negotiated-image", "body-type", "post", "encoded-dots", "other-route"],
)
def test_what_the_index_cannot_answer_goes_through_chalice(static_app, method, path, headers):
    app, _cm = static_app
    event = v2_event(method, path, headers)
    answer, chalice_ran = door_answer(app, event)
    assert chalice_ran
    assert answer == chalice_answer(app, event)


def test_an_app_with_a_middleware_of_its_own_sees_static_requests(static_app):
    app, _cm = static_app
    seen = []

    @app.middleware("http")
    def count(event, get_response):
        seen.append(event.path)
        return get_response(event)

    answer, chalice_ran = door_answer(app, v2_event("GET", "/static/css/site.css", {}))
    assert chalice_ran
    assert seen == ["/static/{p0}/{p1}"]
    assert answer["statusCode"] == 200


def test_a_route_of_the_app_under_the_prefix_wins_as_in_chalice(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static)

    @app.route("/static/robots.txt")
    def robots():
        return {"mine": True}

    answer, chalice_ran = door_answer(app, v2_event("GET", "/static/robots.txt", {}))
    assert chalice_ran
    assert json.loads(answer["body"]) == {"mine": True}


def test_the_keep_warm_payload_is_answered_before_chalice(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static, keep_warm={})
    handler = toolkit.lambda_handler(app)
    long_way = app(toolkit.keep_warm_event(), lambda_context())

    app.current_request = NOT_CHALICE
    answer = handler(toolkit.keep_warm_event(), lambda_context())

    assert app.current_request is NOT_CHALICE
    assert answer["statusCode"] == long_way["statusCode"] == 200
    assert answer["headers"] == long_way["headers"]
    assert answer["multiValueHeaders"] == long_way["multiValueHeaders"]
    assert json.loads(answer["body"]).keys() == json.loads(long_way["body"]).keys()
    assert json.loads(answer["body"])["warm"] is True


def test_without_a_keep_warm_schedule_the_payload_still_goes_to_chalice(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static)
    app.current_request = NOT_CHALICE
    toolkit.lambda_handler(app)(toolkit.keep_warm_event(), lambda_context())
    assert app.current_request is not NOT_CHALICE


def test_a_route_or_middleware_added_after_the_first_request_is_honoured(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static)
    event = v2_event("GET", "/static/robots.txt", {})
    assert door_answer(app, event)[1] is False  # answered by the door, path remembered

    @app.route("/static/robots.txt")
    def robots():
        return {"mine": True}

    answer, chalice_ran = door_answer(app, event)
    assert chalice_ran
    assert json.loads(answer["body"]) == {"mine": True}

    seen = []

    @app.middleware("http")
    def count(event, get_response):
        seen.append(event.path)
        return get_response(event)

    assert door_answer(app, v2_event("GET", "/static/css/site.css", {}))[1] is True
    assert seen == ["/static/{p0}/{p1}"]


def test_chalice_cors_on_the_static_routes_goes_through_chalice(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app = Chalice(app_name="cors")
    app.api.cors = True  # Chalice's own CORS, set before the routes: Chalice adds its headers
    cm = toolkit.ContentManager(str(templates), str(static), app)
    cm.register_static_routes()
    event = v2_event("GET", "/static/css/site.css", {})
    answer, chalice_ran = door_answer(app, event)
    assert chalice_ran
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"


def test_a_remembered_route_hands_every_request_its_own_path_parameters(tmp_path):
    app = Chalice(app_name="params")

    @app.route("/items/{item}")
    def item(item):
        app.current_request.uri_params["item"] += "!"  # a view that writes to them
        return {"item": app.current_request.uri_params["item"]}

    handler = toolkit.lambda_handler(app)
    answers = [
        json.loads(handler(v2_event("GET", "/items/a%20b"), lambda_context())["body"])
        for _ in range(3)
    ]
    assert answers == [{"item": "a b!"}] * 3


# == REST API (v1) events: the resource and path parameters API Gateway matched ============

SECRET = "s3cr3t-origin-value-0123456789"


def rest_event(app, method, path, headers=None):
    """The REST proxy event API Gateway sends: header names as the client spelt them, path
    parameters decoded, ``requestContext.path`` with the stage.
    """
    event = make_event(app, method, path, headers)
    if event["pathParameters"]:
        event["pathParameters"] = {k: unquote(v) for k, v in event["pathParameters"].items()}
    return event


def rest_door_answer(app, event, **options):
    """What ``lambda_handler(app)`` answers a REST event, and whether Chalice ran for it."""
    app.current_request = NOT_CHALICE
    answer = toolkit.lambda_handler(app, **options)(copy.deepcopy(event), lambda_context())
    return answer, app.current_request is not NOT_CHALICE


def assert_same_rest(app, event):
    answer, chalice_ran = rest_door_answer(app, event)
    assert not chalice_ran, "the static door let Chalice answer"
    expected = app(copy.deepcopy(event), lambda_context())
    assert list(answer) == list(expected)  # Chalice's keys, in Chalice's order
    assert list(answer["headers"].items()) == list(expected["headers"].items())
    assert answer == expected
    json.dumps(answer)
    return answer


def capitalised(headers):
    return {"-".join(part.capitalize() for part in k.split("-")): v for k, v in headers.items()}


@pytest.mark.parametrize(
    ("path", "headers"),
    [*STATIC_CASES, pytest.param("/static/css%2Fsite.css", {}, id="encoded-slash")],
)
def test_a_static_file_through_a_rest_event_is_answered_as_the_route_answers(
    static_app, path, headers
):
    app, _cm = static_app
    answer = assert_same_rest(app, rest_event(app, "GET", path, capitalised(headers)))
    assert answer["statusCode"] in (200, 206, 416)


@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
def test_a_static_304_through_a_rest_event(static_app, gzip):
    app, _cm = static_app
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    first, _ = rest_door_answer(app, rest_event(app, "GET", "/static/css/site.css", headers))
    etag = first["headers"]["ETag"]
    assert etag.endswith('-gz"') == gzip
    event = rest_event(app, "GET", "/static/css/site.css", {**headers, "If-None-Match": etag})
    answer = assert_same_rest(app, event)
    assert answer["statusCode"] == 304
    assert answer["body"] == ""


@pytest.mark.parametrize("headers", [{}, {"Accept-Encoding": "gzip"}], ids=["plain", "gzip"])
def test_head_through_a_rest_event_gets_the_headers_of_get(static_app, headers):
    app, _cm = static_app
    answer = assert_same_rest(app, rest_event(app, "HEAD", "/static/css/site.css", headers))
    assert answer["statusCode"] == 200
    assert answer["body"] == ""
    assert "isBase64Encoded" not in answer  # a text body, as Chalice marshals it
    assert ("Content-Encoding" in answer["headers"]) == bool(headers)


def test_a_fingerprinted_url_through_a_rest_event(static_app):
    app, cm = static_app
    answer = assert_same_rest(app, rest_event(app, "GET", cm.static_url("css/site.css")))
    assert answer["headers"]["Cache-Control"] == toolkit.IMMUTABLE_CACHE_CONTROL


def test_a_rest_event_behind_a_base_path_mapping(static_app):
    """A custom domain's base path leads ``path``; the resource is what API Gateway matched."""
    app, _cm = static_app
    event = rest_event(app, "GET", "/static/css/site.css")
    event["path"] = "/v1/static/css/site.css"
    assert assert_same_rest(app, event)["statusCode"] == 200


@pytest.mark.parametrize(
    "headers",
    [{"Cookie": "session=garbage; a=b"}, {"Origin": "https://evil.example", "Cookie": "a=b"}],
    ids=["cookie", "cross-site"],
)
def test_a_static_rest_request_with_cookies_is_answered_as_the_route_answers(static_app, headers):
    app, _cm = static_app
    answer = assert_same_rest(app, rest_event(app, "GET", "/static/css/site.css", headers))
    assert answer["statusCode"] == 200
    assert "Set-Cookie" not in answer["headers"] and not answer["multiValueHeaders"]


def test_a_header_spelt_twice_in_a_rest_event_counts_as_chalice_counts_it(static_app):
    app, _cm = static_app
    event = rest_event(app, "GET", "/static/css/site.css", {"Accept-Encoding": "gzip"})
    event["headers"]["accept-encoding"] = "identity"
    assert "Content-Encoding" not in assert_same_rest(app, event)["headers"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "fields"),
    [
        ("GET", "/static/missing.css", {}, {}),
        ("GET", "/static/img/pixel.png", {"Accept": "image/webp,*/*"}, {}),
        ("GET", "/static/css/site.css", {"Content-Type": "text/plain"}, {}),
        ("POST", "/static/css/site.css", {}, {}),
        ("GET", "/static/css/%2e%2e/robots.txt", {}, {}),
        ("GET", "/static/css/..%2Frobots.txt", {}, {}),
        ("GET", "/static/s%2569te.css", {}, {}),
        ("GET", "/page/static", {}, {}),
        ("GET", "/static/css/site.css", {}, {"pathParameters": None}),
        ("GET", "/static/css/site.css", {}, {"headers": {"Accept": 1}}),
    ],
    ids=[
        "not-in-index",
        "negotiated-image",
        "body-type",
        "post",
        "encoded-dots",
        "dots-and-slash",
        "percent-in-name",
        "other-route",
        "no-path-parameters",
        "header-not-text",
    ],
)
def test_what_the_index_cannot_answer_from_a_rest_event_goes_through_chalice(
    static_app, method, path, headers, fields
):
    app, _cm = static_app
    event = {**rest_event(app, method, path, headers), **fields}
    answer, chalice_ran = rest_door_answer(app, event)
    assert chalice_ran
    assert answer == app(copy.deepcopy(event), lambda_context())


def test_a_rest_event_without_headers_is_answered_as_the_route_answers(static_app):
    app, _cm = static_app
    event = {**rest_event(app, "GET", "/static/css/site.css"), "headers": None}
    assert assert_same_rest(app, event)["statusCode"] == 200


def test_an_app_with_a_middleware_of_its_own_sees_static_rest_requests(static_app):
    app, _cm = static_app
    seen = []

    @app.middleware("http")
    def count(event, get_response):
        seen.append(event.path)
        return get_response(event)

    answer, chalice_ran = rest_door_answer(app, rest_event(app, "GET", "/static/css/site.css"))
    assert chalice_ran
    assert seen == ["/static/{p0}/{p1}"]
    assert answer["statusCode"] == 200


def test_a_middleware_added_after_the_first_rest_request_is_honoured(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static)
    event = rest_event(app, "GET", "/static/robots.txt")
    assert rest_door_answer(app, event)[1] is False  # answered by the door

    seen = []

    @app.middleware("http")
    def count(event, get_response):
        seen.append(event.path)
        return get_response(event)

    assert rest_door_answer(app, event)[1] is True
    assert seen == ["/static/{p0}"]


def test_a_route_of_the_app_under_the_prefix_wins_for_a_rest_event(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static)

    @app.route("/static/robots.txt")
    def robots():
        return {"mine": True}

    answer, chalice_ran = rest_door_answer(app, rest_event(app, "GET", "/static/robots.txt"))
    assert chalice_ran
    assert json.loads(answer["body"]) == {"mine": True}


def test_chalice_cors_on_the_static_routes_takes_a_rest_event_through_chalice(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app = Chalice(app_name="cors")
    app.api.cors = True
    cm = toolkit.ContentManager(str(templates), str(static), app)
    cm.register_static_routes()
    answer, chalice_ran = rest_door_answer(app, rest_event(app, "GET", "/static/css/site.css"))
    assert chalice_ran
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"


def test_the_keep_warm_payload_is_not_a_static_request(tmp_path):
    templates, static = write_site(tmp_path / "site")
    app, _cm, _cf = build_app(templates, static)
    answer, chalice_ran = rest_door_answer(app, toolkit.keep_warm_event())
    assert chalice_ran
    assert answer == app(toolkit.keep_warm_event(), lambda_context())


def test_a_static_rest_request_with_the_origin_secret_is_answered_without_it(static_app):
    app, _cm = static_app
    headers = {"Accept-Encoding": "gzip", "X-Origin-Verify": SECRET}
    event = rest_event(app, "GET", "/static/css/site.css", headers)
    before = copy.deepcopy(event)
    app.current_request = NOT_CHALICE
    answer = toolkit.lambda_handler(app, origin_secret=SECRET)(event, lambda_context())
    assert app.current_request is NOT_CHALICE
    assert event == before
    without = rest_event(app, "GET", "/static/css/site.css", {"Accept-Encoding": "gzip"})
    assert answer == app(without, lambda_context())


@pytest.mark.parametrize("value", [None, SECRET[:-1] + "!"], ids=["absent", "wrong"])
def test_a_static_rest_request_without_the_origin_secret_is_refused(static_app, value):
    app, _cm = static_app
    headers = {} if value is None else {"X-Origin-Verify": value}
    event = rest_event(app, "GET", "/static/css/site.css", headers)
    answer, chalice_ran = rest_door_answer(app, event, origin_secret=SECRET)
    assert not chalice_ran
    assert answer["statusCode"] == 403
