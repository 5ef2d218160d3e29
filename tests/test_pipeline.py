"""The response pipeline alone: method, validators, preconditions, Range, gzip, HEAD.

``answer_request`` knows nothing of Chalice; each row gives it a request and an
offer and checks the status, the headers that matter and whether the body was
built at all (a 304/412 must not build it).
"""

from __future__ import annotations

import gzip
from typing import Any, NamedTuple

import pytest

from chalice_http_toolkit import (
    COMPRESS_MIN_SIZE,
    LAMBDA_RESPONSE_LIMIT,
    Offer,
    answer_preconditions,
    answer_request,
    http_date,
)

BODY = ("pipeline " * 250).encode()  # 2,250 bytes of text: compressible
E, EGZ, OTHER = '"e1"', '"e1-gz"', '"other"'
LM = 1_700_000_000
TEXT = "text/plain; charset=utf-8"


class Row(NamedTuple):
    method: str
    validators: str  # "etag", "lm", "both", "none"
    request: dict[str, str]
    status: int
    built: bool
    etag: str | None = None  # the ETag the answer carries (None: absent)
    encoding: str | None = None  # Content-Encoding
    options: dict[str, Any] = {}
    content_type: str = TEXT


GZ = {"accept-encoding": "gzip, deflate, br"}
ROWS = {
    "plain GET": Row("GET", "etag", {}, 200, True, E),
    "GET gzip": Row("GET", "etag", GZ, 200, True, EGZ, "gzip"),
    "HEAD gzip": Row("HEAD", "etag", GZ, 200, True, EGZ, "gzip"),
    "gzip;q=0": Row("GET", "etag", {"accept-encoding": "gzip;q=0, *"}, 200, True, E),
    "INM identity": Row("GET", "etag", {"if-none-match": E}, 304, False, E),
    "INM gzip etag": Row("GET", "etag", {"if-none-match": EGZ}, 304, False, EGZ),
    "INM weak": Row("GET", "etag", {"if-none-match": "W/" + E}, 304, False, E),
    "INM list": Row("GET", "etag", {"if-none-match": f"{OTHER}, {E}"}, 304, False, E),
    "INM other": Row("GET", "etag", {"if-none-match": OTHER}, 200, True, E),
    "INM star": Row("GET", "etag", {"if-none-match": "*"}, 304, False, E),
    "INM star in a list": Row("GET", "etag", {"if-none-match": f"{OTHER}, *"}, 200, True, E),
    "HEAD INM": Row("HEAD", "etag", {"if-none-match": E}, 304, False, E),
    "POST INM": Row("POST", "etag", {"if-none-match": E}, 412, False, E),
    "POST INM other": Row("POST", "etag", {"if-none-match": OTHER}, 200, True, E),
    "IM identity": Row("GET", "etag", {"if-match": E}, 200, True, E),
    "IM gzip etag": Row("GET", "etag", {"if-match": EGZ}, 200, True, E),
    "IM other": Row("GET", "etag", {"if-match": OTHER}, 412, False, E),
    "IM weak": Row("GET", "etag", {"if-match": "W/" + E}, 412, False, E),  # strong comparison
    "IM star": Row("GET", "etag", {"if-match": "*"}, 200, True, E),
    "IM double star": Row("GET", "etag", {"if-match": "**"}, 412, False, E),
    "IMS equal": Row("GET", "lm", {"if-modified-since": http_date(LM)}, 304, False),
    "IMS later": Row("GET", "lm", {"if-modified-since": http_date(LM + 9)}, 304, False),
    "IMS earlier": Row("GET", "lm", {"if-modified-since": http_date(LM - 1)}, 200, True),
    "IMS garbage": Row("GET", "lm", {"if-modified-since": "yesterday"}, 200, True),
    "IMS on POST": Row("POST", "lm", {"if-modified-since": http_date(LM)}, 200, True),
    "IUS earlier": Row("GET", "lm", {"if-unmodified-since": http_date(LM - 1)}, 412, False),
    "IUS equal": Row("GET", "lm", {"if-unmodified-since": http_date(LM)}, 200, True),
    "INM beats IMS": Row(
        "GET", "both", {"if-none-match": OTHER, "if-modified-since": http_date(LM)}, 200, True, E
    ),
    "no validators": Row("GET", "none", {"if-none-match": "*"}, 200, True),
    "range": Row("GET", "etag", {"range": "bytes=0-9", **GZ}, 206, True, E),
    "range suffix": Row("GET", "etag", {"range": "bytes=-5"}, 206, True, E),
    "range unsatisfiable": Row("GET", "etag", {"range": "bytes=99999-"}, 416, True, E),
    "range multi (ignored)": Row("GET", "etag", {"range": "bytes=0-1,3-4"}, 200, True, E),
    "range If-Range match": Row("GET", "etag", {"range": "bytes=0-9", "if-range": E}, 206, True, E),
    "range If-Range stale": Row(
        "GET", "etag", {"range": "bytes=0-9", "if-range": OTHER}, 200, True, E
    ),
    # HEAD builds no body when no gzip is to be decided (issue 24): a large body is not made.
    "range on HEAD": Row("HEAD", "etag", {"range": "bytes=0-9"}, 200, False, E),
    "range with INM": Row("GET", "etag", {"range": "bytes=0-9", "if-none-match": E}, 304, False, E),
    "404 ignores INM": Row(
        "GET", "etag", {"if-none-match": E}, 404, True, E, options={"status": 404}
    ),
    "private": Row(
        "GET", "etag", {"if-none-match": E, **GZ}, 200, True, None, "gzip", {"private": True}
    ),
    "compress off": Row(
        "GET", "etag", {"if-none-match": EGZ, **GZ}, 200, True, E, None, {"compress": False}
    ),
    "incompressible": Row(
        "GET", "etag", {"if-none-match": EGZ, **GZ}, 200, True, E, content_type="image/png"
    ),
}


def offer_for(row: Row, built: list[int], body: bytes = BODY) -> Offer:
    def make() -> bytes:
        built.append(1)
        return body

    return Offer(
        row.content_type,
        make,
        etag=E if row.validators in ("etag", "both") else None,
        last_modified=LM if row.validators in ("lm", "both") else None,
        allow_ranges=True,
    )


@pytest.mark.parametrize("name", ROWS)
def test_pipeline_table(name):
    row = ROWS[name]
    built: list[int] = []
    options = {"cache_control": "no-cache", **row.options}
    answer = answer_request(row.method, row.request, offer_for(row, built), **options)
    assert answer.status == row.status
    assert answer.built is row.built and bool(built) is row.built
    assert answer.headers.get("ETag") == row.etag
    assert answer.headers.get("Content-Encoding") == row.encoding
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    if row.validators in ("lm", "both") and not row.options.get("private"):
        assert answer.headers["Last-Modified"] == http_date(LM)
    if answer.status in (304, 412):
        assert answer.body == ""
        assert "Content-Type" not in answer.headers
    if row.method == "HEAD":
        assert answer.body == ""
    if answer.status == 206:
        first, _, rest = answer.headers["Content-Range"].removeprefix("bytes ").partition("-")
        last = int(rest.partition("/")[0])
        assert answer.body == BODY[int(first) : last + 1]
    if answer.status == 200 and row.method == "GET":
        body = answer.body
        assert (gzip.decompress(body) if row.encoding else body) == BODY


@pytest.mark.parametrize("name", ROWS)
def test_the_304_carries_the_caching_headers_of_its_200(name):
    row = ROWS[name]
    options = {"cache_control": "max-age=60", "vary": ("Accept",), **row.options}
    answer = answer_request(row.method, row.request, offer_for(row, []), **options)
    if answer.status != 304:
        return
    plain = {key: value for key, value in row.request.items() if not key.startswith("if-")}
    full = answer_request(row.method, plain, offer_for(row, []), **options)
    for field in ("Cache-Control", "Vary", "Last-Modified", "X-Content-Type-Options"):
        assert answer.headers.get(field) == full.headers.get(field)


@pytest.mark.parametrize("name", [name for name in ROWS if ROWS[name].method == "GET"])
def test_head_gets_the_headers_of_get_and_no_body(name):
    row = ROWS[name]
    get = answer_request("GET", row.request, offer_for(row, []), **row.options)
    head = answer_request("HEAD", row.request, offer_for(row, []), **row.options)
    if get.status == 206 or get.status == 416:
        return  # ranges are for GET
    assert head.status == get.status and head.headers == get.headers and head.body == ""


def test_gzip_is_one_rule_a_compressible_type_and_a_body_of_at_least_the_minimum():
    small = b"a" * (COMPRESS_MIN_SIZE - 1)
    for body, content_type, expected in [
        (small, TEXT, None),
        (b"a" * COMPRESS_MIN_SIZE, TEXT, "gzip"),
        (b"a" * 4000, "text/css; charset=utf-8", "gzip"),
        (b"a" * 4000, "image/svg+xml", "gzip"),
        (b"a" * 4000, "image/png", None),
        (bytes(range(256)) * 16, "application/octet-stream", None),
    ]:
        answer = answer_request(
            "GET", GZ, Offer(content_type, lambda body=body: body), cache_control=None
        )
        assert answer.headers.get("Content-Encoding") == expected, (len(body), content_type)


def test_text_is_measured_in_utf8_bytes_for_the_gzip_rule():
    text = "é" * (COMPRESS_MIN_SIZE // 2 + 10)  # fewer characters than bytes
    answer = answer_request("GET", GZ, Offer(TEXT, lambda: text))
    assert answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(answer.body).decode() == text


def test_a_cached_gzip_form_is_used_and_never_made_for_a_small_body():
    calls: list[str] = []

    def gzip_body() -> bytes:
        calls.append("gzip")
        return gzip.compress(BODY)

    offer = Offer(TEXT, lambda: BODY, etag=E, gzip_body=gzip_body)
    assert answer_request("GET", GZ, offer).headers["Content-Encoding"] == "gzip"
    small = Offer(TEXT, lambda: b"tiny", etag=E, gzip_body=gzip_body)
    assert "Content-Encoding" not in answer_request("GET", GZ, small).headers
    assert calls == ["gzip"]


def test_a_body_over_the_lambda_limit_is_a_500_except_for_head():
    big = b"\x00" * (LAMBDA_RESPONSE_LIMIT + 1)
    offer = Offer("application/octet-stream", lambda: big, etag=E)
    assert answer_request("GET", {}, offer).status == 500
    head = answer_request("HEAD", {}, offer)
    assert head.status == 200 and head.body == "" and head.headers["ETag"] == E


def test_a_type_known_only_from_the_body_is_not_needed_for_a_304():
    built: list[int] = []

    def describe(body: bytes) -> tuple[str, dict[str, str]]:
        return "application/octet-stream", {"Content-Disposition": "attachment"}

    offer = Offer(None, lambda: built.append(1) or BODY, etag=E, describe=describe)
    for field in (E, EGZ):  # until the body is seen, its gzip ETag may have been handed out
        answer = answer_request("GET", {"if-none-match": field, **GZ}, offer)
        assert answer.status == 304 and not built
    full = answer_request("GET", GZ, offer)
    assert full.headers["Content-Disposition"] == "attachment"
    assert "Content-Encoding" not in full.headers and "Vary" not in full.headers


def test_answer_preconditions_never_builds_the_body():
    offer = Offer("image/webp", lambda: pytest.fail("built"), etag=E)
    assert answer_preconditions("GET", {}, offer) is None
    answered = answer_preconditions("GET", {"if-none-match": E}, offer, vary=("Accept",))
    assert answered is not None and answered.status == 304 and not answered.built
    assert answered.headers["Vary"] == "Accept"


def test_vary_is_built_one_way_from_the_options_and_the_callers_headers():
    offer = Offer(TEXT, lambda: BODY, etag=E)
    answer = answer_request(
        "GET",
        {},
        offer,
        vary=("Accept",),
        headers={"vary": "cookie, Accept"},
        fixed_headers={"Vary": "Origin"},
    )
    assert answer.headers["Vary"] == "Origin, Accept, cookie, Accept-Encoding"
    not_modified = answer_request(
        "GET",
        {"if-none-match": E},
        offer,
        vary=("Accept",),
        headers={"vary": "cookie, Accept"},
        fixed_headers={"Vary": "Origin"},
    )
    assert not_modified.headers["Vary"] == answer.headers["Vary"]
