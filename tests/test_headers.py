"""Pure HTTP header helpers: tables of good and garbage input, plus hypothesis."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalice_http_toolkit import (
    RANGE_NOT_SATISFIABLE,
    ByteRange,
    accepts_encoding,
    content_type_for,
    etag_matches,
    evaluate_preconditions,
    http_date,
    if_range_matches,
    parse_accept_header,
    parse_etags,
    parse_http_date,
    parse_range,
    quote_etag,
    sniff_content_type,
)

SUNDAY = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", SUNDAY),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", SUNDAY),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", SUNDAY),  # asctime
        ("  Sun, 06 Nov 1994 08:49:37 GMT  ", SUNDAY),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Tue, 01 Jan 1980 00:00:00 GMT", 315532800),
        ("Sun, 06 Nov 1994 08:49:60 GMT", SUNDAY + 22),  # leap second clamps to :59
        ("Sun, 06 Nov 1994 08:49:37 UTC", None),
        ("Sun, 31 Feb 1994 08:49:37 GMT", None),
        ("Sun, 06 Foo 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 25:49:37 GMT", None),
        ("1994-11-06T08:49:37Z", None),
        ("", None),
        (None, None),
        ("garbage", None),
        ("Sun, 06 Nov 1994 08:49:37 GMT" * 10, None),
        ("Sun, 6 Nov 1994 08:49:37 GMT", None),
    ],
)
def test_parse_http_date_table(value, expected):
    assert parse_http_date(value) == expected


def test_rfc850_two_digit_year_far_future_is_past():
    year = datetime.datetime.now(datetime.timezone.utc).year
    future = (year + 60) % 100
    parsed = parse_http_date(f"Monday, 01-Jan-{future:02d} 00:00:00 GMT")
    assert parsed is not None
    assert datetime.datetime.fromtimestamp(parsed, datetime.timezone.utc).year == year + 60 - 100


@given(st.integers(min_value=0, max_value=253402300799))
def test_http_date_round_trips(timestamp):
    text = http_date(timestamp)
    assert parse_http_date(text) == timestamp
    assert text.endswith(" GMT") and len(text) == 29


@given(st.text(max_size=80))
def test_parse_http_date_never_raises(text):
    result = parse_http_date(text)
    assert result is None or isinstance(result, int)


@pytest.mark.parametrize(
    ("header", "tags", "star"),
    [
        ('"abc"', {"abc"}, False),
        ('W/"abc"', {"abc"}, False),
        ('"a", W/"b" ,"c"', {"a", "b", "c"}, False),
        ("*", set(), True),
        # "*" is a wildcard only as the whole field (RFC 9110 §13.1.1)
        ('"a", *', {"a", "*"}, False),
        ("foo *bar", {"foo", "*bar"}, False),
        ('"nope"*', {"nope", "*"}, False),
        ("**", {"**"}, False),
        (" * ", set(), True),
        ("abc", {"abc"}, False),  # unquoted: lenient
        ('"unterminated', {"unterminated"}, False),
        ("", set(), False),
        (None, set(), False),
        (",,,", set(), False),
    ],
)
def test_parse_etags_table(header, tags, star):
    parsed = parse_etags(header)
    assert set(parsed.tags) == tags
    assert parsed.star is star


@pytest.mark.parametrize(
    ("header", "etag", "expected"),
    [
        ('"abc"', '"abc"', True),
        ('W/"abc"', '"abc"', True),  # CloudFront weakened it: weak comparison still matches
        ('"abc"', 'W/"abc"', True),
        ('"x", "abc"', '"abc"', True),
        ("*", '"abc"', True),
        ('"abd"', '"abc"', False),
        ("abc", '"abc"', True),
        ("", '"abc"', False),
        (None, '"abc"', False),
        ('"abc-gz"', '"abc"', False),
    ],
)
def test_etag_matches_table(header, etag, expected):
    assert etag_matches(header, etag) is expected


@pytest.mark.parametrize("bad", ['a"b', "a b", "a\x00"])
def test_quote_etag_rejects_invalid(bad):
    with pytest.raises(ValueError, match="invalid entity-tag"):
        quote_etag(bad)


def test_quote_etag():
    assert quote_etag("abc") == '"abc"'
    assert quote_etag("abc", weak=True) == 'W/"abc"'


@given(st.text(alphabet=st.characters(min_codepoint=0x23, max_codepoint=0x7E), min_size=1))
def test_quoted_etag_always_matches_itself(tag):
    assert etag_matches(quote_etag(tag), quote_etag(tag))
    assert etag_matches(quote_etag(tag, weak=True), quote_etag(tag))


@given(st.text(max_size=100))
def test_parse_etags_never_raises(text):
    parse_etags(text)


ETAG = '"v1"'
LAST = SUNDAY
LATER = http_date(SUNDAY + 60)
EARLIER = http_date(SUNDAY - 60)


@pytest.mark.parametrize(
    ("method", "headers", "last_modified", "expected"),
    [
        ("GET", {}, None, None),
        ("GET", {"if-none-match": ETAG}, None, 304),
        ("HEAD", {"if-none-match": ETAG}, None, 304),
        ("GET", {"if-none-match": 'W/"v1"'}, None, 304),
        ("GET", {"if-none-match": '"v0", "v1"'}, None, 304),
        ("GET", {"if-none-match": "*"}, None, 304),
        ("GET", {"if-none-match": '"v0"'}, None, None),
        ("POST", {"if-none-match": ETAG}, None, 412),  # only GET/HEAD get 304
        ("PUT", {"if-none-match": '"v0"'}, None, None),
        # If-None-Match takes precedence over If-Modified-Since.
        ("GET", {"if-none-match": '"v0"', "if-modified-since": LATER}, LAST, None),
        ("GET", {"if-none-match": ETAG, "if-modified-since": EARLIER}, LAST, 304),
        ("GET", {"if-modified-since": LATER}, LAST, 304),
        ("GET", {"if-modified-since": http_date(LAST)}, LAST, 304),
        ("GET", {"if-modified-since": EARLIER}, LAST, None),
        ("GET", {"if-modified-since": "Sunday, 06-Nov-94 08:50:37 GMT"}, LAST, 304),
        ("GET", {"if-modified-since": "Sun Nov  6 08:50:37 1994"}, LAST, 304),
        ("GET", {"if-modified-since": "not a date"}, LAST, None),  # invalid: ignored
        ("GET", {"if-modified-since": LATER}, None, None),  # nothing to compare with
        ("POST", {"if-modified-since": LATER}, LAST, None),  # ignored for POST
        ("PUT", {"if-match": '"v0"'}, None, 412),
        ("PUT", {"if-match": ETAG}, None, None),
        ("PUT", {"if-match": "*"}, None, None),
        ("PUT", {"if-unmodified-since": EARLIER}, LAST, 412),
        ("PUT", {"if-unmodified-since": LATER}, LAST, None),
    ],
)
def test_evaluate_preconditions_table(method, headers, last_modified, expected):
    assert evaluate_preconditions(method, headers, ETAG, last_modified) == expected


def test_if_match_needs_strong_comparison():
    assert evaluate_preconditions("PUT", {"if-match": 'W/"v1"'}, ETAG) == 412
    assert evaluate_preconditions("PUT", {"if-match": ETAG}, 'W/"v1"') == 412


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=0-", 10, ByteRange(0, 9)),
        ("bytes=2-5", 10, ByteRange(2, 5)),
        ("bytes=5-100", 10, ByteRange(5, 9)),
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-30", 10, ByteRange(0, 9)),
        ("bytes = 1 - 2", 10, ByteRange(1, 2)),
        ("BYTES=1-2", 10, ByteRange(1, 2)),
        ("bytes=10-", 10, RANGE_NOT_SATISFIABLE),
        ("bytes=10-20", 10, RANGE_NOT_SATISFIABLE),
        ("bytes=-0", 10, RANGE_NOT_SATISFIABLE),
        ("bytes=0-0", 0, RANGE_NOT_SATISFIABLE),
        ("bytes=5-2", 10, None),  # invalid: ignored
        ("bytes=0-1,3-4", 10, None),  # multi-range: served whole
        ("items=0-1", 10, None),
        ("bytes=", 10, None),
        ("bytes=-", 10, None),
        ("bytes=a-b", 10, None),
        ("0-1", 10, None),
        ("", 10, None),
        (None, 10, None),
    ],
)
def test_parse_range_table(header, size, expected):
    assert parse_range(header, size) == expected


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10_000))
def test_parse_range_result_is_inside_body(text, size):
    result = parse_range(text, size)
    if result is not None and result != RANGE_NOT_SATISFIABLE:
        assert 0 <= result.first <= result.last < size


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(1, 5000))
def test_parse_range_numeric(first, last, size):
    result = parse_range(f"bytes={first}-{last}", size)
    if last < first:
        assert result is None
    elif first >= size:
        assert result == RANGE_NOT_SATISFIABLE
    else:
        assert result == ByteRange(first, min(last, size - 1))


@pytest.mark.parametrize(
    ("value", "etag", "last_modified", "expected"),
    [
        (None, '"a"', None, True),
        ('"a"', '"a"', None, True),
        ('"b"', '"a"', None, False),
        ('W/"a"', '"a"', None, False),  # weak validators never satisfy If-Range
        ('"a"', 'W/"a"', None, False),
        (http_date(SUNDAY), None, SUNDAY, True),
        (http_date(SUNDAY + 1), None, SUNDAY, False),
        ("garbage", '"a"', SUNDAY, False),
    ],
)
def test_if_range_table(value, etag, last_modified, expected):
    assert if_range_matches(value, etag, last_modified) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("image/webp;q=0.9, image/jpeg;q=0.1", [("image/webp", 0.9), ("image/jpeg", 0.1)]),
        ("text/html , */* ; q=0.8", [("text/html", 1.0), ("*/*", 0.8)]),
        ("IMAGE/AVIF", [("image/avif", 1.0)]),
        ("a/b;level=1;q=0.5", [("a/b", 0.5)]),
        ("a/b;q=abc, c/d", [("c/d", 1.0)]),  # malformed q drops the element
        ("a/b;q=2", []),
        ("a/b;q=0", [("a/b", 0.0)]),
        (",,", []),
        ("", []),
        (None, []),
    ],
)
def test_parse_accept_header_table(header, expected):
    assert parse_accept_header(header) == expected


@given(st.text(max_size=200))
def test_parse_accept_header_never_raises(text):
    for token, quality in parse_accept_header(text):
        assert token == token.lower()
        assert 0.0 <= quality <= 1.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate, br", True),
        ("gzip;q=0.5", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*", True),
        ("*;q=0", False),
        ("br", False),
        ("identity", False),
        ("", False),
        (None, False),
    ],
)
def test_accepts_encoding_table(header, expected):
    assert accepts_encoding(header) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("site.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("a/b/page.HTM", "text/html; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("app.js.map", "application/json; charset=utf-8"),
        ("mod.wasm", "application/wasm"),
        ("font.woff", "font/woff"),
        ("font.woff2", "font/woff2"),
        ("favicon.ico", "image/x-icon"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("sitemap.xml", "application/xml; charset=utf-8"),
        ("site.webmanifest", "application/manifest+json; charset=utf-8"),
        ("photo.avif", "image/avif"),
        ("photo.webp", "image/webp"),
        ("photo.jpeg", "image/jpeg"),
        ("clip.mp4", "video/mp4"),
        ("unknown.qqq", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
        (".hidden", "application/octet-stream"),
    ],
)
def test_content_type_for_table(name, expected):
    assert content_type_for(name) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x1cftypavif", "image/avif"),
        (b"%PDF-1.7", "application/pdf"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b"", "application/octet-stream"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ],
)
def test_signature_sniffing_table(data, expected):
    assert sniff_content_type(data) == expected


def test_unknown_extension_is_sniffed_from_data():
    assert content_type_for("noext", b"%PDF-1.4") == "application/pdf"
