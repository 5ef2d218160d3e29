"""The CloudFront model itself (bench/cdn_model.py), rule by rule, against a scripted origin."""

from __future__ import annotations

import gzip
from email.utils import formatdate

import pytest

import cli

from cdn_model import (
    CloudFrontModel,
    Delivered,
    OriginTimeoutError,
    SimClock,
    behaviours_from_template,
    error_ttl,
)

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


# ---------------------------------------------------------------------------
# Stale copies (RFC 5861), errors and time-outs as CloudFront handles them (issue 26)
# ---------------------------------------------------------------------------


class FailingOrigin(ScriptedOrigin):
    """A scripted origin that answers ``failure`` (a status, or "timeout") while it is set."""

    failure: int | str | None = None

    def __call__(self, url, headers):
        if self.failure == "timeout":
            self.requests.append((url, headers))
            raise OriginTimeoutError(url)
        if self.failure is not None:
            self.requests.append((url, headers))
            return Delivered(self.failure, {"content-type": "text/html"}, b"failed", 0.05)
        return super().__call__(url, headers)


def page_origin(cache_control: str) -> FailingOrigin:
    headers = {"Content-Type": HTML, "ETag": '"v1"', "Cache-Control": cache_control}
    return FailingOrigin(200, headers, b"hi")


def test_s_maxage_wins_over_max_age_at_the_edge():
    """RFC 9111 §5.2.2.10: a shared cache ignores max-age when s-maxage is present."""
    clock = SimClock()
    cdn = model(page_origin("max-age=600, s-maxage=0"), clock)
    sources = []
    for _ in range(3):
        clock.now += 1
        sources.append(cdn.request("/", BROWSER).source)
    assert sources == ["Miss", "RefreshHit", "RefreshHit"]


def test_stale_while_revalidate_answers_at_once_and_revalidates_in_the_background():
    """RFC 5861 §3's example: max-age=600, stale-while-revalidate=30."""
    clock = SimClock()
    origin = page_origin("max-age=600, stale-while-revalidate=30")
    cdn = model(origin, clock)
    assert cdn.request("/", BROWSER).source == "Miss"
    clock.now += 601  # stale, within the 30 s: served now, revalidated behind the viewer
    reply = cdn.request("/", BROWSER)
    assert (reply.source, reply.status, reply.waited, reply.content) == ("StaleHit", 200, 0, b"hi")
    assert origin.requests[-1][1]["if-none-match"] == '"v1"'
    assert cdn.origin_log[-1].background and cdn.origin_log[-1].status == 304
    clock.now += 1
    assert cdn.request("/", BROWSER).source == "Hit"  # the 304 made it fresh again
    clock.now += 600 + 31  # past the window: the viewer waits for the revalidation
    assert cdn.request("/", BROWSER).source == "RefreshHit"
    assert not cdn.origin_log[-1].background


def test_one_background_revalidation_per_object_at_a_time():
    """A revalidation that hangs holds no viewer, and no second one starts meanwhile."""
    clock = SimClock()
    origin = page_origin("max-age=0, s-maxage=0, stale-while-revalidate=3600")
    cdn = model(origin, clock)
    cdn.request("/", BROWSER)
    origin.failure = "timeout"
    timeout = cdn.behaviour_for("/").origin_timeout
    assert timeout == 10  # the template's page origin: one attempt of 10 s
    for _ in range(5):  # within the 10 s the first revalidation takes
        clock.now += 1.5
        reply = cdn.request("/", BROWSER)
        assert (reply.source, reply.status, reply.waited) == ("StaleHit", 200, 0)
    assert len(origin.requests) == 2  # the first fetch and one revalidation
    clock.now += 5
    cdn.request("/", BROWSER)
    assert len(origin.requests) == 3  # the first revalidation gave up: another one
    origin.failure = None
    cdn.request("/", BROWSER)  # (still within its time-out)
    clock.now += 10
    assert cdn.request("/", BROWSER).source == "StaleHit"  # a 304 refreshed it (s-maxage 0)
    assert cdn.origin_log[-1].status == 304


def test_stale_if_error_serves_the_expired_copy_within_its_window():
    """RFC 5861 §4's example: max-age=600, stale-if-error=1200."""
    clock = SimClock()
    origin = page_origin("max-age=600, stale-if-error=1200")
    cdn = model(origin, clock)
    cdn.request("/", BROWSER)
    origin.failure = 500
    clock.now += 900
    reply = cdn.request("/", BROWSER)
    assert (reply.source, reply.status, reply.content) == ("StaleIfError", 200, b"hi")
    assert reply.waited == 0.05  # after the origin's answer
    clock.now += 901  # 1,201 s after it became stale
    reply = cdn.request("/", BROWSER)
    assert (reply.source, reply.status) == ("Error", 500)


@pytest.mark.parametrize("failure", [500, 502, 503, 504, "timeout"])
def test_an_expired_object_is_served_when_the_origin_fails(failure):
    """The Developer Guide: an expired object in the edge cache is served on a 5xx (and a
    time-out counts as one), even without stale-if-error; the viewer waited for it."""
    clock = SimClock()
    origin = page_origin("no-cache")
    cdn = model(origin, clock)
    cdn.request("/", BROWSER)
    origin.failure = failure
    clock.now += 3600
    reply = cdn.request("/", BROWSER)
    assert (reply.source, reply.status, reply.content) == ("StaleIfError", 200, b"hi")
    assert reply.waited == (10 if failure == "timeout" else 0.05)
    # ErrorCachingMinTTL is 0 in the template: the next viewer asks the origin again.
    cdn.request("/", BROWSER)
    assert len(origin.requests) == 3


def test_error_caching_min_ttl_serves_the_expired_object_without_asking():
    template = cli.cloudfront_template()
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    config["CustomErrorResponses"] = []  # CloudFront's default: 10 s
    clock = SimClock()
    origin = page_origin("no-cache")
    cdn = CloudFrontModel(template, origin, clock)
    cdn.request("/", BROWSER)
    origin.failure = 503
    clock.now += 60
    assert cdn.request("/", BROWSER).source == "StaleIfError"
    clock.now += 9
    reply = cdn.request("/", BROWSER)
    assert (reply.source, reply.waited) == ("StaleIfError", 0)
    assert len(origin.requests) == 2
    clock.now += 2
    cdn.request("/", BROWSER)
    assert len(origin.requests) == 3


def test_a_4xx_goes_to_the_viewer_instead_of_the_expired_object():
    clock = SimClock()
    origin = page_origin("no-cache")
    cdn = model(origin, clock)
    cdn.request("/", BROWSER)
    origin.failure = 429  # throttled: not a 5xx
    clock.now += 1
    assert cdn.request("/", BROWSER).status == 429
    assert not cdn.cache  # the object is gone
    origin.failure = None
    assert cdn.request("/", BROWSER).source == "Miss"


@pytest.mark.parametrize(
    ("status", "cache_control", "min_ttls", "seconds"),
    [
        (404, None, {}, 10),  # always cached, for the default ErrorCachingMinTTL
        (404, "no-store", {}, 0),  # honoured for 404, 410, 414 and 501
        (410, "private", {}, 0),
        (501, "no-cache", {}, 0),
        (503, "no-store", {}, 10),  # ignored for every other code
        (500, "private, no-store", {}, 10),
        (403, None, {}, 0),  # cached only with max-age or s-maxage
        (403, "private, no-store", {}, 0),  # (the toolkit's CSRF refusal)
        (403, "max-age=60", {}, 60),
        (400, "s-maxage=5", {}, 10),  # the greater of the two
        (413, None, {}, 0),  # never cached (the toolkit's upload refusal)
        (429, None, {}, 0),
        (416, "max-age=60", {}, 0),
        (502, "max-age=999999999", {}, 31536000),  # at most MaxTTL
        (404, None, {404: 0}, 0),  # the template: ErrorCachingMinTTL 0
        (503, "s-maxage=30", {503: 0}, 30),
    ],
)
def test_which_errors_cloudfront_caches_and_how_long(status, cache_control, min_ttls, seconds):
    """ "Control how long CloudFront caches errors" and "HTTP 4xx and 5xx status codes that
    CloudFront caches", case by case."""
    headers = {"cache-control": cache_control} if cache_control else {}
    behaviour = behaviours_from_template(cli.cloudfront_template())[-1]
    assert error_ttl(status, headers, behaviour, min_ttls) == seconds


def test_a_cached_error_is_answered_without_the_origin():
    template = cli.cloudfront_template()
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    config["CustomErrorResponses"] = []
    clock = SimClock()
    origin = ScriptedOrigin(404, {"Content-Type": HTML}, b"no such page")
    cdn = CloudFrontModel(template, origin, clock)
    assert cdn.request("/gone", BROWSER).status == 404
    clock.now += 9
    reply = cdn.request("/gone", BROWSER)
    assert (reply.status, reply.source, len(origin.requests)) == (404, "Error", 1)
    clock.now += 2
    cdn.request("/gone", BROWSER)
    assert len(origin.requests) == 2
    # The template caches no error at all.
    cdn = model(origin, clock)
    cdn.request("/gone", BROWSER)
    cdn.request("/gone", BROWSER)
    assert len(origin.requests) == 4


def test_a_time_out_without_a_copy_is_a_504_after_the_origin_time_out():
    origin = page_origin("no-cache")
    origin.failure = "timeout"
    for path, waited in (("/", 10), ("/static/a.css", 90)):  # pages; static: 3 x 30 s
        reply = model(origin, SimClock()).request(path, BROWSER)
        assert (reply.status, reply.waited) == (504, waited)


def test_rarely_requested_objects_are_evicted():
    clock = SimClock()
    origin = page_origin("max-age=3600")
    cdn = CloudFrontModel(cli.cloudfront_template(), origin, clock, evict_after=600)
    cdn.request("/", BROWSER)
    clock.now += 500
    assert cdn.request("/", BROWSER).source == "Hit"
    clock.now += 601
    assert cdn.request("/", BROWSER).source == "Miss"
    assert cdn.evictions == 1


def test_a_revalidation_that_turns_personal_removes_the_shared_copy():
    clock = SimClock()
    origin = page_origin("max-age=0, stale-while-revalidate=60")
    cdn = model(origin, clock)
    cdn.request("/", BROWSER)
    origin.answer = (200, {"Content-Type": HTML, "Cache-Control": "private, no-store"}, b"me")
    clock.now += 1
    assert cdn.request("/", BROWSER).source == "StaleHit"  # what it held, one last time
    assert not cdn.cache
    clock.now += 1
    assert cdn.request("/", BROWSER).source == "Pass"
