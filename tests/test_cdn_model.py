"""The CloudFront model itself (bench/cdn_model.py), rule by rule, against a scripted origin."""

from __future__ import annotations

import gzip
from email.utils import formatdate

import pytest

import cli

from cdn_model import CloudFrontModel, Delivered, SimClock, behaviours_from_template

HTML = "text/html; charset=utf-8"
BIG = b"<p>" + b"x" * 2000 + b"</p>"


class ScriptedOrigin:
    """Answers from a table; records what CloudFront sent."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.answer = (status, headers, body)
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, headers: dict[str, str]) -> Delivered:
        self.requests.append((url, headers))
        status, answer_headers, body = self.answer
        out = {name.lower(): value for name, value in answer_headers.items()}
        if status == 200 and "etag" in out and headers.get("if-none-match") == out["etag"]:
            return Delivered(304, {k: v for k, v in out.items() if k != "etag"}, b"")
        out["content-length"] = str(len(body))
        return Delivered(status, out, body)


def model(origin: ScriptedOrigin, clock: SimClock, function=None) -> CloudFrontModel:
    return CloudFrontModel(cli.cloudfront_template(), origin, clock, function)


BROWSER = {"Accept": "text/html", "Accept-Encoding": "gzip, deflate, br"}
GZIP_ONLY = {"Accept": "text/html", "Accept-Encoding": "gzip"}


def test_behaviours_come_from_the_template():
    static, default = behaviours_from_template(cli.cloudfront_template(static_prefix="/assets"))
    assert static.path_pattern == "assets/*" and default.path_pattern is None
    assert static.matches("/assets/css/a.css") and not static.matches("/static/a.css")
    assert default.matches("/anything")
    assert (default.default_ttl, static.default_ttl, default.max_ttl) == (0, 86400, 31536000)
    assert default.key_headers == static.key_headers == ("accept",)
    assert default.query_strings and not static.query_strings
    assert "host" not in default.forwarded_headers and "origin" in default.forwarded_headers


def test_max_age_is_a_hit_until_it_expires_then_a_304_refreshes_it():
    clock = SimClock()
    origin = ScriptedOrigin(
        200, {"Content-Type": HTML, "ETag": '"v1"', "Cache-Control": "max-age=60"}, b"hi"
    )
    cdn = model(origin, clock)
    assert cdn.request("/", BROWSER).source == "Miss"
    clock.now += 59
    assert cdn.request("/", BROWSER).source == "Hit"
    clock.now += 2
    reply = cdn.request("/", BROWSER)
    assert (reply.source, reply.status, reply.body) == ("RefreshHit", 200, b"hi")
    assert origin.requests[-1][1]["if-none-match"] == '"v1"'  # the stored validator
    clock.now += 59
    assert cdn.request("/", BROWSER).source == "Hit"  # the 304 made it fresh again
    assert len(origin.requests) == 2


@pytest.mark.parametrize(
    ("cache_control", "expected"),
    [
        ("no-cache", ["Miss", "RefreshHit", "RefreshHit"]),
        ("no-store", ["Pass", "Pass", "Pass"]),
        ("private, max-age=600", ["Pass", "Pass", "Pass"]),
        ("max-age=0", ["Miss", "RefreshHit", "RefreshHit"]),
        ("max-age=0, s-maxage=600", ["Miss", "Hit", "Hit"]),
        (None, ["Miss", "RefreshHit", "RefreshHit"]),  # pages: DefaultTTL 0
    ],
)
def test_freshness_from_cache_control(cache_control, expected):
    clock = SimClock()
    headers = {"Content-Type": HTML, "ETag": '"v1"'}
    if cache_control:
        headers["Cache-Control"] = cache_control
    cdn = model(ScriptedOrigin(200, headers, b"hi"), clock)
    sources = []
    for _ in range(3):
        clock.now += 1
        sources.append(cdn.request("/", BROWSER).source)
    assert sources == expected


def test_expires_counts_against_the_date_and_is_clamped_to_max_ttl():
    clock = SimClock()
    date = formatdate(clock.now, usegmt=True)
    expires = formatdate(clock.now + 120, usegmt=True)
    headers = {"Content-Type": "text/css", "Date": date, "Expires": expires}
    cdn = model(ScriptedOrigin(200, headers, b"a{}"), clock)
    cdn.request("/static/a.css", BROWSER)
    clock.now += 119
    assert cdn.request("/static/a.css", BROWSER).source == "Hit"
    clock.now += 2
    assert cdn.request("/static/a.css", BROWSER).source == "Miss"  # no validators: a refetch

    years = {"Content-Type": "text/css", "Cache-Control": "max-age=999999999"}
    cdn = model(ScriptedOrigin(200, years, b"a{}"), clock)
    cdn.request("/static/b.css", BROWSER)
    clock.now += 31536001
    assert cdn.request("/static/b.css", BROWSER).source == "Miss"


@pytest.mark.parametrize(
    ("etag", "served"),
    [('"abc"', 'W/"abc"'), ('W/"abc"', 'W/"abc"'), ("abc", None)],
)
def test_compression_weakens_or_drops_the_etag(etag, served):
    origin = ScriptedOrigin(
        200, {"Content-Type": HTML, "ETag": etag, "Cache-Control": "no-cache"}, BIG
    )
    cdn = model(origin, SimClock())
    reply = cdn.request("/", GZIP_ONLY)
    assert reply.headers["content-encoding"] == "gzip"
    assert gzip.decompress(reply.body) == BIG == reply.content
    assert reply.headers.get("etag") == served
    again = cdn.request("/", GZIP_ONLY)  # revalidation sends the origin's own ETag
    assert origin.requests[-1][1]["if-none-match"] == etag
    assert again.source == "RefreshHit" and again.content == BIG


@pytest.mark.parametrize(
    ("content_type", "body", "accept_encoding", "compressed"),
    [
        (HTML, BIG, "br, gzip", "br"),
        (HTML, BIG, None, None),
        (HTML, b"x" * 999, "gzip", None),  # under 1,000 bytes
        (HTML, b"x" * 1000, "gzip", "gzip"),
        ("image/png", BIG, "gzip", None),  # not a type CloudFront compresses
        ("text/css", BIG, "deflate", None),
    ],
)
def test_what_cloudfront_compresses(content_type, body, accept_encoding, compressed):
    origin = ScriptedOrigin(200, {"Content-Type": content_type}, body)
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    reply = model(origin, SimClock()).request("/", headers)
    assert reply.headers.get("content-encoding") == compressed
    assert reply.content == body


def test_no_compression_without_content_length_or_of_encoded_bodies():
    class NoLength(ScriptedOrigin):
        def __call__(self, url, headers):
            answer = super().__call__(url, headers)
            return answer._replace(
                headers={k: v for k, v in answer.headers.items() if k != "content-length"}
            )

    reply = model(NoLength(200, {"Content-Type": HTML}, BIG), SimClock()).request("/", GZIP_ONLY)
    assert "content-encoding" not in reply.headers
    zipped = gzip.compress(BIG)
    origin = ScriptedOrigin(200, {"Content-Type": HTML, "Content-Encoding": "gzip"}, zipped)
    reply = model(origin, SimClock()).request("/", GZIP_ONLY)
    assert reply.headers["content-encoding"] == "gzip" and reply.body == zipped


def test_encoding_class_and_accept_are_in_the_key_and_reach_the_origin():
    origin = ScriptedOrigin(
        200, {"Content-Type": "text/css", "Cache-Control": "max-age=60"}, b"a{}"
    )
    cdn = model(origin, SimClock())
    cdn.request("/static/a.css", {"Accept-Encoding": "gzip, deflate, br", "Host": "example.org"})
    cdn.request("/static/a.css", {"Accept-Encoding": "br, gzip"})  # the same class
    cdn.request("/static/a.css", {"Accept-Encoding": "gzip"})
    cdn.request("/static/a.css?v=2", {})  # static: query strings are not in the key
    cdn.request("/static/a.css", {"Accept": "text/css"})
    sent = [headers for _, headers in origin.requests]
    assert sent == [
        {"accept-encoding": "br,gzip"},
        {"accept-encoding": "gzip"},
        {},
        {"accept": "text/css"},
    ]
    assert [url for url, _ in origin.requests] == ["/static/a.css"] * 4


def test_viewer_validators_are_answered_by_the_cache():
    origin = ScriptedOrigin(
        200, {"Content-Type": HTML, "ETag": '"v1"', "Cache-Control": "max-age=60"}, b"hi"
    )
    cdn = model(origin, SimClock())
    cdn.request("/", BROWSER)
    reply = cdn.request("/", {**BROWSER, "If-None-Match": 'W/"v1", "other"'})
    assert (reply.status, reply.body, reply.headers["etag"]) == (304, b"", '"v1"')
    assert cdn.request("/", {**BROWSER, "If-None-Match": '"v0"'}).status == 200
    assert all("if-none-match" not in headers for _, headers in origin.requests)


def test_if_none_match_is_ignored_without_an_etag():
    modified = "Sat, 01 Jan 2000 00:00:00 GMT"
    headers = {"Content-Type": HTML, "Last-Modified": modified, "Cache-Control": "max-age=60"}
    cdn = model(ScriptedOrigin(200, headers, b"hi"), SimClock())
    cdn.request("/", BROWSER)
    assert cdn.request("/", {**BROWSER, "If-None-Match": "*"}).status == 200
    assert cdn.request("/", {**BROWSER, "If-Modified-Since": modified}).status == 304


def test_the_viewer_function_rewrites_the_request_before_the_key():
    calls = []

    def function(uri, headers):
        calls.append(uri)
        return {**headers, "accept": "*/*"}

    origin = ScriptedOrigin(200, {"Content-Type": HTML, "Cache-Control": "max-age=60"}, b"hi")
    cdn = model(origin, SimClock(), function)
    cdn.request("/?a=1", {"Accept": "text/html"})
    cdn.request("/?a=1", {"Accept": "application/json"})  # the same key after the function
    cdn.request("/?a=2", {"Accept": "text/html"})  # pages: the query string is in the key
    assert calls == ["/", "/", "/"]
    assert origin.requests == [("/?a=1", {"accept": "*/*"}), ("/?a=2", {"accept": "*/*"})]
