"""chalice-http-toolkit: a Flask-like website toolkit for AWS Chalice.

Homepage: https://gitlab.com/chalice-http-toolkit/chalice-http-toolkit
License: Apache-2.0 (the LICENSE file there; https://www.apache.org/licenses/LICENSE-2.0)

Copy this one file into your project's ``chalicelib/`` and get Jinja2 templates,
static files, binary assets, image negotiation and a CloudFront cache layer
(content-based validators, 304 Not Modified, Cache-Control) on AWS Lambda.

The module is cut into sections by layer, each using only the sections before it:
pure HTTP (the bounded cache, header helpers, cookies, form parsing, signed
sessions, the CSRF origin check); resources (libmagic and content types, the static
index, templates, images); the exchange (one object per request: who is asking, and
whether the answer is personal); the response pipeline (which answers a request
knowing nothing of Chalice); the Chalice adapter (gateway responses, routes and
URLs, the parts of a ``ContentManager``, error pages, the middleware, the
``ContentManager`` facade, ``CloudFront``); and the add-ons (keep-warm, the front
doors' ``lambda_handler`` for Function URLs, HTTP APIs and ALBs, background tasks).
Jinja2, Pillow, python-magic and botocore are imported lazily, so a cold start pays
only for what it uses.
"""

from __future__ import annotations

import base64
import binascii
import collections
import collections.abc
import datetime
import functools
import itertools
import json
import logging
import marshal
import os
import posixpath
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn, Union
from urllib.parse import parse_qsl, unquote, unquote_plus  # loaded by chalice already

from chalice.app import CaseInsensitiveMapping, ChaliceUnhandledError, Response

__version__ = "1.0.0"

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "DEFAULT_IMAGE_MAX_PIXELS",
    "DEFAULT_IMAGE_QUALITY",
    "DEFAULT_IMAGE_WIDTHS",
    "DEFAULT_SECURITY_HEADERS",
    "DEFAULT_STATIC_CACHE_BYTES",
    "EDGE_STALE_IF_ERROR",
    "EDGE_STALE_WHILE_REVALIDATE",
    "FORM_CONTENT_TYPES",
    "FORM_PAGE_CONTENT_TYPES",
    "IMAGE_ACCEPT_ANY",
    "IMAGE_ACCEPT_AVIF",
    "IMAGE_ACCEPT_WEBP",
    "IMAGE_DECODE_MAX_BYTES",
    "IMAGE_ENCODE_MAX_PIXELS",
    "IMAGE_FORMATS",
    "KEEP_WARM_FUNCTION_ENV",
    "LAMBDA_RESPONSE_LIMIT",
    "ORIGIN_SECRET_ENV",
    "ORIGIN_SECRET_HEADER",
    "PREPARED_FILE",
    "PRIVATE_CACHE_CONTROL",
    "SESSION_COOKIE_LIMIT",
    "SQS_MESSAGE_LIMIT",
    "TASKS_MODE_ENV",
    "WRITABLE_IMAGE_FORMATS",
    "Answer",
    "BoundedCache",
    "CloudFront",
    "ContentManager",
    "FormData",
    "FormError",
    "FormLimits",
    "HTTPError",
    "ImageCache",
    "ImageVariant",
    "MissingFieldError",
    "MultiValues",
    "Offer",
    "RequestGlobals",
    "ResponseTooLargeError",
    "ResponseWithBinary",
    "Session",
    "SessionTooLargeError",
    "StaticFile",
    "StaticImages",
    "StaticIndex",
    "TaskBatchError",
    "TaskQueueError",
    "TaskingController",
    "TaskingControllerFactory",
    "TemplateNotFoundError",
    "UploadedFile",
    "abort",
    "accepts_encoding",
    "answer_preconditions",
    "answer_request",
    "content_type_for",
    "cross_origin_refusal",
    "csrf_exempt",
    "delete_cookie",
    "edge_cache_control",
    "etag_matches",
    "evaluate_preconditions",
    "ex_multipart",
    "http_date",
    "if_range_matches",
    "image_format_preferences",
    "install_gateway_support",
    "is_keep_warm_event",
    "keep_warm_event",
    "lambda_handler",
    "load_libmagic",
    "negotiate_image_format",
    "normalise_image_accept",
    "parse_accept_header",
    "parse_cookie_header",
    "parse_etags",
    "parse_form",
    "parse_http_date",
    "parse_range",
    "prepare_deployment",
    "pure",
    "quote_etag",
    "register_keep_warm",
    "set_cookie",
    "sniff_content_type",
    "stable_digest",
    "task_mode",
]

logger = logging.getLogger("chalice_http_toolkit")

#: Lambda's synchronous response payload limit (bytes of the whole JSON response).
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024

#: ``Cache-Control`` for a static URL that carries the file's content hash.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

#: Bodies smaller than this are not worth compressing.
COMPRESS_MIN_SIZE = 1024


class _LazyPattern:
    """A regular expression compiled on first use, so a cold start pays only for those it uses.

    After the first use its methods are plain attributes (the compiled pattern's own).
    """

    def __init__(self, source: str, flags: int = 0) -> None:
        self._source = (source, flags)

    def __getattr__(self, name: str) -> Any:
        compiled = re.compile(*self._source)
        for method in ("search", "match", "fullmatch", "finditer"):
            setattr(self, method, getattr(compiled, method))
        return getattr(compiled, name)


def _on_lambda() -> bool:
    """Whether this process runs on AWS Lambda (its runtime sets the function's name)."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def _blake2b() -> Any:
    """A 128-bit blake2b hasher: ``hashlib.blake2b``, imported from where hashlib takes it.

    hashlib prefers CPython's built-in blake2 to OpenSSL's; importing hashlib itself
    loads OpenSSL (milliseconds of a cold start) for nothing.
    """
    try:  # (``import … as``: ``from _blake2 import`` costs 0.5 µs a call, this 0.05)
        import _blake2 as blake2
    except ImportError:  # a Python without CPython's module
        import hashlib as blake2
    return blake2.blake2b(digest_size=16)


def _digest(*parts: bytes) -> str:
    """Hex digest of ``parts``: blake2b, 128 bits, identical in every process."""
    hasher = _blake2b()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


# ---------------------------------------------------------------------------
# Bounded caches: one primitive, bounded by the memory Python holds
# ---------------------------------------------------------------------------

#: What :meth:`BoundedCache.get` returns for a key it does not hold.
_MISSING: Any = object()

#: Bytes an entry costs beyond its key and value: its slot and node in the ordered
#: dict, its cost record and the int holding it, with the dicts' spare capacity.
_ENTRY_OVERHEAD = 240

_HELD_DEPTH = 8


def _held_size(value: Any, depth: int = 0) -> int:
    """Bytes Python holds for ``value``: the object, and what its containers and slots hold.

    Shared objects are counted at every reference: an overestimate, never an under-.
    """
    size = sys.getsizeof(value)
    if depth >= _HELD_DEPTH:
        return size
    kind = type(value)
    if kind is str or kind is bytes or kind is int or value is None:
        return size
    if (
        kind is tuple
        or kind is list
        or kind is frozenset
        or kind is set
        or isinstance(value, tuple)
    ):
        return size + sum(_held_size(item, depth + 1) for item in value)
    if kind is dict:
        return size + sum(
            _held_size(key, depth + 1) + _held_size(item, depth + 1) for key, item in value.items()
        )
    for name in getattr(kind, "__slots__", ()):
        size += _held_size(getattr(value, name, None), depth + 1)
    return size


class BoundedCache:
    """A least-recently-used cache bounded by the bytes Python holds for it.

    An entry costs its key, its value (``sys.getsizeof``, containers and slots
    followed) and :data:`_ENTRY_OVERHEAD`; ``put(key, value, cost)`` may state
    the value's cost instead (e.g. room for a body made later). Every
    per-container cache of the toolkit is one of these: converted images,
    rendered pages, template ETags, ``static()`` URLs, sniffed types.
    ``hits``, ``misses`` and ``size`` tell how it is doing. Safe to share
    between threads (``chalice local`` serves each request on its own thread).
    A ``max_bytes`` of 0 stores nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"a cache size is a number of bytes >= 0, not {max_bytes!r}")
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        # OrderedDict: popping the oldest is O(1); a dict would rescan its deleted slots
        self._entries: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._costs: dict[Any, int] = {}
        self._lock = threading.Lock()
        #: ``peek(key, default=None)``: read without counting a use (C speed, for hot memos).
        self.peek = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any) -> Any:
        """The cached value (which may be ``None``), else the module's ``_MISSING`` sentinel."""
        # No lock: each OrderedDict operation is atomic under the GIL, and only
        # ``put`` changes what the size accounting depends on.
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            return value
        try:
            self._entries.move_to_end(key)  # now the most recently used
        except KeyError:  # evicted by another thread meanwhile: still the right value
            return value
        self.hits += 1
        return value

    def put(self, key: Any, value: Any, cost: int | None = None) -> None:
        """Store ``value`` under ``key``; ``cost`` (bytes) stands for the measured ``value``."""
        if not self.max_bytes:
            return
        total = (_held_size(value) if cost is None else cost) + _held_size(key) + _ENTRY_OVERHEAD
        if total > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, _MISSING)
            if previous is not _MISSING:
                self.size -= self._costs.pop(key)
            while self._entries and self.size + total > self.max_bytes:
                oldest, _ = self._entries.popitem(last=False)
                self.size -= self._costs.pop(oldest)
            self._entries[key] = value
            self._costs[key] = total
            self.size += total

    def __contains__(self, key: Any) -> bool:
        return key in self._entries

    def __getitem__(self, key: Any) -> Any:
        """The value under ``key`` (``KeyError`` if absent); not counted as a use."""
        return self._entries[key]

    def keys(self) -> list[Any]:
        """The keys, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries)

    def values(self) -> list[Any]:
        """The values, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries.values())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        with self._lock:
            self._entries.clear()
            self._costs.clear()
            self.size = 0


#: The bounded cache of converted images and rendered pages (the name 1.0 exported).
ImageCache = BoundedCache


# ---------------------------------------------------------------------------
# HTTP header helpers (pure: strings in, values out; no Chalice, no I/O)
# ---------------------------------------------------------------------------

_ETAG_FORBIDDEN = _LazyPattern('[\x00-\x20"\x7f]')


def quote_etag(tag: str, weak: bool = False) -> str:
    """Quote an opaque tag as an entity-tag (RFC 9110 §8.8.3).

    Raises ``ValueError`` for a tag that cannot be quoted (developer input is
    held to the grammar).

    >>> quote_etag('abc'), quote_etag('abc', weak=True)
    ('"abc"', 'W/"abc"')
    """
    if _ETAG_FORBIDDEN.search(tag):
        raise ValueError(f"invalid entity-tag characters in {tag!r}")
    return f'W/"{tag}"' if weak else f'"{tag}"'


class ETagList(collections.namedtuple("ETagList", "tags strong star")):
    """Opaque tags named by an ``If-None-Match``/``If-Match`` field."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    tags: frozenset[str]
    strong: frozenset[str]
    star: bool


_ETAG_ITEM = _LazyPattern(r'(W/)?"([^"]*)"|([^,\s"]+)')


def parse_etags(value: str | None) -> ETagList:
    """Parse an entity-tag list; lenient with garbage (RFC 9110 §13.1.2).

    Weak and strong tags are both collected in ``tags`` (the weak comparison
    set); ``strong`` holds only the strong ones. Commas inside quotes belong
    to the tag. Unquoted tokens are accepted as tags because some clients send
    them. ``star`` means the field is ``*`` alone (RFC 9110 §13.1.1: ``"*" /
    #entity-tag``): in ``foo *bar``, ``"a"*`` or ``**`` the star is no wildcard.

    >>> parse_etags('W/"a", "b"').tags == {'a', 'b'}
    True
    >>> parse_etags('*').star, parse_etags('"a"*').star
    (True, False)
    """
    if not value:
        return ETagList(frozenset(), frozenset(), False)
    if value.strip(" \t") == "*":
        return ETagList(frozenset(), frozenset(), True)
    tags: set[str] = set()
    strong: set[str] = set()
    for match in _ETAG_ITEM.finditer(value):
        weak, quoted, bare = match.groups()
        if quoted is not None:
            tags.add(quoted)
            if not weak:
                strong.add(quoted)
        else:
            tags.add(bare)
    return ETagList(frozenset(tags), frozenset(strong), False)


@functools.lru_cache(maxsize=1024)  # asked of every candidate of every conditional request
def _opaque(etag: str) -> str:
    """The opaque part of an entity-tag (``W/"x"`` and ``"x"`` give ``x``)."""
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def etag_matches(header: str | None, etag: str) -> bool:
    """Weak comparison of ``etag`` against an ``If-None-Match`` value.

    CloudFront turns a strong ETag into ``W/"…"`` when it compresses, and
    clients send that back, so weak comparison is what RFC 9110 §13.1.2
    prescribes for If-None-Match. ``*`` matches any current representation.
    """
    if not header:
        return False
    parsed = parse_etags(header)
    return parsed.star or _opaque(etag) in parsed.tags


_MONTHS = {
    name: index
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}

_IMF_FIXDATE = _LazyPattern(
    r"[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT", re.ASCII
)

_RFC850_DATE = _LazyPattern(
    r"[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT", re.ASCII
)

_ASCTIME_DATE = _LazyPattern(
    r"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})", re.ASCII
)

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc850_year(two_digits: int, now_year: int) -> int:
    """RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past."""
    year = now_year - now_year % 100 + two_digits
    if year > now_year + 50:
        year -= 100
    return year


def parse_http_date(value: str | None) -> int | None:
    """Parse an HTTP-date in any of the three formats to a POSIX timestamp.

    Accepts IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), the obsolete
    RFC 850 form (``Sunday, 06-Nov-94 08:49:37 GMT``) and asctime
    (``Sun Nov  6 08:49:37 1994``), per RFC 9110 §5.6.7. Anything else,
    including impossible dates, gives ``None`` so the caller ignores it.

    >>> parse_http_date('Sun, 06 Nov 1994 08:49:37 GMT')
    784111777
    >>> parse_http_date('yesterday') is None
    True
    """
    if not value or len(value) > 64:
        return None
    value = value.strip()
    match = _IMF_FIXDATE.fullmatch(value)
    if match:
        day, month, year, hour, minute, second = match.groups()
        year_number = int(year)
    else:
        match = _RFC850_DATE.fullmatch(value)
        if match:
            day, month, year, hour, minute, second = match.groups()
            year_number = _rfc850_year(int(year), datetime.datetime.now(datetime.timezone.utc).year)
        else:
            match = _ASCTIME_DATE.fullmatch(value)
            if not match:
                return None
            month, day, hour, minute, second, year = match.groups()
            year_number = int(year)
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    try:
        moment = datetime.datetime(
            year_number,
            month_number,
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),  # a leap second compares like :59
            tzinfo=datetime.timezone.utc,
        )
    except ValueError:
        return None
    return int(moment.timestamp())


def http_date(timestamp: float) -> str:
    """Format a POSIX timestamp as an IMF-fixdate (RFC 9110 §5.6.7).

    >>> http_date(784111777)
    'Sun, 06 Nov 1994 08:49:37 GMT'
    """
    moment = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.timezone.utc)
    return (
        f"{_WEEKDAYS[moment.weekday()]}, {moment.day:02d} {_MONTH_NAMES[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} GMT"
    )


def evaluate_preconditions(
    method: str,
    headers: Mapping[str, str],
    etag: str | None,
    last_modified: int | None = None,
) -> int | None:
    """Evaluate conditional request headers in RFC 9110 §13.2.2 order.

    ``headers`` is a mapping with lower-case names (Chalice's request headers
    are case-insensitive). Returns 304 or 412 when the request's conditions
    say so, else ``None`` (serve normally). If-None-Match takes precedence over
    If-Modified-Since; an invalid date is ignored; only GET and HEAD get 304.
    """
    return _evaluate_preconditions(method, headers, (etag,) if etag else (), last_modified)[0]


@functools.lru_cache(maxsize=512)
def _parsed_etags(value: str) -> ETagList:
    return parse_etags(value)


def _etag_list(value: str) -> ETagList:
    """:func:`parse_etags`, memoised for the short values clients repeat."""
    return _parsed_etags(value) if len(value) <= 512 else parse_etags(value)


def _none_match(field: str, etags: tuple[str, ...]) -> str | None:
    """The first of ``etags`` an ``If-None-Match`` ``field`` names, else ``None``.

    Weak comparison (RFC 9110 §13.1.2); ``*`` names the first, if there is one.
    """
    parsed = parse_etags(field)
    if parsed.star:
        return etags[0] if etags else None
    tags = parsed.tags
    for etag in etags:
        if _opaque(etag) in tags:
            return etag
    return None


# A pure function of the client's short field and the representation's ETags: asked of
# every revalidation, memoised for the fields clients repeat (bounded: 512 each).
_short_none_match = functools.lru_cache(maxsize=512)(_none_match)


def _evaluate_preconditions(
    method: str,
    headers: Mapping[str, str],
    etags: tuple[str, ...],
    last_modified: int | None,
) -> tuple[int | None, str | None]:
    """:func:`evaluate_preconditions` against every current ETag of a resource at once.

    ``etags`` lists the validators of the representations the resource has now
    (identity first, then e.g. its gzip form): a condition naming any of them
    names the resource as it is. Returns the status (or ``None``) and the ETag
    the answer carries: the one the client named, else the first.
    """
    current = etags[0] if etags else None
    if_match = headers.get("if-match")
    if if_match is not None:
        parsed = _etag_list(if_match)
        if not (parsed.star and etags) and not any(
            not etag.startswith("W/") and _opaque(etag) in parsed.strong for etag in etags
        ):
            return 412, current
    elif last_modified is not None:
        unmodified_since = parse_http_date(headers.get("if-unmodified-since"))
        if unmodified_since is not None and last_modified > unmodified_since:
            return 412, current
    safe = method in ("GET", "HEAD")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        named = (
            _short_none_match(if_none_match, etags)
            if len(if_none_match) <= 512
            else _none_match(if_none_match, etags)
        )
        return (None, None) if named is None else ((304 if safe else 412), named)
    if safe and last_modified is not None:
        modified_since = parse_http_date(headers.get("if-modified-since"))
        if modified_since is not None and last_modified <= modified_since:
            return 304, current
    return None, None


class ByteRange(collections.namedtuple("ByteRange", "first last")):
    """An inclusive byte range ``first``..``last`` of a representation."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    first: int
    last: int


#: Returned by :func:`parse_range` for a range no byte of the representation satisfies.
RANGE_NOT_SATISFIABLE = ByteRange(-1, -1)

_RANGE_SPEC = _LazyPattern(r"\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """Parse a single-range ``Range: bytes=…`` header against a body of ``size`` bytes.

    Returns the satisfiable range, :data:`RANGE_NOT_SATISFIABLE` (answer 416),
    or ``None`` to ignore the header and send the whole body: RFC 9110 §14.2
    lets a server ignore an invalid or multi-range request.

    >>> parse_range('bytes=0-0', 10)
    ByteRange(first=0, last=0)
    >>> parse_range('bytes=-3', 10)
    ByteRange(first=7, last=9)
    >>> parse_range('bytes=20-', 10) == RANGE_NOT_SATISFIABLE
    True
    """
    if not value or len(value) > 256:
        return None
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if not match:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return RANGE_NOT_SATISFIABLE
        return ByteRange(max(size - suffix, 0), size - 1)
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        return RANGE_NOT_SATISFIABLE
    return ByteRange(first, min(last, size - 1))


def if_range_matches(value: str | None, etag: str | None, last_modified: int | None) -> bool:
    """Whether an ``If-Range`` value still names the current representation (RFC 9110 §13.1.5).

    An entity-tag needs a strong match; a date must equal Last-Modified
    exactly. A missing header matches; garbage does not.
    """
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return (
            etag is not None
            and not value.startswith("W/")
            and not etag.startswith("W/")
            and value.strip('"') == _opaque(etag)
        )
    date = parse_http_date(value)
    return date is not None and last_modified is not None and date == last_modified


def parse_accept_header(value: str | None) -> list[tuple[str, float]]:
    """Parse ``Accept``-style fields into ``(token, q)`` pairs in field order.

    Tokens are lower-cased; parameters other than ``q`` are dropped; a
    malformed ``q`` drops that element (RFC 9110 §12.4.2 weights are 0..1
    with at most three decimals, leniently parsed).

    >>> parse_accept_header('image/webp;q=0.9, image/jpeg ; q=0.1')
    [('image/webp', 0.9), ('image/jpeg', 0.1)]
    """
    if not value:
        return []
    result = []
    for element in value.split(","):
        token, _, params = element.partition(";")
        token = token.strip().lower()
        if not token:
            continue
        quality = 1.0
        valid = True
        for param in params.split(";") if params else ():
            name, _, raw = param.partition("=")
            if name.strip().lower() != "q":
                continue
            try:
                quality = float(raw.strip())
            except ValueError:
                valid = False
                break
            if not 0.0 <= quality <= 1.0:
                valid = False
                break
        if valid:
            result.append((token, quality))
    return result


def accepts_encoding(value: str | None, coding: str = "gzip") -> bool:
    """Whether ``Accept-Encoding`` allows ``coding`` (RFC 9110 §12.5.3).

    ``gzip;q=0`` refuses it; ``*`` allows it unless it is named with q=0.
    No header means the server should send identity, so this returns False.

    >>> accepts_encoding('gzip, deflate, br'), accepts_encoding('gzip;q=0, *')
    (True, False)
    """
    if value is not None and len(value) <= 256:
        return _accepts_encoding_cached(value, coding)
    return _accepts_encoding(value, coding)


def _accepts_encoding(value: str | None, coding: str) -> bool:
    star = None
    aliases = {coding, "x-" + coding} if coding == "gzip" else {coding}
    for token, quality in parse_accept_header(value):
        if token in aliases:
            return quality > 0
        if token == "*":
            star = quality > 0
    return bool(star)


#: The few Accept-Encoding values browsers and CDNs send, memoised.
_accepts_encoding_cached = functools.lru_cache(maxsize=256)(_accepts_encoding)


def _gzip(data: bytes, level: int = 6) -> bytes:
    import zlib

    # A window no larger than the body (and a hash table to match) finds the same
    # matches as the default 32 KB window but is several times cheaper to set up.
    window = min(15, max(10, (len(data) - 1).bit_length()))
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + window, min(8, window - 6))  # gzip
    return compressor.compress(data) + compressor.flush()


def _gzip_if_smaller(body: str | bytes, level: int = 6) -> bytes | None:
    """The gzip form of a body of at least :data:`COMPRESS_MIN_SIZE` bytes, if it is smaller."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if len(data) < COMPRESS_MIN_SIZE:
        return None
    compressed = _gzip(data, level)
    return compressed if len(compressed) < len(data) else None


#: Headers ``ContentManager(security_headers=True)`` adds to every response: HSTS
#: (a year, subdomains), no referrer beyond the origin for cross-site requests, no
#: framing by other sites, and a CSP that allows the site's own resources only.
DEFAULT_SECURITY_HEADERS: Mapping[str, str] = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    # Inline styles are allowed (a template's style="..." works, and Chromium styles an
    # image opened directly inline); inline and foreign scripts are not.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
}


def _lower_case_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Request headers keyed by lower-case name, as a plain dict where possible.

    Chalice's ``CaseInsensitiveMapping`` keeps such a dict; reading it directly
    spares the lower-casing and the exception its ``get`` pays per absent header.
    """
    inner = getattr(headers, "_dict", None)
    return inner if type(inner) is dict else headers


#: ``Cache-Control`` of a response that read or wrote the session or set a cookie.
PRIVATE_CACHE_CONTROL = "private, no-store"

_UNSAFE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


def _sets_cookie(headers: Mapping[str, Any]) -> bool:
    """Whether response ``headers`` set a cookie, whatever the header name's case."""
    if _PLAIN_HEADER_NAMES.issuperset(headers):  # the toolkit's own answers, at C speed
        return False
    return "set-cookie" in map(str.lower, headers)


#: Header names that set no cookie, as the toolkit spells them.
_PLAIN_HEADER_NAMES = frozenset(
    (
        "Content-Type",
        "Cache-Control",
        "ETag",
        "Vary",
        "X-Content-Type-Options",
        "Last-Modified",
        "Content-Encoding",
        "Accept-Ranges",
        "Content-Range",
        "Content-Disposition",
        "Location",
        "Access-Control-Allow-Origin",
        *DEFAULT_SECURITY_HEADERS,
    )
)


def _header_key(headers: Mapping[str, Any], name: str) -> str | None:
    """The key under which ``headers`` (a response's plain dict) holds ``name``, any case."""
    if name in headers:
        return name
    lowered = name.lower()
    return next((key for key in headers if key.lower() == lowered), None)


def _make_private(headers: dict[str, Any]) -> None:
    """Turn a response's headers into a personal response's: no shared caching, no validators."""
    for name in ("Cache-Control", "ETag", "Last-Modified", "Expires"):
        key = _header_key(headers, name)
        if key is not None:
            del headers[key]
    headers["Cache-Control"] = PRIVATE_CACHE_CONTROL


# ---------------------------------------------------------------------------
# Cookies: RFC 6265 parsing and Set-Cookie headers
# ---------------------------------------------------------------------------

_COOKIE_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # an RFC 9110 token

_COOKIE_VALUE = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"  # cookie-octets

_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}

_COOKIE_DOMAIN = r"\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"

# Browsers cap a cookie's lifetime at 400 days (RFC 6265bis §5.6.2, Max-Age and Expires).
_COOKIE_MAX_AGE_LIMIT = 400 * 24 * 3600


def parse_cookie_header(value: str | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header: ``{name: value}``, lenient with garbage.

    RFC 6265 §5.4: pairs separated by ``;``; a pair without ``=`` or with an
    empty or non-token name is skipped, a value's surrounding double quotes
    are removed; the first pair of a name wins (the browser sends the most
    specific path first). Never raises.

    >>> parse_cookie_header('a=1; junk; b="two"; a=3; =x')
    {'a': '1', 'b': 'two'}
    """
    cookies: dict[str, str] = {}
    if not value:
        return cookies
    for pair in value.split(";"):
        name, equals, cookie_value = pair.partition("=")
        name = name.strip()
        if not equals or not re.fullmatch(_COOKIE_NAME, name) or name in cookies:
            continue
        cookie_value = cookie_value.strip()
        if len(cookie_value) >= 2 and cookie_value[0] == cookie_value[-1] == '"':
            cookie_value = cookie_value[1:-1]
        cookies[name] = cookie_value
    return cookies


def set_cookie(
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    path: str = "/",
    domain: str | None = None,
    secure: bool = True,
    httponly: bool = True,
    samesite: str | None = "Lax",
) -> Response:
    """Add a ``Set-Cookie`` header to ``response`` (any number per response); returns it.

    Secure, HttpOnly and SameSite=Lax by default. ``max_age`` in seconds (also
    sent as ``Expires``); ``None`` makes a session cookie. The value must be
    RFC 6265 cookie-octets (encode anything else, e.g. base64url): a bad name,
    value, path, domain or ``SameSite=None`` without ``secure`` raises
    ``ValueError``, so do a ``max_age`` beyond browsers' 400 days (or not a
    finite number) and what the ``__Secure-``/``__Host-`` name prefixes forbid
    (browsers drop such cookies silently). The response becomes
    ``Cache-Control: private, no-store``.
    """
    if not re.fullmatch(_COOKIE_NAME, name):
        raise ValueError(f"cookie name {name!r} is not an RFC 6265 token")
    if not re.fullmatch(_COOKIE_VALUE, value):
        raise ValueError(
            f"cookie value {value!r} has characters a cookie cannot carry "
            "(space, comma, semicolon, quote, backslash, non-ASCII): encode it first"
        )
    if domain is not None and (len(domain) > 253 or not re.fullmatch(_COOKIE_DOMAIN, domain)):
        raise ValueError(f"cookie domain {domain!r} is not a host name (e.g. example.com)")
    if path is not None and len(path) > 1024:
        raise ValueError("cookie path is over 1024 bytes: browsers ignore it")
    refusal = _cookie_prefix_refusal(name, secure=secure, path=path, domain=domain)
    if refusal is not None:
        raise ValueError(refusal)
    parts = [f"{name}={value}"]
    if max_age is not None:
        max_age = _checked_max_age(max_age, "max_age")
        parts.append(f"Expires={http_date(_now() + max(max_age, 0))}")
        parts.append(f"Max-Age={max_age}")
    for attribute, text in (("Domain", domain), ("Path", path)):
        if text is not None:
            if any(ch in text for ch in ";\r\n\0") or not text.isprintable():
                raise ValueError(f"cookie {attribute.lower()} {text!r} has invalid characters")
            parts.append(f"{attribute}={text}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        canonical = _SAMESITE.get(samesite.lower())
        if canonical is None:
            raise ValueError(f"samesite must be 'Lax', 'Strict', 'None' or None, not {samesite!r}")
        if canonical == "None" and not secure:
            raise ValueError("SameSite=None cookies must be secure (browsers reject them)")
        parts.append(f"SameSite={canonical}")
    headers = response.headers
    key = _header_key(headers, "Set-Cookie") or "Set-Cookie"
    existing = headers.get(key)
    cookies = existing if isinstance(existing, list) else ([existing] if existing else [])
    # A list-valued header becomes multiValueHeaders: one Set-Cookie line per cookie.
    headers[key] = [*cookies, "; ".join(parts)]
    _make_private(headers)
    return response


def _cookie_prefix_refusal(
    name: str, *, secure: bool, path: str | None, domain: str | None
) -> str | None:
    """Why browsers would drop a cookie of this name and attributes, or ``None``.

    RFC 6265bis §4.1.3 (matched in any case, as browsers do): a ``__Secure-``
    cookie must be ``Secure``; a ``__Host-`` cookie too, with ``Path=/`` and no
    ``Domain``.
    """
    lowered = name.lower()
    if lowered.startswith(("__secure-", "__host-")) and not secure:
        return f"cookie {name!r}: its name prefix needs secure=True (browsers drop it otherwise)"
    if lowered.startswith("__host-") and (domain is not None or path != "/"):
        return f"cookie {name!r}: a __Host- cookie needs path='/' and no domain"
    return None


def _checked_max_age(max_age: Any, what: str) -> int:
    """``max_age`` in whole seconds; not a finite number, or over 400 days: ``ValueError``."""
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, not {type(max_age).__name__}")
    if not -_COOKIE_MAX_AGE_LIMIT <= max_age <= _COOKIE_MAX_AGE_LIMIT:  # nan fails both
        raise ValueError(
            f"{what}={max_age!r}: browsers keep a cookie at most 400 days "
            f"({_COOKIE_MAX_AGE_LIMIT} s)"
        )
    return int(max_age)


def delete_cookie(
    response: Response, name: str, *, path: str = "/", domain: str | None = None
) -> Response:
    """Make the browser drop cookie ``name`` (same ``path`` and ``domain`` as set); returns it."""
    return set_cookie(response, name, "", max_age=0, path=path, domain=domain)


def _now() -> float:
    import time

    return time.time()


# ---------------------------------------------------------------------------
# Forms and uploads: urlencoded and multipart bodies, with limits
# ---------------------------------------------------------------------------


class FormError(ChaliceUnhandledError):
    """A request body that is not a form the toolkit will read: 400, or 413 when too large.

    Raised by :meth:`ContentManager.form` and :func:`ex_multipart`; the
    toolkit's middleware answers it with a short HTML page of that status.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class FormLimits:
    """Bounds on a form body (API Gateway takes 10 MB, Lambda 6 MB of request payload).

    ``max_bytes``: the decoded body; ``max_fields``: urlencoded fields or
    multipart parts; ``max_part_bytes``: one multipart part (a file or a field).
    """

    # Plain classes, not NamedTuples, here: they cost a cold start far less to define.
    __slots__ = ("max_bytes", "max_fields", "max_part_bytes")

    def __init__(
        self,
        max_bytes: int = 6 * 1024 * 1024,
        max_fields: int = 1000,
        max_part_bytes: int = 6 * 1024 * 1024,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_fields = max_fields
        self.max_part_bytes = max_part_bytes

    def __repr__(self) -> str:
        return (
            f"FormLimits(max_bytes={self.max_bytes}, max_fields={self.max_fields}, "
            f"max_part_bytes={self.max_part_bytes})"
        )


class UploadedFile:
    """A file of a ``multipart/form-data`` body: ``filename``, ``content_type``, ``data``."""

    __slots__ = ("content_type", "data", "filename")

    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename = filename
        self.content_type = content_type
        self.data = data

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UploadedFile):
            return NotImplemented
        return (self.filename, self.content_type, self.data) == (
            other.filename,
            other.content_type,
            other.data,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {self.size} bytes)"


class MultiValues(Mapping):
    """A read-only mapping of names to values that keeps repeated names (Werkzeug's MultiDict).

    ``form[name]`` and ``form.get(name)`` give the first value;
    ``form.getlist(name)`` all of them, in the order they were sent.
    """

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        self._lists: dict[str, list[Any]] = {}
        for name, value in pairs:
            self._lists.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> Any:
        return self._lists[name][0]

    def __iter__(self) -> Any:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def getlist(self, name: str) -> list[Any]:
        """Every value sent under ``name`` (an empty list when none)."""
        return list(self._lists.get(name, ()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({[(k, v) for k, vs in self._lists.items() for v in vs]!r})"


class MissingFieldError(FormError, KeyError):
    """``form["name"]`` for a field the request did not send: the client's error, a 400 page.

    Also a ``KeyError``, so ``form.get(name)``, ``name in form`` and code that
    catches ``KeyError`` work as with a dict (Werkzeug's ``BadRequestKeyError``).
    """

    def __init__(self, name: str, what: str = "field") -> None:
        super().__init__(400, f"The form has no {what} {name!r}.")
        self.name = name

    def __str__(self) -> str:
        return self.message


class FormData(MultiValues):
    """A request's form fields (``str`` values) and its uploaded files (``.files``).

    ``form["name"]`` for a field that was not sent raises :class:`MissingFieldError`
    (answered 400, as Flask does); ``form.get("name")`` gives ``None``.
    """

    def __init__(
        self,
        fields: Iterable[tuple[str, str]] = (),
        files: Iterable[tuple[str, UploadedFile]] = (),
    ) -> None:
        super().__init__(fields)
        #: Uploaded files by field name: ``form.files.get("photo")`` is an :class:`UploadedFile`.
        self.files = _FormFiles(files)

    def __getitem__(self, name: str) -> Any:
        values = self._lists.get(name)
        if not values:
            raise MissingFieldError(name)
        return values[0]


class _FormFiles(MultiValues):
    """A form's uploaded files: ``files["name"]`` for a file not sent is a 400 too."""

    def __getitem__(self, name: str) -> Any:
        values = self._lists.get(name)
        if not values:
            raise MissingFieldError(name, "file")
        return values[0]


# A multipart part: (name, filename, content_type, charset, data).
_Part = tuple[str, "str | None", "str | None", "str | None", bytes]

#: The form content types, for a form route's ``content_types=`` (Chalice answers others 415).
FORM_CONTENT_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data"]

#: For a view that answers GET with a form and POST with its result, as in Flask:
#: Chalice checks a route's ``content_types`` for every method and takes a request
#: without a Content-Type (every GET) as JSON, so ``FORM_CONTENT_TYPES`` alone
#: answers the GET 415. A JSON POST then reads an empty form (a missing field: 400).
FORM_PAGE_CONTENT_TYPES = [*FORM_CONTENT_TYPES, "application/json"]

# What a cross-site HTML form can send without a CORS preflight.
_FORM_TYPES = frozenset((*FORM_CONTENT_TYPES, "text/plain"))


def _media_type_and_options(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``text/html; charset=utf-8`` → ``("text/html", {"charset": "utf-8"})``; lenient."""
    if not content_type:
        return "", {}
    media_type, _, rest = content_type.partition(";")
    options: dict[str, str] = {}
    for match in re.finditer(_OPTION, rest):
        value = match.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        options.setdefault(match.group(1).lower(), value)
    return media_type.strip().lower(), options


# Patterns are compiled on first use (re's cache): a cold start pays only for what it uses.
_OPTION = r';?\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)'


def parse_form(body: bytes, content_type: str | None, limits: FormLimits | None = None) -> FormData:
    """Parse a form body: ``application/x-www-form-urlencoded`` or ``multipart/form-data``.

    Text is UTF-8 (a multipart part may name ASCII or Latin-1 instead, and no
    other codec); repeated names keep every value. Another content type gives an
    empty form (as Flask's ``request.form`` for JSON). A malformed body, another
    charset, or a NUL in a name, value or filename raises :class:`FormError`
    400, a body over ``limits`` :class:`FormError` 413.

    >>> parse_form(b"a=1&a=%C3%A9&b=", "application/x-www-form-urlencoded").getlist("a")
    ['1', 'é']
    """
    limits = limits or FormLimits()
    if len(body) > limits.max_bytes:
        raise FormError(413, f"The form is larger than {limits.max_bytes} bytes.")
    media_type, options = _media_type_and_options(content_type)
    if media_type == "application/x-www-form-urlencoded":
        pairs = _parse_urlencoded(body, limits)
        _refuse_nul(text for pair in pairs for text in pair)
        return FormData(pairs)
    if media_type == "multipart/form-data":
        fields: list[tuple[str, str]] = []
        files: list[tuple[str, UploadedFile]] = []
        for name, filename, content_type, charset, data in _multipart_parts(
            body, options.get("boundary"), limits
        ):
            if filename is not None:
                _refuse_nul((name, filename))
                content = content_type or "application/octet-stream"
                files.append((name, UploadedFile(filename, content, data)))
            else:
                fields.append((name, _decode_text(data, charset)))
                _refuse_nul(fields[-1])
        return FormData(fields, files)
    return FormData()


# What a part's charset may name (codecs' canonical names): aliases such as
# "latin1" or "us-ascii" pass; utf-7, unicode_escape or rot13 would let a client
# put lone surrogates and NULs into fields the app compares and echoes.
_FORM_CHARSETS = frozenset(("utf-8", "ascii", "iso8859-1"))


def _decode_text(data: bytes, charset: str | None) -> str:
    import codecs

    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        raise FormError(400, f"Unknown charset {charset!r} in the form.") from None
    if codec not in _FORM_CHARSETS:
        raise FormError(400, f"The form's charset {charset!r} is not UTF-8, ASCII or Latin-1.")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise FormError(400, f"A form field is not valid {charset or 'UTF-8'} text.") from None


def _refuse_nul(texts: Iterable[str]) -> None:
    """Raise :class:`FormError` 400 for a NUL in a form's names, values or filenames.

    (Strict UTF-8, ASCII and Latin-1 never give a lone surrogate.)
    """
    if any("\0" in text for text in texts):
        raise FormError(400, "The form holds a NUL character.")


def _parse_urlencoded(body: bytes, limits: FormLimits) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    if body.count(b"&") >= limits.max_fields:
        raise FormError(413, f"The form has more than {limits.max_fields} fields.")
    try:
        # Browsers percent-encode; a raw UTF-8 body (curl --data) is read as UTF-8 too.
        return parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict"
        )
    except UnicodeDecodeError:
        raise FormError(400, "The form is not valid UTF-8.") from None


def _multipart_parts(body: bytes, boundary: str | None, limits: FormLimits) -> list[_Part]:
    """The named parts of a ``multipart/form-data`` body (RFC 7578), by defnull's ``multipart``."""
    if not boundary:
        raise FormError(400, "The multipart form has no boundary.")
    if not (boundary.isascii() and boundary.isprintable()):  # RFC 2046 §5.1.1: ASCII only
        raise FormError(400, "The multipart form's boundary is not printable ASCII.")
    try:
        import multipart
    except ImportError:
        raise _multipart_missing() from None
    parts: list[_Part] = []
    try:
        parser = multipart.PushMultipartParser(
            boundary,
            content_length=len(body),
            max_segment_size=limits.max_part_bytes,
            max_segment_count=limits.max_fields,
        )
        segment = None
        chunks: list[bytes] = []
        for event in itertools.chain(parser.parse(body), parser.parse(b"")):
            if event is None:
                if segment is not None and segment.name is not None:
                    parts.append(
                        (
                            segment.name,
                            segment.filename,
                            segment.content_type,
                            segment.charset,
                            b"".join(chunks),
                        )
                    )
            elif isinstance(event, multipart.MultipartSegment):
                segment, chunks = event, []
            else:
                chunks.append(event)
    except multipart.ParserLimitReached as error:
        raise FormError(413, f"The multipart form is too large: {error}.") from None
    except multipart.MultipartError as error:
        raise FormError(400, f"The multipart form is malformed: {error}.") from None
    return parts


def _multipart_missing() -> FormError:
    """A 500 page that names what to install (outside Lambda; the log says it everywhere)."""
    hint = (
        "reading multipart/form-data needs the 'multipart' package: pip install multipart, "
        "and add multipart to requirements.txt (urlencoded forms need nothing)"
    )
    logger.error("form refused: %s", hint)
    if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:
        return FormError(500, "The site cannot read this form yet (see the function's log).")
    return FormError(500, hint[0].upper() + hint[1:] + ".")


# ---------------------------------------------------------------------------
# Sessions and flash: a signed, timestamped cookie (HMAC-SHA256)
# ---------------------------------------------------------------------------

#: Browsers keep a cookie whose name and value together are at most 4096 bytes (RFC 6265bis
#: §5.7; Chromium drops a larger one silently): the session cookie is counted that way.
SESSION_COOKIE_LIMIT = 4096

_SESSION_SALT = b"chalice-http-toolkit session v1"

_FLASHES_KEY = "_flashes"

_CSRF_KEY = "_csrf"


class SessionTooLargeError(ValueError):
    """The session would not fit in one cookie (about 4 KB)."""


class _SessionSigner:
    """Signs and verifies session cookies: ``payload.timestamp.signature`` (base64url).

    The signature is HMAC-SHA256 over ``payload.timestamp`` with a key derived
    from each secret; the newest secret signs, every one verifies (rotation). The
    keys are derived on first use: ``hmac`` loads OpenSSL, which a cold start whose
    first request has no session does not need.
    """

    def __init__(
        self, secret_keys: list[bytes], max_age: int, cookie_name: str = "session"
    ) -> None:
        self._secrets = secret_keys
        self._keys: list[bytes] | None = None
        self.max_age = max_age
        self.cookie_name = cookie_name

    @property
    def keys(self) -> list[bytes]:
        """The signing keys, newest first: HMAC-SHA256 of the salt under each secret."""
        if self._keys is None:
            import hmac

            self._keys = [hmac.digest(key, _SESSION_SALT, "sha256") for key in self._secrets]
        return self._keys

    def _signature(self, key: bytes, message: bytes) -> bytes:
        import hmac

        return hmac.digest(key, message, "sha256")

    @staticmethod
    def payload(data: Mapping[str, Any]) -> bytes:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=")

    def sign(self, payload: bytes, now: float) -> str:
        message = payload + b"." + str(int(now)).encode()
        signature = base64.urlsafe_b64encode(self._signature(self.keys[0], message)).rstrip(b"=")
        return (message + b"." + signature).decode("ascii")

    def size(self, payload: bytes) -> int:
        """The bytes browsers count for the cookie: its name and its value (RFC 6265bis §5.7)."""
        # The value: payload, a 10-digit timestamp, 32 bytes of signature in base64url.
        return len(self.cookie_name) + len(payload) + 1 + 10 + 1 + 43

    def verify(self, cookie: str, now: float) -> dict[str, Any] | None:
        """The session a cookie carries; ``None`` (and a log line) when it is not one of ours."""
        import hmac

        try:
            raw = cookie.encode("ascii")
        except UnicodeEncodeError:
            raw = b""
        message, _, signature_text = raw.rpartition(b".")
        payload, _, timestamp = message.partition(b".")
        try:
            signature = base64.urlsafe_b64decode(signature_text + b"=" * (-len(signature_text) % 4))
        except (binascii.Error, ValueError):
            signature = b""
        if not any(
            hmac.compare_digest(self._signature(key, message), signature) for key in self.keys
        ):
            logger.warning("session cookie refused: bad signature (tampered, or another key)")
            return None
        issued = int(timestamp) if timestamp.isdigit() else -1
        if issued < 0 or issued > now + 300:
            logger.warning("session cookie refused: bad timestamp")
            return None
        if now - issued > self.max_age:
            logger.info("session cookie expired %d s ago", now - issued - self.max_age)
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError):
            logger.warning("session cookie refused: signed but not JSON")
            return None
        if not isinstance(data, dict):
            logger.warning("session cookie refused: signed but not a JSON object")
            return None
        return data


class Session(collections.abc.MutableMapping):
    """A request's session: a dict of JSON values kept in a signed cookie.

    Changes are saved when the response leaves (``Set-Cookie``); a value that
    is not JSON raises ``TypeError``, a session that would not fit in a cookie
    :class:`SessionTooLargeError` (flashed messages aside: one that does not fit
    is dropped when the session is saved, with an error in the log). Mutating a
    nested value in place is not seen: set ``session.modified = True`` then.
    """

    def __init__(self, data: dict[str, Any], signer: _SessionSigner, new: bool) -> None:
        self._data = data
        self._signer = signer
        #: True when the request carried no valid session cookie.
        self.new = new
        #: True when the session must be saved (set by every change).
        self.modified = False

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        previous = self._data.get(key, _MISSING)
        self._data[key] = value
        try:
            self._check(flashes=False)
        except (TypeError, ValueError):
            if previous is _MISSING:
                del self._data[key]
            else:
                self._data[key] = previous
            raise
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self.modified = True

    def regenerate(self) -> None:
        """Start afresh for a login: every value goes, and a new CSRF token comes.

        Call it before storing who logged in: nothing planted before the login
        (a session cookie set by someone else in this browser, its CSRF token)
        survives it. It cannot revoke copies of older cookies (see docs/security.md).
        """
        import secrets

        self._data.clear()
        self._data[_CSRF_KEY] = secrets.token_urlsafe(32)
        self.modified = True

    def _check(self, flashes: bool = True) -> bytes:
        """The payload to sign; ``flashes=False`` leaves flashed messages out of the size check."""
        try:
            payload = self._signer.payload(self._data)
        except (TypeError, ValueError) as error:
            raise TypeError(f"session values must be JSON: {error}") from None
        data = self._data
        if not flashes and _FLASHES_KEY in data:
            data = {key: value for key, value in data.items() if key != _FLASHES_KEY}
        size = self._signer.size(payload if data is self._data else self._signer.payload(data))
        if size > SESSION_COOKIE_LIMIT:
            raise SessionTooLargeError(
                f"the session cookie would be {size} bytes (name and value); browsers keep at "
                f"most {SESSION_COOKIE_LIMIT}: keep less in it (an id, not the data)"
            )
        return payload

    def __repr__(self) -> str:
        return f"Session({self._data!r})"


def _fitted_session_payload(session: Session) -> bytes:
    """The payload to sign, without the flashed messages that would not fit (each logged).

    A flash is often built from what a visitor typed: the largest goes first, so
    the visitor gets the page without it rather than a 500.
    """
    while True:
        try:
            return session._check()
        except SessionTooLargeError as error:
            flashes = session._data.get(_FLASHES_KEY)
            if not isinstance(flashes, list) or not flashes:
                raise
            largest = max(range(len(flashes)), key=lambda index: len(json.dumps(flashes[index])))
            dropped = flashes.pop(largest)
            if not flashes:
                del session._data[_FLASHES_KEY]
            logger.error(
                "flash message dropped (%d characters): %s; flash short messages, never "
                "unbounded input",
                len(json.dumps(dropped)),
                error,
            )


#: How to make a secret key, in every error about one.
_MAKE_A_KEY = (
    'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))" '
    "and read it from an environment variable, never from the source"
)

# Words of the placeholders that tutorials and templates ship (compared without punctuation).
_PLACEHOLDER_KEY_WORDS = (
    "changeme",
    "changethis",
    "replaceme",
    "yoursecret",
    "secretkeyhere",
    "placeholder",
    "example",
    "insecure",
    "notsecret",
)


def _secret_keys(secret_key: str | bytes | Iterable[str | bytes] | None) -> list[bytes]:
    """The signing keys as bytes, newest first; a guessable one raises ``ValueError``.

    A key shorter than 32 characters, or with a placeholder's words
    (``changeme``, ``your-secret-key-here``…), can be found offline from one
    cookie; every key of a rotation list is checked.
    """
    if secret_key is None:
        return []
    keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
    out = []
    for number, key in enumerate(keys, 1):
        if not isinstance(key, (str, bytes)) or not key:
            raise ValueError("secret_key must be a non-empty string or a list of them")
        raw = key.encode("utf-8") if isinstance(key, str) else key
        what = "secret_key" if len(keys) == 1 else f"secret_key #{number}"
        words = re.sub(r"[^a-z0-9]", "", raw.decode("latin-1").lower())
        if len(key) < 32:
            raise ValueError(
                f"{what} is {len(key)} characters; it needs at least 32: {_MAKE_A_KEY}"
            )
        if any(word in words for word in _PLACEHOLDER_KEY_WORDS):
            raise ValueError(f"{what} looks like a placeholder, not a secret: {_MAKE_A_KEY}")
        out.append(raw)
    if not out:
        raise ValueError("secret_key must be a non-empty string or a list of them")
    return out


def _check_session_settings(cookie_name: str, max_age: Any, secure: bool) -> None:
    """Refuse session cookie settings browsers would not keep (``ContentManager`` calls it)."""
    if not isinstance(cookie_name, str) or not re.fullmatch(_COOKIE_NAME, cookie_name):
        raise ValueError(f"session_cookie {cookie_name!r} is not a cookie name")
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
        raise ValueError("session_max_age must be a positive number of seconds")
    if max_age > _COOKIE_MAX_AGE_LIMIT:
        raise ValueError(
            f"session_max_age={max_age}: browsers keep a cookie at most 400 days "
            f"({_COOKIE_MAX_AGE_LIMIT} s)"
        )
    refusal = _cookie_prefix_refusal(cookie_name, secure=secure, path="/", domain=None)
    if refusal is not None:
        raise ValueError(f"session_cookie: {refusal} (session_cookie_secure=False)")


# ---------------------------------------------------------------------------
# CSRF: Fetch Metadata and Origin (pure)
# ---------------------------------------------------------------------------

_CSRF_EXEMPT = "_chalice_http_toolkit_csrf_exempt"

#: The form field and the request header that carry :func:`csrf_token`'s value.
CSRF_FIELD = "csrf_token"

CSRF_HEADER = "x-csrf-token"


def csrf_exempt(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the view's POST/PUT/PATCH/DELETE skip the toolkit's CSRF checks.

    For webhooks and the like that authenticate their caller another way.
    """
    setattr(view, _CSRF_EXEMPT, True)
    return view


def _origin_of(value: str) -> str | None:
    """``https://Example.com:443/x`` → ``example.com:443``: the host of an origin, lower case."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    return rest.split("/", 1)[0].lower()


def cross_origin_refusal(
    method: str, headers: Mapping[str, str], trusted_origins: Iterable[str] = ()
) -> str | None:
    """Why a request is a cross-origin write to refuse, or ``None`` (Go's CrossOriginProtection).

    Safe methods pass. ``Sec-Fetch-Site: same-origin`` or ``none`` passes;
    otherwise an ``Origin`` that is trusted, or whose host is the request's
    (``X-Forwarded-Host``, set by the CloudFront function, else ``Host``),
    passes. A request with neither header is not from a browser and passes.
    ``headers`` have lower-case names.
    """
    if method.upper() not in _UNSAFE_METHODS:
        return None
    origin = headers.get("origin")
    trusted = {value.rstrip("/").lower() for value in trusted_origins}
    if origin is not None and origin.rstrip("/").lower() in trusted:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site.strip().lower() in ("same-origin", "none"):
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    if origin is None:
        return None
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    host = host.split(",")[0].strip().lower()
    origin_host = _origin_of(origin)
    if origin_host is not None and host and origin_host in (host, _default_port(host, origin)):
        return None
    return f"cross-origin request refused (Origin: {origin})"


def _default_port(host: str, origin: str) -> str:
    """``host`` with the origin scheme's default port, as an Origin may carry it."""
    port = "443" if origin.lower().startswith("https:") else "80"
    return host if ":" in host.rsplit("]", 1)[-1] else f"{host}:{port}"


def _constant_time_equal(a: str, b: str) -> bool:
    import hmac

    # Tokens are ASCII: anything else (a lone surrogate from a JSON escape) never matches.
    return a.isascii() and b.isascii() and hmac.compare_digest(a, b)


# ---------------------------------------------------------------------------
# libmagic loader: the bundled libmagic on Lambda, the system's elsewhere
# ---------------------------------------------------------------------------

_DEFAULT_LIBS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libs")

# libmagic's answers that name no type; the signature table may still know one.
_MAGIC_UNKNOWN = frozenset({"application/octet-stream", "application/x-empty", "inode/x-empty"})

# libmagic's names for formats ``MEDIA_TYPES`` names otherwise.
_MAGIC_ALIASES = {
    "application/x-gzip": "application/gzip",
    "audio/x-wav": "audio/wav",
    "image/vnd.microsoft.icon": "image/x-icon",
    "image/x-ms-bmp": "image/bmp",
    "text/xml": "application/xml",
}

# Bytes given to libmagic: every format's signature fits, and large bodies cost no more.
_MAGIC_PEEK = 64 * 1024

_magic_state: tuple[str, Any] | None = None  # (libs_dir, Magic or None): once per container


def load_libmagic(libs_dir: str | None = None) -> Any:
    """python-magic's ``Magic(mime=True)`` for sniffing, or ``None`` without libmagic.

    Loads ``<libs_dir>/<platform.machine()>/libmagic.so.1`` by absolute path before
    python-magic is imported, so its ``dlopen("libmagic.so.1")`` finds that library by
    SONAME, and only then passes ``<libs_dir>/magic.mgc`` (the database format is tied
    to the library's version). Without the directory python-magic uses the system
    libmagic, if any. ``libs_dir`` defaults to ``libs/`` beside this file
    (``chalicelib/libs``). Cached per container: call it with another directory
    before the first sniff. Every failure is logged.
    """
    global _magic_state
    wanted = _DEFAULT_LIBS_DIR if libs_dir is None else os.path.abspath(libs_dir)
    if _magic_state is None:
        _magic_state = (wanted, _open_libmagic(wanted))
    elif libs_dir is not None and _magic_state[0] != wanted:
        logger.warning(
            "libmagic: already set up from %s in this container; %s is not used",
            _magic_state[0],
            wanted,
        )
    return _magic_state[1]


def _preload_bundled_libmagic(libs_dir: str) -> Any:
    """``ctypes.CDLL`` of the bundled libmagic for this machine, or ``None`` (logged)."""
    import ctypes
    import platform

    if not os.path.isdir(libs_dir):
        logger.info("libmagic: no %s; using the system libmagic, if any", libs_dir)
        return None
    path = os.path.join(libs_dir, platform.machine(), "libmagic.so.1")
    if not os.path.isfile(path):
        logger.warning("libmagic: no %s; using the system libmagic, if any", path)
        return None
    try:
        return ctypes.CDLL(path)
    except OSError as error:  # damaged, another machine's, or libz.so.1 missing
        logger.warning(
            "libmagic: cannot load %s (%s); using the system libmagic, if any", path, error
        )
        return None


def _open_libmagic(libs_dir: str) -> Any:
    bundled = _preload_bundled_libmagic(libs_dir)
    try:
        import magic
    except ImportError as error:  # python-magic is missing, or it found no libmagic
        logger.warning(
            "libmagic: python-magic unavailable (%s); sniffing by signature table", error
        )
        return None
    magic_file = None
    if bundled is not None:
        database = os.path.join(libs_dir, "magic.mgc")
        if getattr(getattr(magic, "libmagic", None), "_handle", None) != bundled._handle:
            logger.warning(
                "libmagic: python-magic was imported before %s was loaded and uses another "
                "libmagic; not passing it %s",
                libs_dir,
                database,
            )
        elif not os.path.isfile(database):
            logger.warning("libmagic: no %s; using the library's default database", database)
        else:
            magic_file = database
    try:
        detector = magic.Magic(mime=True, magic_file=magic_file)
    except magic.MagicException as error:
        logger.warning(
            "libmagic: cannot load the database %s (%s); sniffing by signature table",
            magic_file or "(default)",
            error,
        )
        return None
    logger.info(
        "libmagic: %s library, database %s",
        "bundled" if magic_file else "system",
        magic_file or "(default)",
    )
    return detector


# ---------------------------------------------------------------------------
# Content types (the module's own table: the same answer on every machine)
# ---------------------------------------------------------------------------

#: Extension → media type for the types a website serves.
MEDIA_TYPES: dict[str, str] = {
    "apng": "image/apng",
    "atom": "application/atom+xml",
    "avif": "image/avif",
    "bmp": "image/bmp",
    "css": "text/css",
    "csv": "text/csv",
    "eot": "application/vnd.ms-fontobject",
    "flac": "audio/flac",
    "geojson": "application/geo+json",
    "gif": "image/gif",
    "gz": "application/gzip",
    "htm": "text/html",
    "html": "text/html",
    "ico": "image/x-icon",
    "ics": "text/calendar",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "js": "text/javascript",
    "json": "application/json",
    "jsonld": "application/ld+json",
    "m4a": "audio/mp4",
    "m4v": "video/mp4",
    "map": "application/json",
    "md": "text/markdown",
    "mjs": "text/javascript",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
    "oga": "audio/ogg",
    "ogg": "audio/ogg",
    "ogv": "video/ogg",
    "otf": "font/otf",
    "pdf": "application/pdf",
    "png": "image/png",
    "rss": "application/rss+xml",
    "svg": "image/svg+xml",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "ttf": "font/ttf",
    "txt": "text/plain",
    "vtt": "text/vtt",
    "wasm": "application/wasm",
    "wav": "audio/wav",
    "weba": "audio/webm",
    "webm": "video/webm",
    "webmanifest": "application/manifest+json",
    "webp": "image/webp",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "xhtml": "application/xhtml+xml",
    "xml": "application/xml",
    "xsl": "application/xml",
    "zip": "application/zip",
}

_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/geo+json",
        "application/manifest+json",
        "application/xml",
        "application/xhtml+xml",
        "application/atom+xml",
        "application/rss+xml",
        "application/javascript",
        "image/svg+xml",
    }
)

_COMPRESSIBLE_BINARY_TYPES = frozenset(
    {
        "application/wasm",
        "font/ttf",
        "font/otf",
        "application/vnd.ms-fontobject",
        "image/x-icon",
        "image/bmp",
    }
)

#: Leading bytes → media type, for bodies whose name says nothing.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x00asm", "application/wasm"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)

#: Types a browser runs or renders as a document on the site's origin.
_ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "text/xml",
        "text/xsl",
        "application/xml",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
    }
)


def _is_active_type(media_type: str) -> bool:
    """Whether bytes of this type would run (script) or render as a document (HTML, XML, SVG)."""
    media_type = media_type.partition(";")[0].strip().lower()
    return media_type in _ACTIVE_TYPES or media_type.endswith("+xml")


def _is_text_type(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in _TEXT_APPLICATION_TYPES


def _with_charset(media_type: str) -> str:
    return f"{media_type}; charset=utf-8" if _is_text_type(media_type) else media_type


@functools.lru_cache(maxsize=256)
def _is_compressible(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return (
        _is_text_type(media_type)
        or media_type in _COMPRESSIBLE_BINARY_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def sniff_content_type(data: bytes) -> str:
    """Guess a media type from leading bytes; ``application/octet-stream`` when unknown.

    python-magic decides when libmagic loads (:func:`load_libmagic`), else the
    module's signature table, which also answers what libmagic cannot name.
    """
    return (_magic_media_type(data) if data else None) or _signature_media_type(data)


def _signature_media_type(data: bytes) -> str:
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1"):
            return "image/heic"
        return "video/mp4"
    head = data[:512].lstrip()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096]:
        return "image/svg+xml"
    return "application/octet-stream"


def content_type_for(filename: str, data: bytes | None = None) -> str:
    """``Content-Type`` for ``filename``: by extension, else sniffed from ``data``.

    Text types carry ``charset=utf-8``. Never fails: an unknown type is
    ``application/octet-stream``.

    >>> content_type_for('css/site.css')
    'text/css; charset=utf-8'
    """
    extension = filename.rpartition(".")[2].lower() if "." in filename.rpartition("/")[2] else ""
    media_type = MEDIA_TYPES.get(extension)
    if media_type is None:
        # The signature table only: a file gets the same type with or without libmagic.
        media_type = _signature_media_type(data) if data is not None else "application/octet-stream"
        if _is_active_type(media_type):  # bytes never make themselves a document or a script
            media_type = "application/octet-stream"
    return _with_charset(media_type)


def _magic_media_type(data: bytes) -> str | None:
    """libmagic's type for ``data`` in this module's names; ``None`` when it names none."""
    detector = load_libmagic()
    if detector is None:
        return None
    import magic

    try:
        answer = detector.from_buffer(data[:_MAGIC_PEEK])
    except magic.MagicException as error:
        logger.warning("libmagic: cannot identify %d bytes (%s)", len(data), error)
        return None
    media_type = answer.partition(";")[0].strip().lower()
    if media_type in _MAGIC_UNKNOWN or "/" not in media_type:
        return None
    if media_type == "text/plain" or media_type.startswith("text/x-"):
        # Generic text (or a guess at a programming language): a signature is more specific.
        known = _signature_media_type(data)
        return "text/plain" if known == "application/octet-stream" else known
    return _MAGIC_ALIASES.get(media_type, media_type)


# ---------------------------------------------------------------------------
# Static index: scanned once per container, hashed lazily, looked up by dict
# ---------------------------------------------------------------------------

_FINGERPRINTED_NAME = _LazyPattern(r"(?P<stem>.+)\.(?P<hash>[0-9a-f]{12})(?P<ext>\.[^./]+)?")

#: Bytes of static file bodies (and their gzip forms) one container keeps in memory,
#: least recently used evicted first; a file over a quarter of it is read per request.
DEFAULT_STATIC_CACHE_BYTES = 16 * 1024 * 1024

_HEAD_BYTES = 4096  # enough for every signature the toolkit sniffs

_READ_CHUNK = 1024 * 1024


class _Version(collections.namedtuple("_Version", "stat_key digest content_type")):
    """What the index knows of one version of a file without holding its bytes."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    stat_key: tuple[int, int]  # (mtime_ns, size) when it was read
    digest: str
    content_type: str


class _VersionBytes:
    """One version's bytes (held, or read from the file per use) and its gzip form.

    Apart from its snapshot: an offer kept on the snapshot calls these, and holds
    no reference back to the snapshot (no cycle keeps an evicted version's bytes).
    """

    __slots__ = ("_body", "_gzip_body", "digest", "path", "relpath", "size")

    def __init__(self, snapshot: _StaticSnapshot) -> None:
        self.path = snapshot.path
        self.relpath = snapshot.relpath
        self.digest = snapshot.digest
        self.size = snapshot.size
        self._body = snapshot._body  # (the bytes held, else None)
        self._gzip_body: Any = _MISSING

    def body(self) -> bytes:
        if self._body is not None:
            return self._body
        with open(self.path, "rb") as handle:
            return handle.read()

    def gzip_body(self) -> bytes | None:
        """The gzip form of this version, made once; ``None`` when it would not be smaller.

        The one :func:`prepare_deployment` made of exactly these bytes when there is
        one (:func:`_prepared_gzip`), else compressed now. A body not held in memory
        is compressed from the file a chunk at a time (:func:`_gzip_file`): the
        response already holds it, so it is never read into memory a second time,
        and a gzip form too large for a Lambda response is given up as soon as it
        gets there.
        """
        if self._gzip_body is _MISSING:
            prepared = _prepared_gzip(self)
            if prepared is not None:
                self._gzip_body = prepared
            elif self._body is None:
                self._gzip_body = _gzip_file(self.path, self.digest, self.size)
            else:
                body = self._body
                compressed = _gzip(body)
                self._gzip_body = compressed if len(compressed) < len(body) else None
        return self._gzip_body


class _StaticSnapshot:
    """One version of a static file: its body, validators and gzip form belong together.

    Taken once per request, so a file rewritten meanwhile never mixes one
    version's body with another's ETag. A large file's body is not held: it is
    read when asked for, for that response only.
    """

    __slots__ = (
        "_body",
        "_bytes",
        "content_type",
        "digest",
        "etag",
        "offer",
        "path",
        "relpath",
        "size",
    )

    def __init__(self, static_file: StaticFile, version: _Version, body: bytes | None) -> None:
        self.path = static_file.path
        self.relpath = static_file.relpath
        self.content_type = version.content_type
        self.digest = version.digest
        self.size = version.stat_key[1]
        self.etag = f'"{version.digest}"'
        self._body = body
        self._bytes = _VersionBytes(self)
        #: This version's offer as its own type, made on first use (:func:`_static_offer`).
        self.offer: Any = None

    @property
    def body(self) -> bytes:
        return self._bytes.body()

    @property
    def fingerprint(self) -> str:
        return self.digest[:12]

    def snapshot(self) -> _StaticSnapshot:
        return self

    def head(self) -> bytes:
        """The first bytes, enough to sniff a type."""
        if self._body is not None:
            return self._body[:_HEAD_BYTES]
        with open(self.path, "rb") as handle:
            return handle.read(_HEAD_BYTES)

    def image_source(self) -> bytes | str:
        """What Pillow should open: the held bytes, else the file (never read whole)."""
        return self._body if self._body is not None else self.path

    def gzip_body(self) -> bytes | None:
        """The gzip form of this version (see :meth:`_VersionBytes.gzip_body`)."""
        return self._bytes.gzip_body()


# A held snapshot besides its bytes: itself, its _VersionBytes, ETag and offer (507 bytes
# on CPython 3.11).
_SNAPSHOT_BYTES = 512

#: The largest body a Lambda response carries once base64 has added its third.
_LARGEST_LAMBDA_BODY = LAMBDA_RESPONSE_LIMIT * 3 // 4


def _gzip_file(path: str, digest: str, size: int, level: int = 6) -> bytes | None:
    """A file's gzip form, compressed as it is read; ``None`` unless worth sending.

    ``None`` when the output reaches the file's ``size`` (not smaller) or
    :data:`_LARGEST_LAMBDA_BODY` (no Lambda response could carry it: the
    identity body gets the clear "too large" answer), or when the bytes read
    no longer hash to ``digest`` (the file changed since its ETag was taken).
    Memory: one chunk and the output so far, never the whole file.
    """
    import zlib

    limit = min(size, _LARGEST_LAMBDA_BODY)
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + 15)  # a gzip wrapper
    hasher = _blake2b()
    pieces: list[bytes] = []
    produced = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            hasher.update(chunk)
            piece = compressor.compress(chunk)
            produced += len(piece)
            if produced >= limit:
                logger.info("static: %s: gzip form not smaller, or too large to send", path)
                return None
            pieces.append(piece)
    pieces.append(compressor.flush())
    if hasher.hexdigest() != digest:
        logger.warning("static: %s changed while being compressed; sent as it is", path)
        return None
    compressed = b"".join(pieces)
    return compressed if len(compressed) < limit else None


# Beside the prepared file (its name plus this): the gzip forms prepare_deployment made,
# each named by its source's digest and nothing else.
_PREPARED_GZIP_SUFFIX = ".gzip"

_DIGEST_HEX = _LazyPattern(r"[0-9a-f]{32}")  # what _digest gives

_PREPARED_GZIP_FILE = _LazyPattern(r"[0-9a-f]{32}\.gz(?:\.tmp)?")


@functools.lru_cache(maxsize=4)
def _prepared_gzip_entries(prepared_file: str) -> tuple[dict[str, int], dict[str, str]]:
    """(gzip size by source digest, source digest by relative path) a prepared file records.

    Only well-formed entries: a digest that is not 32 hex digits (a path, ``..``) or a
    size that is not an integer is left out, so nothing but a ``<digest>.gz``
    of the build directory is ever opened. ``({}, {})`` without a readable file.
    """
    try:
        with open(prepared_file) as handle:
            prepared = json.load(handle)
    except (OSError, ValueError) as error:
        logger.debug("static: no prepared gzip forms (%s)", error)
        return {}, {}
    if not isinstance(prepared, dict) or prepared.get("format") != _PREPARED_FORMAT:
        return {}, {}
    sections = prepared.get("static")
    entries = [
        (relpath, entry.get("digest"), entry.get("gzip"))
        for section in (sections.values() if isinstance(sections, dict) else ())
        if isinstance(section, dict)
        for relpath, entry in section.items()
        if isinstance(entry, dict)
    ]
    sizes: dict[str, int] = {}
    digests: dict[str, str] = {}
    for relpath, digest, size in entries:
        if isinstance(digest, str) and _DIGEST_HEX.fullmatch(digest) and type(size) is int:
            sizes[digest] = size
            digests[relpath] = digest
    return sizes, digests


def _prepared_gzip(snapshot: _StaticSnapshot | _VersionBytes) -> bytes | None:
    """The gzip form :func:`prepare_deployment` made of exactly this snapshot's bytes, or ``None``.

    Found by the snapshot's digest alone (mtimes prove nothing on Lambda: its zip stamps
    every file 1980-01-01), used only when its size is the recorded one, smaller than
    the body, and its gzip trailer (RFC 1952 §2.3.1: CRC-32 and length of the
    original) is this snapshot's bytes'. Anything else is ``None`` and a log line:
    the caller compresses the bytes as they are now.
    """
    import zlib

    prepared_file = _prepared_path()
    sizes, digests = _prepared_gzip_entries(prepared_file)
    digest = snapshot.digest
    expected = sizes.get(digest)
    if expected is None:
        if snapshot.relpath in digests:
            logger.info("static: %s changed since prepare; compressed now", snapshot.relpath)
        else:
            logger.debug("static: %s has no prepared gzip form", snapshot.relpath)
        return None
    path = os.path.join(prepared_file + _PREPARED_GZIP_SUFFIX, f"{digest}.gz")
    if expected >= min(snapshot.size, _LARGEST_LAMBDA_BODY):  # read no more than that
        logger.info("static: prepared %s recorded as too large; compressed now", path)
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(expected + 1)
    except OSError as error:
        logger.info("static: prepared %s unreadable (%s); compressed now", path, error)
        return None
    if len(data) != expected:
        logger.info("static: prepared %s is not the size recorded; compressed now", path)
        return None
    if snapshot._body is not None:
        crc = zlib.crc32(snapshot._body)
    else:
        crc = 0
        with open(snapshot.path, "rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                crc = zlib.crc32(chunk, crc)
    trailer = crc.to_bytes(4, "little") + (snapshot.size % 2**32).to_bytes(4, "little")
    if data[:3] != b"\x1f\x8b\x08" or data[-8:] != trailer:
        logger.info("static: prepared %s is not of %s; compressed now", path, snapshot.relpath)
        return None
    return data


class StaticFile:
    """One file under ``static_dir``: its type and content hash (bodies: the index's cache)."""

    def __init__(self, path: str, relpath: str, index: StaticIndex | None = None) -> None:
        self.path = path
        self.relpath = relpath
        self.content_type = content_type_for(relpath)
        self._index = index
        self._version: _Version | None = None  # replaced whole: threads see one or the other

    def snapshot(self) -> _StaticSnapshot:
        """The current version (re-read when it changed on disk, with ``auto_reload``).

        Raises ``FileNotFoundError`` when the file is gone.
        """
        index = self._index
        version = self._version
        if version is not None and index is not None and index.auto_reload:
            info = os.stat(self.path)
            if version.stat_key != (info.st_mtime_ns, info.st_size):
                version = None
        if version is not None and index is not None:
            held = index.bodies.get((self.path, version.stat_key))
            if held is not _MISSING:
                return held
            if version.stat_key[1] > index.bodies.max_bytes // 4:
                return _StaticSnapshot(self, version, None)
        return self._read()

    def _read(self) -> _StaticSnapshot:
        """Read the file once: body (if small enough to hold) and digest from the same bytes."""
        index = self._index
        hold_limit = index.bodies.max_bytes // 4 if index is not None else 0
        with open(self.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_size <= max(hold_limit, _READ_CHUNK):
                body: bytes | None = handle.read()
                digest = _digest(body)
                head = body[:_HEAD_BYTES]
                size = len(body)
            else:  # hash it in chunks: a large file is never held whole
                hasher = _blake2b()
                head = handle.read(_HEAD_BYTES)
                hasher.update(head)
                size = len(head)
                while chunk := handle.read(_READ_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                body, digest = None, hasher.hexdigest()
        content_type = self.content_type
        if content_type == "application/octet-stream":
            content_type = content_type_for(self.relpath, head)
        version = _Version((info.st_mtime_ns, size), digest, content_type)
        self._version = version
        self.content_type = content_type
        snapshot = _StaticSnapshot(self, version, body)
        if body is not None and index is not None and size <= hold_limit:
            # Room for the gzip form too, which a snapshot makes on first use, and its offer.
            cost = (2 * size if _is_compressible(content_type) else size) + _SNAPSHOT_BYTES
            index.bodies.put((self.path, version.stat_key), snapshot, cost=cost)
        return snapshot

    @property
    def _body(self) -> bytes | None:
        """The body this container holds in memory, or ``None``."""
        version = self._version
        if version is None or self._index is None:
            return None
        held = self._index.bodies.get((self.path, version.stat_key))
        return None if held is _MISSING else held._body

    @property
    def body(self) -> bytes:
        return self.snapshot().body

    @property
    def size(self) -> int:
        return self.snapshot().size

    @property
    def digest(self) -> str:
        """Content hash: the validator, identical on every container."""
        version = self._version
        if version is None or (self._index is not None and self._index.auto_reload):
            return self.snapshot().digest
        return version.digest

    @property
    def fingerprint(self) -> str:
        """Short content hash used in cache-busting URLs."""
        return self.digest[:12]

    @property
    def etag(self) -> str:
        return quote_etag(self.digest)

    def head(self) -> bytes:
        return self.snapshot().head()

    def image_source(self) -> bytes | str:
        return self.snapshot().image_source()

    def gzip_body(self) -> bytes | None:
        """The gzip body, computed once per version; ``None`` when it would not be smaller."""
        return self.snapshot().gzip_body()


class StaticIndex:
    """Every servable file under a directory, keyed by its relative path.

    Requests are answered from this dictionary only, so a path that is not a
    regular file inside the directory (traversal, encoded dots, absolute
    paths, symlinks leaving the tree, files under a symlinked directory,
    dotfiles) simply is not found. Bodies are kept in ``bodies``, bounded by
    ``cache_bytes``. With ``auto_reload`` a requested file is stat-ed (never
    the tree: a walk happens at most once per ``rescan_interval`` seconds,
    and only to compute :meth:`digest`).
    """

    rescan_interval = 2.0

    def __init__(
        self,
        root: str,
        auto_reload: bool = False,
        *,
        cache_bytes: int = DEFAULT_STATIC_CACHE_BYTES,
    ) -> None:
        import time

        self.root = os.path.realpath(root)
        self.auto_reload = auto_reload
        self.bodies = BoundedCache(cache_bytes)
        self.files: dict[str, StaticFile] = {}
        # Fingerprinted names resolve() found current, while files are fixed (no auto_reload):
        # name -> (file, fingerprint); at most one per file, so a request reads, not parses.
        self._fingerprinted: dict[str, tuple[StaticFile, str]] = {}
        self._clock = time.monotonic
        self._scanned_at = 0.0
        self.scan()

    def scan(self) -> None:
        """(Re)build the index by walking the directory once (known files keep their state)."""
        self._scanned_at = self._clock()
        files: dict[str, StaticFile] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                real = os.path.realpath(path)
                if os.path.commonpath([self.root, real]) != self.root or not os.path.isfile(real):
                    logger.warning("static: skipping %s, it resolves outside %s", path, self.root)
                    continue
                relpath = os.path.relpath(path, self.root).replace(os.sep, "/")
                known = self.files.get(relpath)
                files[relpath] = (
                    known if known and known.path == real else StaticFile(real, relpath, self)
                )
        self.files = files

    def get(self, relpath: str) -> StaticFile | None:
        """The file at ``relpath`` (``a/b.css``), or ``None``.

        With ``auto_reload`` a name not yet indexed is looked up on its own (a
        few ``stat`` calls, as the walk would see it), and a vanished file is dropped.
        """
        static_file = self.files.get(relpath)
        if not self.auto_reload:
            return static_file
        if static_file is None:
            return self._find(relpath)
        if not os.path.isfile(static_file.path):
            self.files.pop(relpath, None)
            return None
        return static_file

    def _find(self, relpath: str) -> StaticFile | None:
        """Index one new file if :meth:`scan` would have found it; stats only its own path."""
        parts = relpath.split("/")
        if any(not part or part.startswith(".") or "\\" in part or "\0" in part for part in parts):
            return None
        directory = self.root
        for part in parts[:-1]:  # os.walk does not follow a symlinked directory: nor does this
            directory = os.path.join(directory, part)
            if os.path.islink(directory) or not os.path.isdir(directory):
                return None
        path = os.path.join(directory, parts[-1])
        real = os.path.realpath(path)
        if os.path.commonpath([self.root, real]) != self.root or not os.path.isfile(real):
            return None
        static_file = StaticFile(real, relpath, self)
        self.files[relpath] = static_file
        return static_file

    def resolve(self, relpath: str) -> tuple[StaticFile | _StaticSnapshot | None, bool]:
        """Find a file by plain or fingerprinted name, and whether the fingerprint is current.

        A fingerprinted name answers with the snapshot the fingerprint was checked
        against, so the response serves exactly that version.
        """
        static_file = self.get(relpath)
        if static_file is not None:
            return static_file, False
        known = self._fingerprinted.get(relpath)
        if known is not None:
            return self._remembered(relpath, known)
        directory, _, name = relpath.rpartition("/")
        match = _FINGERPRINTED_NAME.fullmatch(name)
        if match is None:
            return None, False
        plain = match["stem"] + (match["ext"] or "")
        static_file = self.get(f"{directory}/{plain}" if directory else plain)
        if static_file is None:
            return None, False
        try:
            snapshot = static_file.snapshot()
        except FileNotFoundError:
            return None, False
        current = snapshot.fingerprint == match["hash"]
        if current and not self.auto_reload and len(self._fingerprinted) < len(self.files):
            self._fingerprinted[relpath] = (static_file, match["hash"])  # one name per file
        return snapshot, current

    def _remembered(
        self, name: str, known: tuple[StaticFile, str]
    ) -> tuple[_StaticSnapshot | None, bool]:
        """A fingerprinted name found current before: its file now, and whether still current."""
        static_file, fingerprint = known
        try:
            snapshot = static_file.snapshot()
        except FileNotFoundError:
            return None, False
        if snapshot.fingerprint == fingerprint:
            return snapshot, True
        self._fingerprinted.pop(name, None)  # the file was read again, and changed
        return snapshot, False

    def known(self, name: str) -> tuple[StaticFile | _StaticSnapshot | None, bool] | None:
        """:meth:`resolve` for a name the index already holds as it is, else ``None``.

        While files are fixed, a plain relative path of a file or a fingerprinted name
        found before is a clean path by construction: it needs no cleaning or parsing.
        """
        if self.auto_reload:
            return None
        static_file = self.files.get(name)
        if static_file is not None:
            return static_file, False
        known = self._fingerprinted.get(name)
        return None if known is None else self._remembered(name, known)

    def digest(self) -> str:
        """One hash over every file's path and content.

        With ``auto_reload`` the tree is walked at most once per ``rescan_interval``
        and only files whose stat changed are read again.
        """
        if self.auto_reload:
            if self._clock() - self._scanned_at >= self.rescan_interval:
                self.scan()
            for relpath in [r for r, f in self.files.items() if not os.path.isfile(f.path)]:
                self.files.pop(relpath, None)
        files = dict(self.files)
        return _digest(
            *(f"{relpath}\0{files[relpath].digest}\0".encode() for relpath in sorted(files))
        )


#: On the view of a route of :meth:`ContentManager.register_static_routes`: (the manager's
#: responder, the parameter names, Cache-Control), so :func:`lambda_handler` answers alone.
_STATIC_VIEW_ATTRIBUTE = "_chalice_http_toolkit_static_view"

# What image and response code read a file through (``Union``: Python 3.9 has no ``|`` here).
_StaticLike = Union[StaticFile, _StaticSnapshot]


def _fingerprinted(relpath: str, fingerprint: str) -> str:
    directory, slash, name = relpath.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return f"{relpath}.{fingerprint}"
    return f"{directory}{slash}{stem}.{fingerprint}.{extension}"


def _clean_segments(segments: Iterable[str]) -> str | None:
    """Join URL path segments into an index key, or ``None`` for anything suspicious."""
    parts = []
    for segment in segments:
        if "%" in segment:
            segment = unquote(segment)
        if (
            not segment
            or segment in (".", "..")
            or "/" in segment
            or "\\" in segment
            or "\0" in segment
            or segment.startswith(".")
        ):
            return None
        parts.append(segment)
    return "/".join(parts) if parts else None


# ---------------------------------------------------------------------------
# Templates: dependency closure and a canonical argument digest, no rendering
# ---------------------------------------------------------------------------


class TemplateNotFoundError(LookupError):
    """A template (or one it extends/includes) does not exist; the message names it."""


class _NoCanonicalForm(Exception):
    """An argument has no process-independent encoding; fall back to rendering."""


_MAX_DEPTH = 64


def _scalar(value: Any) -> str | None:
    """The encoding of a str, int or float (the common leaves), else ``None``."""
    kind = type(value)
    if kind is str:
        return f"s{len(value)}:{value}"
    if kind is int:
        return f"i{value};"
    if kind is float:
        return f"f{value.hex()};"
    return None


def _encode(value: Any, out: list[str], depth: int = 0) -> None:
    """Append a canonical, type-tagged encoding of ``value`` to ``out``.

    Text, with lengths in code points; the common leaves of a container are
    encoded inline rather than by a call each.
    """
    if depth > _MAX_DEPTH:
        raise _NoCanonicalForm("nested too deeply (or recursive)")
    kind = type(value)
    if kind is dict:
        # Insertion order is kept: a template iterating over a dict renders in that order.
        out.append(f"d{len(value)}{{")
        for key, item in value.items():
            kind = type(key)
            if kind is str:
                out.append(f"s{len(key)}:{key}")
            else:
                _encode(key, out, depth + 1)
            kind = type(item)
            if kind is str:
                out.append(f"s{len(item)}:{item}")
            elif kind is int:
                out.append(f"i{item};")
            elif kind is float:
                out.append(f"f{item.hex()};")
            else:
                _encode(item, out, depth + 1)
        out.append("}")
    elif kind is list or kind is tuple:
        out.append(f"{'l' if kind is list else 't'}{len(value)}[")
        for item in value:
            kind = type(item)
            if kind is str:
                out.append(f"s{len(item)}:{item}")
            elif kind is int:
                out.append(f"i{item};")
            else:
                _encode(item, out, depth + 1)
        out.append("]")
    elif kind is str or kind is int or kind is float:
        out.append(_scalar(value))  # type: ignore[arg-type]
    elif value is None or kind is bool:
        out.append("N" if value is None else ("T" if value else "F"))
    elif kind is bytes:
        out.append(f"b{len(value)}:{value.hex()}")
        out.has_bytes = True  # type: ignore[attr-defined]
    elif kind is set or kind is frozenset:
        # Set order depends on PYTHONHASHSEED; the sorted member encodings do not.
        members = []
        for item in value:
            tokens = _Tokens()
            _encode(item, tokens, depth + 1)
            if tokens.has_bytes:
                out.has_bytes = True  # type: ignore[attr-defined]
            members.append("".join(tokens))
        members.sort()
        out.append(f"{'S' if kind is set else 'Q'}{len(members)}{{")
        out.extend(members)
        out.append("}")
    elif kind is datetime.date:
        out.append(f"Ddate:{value.isoformat()};")
    elif kind is datetime.datetime or kind is datetime.time:
        # The offset alone does not say what renders (%Z, astimezone): name the zone.
        zone = "" if value.tzinfo is None else _tz_identity(value.tzinfo)
        naive = value.replace(tzinfo=None).isoformat()
        out.append(f"D{kind.__name__}:{naive}@{zone}/{value.fold};")
    else:
        _encode_other(value, out, depth)


def _tz_identity(tzinfo: Any) -> str:
    """A fixed offset (with its name) or a zoneinfo key; any other tzinfo has no canonical form."""
    kind = type(tzinfo)
    if kind is datetime.timezone:
        name = tzinfo.tzname(None)
        return f"fixed:{tzinfo.utcoffset(None)}:{len(name)}:{name}"
    if kind.__module__ == "zoneinfo" and kind.__qualname__ == "ZoneInfo" and tzinfo.key:
        return f"zone:{len(tzinfo.key)}:{tzinfo.key}"
    raise _NoCanonicalForm(f"no canonical form for the time zone {kind.__qualname__}")


def _encode_other(value: Any, out: list[str], depth: int) -> None:
    """Encode Decimal and Markup (exact types); anything else has no canonical form.

    A subclass, a dataclass, an enum or a path object renders through code of
    its own (``__str__``, ``__html__``, extra attributes), which no encoding
    of its data can stand for: those fall back to render-and-hash.
    """
    import decimal

    kind = type(value)
    if kind is decimal.Decimal:
        out.append(f"X{value};")
    elif kind.__module__ == "markupsafe" and kind.__qualname__ == "Markup":
        # Markup renders unescaped where a plain str would be escaped: tag it.
        out.append(f"M{len(value)}:{str.__str__(value)}")
    else:
        raise _NoCanonicalForm(f"no canonical form for {kind.__qualname__}")


class _Tokens(list):
    """The tokens of a canonical encoding; ``has_bytes`` once a bytes value is among them."""

    has_bytes = False


def stable_digest(value: Any) -> str | None:
    """A digest of ``value`` identical in every process, or ``None`` if it has no canonical form.

    Covers exact built-in types whose rendering the value fully determines:
    None, bool, int, float, str, Markup, bytes, Decimal, lists, tuples, dicts,
    sets, frozensets, dates, and times and datetimes whose tzinfo is a fixed
    offset or a zoneinfo zone. Anything else (subclasses, dataclasses, enums,
    paths, bytearray, other tzinfos, ints too long to print) gives ``None``.
    No ``pickle``, no ``hash()``: the result does not depend on PYTHONHASHSEED
    or set order.

    >>> stable_digest(b"abc") == stable_digest(bytearray(b"abc"))
    False
    """
    return _stable_digest(value)


def _memo_key(value: Any) -> bytes | None:
    """Bytes that identify ``value`` within this process, for a memo; ``None`` if unsuitable.

    ``marshal`` (C, fast) writes exact built-in types only and keeps tuple/list
    and bool/int apart; but it writes any buffer (bytes, bytearray, array,
    memoryview) as bytes. So an ETag is memoised only when it exists and the
    value held no bytes (the canonical encoding says so): a key equal to a stored
    one then names the same types with the same data, object for object (a
    ``None`` stored for a bytearray would answer for equal bytes: slower pages,
    and an ETag that depends on what came first). They are a memo key, never a
    digest: they follow set order and object sharing, which may differ for
    equal values (a miss, never a wrong answer).
    """
    try:
        key = marshal.dumps(value)
    except ValueError:  # a type marshal does not write (datetime, Markup, …)
        return None
    return key if len(key) <= _MEMO_MAX_KEY else None


_MEMO_MAX_KEY = 32 * 1024


def _stable_digest(value: Any) -> str | None:
    return _canonical_digest(value)[0]


def _canonical_digest(value: Any) -> tuple[str | None, bool]:
    """:func:`stable_digest`, and whether a bytes value was encoded (see :func:`_memo_key`)."""
    out = _Tokens()
    try:
        _encode(value, out, 0)
    except (_NoCanonicalForm, RecursionError):
        return None, False
    except ValueError:  # an int over sys.get_int_max_str_digits() digits
        return None, False
    return _digest("".join(out).encode("utf-8", "surrogatepass")), out.has_bytes


class _TemplateDeps(
    collections.namedtuple(
        "_TemplateDeps",
        "digest static_refs files names filters tests",
        defaults=(frozenset(), frozenset(), frozenset()),
    )
):
    """What a template's output depends on, found by parsing (not rendering)."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    digest: str | None  # hash of the sources of the whole closure; None when dynamic
    static_refs: frozenset[str] | None  # constant static() paths; None when any is dynamic
    files: tuple[tuple[str, tuple[int, int] | None], ...]  # for reload checks
    names: frozenset[str]  # variable names the closure uses (globals among them)
    filters: frozenset[str]  # filters the closure applies
    tests: frozenset[str]  # tests the closure applies


class _PagePlan(collections.namedtuple("_PagePlan", "base content_type values")):
    """How a template is served, known before its arguments are."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    base: Any  # blake2b state over all the ETag depends on but the arguments; None: render
    content_type: str
    values: tuple[str, ...]  # the site's value globals it reads: digested with the arguments


#: Argument digests of a template computed before deciding whether they pay off (spare a
#: render: a page cache hit, a remembered ETag, a 304); below one in eight, pages of that
#: template are rendered and hashed, and the digest is tried again every so often.
_DIGEST_TRIALS = 32

#: At this many trials both counts are halved: the decision follows the recent requests
#: (a template whose arguments stop repeating turns to render-and-hash within about 160
#: requests however long they repeated before, and back again when they repeat anew).
_DIGEST_WINDOW = 2 * _DIGEST_TRIALS

_DIGEST_RETRY_EVERY = 64

_DIGEST_PAYOFF_ENTRIES = 1024

#: Filters, tests and globals whose output is not a function of a template's sources and
#: arguments (Jinja2's ``random`` filter and ``lipsum``): a template whose closure names
#: one is rendered on every request, with no pre-render ETag and no page cache.
_VOLATILE_TEMPLATE_NAMES: set[str] = {"random", "lipsum"}

#: The toolkit's own template globals whose output is not a function of a template's
#: sources and arguments (the request's ``g``, a session's CSRF token, flashed messages):
#: rendered on every request; what they read decides whether the answer is personal.
_REQUEST_TEMPLATE_NAMES = frozenset(("g", "csrf_token", "get_flashed_messages"))

_PURE_ATTRIBUTE = "_chalice_http_toolkit_pure"


def pure(helper: Callable[..., Any]) -> Callable[..., Any]:
    """Declare a template global, filter or test pure: its result depends on its arguments alone.

    A template whose closure uses a helper the site registered itself gets its
    ETag from its rendered output (the helper may read the session, a cookie, the
    clock); one declared ``pure`` keeps the ETag computed without rendering and
    the page cache. Returns ``helper`` (or a marked wrapper of a builtin).

    >>> shout = pure(lambda text: text.upper() + "!")  # then cm.env.filters["shout"] = shout
    >>> shout("hi")
    'HI!'
    """
    if not callable(helper):
        raise TypeError(f"pure() marks a callable, not {type(helper).__name__}")
    try:
        setattr(helper, _PURE_ATTRIBUTE, True)
    except (AttributeError, TypeError):  # a builtin takes no attributes: mark a wrapper
        original = helper

        @functools.wraps(original)
        def helper(*args: Any, **kwargs: Any) -> Any:
            return original(*args, **kwargs)

        setattr(helper, _PURE_ATTRIBUTE, True)
    return helper


class _Registry(dict):
    """``env.globals``, ``filters`` and ``tests``: a dict that reports every change.

    A page plan says which helpers a template uses and whether they are pure:
    a helper added, replaced or removed after start-up makes the plans stale.
    ``wrap`` (filters, tests) is applied to every helper the site adds.
    """

    __slots__ = ("on_change", "wrap")

    def __init__(
        self,
        data: Mapping[str, Any],
        on_change: Callable[[], None],
        wrap: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(data)
        self.on_change = on_change
        self.wrap = wrap

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value if self.wrap is None else self.wrap(value))
        self.on_change()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.on_change()

    def __ior__(self, other: Any) -> _Registry:
        self.update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            super().__setitem__(key, value if self.wrap is None else self.wrap(value))
        self.on_change()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, *args: Any) -> Any:
        self.on_change()
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self.on_change()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self.on_change()


def _at_render_time(helper: Any) -> Any:
    """A site's filter or test as Jinja calls it when rendering, never folded when compiling.

    Jinja evaluates a filter or test on constant arguments (``{{ 'Hi' | greet }}``)
    once, when it compiles the template, unless it takes the context: a helper
    that reads the session would bake the first visitor into the template. One
    declared :func:`pure` is left as it is.
    """
    if not callable(helper) or getattr(helper, _PURE_ATTRIBUTE, False):
        return helper
    import jinja2

    passes = getattr(getattr(helper, "jinja_pass_arg", None), "name", None)
    if passes == "context":
        return helper  # Jinja never folds these

    def at_render_time(context: Any, *args: Any, **kwargs: Any) -> Any:
        if passes == "environment":
            return helper(context.environment, *args, **kwargs)
        if passes == "eval_context":
            return helper(context.eval_ctx, *args, **kwargs)
        return helper(*args, **kwargs)

    at_render_time.__name__ = getattr(helper, "__name__", "helper")
    at_render_time.__wrapped__ = helper  # type: ignore[attr-defined]
    return jinja2.pass_context(at_render_time)


class _TemplateGlobals(collections.ChainMap):
    """A template's globals over the environment's: ``ChainMap``'s answers, made cheaply.

    Jinja2 copies them into every render's context and lists their names for every
    include's: ``ChainMap`` catches a ``KeyError`` per name the template's own map
    (usually empty) lacks, and builds a dict of both maps' names to list them.
    """

    def __getitem__(self, key: str) -> Any:
        for mapping in self.maps:
            if key in mapping:
                return mapping[key]
        return self.__missing__(key)

    def __iter__(self) -> Iterator[str]:
        maps = self.maps
        if len(maps) == 2 and not maps[0]:  # no names of the template's own
            return iter(maps[1])
        return super().__iter__()


@functools.cache
def _environment_class() -> type:
    """``jinja2.Environment`` whose templates' globals are a :class:`_TemplateGlobals`."""
    import jinja2

    class Environment(jinja2.Environment):
        def make_globals(self, d: Any) -> _TemplateGlobals:
            return _TemplateGlobals({} if d is None else d, self.globals)

    return Environment


def _template_helpers(env: Any, deps: _TemplateDeps, own: Mapping[str, Any]) -> tuple[bool, tuple]:
    """Whether a closure's output may not follow from its arguments, and the value globals it reads.

    Pure: Jinja's own helpers (but ``random`` and ``lipsum``), the toolkit's
    ``static``/``srcset``/``url_for``, and helpers the site declared :func:`pure`.
    A value global (not callable) is pure too: its value is digested with the
    arguments on every request, so a changed or mutated value gives a new ETag.
    """
    from jinja2 import defaults

    impure = False
    values = []
    for name in sorted(deps.names):
        value = env.globals.get(name, _MISSING)
        if value is _MISSING:
            continue  # an argument, a variable of the template, or undefined
        if value is own.get(name, _MISSING):
            impure = impure or name in _REQUEST_TEMPLATE_NAMES
        elif value is defaults.DEFAULT_NAMESPACE.get(name, _MISSING):
            impure = impure or name in _VOLATILE_TEMPLATE_NAMES
        elif not callable(value):
            values.append(name)
        elif not getattr(value, _PURE_ATTRIBUTE, False):
            impure = True
    for used, registry, jinjas in (
        (deps.filters, env.filters, defaults.DEFAULT_FILTERS),
        (deps.tests, env.tests, defaults.DEFAULT_TESTS),
    ):
        for name in used:
            value = registry.get(name)
            if value is jinjas.get(name):
                impure = impure or name in _VOLATILE_TEMPLATE_NAMES
            elif not getattr(value, _PURE_ATTRIBUTE, False):
                impure = True
    return impure, tuple(values)


def _default_template_helpers(
    deps: _TemplateDeps, own: Iterable[str], jinja_globals: Iterable[str]
) -> bool:
    """:func:`_template_helpers`'s verdict for the environment a manager makes, without Jinja2.

    That environment has Jinja2's own globals (``jinja_globals``, as the build
    recorded them), filters and tests, and the toolkit's ``own`` globals: no value
    globals, nothing the site registered.
    """
    own = frozenset(own)
    jinja_globals = frozenset(jinja_globals) - own
    for name in deps.names:
        if name in _REQUEST_TEMPLATE_NAMES and name in own:
            return True
        if name in _VOLATILE_TEMPLATE_NAMES and name in jinja_globals:
            return True
    return any(name in _VOLATILE_TEMPLATE_NAMES for name in (*deps.filters, *deps.tests))


# A template engine's suffixes, looked through to the type the output has.
_TEMPLATE_SUFFIXES = (".jinja2", ".jinja", ".j2", ".tmpl")

#: Template extensions naming a non-markup text type: the only ones rendered unescaped.
_UNESCAPED_TEMPLATE_EXTENSIONS = frozenset({"txt", "json", "js", "css", "md"})


def _template_extension(name: str) -> str:
    """``page.html.j2`` → ``html``; ``note.txt`` → ``txt``; ``page.jinja`` or ``page`` → ``""``."""
    base = name.rpartition("/")[2].lower()
    for suffix in _TEMPLATE_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    stem, dot, extension = base.rpartition(".")
    return extension if dot and stem else ""


_UNESCAPED_TEMPLATE_SUFFIXES = tuple(
    f".{extension}" for extension in _UNESCAPED_TEMPLATE_EXTENSIONS
)


def _template_autoescape(name: str | None) -> bool:
    """Autoescape unless the template's extension names a non-markup text type.

    Jinja2 asks on every render and include: two ``endswith`` on the name.
    """
    if name is None:
        return True
    lowered = name.lower()
    if lowered.endswith(_TEMPLATE_SUFFIXES):
        lowered = lowered.rpartition(".")[0]
    return not lowered.endswith(_UNESCAPED_TEMPLATE_SUFFIXES)


@functools.lru_cache(maxsize=256)  # a site's templates are few; pages ask per render
def _template_content_type(name: str) -> str:
    """The Content-Type of a page rendered from ``name``: its extension's text type, else HTML."""
    media_type = MEDIA_TYPES.get(_template_extension(name))
    if media_type is None or not _is_text_type(media_type):
        media_type = "text/html"
    return _with_charset(media_type)


def _names_used(tree: Any) -> tuple[set[str], set[str], set[str]]:
    """The variable names, filters and tests a parsed template uses."""
    from jinja2 import nodes

    return (
        {node.name for node in tree.find_all(nodes.Name)},
        {node.name for node in tree.find_all(nodes.Filter)},
        {node.name for node in tree.find_all(nodes.Test)},
    )


def _analyse_template(
    env: Any, filename: str, templates_dir: str, record: dict[str, Any] | None = None
) -> _TemplateDeps:
    """Parse ``filename`` and everything it extends, includes and imports (not rendering).

    ``record`` (for :func:`prepare_deployment`) receives each source's digest by name
    and the names referenced but missing.
    """
    import jinja2
    from jinja2 import meta

    pending = [filename]
    seen: set[str] = set()
    sources: list[bytes] = []
    files: list[tuple[str, tuple[int, int] | None]] = []
    static_refs: set[str] | None = set()
    names: set[str] = set()
    filters: set[str] = set()
    tests: set[str] = set()
    dynamic = False
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source, path, _ = env.loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            if name == filename:
                raise TemplateNotFoundError(
                    f"template {name!r} not found in {templates_dir}"
                ) from None
            dynamic = True  # e.g. ``{% include 'x' ignore missing %}``: let rendering decide
            if record is not None:
                record.setdefault("missing", []).append(name)
            continue
        if record is not None:
            record.setdefault("closure", {})[name] = _digest(source.encode("utf-8"))
        files.append((path, _stat_key(path)))
        sources.append(f"{name}\0{len(source)}\0".encode() + source.encode("utf-8"))
        tree = env.parse(source, name, path)
        for reference in meta.find_referenced_templates(tree):
            if reference is None:
                dynamic = True
            else:
                pending.append(reference)
        calls = _static_calls(tree)
        if calls is None or static_refs is None:
            static_refs = None
        else:
            static_refs.update(calls)
        used = _names_used(tree)
        names |= used[0]
        filters |= used[1]
        tests |= used[2]
    sources.sort()
    return _TemplateDeps(
        None if dynamic else _digest(*sources),
        None if static_refs is None else frozenset(static_refs),
        tuple(files),
        frozenset(names),
        frozenset(filters),
        frozenset(tests),
    )


#: The file beside the module where :func:`prepare_deployment` keeps what a build computed
#: (and, with the suffix ``.bytecode``, the templates it compiled).
PREPARED_FILE = "chalice_http_toolkit.prepared.json"

# Bump when what the analysis finds changes: an older file is then ignored.
_PREPARED_FORMAT = 2

# The fields of _TemplateDeps a prepared file keeps as sorted lists (or null).
_PREPARED_FIELDS = tuple(f for f in _TemplateDeps._fields if f not in ("digest", "files"))


def _prepared_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), PREPARED_FILE)


def prepare_deployment(
    templates_dir: str,
    *,
    path: str | None = None,
    environment: Any = None,
    static_dir: str | None = None,
) -> str:
    """Parse and compile every template now, at build time, so a cold start does not.

    Writes each template's closure (with a digest of every source in it), the names
    it uses and its constant ``static()`` paths to :data:`PREPARED_FILE` beside this
    module (or ``path``), and its compiled code to the same name plus ``.bytecode``,
    under ``templates_dir`` relative to that file. ``environment``: the site's
    ``cm.env`` when it registers filters or extensions (else a default one). A
    container uses an entry only when every source still has its digest and its
    environment parses and compiles alike; anything else is parsed as before. With
    Jinja2's defaults recorded too, a container answers a page's 304 before it imports
    Jinja2. ``chalice-http-toolkit prepare`` (and ``setup``) runs it; run it again after
    editing templates, before ``chalice deploy``. Returns the JSON file's path.

    With ``static_dir``, each static file worth compressing gets its gzip form too
    (zlib level 9, into the directory of the JSON file's name plus ``.gzip``, named
    by the source's digest), which a container sends instead of compressing while
    the file still has that digest (:func:`_prepared_gzip`).
    """
    import jinja2

    path = path or _prepared_path()
    env = environment or jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir), autoescape=_template_autoescape
    )
    entries: dict[str, Any] = {}
    compiled: dict[str, tuple[str, bytes]] = {}
    for name in env.list_templates():
        if any(part.startswith(".") for part in name.split("/")):
            continue
        record: dict[str, Any] = {}
        try:
            deps = _analyse_template(env, name, templates_dir, record)
            source, filename, _ = env.loader.get_source(env, name)
            bucket = jinja2.bccache.Bucket(env, name, _jinja_checksum(source))
            bucket.code = env.compile(source, name, filename)
        except (jinja2.TemplateError, UnicodeDecodeError) as error:
            logger.warning("prepare: template %s does not compile: %s", name, error)
            continue
        entries[name] = {
            "closure": record.get("closure", {}),
            "missing": record.get("missing", []),
            "dynamic": deps.digest is None,
            "fields": {
                field: None if getattr(deps, field) is None else sorted(getattr(deps, field))
                for field in _PREPARED_FIELDS
            },
        }
        settings = _compile_settings(env, name, deps.filters, deps.tests)
        compiled[name] = (settings, bucket.bytecode_to_string())
    key = _prepared_key(templates_dir, path)
    prepared = _read_prepared(path, json.load, "r")
    prepared["templates"][key] = {
        "parser": _parser_settings(env),
        "entries": entries,
        "defaults": _jinja_defaults(jinja2.Environment()),
    }
    if static_dir is not None:
        directory = path + _PREPARED_GZIP_SUFFIX
        if not isinstance(prepared.get("static"), dict):
            prepared["static"] = {}
        entries_by_dir = prepared["static"]
        entries_by_dir[_prepared_key(static_dir, path)] = _prepare_static(static_dir, directory)
        _remove_unrecorded_gzip(directory, entries_by_dir)
    with open(path, "w") as handle:
        json.dump(prepared, handle, indent=1, sort_keys=True)
    code = _read_prepared(path + ".bytecode", marshal.load, "rb")
    code["templates"][key] = compiled
    with open(path + ".bytecode", "wb") as handle:
        marshal.dump(code, handle)
    _prepared_entries.cache_clear()
    _prepared_gzip_entries.cache_clear()
    logger.info("prepare: %d templates of %s in %s", len(entries), templates_dir, path)
    return path


def _prepare_static(static_dir: str, directory: str) -> dict[str, dict[str, Any]]:
    """Write the gzip form of each static file worth compressing as ``<digest>.gz``.

    The files the static index serves, with its digests and types: compressible, at
    least :data:`COMPRESS_MIN_SIZE`, smaller compressed (zlib level 9: the build pays
    once) and small enough for a Lambda response. Returns ``{relpath: {"digest",
    "gzip" (its size)}}`` for the prepared file.
    """
    entries: dict[str, dict[str, Any]] = {}
    for relpath, static_file in sorted(StaticIndex(static_dir, cache_bytes=0).files.items()):
        snapshot = static_file.snapshot()
        if snapshot.size < COMPRESS_MIN_SIZE or not _is_compressible(snapshot.content_type):
            continue
        compressed = _gzip_file(snapshot.path, snapshot.digest, snapshot.size, level=9)
        if compressed is None:
            continue
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, f"{snapshot.digest}.gz")
        with open(target + ".tmp", "wb") as handle:
            handle.write(compressed)
        os.replace(target + ".tmp", target)
        entries[relpath] = {"digest": snapshot.digest, "gzip": len(compressed)}
    logger.info("prepare: %d gzip forms of %s in %s", len(entries), static_dir, directory)
    return entries


def _remove_unrecorded_gzip(directory: str, entries_by_dir: Mapping[str, Any]) -> None:
    """Delete the ``<digest>.gz`` files no entry names (an edited file's old form); an
    empty directory too. Other files are the user's: left alone."""
    recorded = {
        f"{entry['digest']}.gz"
        for entries in entries_by_dir.values()
        if isinstance(entries, dict)
        for entry in entries.values()
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str)
    }
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name not in recorded and _PREPARED_GZIP_FILE.fullmatch(name):
            os.remove(os.path.join(directory, name))
    if not os.listdir(directory):
        os.rmdir(directory)


def _read_prepared(path: str, load: Callable[[Any], Any], mode: str) -> dict[str, Any]:
    """A prepared file's content to add to, or an empty one of this format."""
    try:
        with open(path, mode) as handle:
            prepared = load(handle)
    except (OSError, ValueError, EOFError, TypeError):
        prepared = None
    if not isinstance(prepared, dict) or prepared.get("format") != _PREPARED_FORMAT:
        prepared = {"format": _PREPARED_FORMAT, "templates": {}}
    return prepared


def _jinja_checksum(source: str) -> str:
    """Jinja2's checksum of a source (``BytecodeCache.get_source_checksum``)."""
    import hashlib

    return hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()


def _compile_settings(env: Any, name: str, filters: Iterable[str], tests: Iterable[str]) -> str:
    """What, besides its source, Jinja2 bakes into a template's code when compiling it.

    Autoescaping, ``finalize``, async and optimisation, the extensions, and how each
    filter and test of its closure takes its arguments (``pass_context`` and kin; a
    missing one is a compile error).
    """
    autoescape = env.autoescape(name) if callable(env.autoescape) else env.autoescape
    passes = [
        (kind, used, repr(getattr(table.get(used), "jinja_pass_arg", used in table)))
        for kind, table, names in (("filter", env.filters, filters), ("test", env.tests, tests))
        for used in sorted(names)
    ]
    finalize = env.finalize
    return repr(
        (
            bool(autoescape),
            None if finalize is None else repr(getattr(finalize, "jinja_pass_arg", None)),
            env.is_async,
            env.optimized,
            sorted(env.extensions),
            passes,
        )
    )


def _prepared_bytecode(templates_dir: str) -> Any:
    """A read-only ``jinja2.BytecodeCache`` of the code :func:`prepare_deployment` compiled.

    ``None`` without a file for ``templates_dir``. Jinja2 checks each source's checksum
    (and the Python version) itself; a template whose environment compiles otherwise
    (another autoescape, a filter taking its context now) is compiled as usual.
    """
    import jinja2

    path = _prepared_path() + ".bytecode"
    try:
        with open(path, "rb") as handle:
            prepared = marshal.load(handle)
        compiled = prepared["templates"][_prepared_key(templates_dir, path)]
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        return None
    if prepared.get("format") != _PREPARED_FORMAT or not isinstance(compiled, dict):
        return None
    entries = _prepared_entries(templates_dir, _prepared_path())[1]

    class PreparedBytecode(jinja2.BytecodeCache):
        """Compiled at build time; never written (Lambda's task directory is read-only)."""

        def get_cache_key(self, name: str, filename: str | None = None) -> str:
            return name  # the build's paths are not the container's

        def load_bytecode(self, bucket: Any) -> None:
            stored = compiled.get(bucket.key)
            entry = entries.get(bucket.key)
            if stored is None or entry is None or not _has_fields(entry):
                return
            fields = entry["fields"]
            settings = _compile_settings(
                bucket.environment, bucket.key, fields["filters"], fields["tests"]
            )
            if stored[0] == settings:
                bucket.bytecode_from_string(stored[1])

        def dump_bytecode(self, bucket: Any) -> None:
            return None

    return PreparedBytecode()


def _prepared_key(templates_dir: str, prepared_file: str) -> str:
    """``templates_dir`` relative to the prepared file: the same on the build and on Lambda."""
    base = os.path.dirname(os.path.realpath(prepared_file))
    return os.path.relpath(os.path.realpath(templates_dir), base).replace(os.sep, "/")


def _parser_settings(env: Any) -> str:
    """What decides how an environment parses a source (delimiters, whitespace, extensions)."""
    return repr(
        (
            env.block_start_string,
            env.block_end_string,
            env.variable_start_string,
            env.variable_end_string,
            env.comment_start_string,
            env.comment_end_string,
            env.line_statement_prefix,
            env.line_comment_prefix,
            env.trim_blocks,
            env.lstrip_blocks,
            env.newline_sequence,
            env.keep_trailing_newline,
            sorted(env.extensions),
        )
    )


@functools.lru_cache(maxsize=8)
def _prepared_entries(
    templates_dir: str, prepared_file: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(parser settings, entries, Jinja2's defaults) :func:`prepare_deployment` wrote for a folder.

    The defaults are ``{}`` in a file written before they were recorded.
    """
    try:
        with open(prepared_file) as handle:
            prepared = json.load(handle)
        if prepared.get("format") != _PREPARED_FORMAT:
            return "", {}, {}
        section = prepared["templates"][_prepared_key(templates_dir, prepared_file)]
        defaults = section.get("defaults")
        if not isinstance(defaults, dict) or defaults.keys() != {"parser", "globals"}:
            defaults = {}
        return section["parser"], section["entries"], defaults
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "", {}, {}


def _jinja_defaults(env: Any) -> dict[str, Any]:
    """What a default environment is to a page plan: how it parses, and Jinja2's own globals."""
    from jinja2 import defaults

    return {"parser": _parser_settings(env), "globals": sorted(defaults.DEFAULT_NAMESPACE)}


def _has_fields(entry: Mapping[str, Any]) -> bool:
    """Whether a prepared entry has every field this module's analysis gives."""
    fields = entry.get("fields")
    return isinstance(fields, dict) and fields.keys() == set(_PREPARED_FIELDS)


def _prepared_template(env: Any, filename: str, templates_dir: str) -> _TemplateDeps | None:
    """The build's analysis of ``filename`` when every source is unchanged; else ``None``.

    Reads the closure's sources (not parsing them): a digest that differs, a template
    gone or come back, or another parser setting, and the template is analysed anew.
    ``env`` ``None`` stands for the environment a manager makes, not made yet: Jinja2's
    defaults as the build recorded them, the sources read without importing Jinja2.
    """
    parser, entries, defaults = _prepared_entries(templates_dir, _prepared_path())
    entry = entries.get(filename)
    expected = defaults.get("parser") if env is None else _parser_settings(env)
    if entry is None or parser != expected or not _has_fields(entry):
        return None
    sources: list[bytes] = []
    files: list[tuple[str, tuple[int, int] | None]] = []
    for name, digest in entry["closure"].items():
        found = _template_source(env, templates_dir, name)
        if found is None:
            return None
        source, path = found
        data = source.encode("utf-8")
        if _digest(data) != digest:
            return None
        files.append((path, _stat_key(path)))
        sources.append(f"{name}\0{len(source)}\0".encode() + data)
    for name in entry["missing"]:
        if _template_source(env, templates_dir, name, read=False) is not None:
            return None  # there now: its names were never seen
    sources.sort()
    fields = entry["fields"]
    return _TemplateDeps(
        digest=None if entry["dynamic"] else _digest(*sources),
        files=tuple(files),
        **{field: None if fields[field] is None else frozenset(fields[field]) for field in fields},
    )


def _template_source(
    env: Any, templates_dir: str, name: str, *, read: bool = True
) -> tuple[str, str] | None:
    """(source, path) of the template ``name``; ``None`` when there is none.

    Found by ``env``'s loader; with no ``env``, read as Jinja2's
    ``FileSystemLoader(templates_dir)`` reads it (a name with ``..`` or a separator
    in a segment is none; text in UTF-8, universal newlines), without importing Jinja2.
    ``read=False`` only looks: the source is then ``""``.
    """
    if env is not None:
        import jinja2

        try:
            source, path, _ = env.loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            return None
        return source, path
    pieces = []
    for piece in name.split("/"):
        if os.sep in piece or (os.altsep and os.altsep in piece) or piece == os.pardir:
            return None
        if piece and piece != ".":
            pieces.append(piece)
    path = posixpath.join(os.fspath(templates_dir), *pieces)
    if not os.path.isfile(path):
        return None
    if not read:
        return "", os.path.normpath(path)
    with open(path, encoding="utf-8") as handle:
        return handle.read(), os.path.normpath(path)


def _stat_key(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


_STATIC_HELPERS = ("static", "srcset")


def _static_calls(tree: Any) -> set[str] | None:
    """Constant paths passed to ``static()``/``srcset()`` in a parsed template; ``None`` if dynamic.

    Constant keyword arguments (``static('img/a.jpg', width=640)``) keep a call constant.
    """
    from jinja2 import nodes

    calls = [
        call
        for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name) and call.node.name in _STATIC_HELPERS
    ]
    names = [
        name
        for name in tree.find_all(nodes.Name)
        if name.name in _STATIC_HELPERS and name.ctx == "load"
    ]
    if len(names) != len(calls):
        return None
    paths = set()
    for call in calls:
        arguments = list(call.args) + [keyword.value for keyword in call.kwargs]
        if call.dyn_args is not None or call.dyn_kwargs is not None or not call.args:
            return None
        if not all(isinstance(argument, nodes.Const) for argument in arguments):
            return None
        paths.add(str(call.args[0].value))
    return paths


# ---------------------------------------------------------------------------
# Images: Accept negotiation, conversion, responsive widths, a bounded cache
# ---------------------------------------------------------------------------

#: Raster media types the toolkit converts between, with their Pillow format names.
IMAGE_FORMATS: dict[str, str] = {
    "image/avif": "AVIF",
    "image/webp": "WEBP",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
}

_FORMAT_MEDIA_TYPES = {pillow: media_type for media_type, pillow in IMAGE_FORMATS.items()}

#: The three canonical ``Accept`` values :func:`normalise_image_accept` returns.
IMAGE_ACCEPT_AVIF = "image/avif,image/webp,*/*"

IMAGE_ACCEPT_WEBP = "image/webp,*/*"

IMAGE_ACCEPT_ANY = "*/*"

#: Widths (CSS pixels) offered for responsive images unless ``image_widths`` says otherwise.
DEFAULT_IMAGE_WIDTHS = (320, 640, 960, 1280, 1920)

#: Encoder quality per target format (PNG is lossless); override with ``image_quality``.
DEFAULT_IMAGE_QUALITY: Mapping[str, int] = {"AVIF": 60, "WEBP": 80, "JPEG": 82}

#: Images with more pixels than this are served untouched: decoding them could exhaust a
#: Lambda's memory (Pillow's own bomb check starts at about 89 million).
DEFAULT_IMAGE_MAX_PIXELS = 36_000_000

# Chosen for memory and time on a 256 MB Lambda (one vCPU share): one encoder
# thread for AVIF (about 22 bytes a pixel at speed 8), WebP method 2 (about 5 bytes a
# pixel; method 3 and up take 12); measured by bench/images_memory.py.
_ENCODER_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "AVIF": {"speed": 8, "max_threads": 1},
    "WEBP": {"method": 2},
    "JPEG": {"optimize": True, "progressive": True},
    "PNG": {"compress_level": 6},
}

#: Most pixels each encoder may be given, so that one conversion (decoded pixels and
#: encoder together) stays within about 120 MB: AVIF needs about 26 bytes a pixel in
#: all, WebP 9, JPEG 7, PNG 5. A picture (or width variant) with more pixels is never
#: shrunk to fit: that format is skipped, and the next one the client accepts is tried.
IMAGE_ENCODE_MAX_PIXELS: Mapping[str, int] = {
    "AVIF": 4_000_000,
    "WEBP": 12_600_000,  # a 12 MP phone photo (4032 x 3024), not a 16 MP one
    "JPEG": 16_000_000,
    "PNG": 12_600_000,
}

#: Bytes of decoded pixels one conversion may hold (Pillow keeps RGB as 4 bytes a
#: pixel): 64 MiB is 16 MP. A JPEG decodes at 1/2, 1/4 or 1/8 size when a width
#: variant is that much smaller; an image whose decode is over it is served as it is.
IMAGE_DECODE_MAX_BYTES = 64 * 1024 * 1024

_FEATURE_FOR_FORMAT = (("AVIF", "avif"), ("WEBP", "webp"), ("JPEG", "jpg"), ("PNG", "zlib"))

_writable_formats: tuple[str, ...] | None = None

#: Pillow formats the toolkit can convert to here, best first (``AVIF`` needs libavif);
#: provided by the module ``__getattr__`` below, so Pillow loads on first use only.
WRITABLE_IMAGE_FORMATS: tuple[str, ...]


def _writable_image_formats() -> tuple[str, ...]:
    """The targets this Pillow can encode, best first; computed once (imports Pillow)."""
    global _writable_formats
    if _writable_formats is None:
        try:
            from PIL import features
        except ImportError:
            logger.warning("images: Pillow is not installed; images are served as they are")
            _writable_formats = ()
        else:
            _writable_formats = tuple(
                name for name, feature in _FEATURE_FOR_FORMAT if features.check(feature)
            )
    return _writable_formats


def __getattr__(name: str) -> Any:
    """Module constants computed on first use (PEP 562): ``WRITABLE_IMAGE_FORMATS``."""
    if name == "WRITABLE_IMAGE_FORMATS":
        return _writable_image_formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _image_weights(accept: str | None) -> dict[str, float]:
    """Media range → q of its first occurrence; ``image/jpg`` is read as ``image/jpeg``."""
    weights: dict[str, float] = {}
    for token, quality in parse_accept_header(accept):
        weights.setdefault("image/jpeg" if token == "image/jpg" else token, quality)
    return weights


def _named_formats(weights: Mapping[str, float], formats: tuple[str, ...]) -> list[str]:
    """Those of ``formats`` (best first) named explicitly with q > 0 and writable, by q.

    A higher q comes first; a tie keeps the order of ``formats`` (AVIF before WebP,
    JPEG before PNG).
    """
    writable = _writable_image_formats()
    named = [
        (-weights.get(_FORMAT_MEDIA_TYPES[name], 0.0), index, name)
        for index, name in enumerate(formats)
        if name in writable and weights.get(_FORMAT_MEDIA_TYPES[name], 0.0) > 0.0
    ]
    return [name for _, _, name in sorted(named)]


def _modern_image_format(weights: Mapping[str, float]) -> str | None:
    """AVIF or WebP when named explicitly with q > 0: the higher q wins, a tie goes to AVIF."""
    named = _named_formats(weights, ("AVIF", "WEBP"))
    return named[0] if named else None


def _media_type_acceptable(weights: Mapping[str, float], media_type: str) -> bool:
    """RFC 9110 §12.5.1: the most specific matching range decides; q=0 means "not acceptable"."""
    for media_range in (media_type, media_type.partition("/")[0] + "/*", "*/*"):
        if media_range in weights:
            return weights[media_range] > 0.0
    return False


def negotiate_image_format(accept: str | None, source_format: str) -> str | None:
    """The Pillow format to convert a ``source_format`` image to for ``accept``, or ``None``.

    ``None`` means "serve the original". The rule, in order:

    1. AVIF and WebP count only when named explicitly (``image/avif``, ``image/webp``)
       with q > 0; ``image/*`` and ``*/*`` do not prove a browser decodes them.
       AVIF counts only if this Pillow can write it. If either counts, the higher
       q wins, a tie goes to AVIF; the answer is that format (``None`` when the
       source already is it).
    2. Otherwise, with no ``Accept`` or when the source's own type is acceptable
       (the most specific of ``image/x``, ``image/*``, ``*/*`` has q > 0), ``None``.
    3. Otherwise JPEG or PNG if named explicitly with q > 0 (higher q wins, a tie
       goes to JPEG; ``image/jpg`` counts as ``image/jpeg``); else ``None``.

    The first occurrence of a repeated media range counts; an element with a
    malformed q is ignored. Step 1 is all a CDN needs to cache on: see
    :func:`normalise_image_accept`.

    >>> negotiate_image_format('image/avif,image/webp,*/*', 'JPEG')
    'AVIF'
    >>> negotiate_image_format('image/webp;q=0.9, image/avif;q=0.5', 'PNG')
    'WEBP'
    >>> negotiate_image_format('image/*', 'JPEG') is None
    True
    """
    preferences = image_format_preferences(accept, source_format)
    if not preferences or preferences[0] == source_format:
        return None
    return preferences[0]


def image_format_preferences(accept: str | None, source_format: str) -> tuple[str, ...]:
    """The Pillow formats to try for ``accept``, best first; the original comes after them.

    AVIF and WebP named explicitly with q > 0 (by q, a tie to AVIF), then the
    source's own format when ``accept`` allows it (or says nothing), else JPEG
    and PNG named explicitly with q > 0 (by q, a tie to JPEG). The list stops
    at the source's format: at full size that is the original itself. A server
    tries each in turn, skipping one that fails, is over the memory budget or is
    not smaller than the original: negotiation changes the format, never the picture.

    >>> image_format_preferences('image/webp;q=0.9, image/avif;q=0.8, */*', 'PNG')
    ('WEBP', 'AVIF', 'PNG')
    >>> image_format_preferences('image/avif,image/webp,*/*', 'WEBP')
    ('AVIF', 'WEBP')
    >>> image_format_preferences('image/png', 'JPEG')
    ('PNG',)
    """
    weights = _image_weights(accept)
    preferences = _named_formats(weights, ("AVIF", "WEBP"))
    source_type = _FORMAT_MEDIA_TYPES.get(source_format, f"image/{source_format.lower()}")
    if not weights or _media_type_acceptable(weights, source_type):
        preferences.append(source_format)
    else:
        preferences += _named_formats(weights, ("JPEG", "PNG"))
    if source_format in preferences:
        del preferences[preferences.index(source_format) + 1 :]
    return tuple(preferences)


def normalise_image_accept(accept: str | None) -> str:
    """Reduce an ``Accept`` value to one of three canonical values for a CDN cache key.

    Returns :data:`IMAGE_ACCEPT_AVIF`, :data:`IMAGE_ACCEPT_WEBP` or
    :data:`IMAGE_ACCEPT_ANY` by step 1 of :func:`negotiate_image_format`, so
    that negotiating on the result gives the same format as on ``accept`` for
    every source whose own type ``accept`` allows (every browser image request).

    >>> normalise_image_accept('image/webp,image/png,image/*;q=0.8,*/*;q=0.5')
    'image/webp,*/*'
    """
    modern = _modern_image_format(_image_weights(accept))
    if modern == "AVIF":
        return IMAGE_ACCEPT_AVIF
    if modern == "WEBP":
        return IMAGE_ACCEPT_WEBP
    return IMAGE_ACCEPT_ANY


def _format_candidates(
    accept: str | None, source_format: str, width: int | None
) -> tuple[str, ...]:
    """See :meth:`StaticImages.candidates`."""
    preferences = image_format_preferences(accept, source_format)
    if width is None:
        return preferences[:-1] if source_format in preferences else preferences
    return preferences if source_format in preferences else (*preferences, source_format)


_candidates_cached = functools.lru_cache(maxsize=512)(_format_candidates)

_MEMO_ACCEPT_MAX = 512  # longer Accept values are negotiated without the memo


class _ImageError(Exception):
    """An image cannot be converted (corrupt, a bomb, unreadable): serve the original."""


class _ImageLeftAlone(_ImageError):
    """An image is deliberately not converted (animated): serve the original."""


class _FormatRefused(_ImageError):
    """This format cannot take the picture (over its encoder's budget, an encoder error).

    Another format may: unlike other :class:`_ImageError`, this says nothing of the source.
    """


def _open_image(
    data: bytes | str,
    max_pixels: int,
    decode: bool = True,
    draft_size: tuple[int, int] | None = None,
) -> Any:
    """Open (and ``decode``) image bytes or a file; a bomb or damage raises :class:`_ImageError`.

    Without ``decode`` only the header is read: size and EXIF, no pixels (close the
    image when done). ``draft_size`` lets a JPEG decode at a reduced scale no smaller
    than it; the decoded pixels must fit :data:`IMAGE_DECODE_MAX_BYTES`.
    """
    import io
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        # Pillow warns (DecompressionBombWarning) before it raises: treat both as a refusal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise _ImageError(f"decompression bomb refused ({error})") from error
        except (OSError, SyntaxError, ValueError) as error:  # UnidentifiedImageError is an OSError
            raise _ImageError(f"not a readable image ({error})") from error
        width, height = image.size
        if width * height > max_pixels:
            image.close()
            raise _ImageError(f"{width}x{height} pixels exceed the limit of {max_pixels}")
        if not decode:
            return image
        # MPO (a JPEG with extra pictures from a camera) is a still image; its first frame is it.
        if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
            image.close()
            raise _ImageLeftAlone(f"animated {image.format} ({image.n_frames} frames)")
        if draft_size is not None and image.format in ("JPEG", "MPO"):
            scale = _jpeg_scale(image.size, draft_size)
            if scale > 1:  # libjpeg scales by 1/2, 1/4 or 1/8 while decoding
                image.draft(None, (width // scale, height // scale))
        width, height = image.size
        decoded = width * height * (1 if image.mode in ("1", "L") else 4)
        if decoded > IMAGE_DECODE_MAX_BYTES:
            image.close()
            raise _ImageError(
                f"{width}x{height} {image.mode} pixels need {decoded} bytes decoded, "
                f"over the budget of {IMAGE_DECODE_MAX_BYTES}"
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise _ImageError(f"corrupt image data ({error})") from error
    return image


def _jpeg_scale(size: tuple[int, int], wanted: tuple[int, int]) -> int:
    """1, 2, 4 or 8: the largest JPEG decode scale that still gives at least ``wanted``."""
    width, height = size
    scale = 1
    while scale < 8 and width // (scale * 2) >= wanted[0] and height // (scale * 2) >= wanted[1]:
        scale *= 2
    return scale


def _to_srgb(image: Any, icc: bytes, mode: str) -> Any:
    """Convert ``image`` from its embedded ICC profile to sRGB ``mode``; plainly on error."""
    import io

    from PIL import ImageCms

    try:
        return ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode=mode,
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        logger.warning("images: cannot apply the ICC profile (%s); converting plainly", error)
        return image.convert(mode)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_PNG_COLOUR_MODES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}  # colour type → mode, 8 bits

_STRIP_BYTES = 4 * 1024 * 1024


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    crc = zlib.crc32(data, zlib.crc32(kind))
    return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")


def _decode_png_reduced(data: bytes | str, factor: int) -> Any:
    """A PNG decoded in strips of rows, each shrunk by ``factor`` (a box filter) as it comes.

    The same pixels as decoding it whole and calling ``Image.reduce(factor)``, in a
    fraction of the memory: a 36 MP PNG needs 144 MB decoded whole. Each strip is
    re-wrapped as a small PNG (stored, not compressed) that starts with the previous
    strip's last row, unfiltered, so the row filters have what they refer to.
    ``None`` when the file is not an 8-bit, non-interlaced, single-image L, LA, RGB
    or RGBA PNG without a tRNS chunk: then it is decoded the ordinary way.
    """
    import io
    import struct
    import zlib

    from PIL import Image

    handle = io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb")  # noqa: SIM115
    with handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return None
        length, kind = struct.unpack(">I4s", handle.read(8))
        if kind != b"IHDR" or length != 13:
            return None
        ihdr = handle.read(13)
        handle.read(4)
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
        mode = _PNG_COLOUR_MODES.get(colour)
        if mode is None or depth != 8 or interlace or not width or not height:
            return None
        row = width * len(mode) + 1  # a filter byte, then the pixels
        rows_per_strip = max(factor, _STRIP_BYTES // row // factor * factor)

        def compressed() -> Iterable[bytes]:
            """The zlib stream: the IDAT chunks' data, a megabyte at a time."""
            while len(header := handle.read(8)) == 8:
                size, name = struct.unpack(">I4s", header)
                if name == b"IDAT":
                    while size:
                        piece = handle.read(min(size, 1 << 20))
                        if not piece:
                            return
                        size -= len(piece)
                        yield piece
                    handle.read(4)
                elif name in (b"IEND", b"acTL", b"tRNS"):
                    return  # an animation or a transparent colour: not for this decoder
                else:
                    handle.seek(size + 4, 1)

        out = Image.new(mode, (-(-width // factor), -(-height // factor)))
        inflater = zlib.decompressobj()
        pieces = iter(compressed())
        pending = bytearray()
        previous: bytes | None = None
        top = 0
        while top < height:
            count = min(rows_per_strip, height - top)
            want = count * row
            while len(pending) < want:
                piece = inflater.unconsumed_tail or next(pieces, None)
                if piece is None:  # data ended early, or a chunk this decoder leaves alone
                    return None
                pending += inflater.decompress(piece, want - len(pending))
            strip_data = bytearray(b"\0" + previous) if previous is not None else bytearray()
            strip_data += pending[:want]
            del pending[:want]
            skip = 0 if previous is None else 1
            strip_png = b"".join(
                (
                    _PNG_SIGNATURE,
                    _png_chunk(b"IHDR", struct.pack(">II", width, count + skip) + ihdr[8:]),
                    _png_chunk(b"IDAT", zlib.compress(strip_data, 0)),
                    _png_chunk(b"IEND", b""),
                )
            )
            del strip_data
            with Image.open(io.BytesIO(strip_png)) as strip:
                strip.load()
                previous = strip.crop((0, count + skip - 1, width, count + skip)).tobytes()
                out.paste(
                    strip.reduce(factor, box=(0, skip, width, count + skip)), (0, top // factor)
                )
            top += count
    return out


def _orientation(image: Any) -> int:
    """EXIF Orientation (1 to 8) from the header alone.

    ``Image.getexif()`` decodes a whole PNG to look for a late eXIf chunk: a
    36 MP PNG would cost 144 MB just to learn it is upright.
    """
    import struct

    from PIL import Image

    data = image.info.get("exif")
    if not data:
        return 1
    exif = Image.Exif()
    try:
        exif.load(data)
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        logger.warning("images: unreadable EXIF (%s); orientation ignored", error)
        return 1
    orientation = exif.get(0x0112, 1)
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


_TRANSPOSE_FOR_ORIENTATION = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # EXIF → Image.Transpose


def _output_size(size: tuple[int, int], rotated: bool, width: int | None) -> tuple[int, int]:
    """The size to encode (stored orientation): the picture's own, or ``width`` wide as shown.

    Never larger than the picture; without ``width`` exactly the picture's size.
    """
    shown_width, shown_height = (size[1], size[0]) if rotated else size
    out_width = shown_width if width is None else min(width, shown_width)
    out_height = max(1, round(shown_height * out_width / shown_width))
    return (out_height, out_width) if rotated else (out_width, out_height)


def _over_encode_budget(size: tuple[int, int], target: str) -> str | None:
    """Why ``target`` cannot encode ``size`` pixels within budget, or ``None`` when it can."""
    limit = IMAGE_ENCODE_MAX_PIXELS.get(target)
    if limit is None or size[0] * size[1] <= limit:
        return None
    return f"{size[0]}x{size[1]} pixels as {target} are over its memory budget of {limit} pixels"


_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _encode_image(
    data: bytes | str,
    target: str,
    width: int | None,
    quality: Mapping[str, int],
    max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS,
) -> bytes | None:
    """Re-encode an image (bytes or a path) as ``target``: the same picture, or ``width`` wide.

    Without ``width`` the output has the picture's own pixel dimensions (as shown:
    EXIF orientation applied), never fewer. EXIF and XMP are dropped; alpha is
    kept, or flattened onto white for JPEG; 16-bit samples become 8-bit; an ICC
    profile is kept when the colour model stays, else converted to sRGB.
    Memory is bounded: a picture over :data:`IMAGE_ENCODE_MAX_PIXELS` for
    ``target`` raises :class:`_FormatRefused` (another format may do, as for an
    encoder error); one whose decode is over :data:`IMAGE_DECODE_MAX_BYTES`
    raises :class:`_ImageError`, as does input Pillow cannot or should not
    decode. A JPEG decodes at a reduced scale for a smaller ``width``, a PNG in
    strips. Returns ``None`` when the result would be the source itself (same
    format, ``width`` not smaller: never upscale).
    """
    import io
    import struct
    import zlib

    from PIL import Image

    header = _open_image(data, max_pixels, decode=False)
    try:
        source_format = "JPEG" if header.format == "MPO" else header.format
        orientation = _orientation(header)
        rotated = orientation in (5, 6, 7, 8)
        size = _output_size(header.size, rotated, width)
        if (
            size == header.size
            and width is not None
            and target == source_format
            and orientation == 1
        ):
            return None
        over = _over_encode_budget(size, target)
        if over is not None:
            raise _FormatRefused(over)
        factor = min(header.width // size[0], header.height // size[1])
        icc = header.info.get("icc_profile")
    finally:
        header.close()
    image = None
    if source_format == "PNG" and factor >= 2:
        try:
            image = _decode_png_reduced(data, factor)
        except (zlib.error, struct.error, OSError, SyntaxError, ValueError, EOFError) as error:
            logger.info("images: cannot decode the PNG in strips (%s); decoding it whole", error)
    if image is None:
        image = _open_image(data, max_pixels, draft_size=size)
    elif icc:
        image.info["icc_profile"] = icc
    icc = image.info.get("icc_profile")
    if image.mode in _SIXTEEN_BIT_MODES:  # 0..65535 grey: as 8 bits, not clipped to white
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    # Reduce and resize work on these modes; CMYK keeps its own until its profile applies.
    if has_alpha and image.mode not in ("RGBA", "LA"):
        image = image.convert("RGBA")
    elif image.mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        image = image.convert("RGB")
    factor = min(image.width // size[0], image.height // size[1])
    if factor >= 2:
        image = image.reduce(factor)  # a box filter: cheap, and frees the full-size pixels
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    if orientation in _TRANSPOSE_FOR_ORIENTATION:
        image = image.transpose(Image.Transpose(_TRANSPOSE_FOR_ORIENTATION[orientation]))
    if image.mode == "CMYK" or (image.mode in ("L", "LA") and target in ("WEBP", "AVIF")):
        mode = "RGBA" if has_alpha else "RGB"
        image = _to_srgb(image, icc, mode) if icc else image.convert(mode)
        icc = None
    elif has_alpha and image.mode != "RGBA":
        image = image.convert("RGBA")
    if target == "JPEG" and image.mode == "RGBA":
        flattened = Image.new("RGB", image.size, (255, 255, 255))
        flattened.paste(image, mask=image.getchannel("A"))
        image = flattened
    options: dict[str, Any] = dict(_ENCODER_OPTIONS.get(target, {}))
    if target in quality:
        options["quality"] = quality[target]
    if icc:
        options["icc_profile"] = icc
    image.info = {}  # no EXIF (location, orientation already applied) or XMP in the output
    output = io.BytesIO()
    try:
        image.save(output, target, **options)
    except (OSError, ValueError) as error:
        raise _FormatRefused(f"cannot encode as {target} ({error})") from error
    return output.getvalue()


def _check_quality(quality: Mapping[str, int] | None) -> dict[str, int]:
    """``DEFAULT_IMAGE_QUALITY`` updated with ``quality``; ValueError for nonsense."""
    merged = dict(DEFAULT_IMAGE_QUALITY)
    for name, value in (quality or {}).items():
        key = name.upper()
        if key not in IMAGE_FORMATS.values():
            raise ValueError(f"image_quality: unknown format {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise ValueError(f"image_quality[{name!r}] must be an int from 1 to 100, not {value!r}")
        merged[key] = value
    return merged


def _check_widths(widths: Iterable[int]) -> tuple[int, ...]:
    checked = tuple(sorted(set(widths)))
    if any(isinstance(w, bool) or not isinstance(w, int) or not 0 < w <= 16384 for w in checked):
        raise ValueError(f"image_widths must be ints from 1 to 16384, not {widths!r}")
    return checked


class ImageVariant(collections.namedtuple("ImageVariant", "key etag content_type")):
    """One converted and/or resized representation of a static image."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    key: tuple[str, str, int | None]  # (source digest, Pillow format, width)
    etag: str
    content_type: str


_WIDTH_NAME = _LazyPattern(r"(?P<stem>.+)\.w(?P<width>[1-9][0-9]{0,4})(?P<ext>\.[^./]+)")


def _with_width(relpath: str, width: int) -> str:
    """``img/hero.abc.jpg`` → ``img/hero.abc.w640.jpg``."""
    stem, dot, extension = relpath.rpartition(".")
    if not dot or "/" in extension:
        return f"{relpath}.w{width}"
    return f"{stem}.w{width}.{extension}"


#: Bytes of remembered refusals (variant keys whose conversion is not served).
_REFUSALS_BYTES = 1024 * 1024


class StaticImages:
    """Negotiated and resized variants of the raster images in a :class:`StaticIndex`.

    Decisions that depend only on a file's content (its real type, its size)
    are made once per content digest; encoded bodies live in an
    :class:`ImageCache`, so a repeat request is a few dictionary lookups.
    Variants that are not served (failed, over budget, not smaller) are
    remembered in ``refused``, apart from the bodies, so no body evicts them.
    """

    def __init__(
        self,
        *,
        widths: Iterable[int] = DEFAULT_IMAGE_WIDTHS,
        quality: Mapping[str, int] | None = None,
        cache_bytes: int = 32 * 1024 * 1024,
        max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS,
    ) -> None:
        self.widths = _check_widths(widths)
        self.quality = _check_quality(quality)
        self.max_pixels = max_pixels
        self.cache = ImageCache(cache_bytes)
        self.refused = BoundedCache(_REFUSALS_BYTES)
        self.encodes = 0
        # Mixed into variant ETags: other settings or encoders give other bytes. "full
        # size": a variant without a width is the whole picture (it once was shrunk to fit).
        settings = json.dumps(
            [__version__, sorted(self.quality.items()), _ENCODER_OPTIONS, "full size"]
        )
        self._settings_tag = _digest(settings.encode())[:8]
        self._media_types: dict[str, str] = {}
        # Content digest -> (stored size, EXIF-rotated), or None when unreadable.
        self._headers: dict[str, tuple[tuple[int, int], bool] | None] = {}

    def media_type(self, static_file: _StaticLike) -> str:
        """The file's real type by its leading bytes; a lying extension is logged once."""
        media_type = self._media_types.get(static_file.digest)
        if media_type is None:
            declared = static_file.content_type
            media_type = _signature_media_type(static_file.head())  # same with or without libmagic
            if media_type == "application/octet-stream" or _is_active_type(media_type):
                media_type = declared  # unknown bytes: conversion will fail and say so
            elif media_type != declared:
                logger.warning(
                    "images: %s contains %s, not the %s its name says; serving it as %s",
                    static_file.relpath,
                    media_type,
                    declared,
                    media_type,
                )
            self._media_types[static_file.digest] = media_type
        return media_type

    def candidates(
        self, accept: str | None, source_format: str, width: int | None
    ) -> tuple[str, ...]:
        """The formats to try for a request, best first; after them comes the original.

        :func:`image_format_preferences`, without the source's own format at full
        size (that is the original) and ending with it for a width (a resize).
        """
        if accept is None or len(accept) <= _MEMO_ACCEPT_MAX:  # the memo holds short values
            return _candidates_cached(accept, source_format, width)
        return _format_candidates(accept, source_format, width)

    def known(self, variant: ImageVariant) -> Any:
        """The body of a served variant, ``None`` when it is not served, else ``_MISSING``."""
        body = self.cache.get(variant.key)
        if body is _MISSING:
            digest, _, width = variant.key
            if variant.key in self.refused or (digest, width) in self.refused:
                return None
        return body

    def over_budget(self, static_file: _StaticLike, variant: ImageVariant) -> bool:
        """Whether ``variant`` is too many pixels for its encoder (from the header; remembered).

        Decided without decoding, so a request never waits on a conversion that
        the budget refuses, and a 304 is never answered for such a variant.
        """
        header = self._header(static_file)
        if header is None:
            return False  # unreadable: the conversion fails, says why, and is remembered
        _, target, width = variant.key
        over = _over_encode_budget(_output_size(*header, width), target)
        if over is None:
            return False
        logger.info("images: %s: %s; trying the next format", static_file.relpath, over)
        self.refused.put(variant.key, True)
        return True

    def variant(self, static_file: _StaticLike, target: str, width: int | None) -> ImageVariant:
        """Key, ETag and type of ``static_file`` as ``target`` (a Pillow format) at ``width``."""
        token = target.lower() if width is None else f"w{width}-{target.lower()}"
        return ImageVariant(
            (static_file.digest, target, width),
            quote_etag(f"{static_file.digest}-{token}-{self._settings_tag}"),
            _FORMAT_MEDIA_TYPES[target],
        )

    def render(self, static_file: _StaticLike, variant: ImageVariant) -> bytes | None:
        """Encode ``variant`` and remember the outcome; ``None`` (logged): not served.

        A body goes to ``cache``, a refusal to ``refused``, so a failed conversion
        is not retried on the next request. A variant that is not smaller than
        the original, or too large for a Lambda response, is not served either:
        the caller tries the next format the client accepts, then the original.
        A refusal that is about the source (corrupt, a bomb, animated, over the
        decode budget) is remembered for every format at that width.
        """
        digest, target, width = variant.key
        self.encodes += 1
        refused: tuple[Any, ...] = variant.key
        try:
            body = _encode_image(
                static_file.image_source(), target, width, self.quality, self.max_pixels
            )
        except _FormatRefused as reason:
            logger.info("images: %s: %s; trying the next format", static_file.relpath, reason)
            body = None
        except MemoryError:
            logger.error("images: %s as %s: out of memory", static_file.relpath, target)
            body = None
        except _ImageLeftAlone as reason:
            logger.info("images: %s left as it is: %s", static_file.relpath, reason)
            body, refused = None, (digest, width)
        except _ImageError as error:
            logger.warning("images: %s: %s; serving the original", static_file.relpath, error)
            body, refused = None, (digest, width)
        except ImportError:
            logger.warning("images: Pillow is not installed; serving %s", static_file.relpath)
            body, refused = None, (digest, width)
        if body is not None:
            body = self._worth_serving(static_file, variant, body)
        if body is None:
            self.refused.put(refused, True)
        else:
            self.cache.put(variant.key, body)
        return body

    def _worth_serving(
        self, static_file: _StaticLike, variant: ImageVariant, body: bytes
    ) -> bytes | None:
        """``body``, or ``None`` when the original is better (smaller, or ``body`` too large)."""
        _, target, width = variant.key
        original_size = static_file.size
        source_format = IMAGE_FORMATS.get(self._media_types.get(static_file.digest, ""))
        # A JPEG or PNG made from another format may be all an old client can show: keep it.
        optional = target in ("AVIF", "WEBP") or target == source_format or width is not None
        if optional and len(body) >= original_size:
            logger.info(
                "images: %s as %s%s is %d bytes, not smaller than the original's %d",
                static_file.relpath,
                target,
                f" at width {width}" if width else "",
                len(body),
                original_size,
            )
            return None
        if (len(body) + 2) // 3 * 4 > LAMBDA_RESPONSE_LIMIT - 64 * 1024:
            logger.warning(
                "images: %s as %s is %d bytes, too large for a Lambda response",
                static_file.relpath,
                target,
                len(body),
            )
            return None
        return body

    def dimensions(self, static_file: _StaticLike) -> tuple[int, int] | None:
        """Displayed width and height (EXIF orientation applied); ``None`` if unreadable."""
        header = self._header(static_file)
        if header is None:
            return None
        (width, height), rotated = header
        return (height, width) if rotated else (width, height)

    def _header(self, static_file: _StaticLike) -> tuple[tuple[int, int], bool] | None:
        """Stored size and whether EXIF turns it a quarter, read once per content digest."""
        key = static_file.digest
        if key not in self._headers:
            header = None
            try:
                image = _open_image(static_file.image_source(), self.max_pixels, decode=False)
            except _ImageError as error:
                logger.warning("images: %s: %s", static_file.relpath, error)
            except ImportError:
                logger.warning("images: Pillow is not installed; no srcset widths")
            else:
                with image:
                    header = image.size, _orientation(image) in (5, 6, 7, 8)
            self._headers[key] = header
        return self._headers[key]

    def resolve_width(
        self, index: StaticIndex, relpath: str
    ) -> tuple[StaticFile | None, bool, int | None]:
        """Find ``img/hero.<hash>.w640.jpg``: its file, whether the hash is current, the width.

        A width outside the configured set, or on a file that is not a raster
        image, finds nothing (404), so nobody can make the Lambda resize at will.
        """
        directory, slash, name = relpath.rpartition("/")
        match = _WIDTH_NAME.fullmatch(name)
        if match is None or int(match["width"]) not in self.widths:
            return None, False, None
        static_file, immutable = index.resolve(f"{directory}{slash}{match['stem']}{match['ext']}")
        if static_file is None or static_file.content_type not in IMAGE_FORMATS:
            return None, False, None
        return static_file, immutable, int(match["width"])


# ---------------------------------------------------------------------------
# The exchange: one object per request, the only one that knows who is asking
# ---------------------------------------------------------------------------


class RequestGlobals:
    """Flask's ``g``: what a request's middleware found for its view (``cm.g.user``).

    One per request, empty at its start. Attributes, plus ``get``, ``pop``,
    ``setdefault``, ``in`` and iteration over the names set, as in Flask.
    """

    def get(self, name: str, default: Any = None) -> Any:
        """The attribute ``name``, or ``default`` when it is not set."""
        return self.__dict__.get(name, default)

    def pop(self, name: str, *default: Any) -> Any:
        """Remove and return the attribute ``name`` (``default``, else ``KeyError``, if unset)."""
        return self.__dict__.pop(name, *default)

    def setdefault(self, name: str, default: Any = None) -> Any:
        """The attribute ``name``, set to ``default`` first when it is not set."""
        return self.__dict__.setdefault(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.__dict__))

    def __repr__(self) -> str:
        return f"<g {self.__dict__!r}>"


class _Local(threading.local):
    exchange: Exchange | None = None


_local = _Local()


class Exchange:
    """One request and what answering it has learnt: every helper reads this, and only this.

    Built once per request by the toolkit's middleware (or on first use when a
    middleware of the site's own runs before it). It holds the request, its
    lower-case headers, the parsed cookies and form, each manager's session,
    ``g`` (a namespace for what a ``before_request``-style middleware finds),
    and whether anything read or wrote who is asking. :meth:`finish` decides,
    once, after the route and any rendering ran, whether the response is
    personal (see :meth:`is_personal`).
    """

    __slots__ = (
        "_cookies",
        "_g",
        "active",
        "cookies_read",
        "flashes",
        "form",
        "form_limits",
        "headers",
        "method",
        "request",
        "resource",
        "sessions",
    )

    _no_sessions: dict[Any, tuple[Session, bool]] = {}  # never written: see ``sessions``

    def __init__(self, request: Any) -> None:
        self.request = request
        self.method: str = request.method
        self.headers: Mapping[str, str] = _lower_case_headers(request.headers)
        #: True while a middleware of the toolkit holds this exchange (it will finish it).
        self.active = False
        self.cookies_read = False
        #: Set by a view whose answer depends on a file alone (the static routes).
        self.resource = False
        #: Each manager's session, with whether the request carried its cookie.
        self.sessions: dict[Any, tuple[Session, bool]] = self._no_sessions
        self.flashes: dict[Any, list[tuple[str, str]]] | None = None
        self.form: FormData | None = None
        self.form_limits: FormLimits | None = None
        self._g: Any = None
        self._cookies: dict[str, str] | None = None

    @property
    def g(self) -> Any:
        """A namespace for what the request's code finds (Flask's ``g``), empty at first."""
        if self._g is None:
            self._g = RequestGlobals()
        return self._g

    def cookies(self, *, read: bool = True) -> dict[str, str]:
        """The request's cookies (RFC 6265); ``read`` marks the answer personal."""
        if read:
            self.cookies_read = True
        if self._cookies is None:
            # API Gateway keeps only the last of repeated headers in ``headers``.
            event = self.request.to_original_event() or {}
            multi = event.get("multiValueHeaders") or {}
            values = next((v for k, v in multi.items() if k.lower() == "cookie"), None)
            header = "; ".join(values) if values else self.headers.get("cookie")
            self._cookies = parse_cookie_header(header)
        return self._cookies

    def is_personal(self) -> bool:
        """Whether the answer so far depends on who is asking.

        It does when the cookies were read, or a session was read from a cookie
        the request carried, or a session was written. A request that carried no
        session cookie and found its session empty is anybody's: the edge keys
        pages on the session cookie, so its answer may be shared.
        A view that serves a file (the static routes) depends on the file alone,
        whatever a middleware read before it.
        """
        if self.resource:
            return False
        if self.cookies_read:
            return True
        if not self.sessions:  # the common case, without a loop
            return False
        return any(sent or session.modified for session, sent in self.sessions.values())

    def finish(self, response: Any, save_sessions: Callable[[Exchange, Any], None]) -> Any:
        """The response as it leaves: sessions saved, privacy decided once, from the inputs.

        Personal (see :meth:`is_personal`), or setting a cookie under any spelling
        of the header: ``private, no-store``, no validator, never a 304.
        """
        if self.sessions:
            save_sessions(self, response)
        if not _personal(self) and not _sets_cookie(response.headers):
            return response
        kept = getattr(response, "private_answer", None)  # a toolkit 304/412 (_Responder)
        if kept is not None and response.status_code in (304, 412):
            responder, offer, status, headers, cache_control, vary = kept
            private = responder._respond(self, offer, status, headers, cache_control, vary, True)
            for name, value in response.headers.items():  # headers the view added since
                if _header_key(private.headers, name) is None:
                    private.headers[name] = value
            response = private
        _make_private(response.headers)
        return response


def _personal(exchange: Exchange | None) -> bool:
    """Whether ``exchange`` is personal so far (``False`` outside a request).

    The callers on the hot path ask this: nothing read about who is asking costs two
    attribute reads, without a call to :meth:`Exchange.is_personal`.
    """
    return (
        exchange is not None
        and (exchange.cookies_read or bool(exchange.sessions))
        and exchange.is_personal()
    )


def _current_exchange(app: Any) -> Exchange | None:
    """The exchange of the request ``app`` is answering, or ``None`` outside a request."""
    exchange = _local.exchange
    if exchange is not None and exchange.active:
        return exchange
    if app is None:
        return None
    try:
        request = getattr(app, "current_request", None)  # a Chalice app before its first request
    except RuntimeError:  # a Blueprint not registered with an app
        return None
    if request is None:
        return None
    if exchange is None or exchange.request is not request:
        exchange = _local.exchange = Exchange(request)
    return exchange


def _request_body(request: Any, limits: FormLimits) -> bytes:
    """The request body as bytes, base64-decoded when API Gateway encoded it."""
    raw = (request.to_original_event() or {}).get("body")
    if isinstance(raw, (str, bytes)) and len(raw) > limits.max_bytes * 4 // 3 + 4:
        raise FormError(413, f"The form is larger than {limits.max_bytes} bytes.")
    try:
        body = request.raw_body
    except (binascii.Error, ValueError):
        raise FormError(400, "The request body is not valid base64.") from None
    return body.encode("utf-8") if isinstance(body, str) else body


def _exchange_form(exchange: Exchange, limits: FormLimits) -> FormData:
    """The exchange's form, parsed once per request (within the first caller's ``limits``)."""
    if exchange.form is None:
        exchange.form_limits = limits
        body = _request_body(exchange.request, limits)
        exchange.form = parse_form(body, exchange.headers.get("content-type"), limits)
    return exchange.form


# ---------------------------------------------------------------------------
# Response pipeline: method, request headers and an Offer in; status, headers, body out
# ---------------------------------------------------------------------------


class ResponseTooLargeError(ValueError):
    """A response would exceed Lambda's 6 MB synchronous payload limit."""


class _PageBody:
    """A page's text and its gzip form, made on first use: the callables of its offer."""

    __slots__ = ("_gzip_body", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._gzip_body: Any = _MISSING

    def body(self) -> str:
        return self.text

    def gzip_body(self) -> bytes | None:
        if self._gzip_body is _MISSING:
            self._gzip_body = _gzip_if_smaller(self.text)
        return self._gzip_body


class _Page:
    """A rendered page kept under its ETag, and its offer (made once, read by every request).

    The offer's callables belong to a :class:`_PageBody`, which holds the text and
    not the page: no reference cycle keeps an evicted page's bytes alive.
    """

    __slots__ = ("body", "offer")

    def __init__(self, body: str, content_type: str, etag: str) -> None:
        self.body = body
        made = _PageBody(body)
        self.offer = Offer(content_type, made.body, etag, None, made.gzip_body)

    def cost(self) -> int:
        """Bytes this page holds in memory, with room for a gzip form made later."""
        body = self.body
        size = sys.getsizeof(self) + sys.getsizeof(body) + _PAGE_OFFER_BYTES
        if _at_least(body, COMPRESS_MIN_SIZE):  # a gzip form is kept only when smaller
            size += sys.getsizeof(b"") + (len(body) if body.isascii() else 4 * len(body))
        return size


# A page's offer: the tuple, its _PageBody and two bound methods (288 bytes on CPython 3.11).
_PAGE_OFFER_BYTES = 384

# A memoised ETag's entry besides the ETag: its tuple, the offer, its partial and the bound
# method (64 + 112 + 80 + 72 + 64 bytes on CPython 3.11).
_MEMO_OFFER_BYTES = 448


def _payload_size(body: str | bytes, headers: Mapping[str, Any]) -> int:
    """Size of the JSON payload Lambda returns for this response (exact for large bodies)."""
    if isinstance(body, str):
        # JSON escapes at most six bytes per character; measure exactly only near the limit.
        size = len(body) * 6
        if size > LAMBDA_RESPONSE_LIMIT // 2:
            size = len(json.dumps(body))
    else:
        size = (len(body) + 2) // 3 * 4
    if size < LAMBDA_RESPONSE_LIMIT // 2:
        return size + 1024  # far from the limit: the headers need not be counted
    return size + sum(len(str(name)) + len(str(value)) + 8 for name, value in headers.items()) + 256


def _too_large_answer(
    size: int, debug: bool, fixed_headers: Mapping[str, str] | None = None
) -> Answer:
    message = (
        f"Response of about {size} bytes exceeds AWS Lambda's {LAMBDA_RESPONSE_LIMIT}-byte "
        "response payload limit; serve large files from S3 (behind CloudFront) instead."
    )
    logger.error(message)
    body = message if debug else "Response too large for AWS Lambda; see the function's log."
    headers = _response_headers(
        "text/plain; charset=utf-8", _PRIVATE_CACHE_CONTROL, (), False, None, fixed_headers, None
    )
    return Answer(500, headers, body, True)


#: On every toolkit response: browsers take the Content-Type as sent, never a sniffed one.
_NOSNIFF = ("X-Content-Type-Options", "nosniff")

_PRIVATE_CACHE_CONTROL = "private, no-store"


class Offer(
    collections.namedtuple(
        "Offer",
        "content_type body etag last_modified gzip_body allow_ranges headers private describe",
        defaults=(None, None, None, False, None, False, None),
    )
):
    """A representation on offer: its validators, type, and how to make its body.

    ``body`` is called only when the answer needs it (never for 304/412).
    ``content_type`` may be ``None`` when only the body can tell (a sniffed
    asset): then ``describe(body)`` gives the type and any headers it implies.
    ``gzip_body`` (optional) returns a cached gzip form, or ``None``;
    ``headers`` are those the representation implies (``Content-Disposition``).
    """

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    content_type: str | None
    body: Callable[[], str | bytes]
    etag: str | None
    last_modified: int | None
    gzip_body: Callable[[], bytes | None] | None
    allow_ranges: bool
    headers: Mapping[str, str] | None  # what the representation implies (disposition)
    private: bool  # made for one visitor (a personal template): see ``private``
    describe: Callable[[Any], tuple[str, Mapping[str, str] | None]] | None


#: ``tuple.__new__``: a namedtuple made from its fields without the Python ``__new__`` call.
_new_tuple = tuple.__new__


class Answer(collections.namedtuple("Answer", "status headers body built")):
    """What :func:`answer_request` decided: status, headers, body and whether the body was made."""

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    status: int
    headers: dict[str, str]
    body: str | bytes
    built: bool


_NOT_MODIFIED_HEADERS = frozenset(
    (
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "last-modified",
        "vary",
        "access-control-allow-origin",
        "access-control-expose-headers",
        "access-control-allow-credentials",
        "x-content-type-options",
        "strict-transport-security",
        "referrer-policy",
        "content-security-policy",
        "x-frame-options",
    )
)


def answer_request(
    method: str,
    request_headers: Mapping[str, str],
    offer: Offer,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    cache_control: str | None = None,
    vary: tuple[str, ...] = (),
    compress: bool = True,
    private: bool = False,
    fixed_headers: Mapping[str, str] | None = None,
    debug: bool = False,
) -> Answer:
    """Answer a request for ``offer``: preconditions, ranges, gzip, HEAD and the size limit.

    Knows nothing of Chalice: ``request_headers`` is a mapping with lower-case
    names. Every decision is taken from these inputs, never from headers
    written on the way: 304/412 (RFC 9110 §13.2.2, against the identity and
    the gzip ETag) come before the body is made; gzip (one rule: a
    compressible type, ``compress`` on, the client accepts it, a body of at
    least :data:`COMPRESS_MIN_SIZE` bytes, and only when smaller); a single
    byte range for ``allow_ranges`` offers (RFC 9110 §14); ``HEAD`` gets the
    headers of ``GET`` and no body, whatever its size. ``private`` answers
    ``Cache-Control: private, no-store`` with no validator and no 304.
    ``fixed_headers`` (CORS, security headers) and then the caller's
    ``headers`` are added to every answer.
    """
    return _answer(
        method,
        request_headers,
        offer,
        status,
        headers,
        cache_control,
        vary,
        compress,
        private,
        fixed_headers,
        debug,
    )


def _answer(
    method: str,
    request_headers: Mapping[str, str],
    offer: Offer,
    status: int,
    headers: Mapping[str, str] | None,
    cache_control: str | None,
    vary: tuple[str, ...],
    compress: bool,
    private: bool,
    fixed_headers: Mapping[str, str] | None,
    debug: bool,
) -> Answer:
    """:func:`answer_request` with positional arguments (the toolkit's own calls)."""
    content_type = offer.content_type
    may_gzip = compress and (content_type is None or _is_compressible(content_type))
    if private or offer.private or (headers and _sets_cookie(headers)):
        etag = last_modified = None
        cache_control = _PRIVATE_CACHE_CONTROL
    else:
        etag = offer.etag
        last_modified = offer.last_modified
        if last_modified is None and headers:
            last_modified = _stated_last_modified(headers)
    success = 200 <= status < 300
    if success and (etag is not None or last_modified is not None):
        answered = _precondition_answer(
            method,
            request_headers,
            etag,
            last_modified,
            may_gzip,
            (cache_control, vary, fixed_headers, headers),
        )
        if answered is not None:
            return answered

    # HEAD: no body is made when nothing in the headers depends on it (no gzip to decide).
    head_only = method == "HEAD" and content_type is not None
    if head_only and may_gzip and success:
        head_only = not accepts_encoding(request_headers.get("accept-encoding"))
    body = "" if head_only else offer.body()
    extra = offer.headers
    if content_type is None:
        content_type, extra = offer.describe(body)  # type: ignore[misc]
        may_gzip = compress and _is_compressible(content_type)
    out = _response_headers(
        content_type, cache_control, vary, may_gzip, last_modified, fixed_headers, headers, extra
    )
    if etag is not None:
        out["ETag"] = etag

    if offer.allow_ranges and status == 200:
        out["Accept-Ranges"] = "bytes"
        range_header = request_headers.get("range")
        if (
            method == "GET"
            and range_header is not None
            and if_range_matches(request_headers.get("if-range"), etag, last_modified)
        ):
            data = body.encode("utf-8") if isinstance(body, str) else body
            byte_range = parse_range(range_header, len(data))
            if byte_range == RANGE_NOT_SATISFIABLE:
                del out["Content-Type"]
                out["Content-Range"] = f"bytes */{len(data)}"
                return Answer(416, out, "", True)
            if byte_range is not None:
                out["Content-Range"] = f"bytes {byte_range.first}-{byte_range.last}/{len(data)}"
                return _sized(
                    Answer(206, out, data[byte_range.first : byte_range.last + 1], True),
                    method,
                    debug,
                    fixed_headers,
                )

    if (
        may_gzip
        and success
        and _at_least(body, COMPRESS_MIN_SIZE)
        and accepts_encoding(request_headers.get("accept-encoding"))
    ):
        compressed = offer.gzip_body() if offer.gzip_body is not None else _gzip_if_smaller(body)
        if compressed is not None:
            out["Content-Encoding"] = "gzip"
            if etag is not None:
                out["ETag"] = _gzip_etag(etag)
            body = compressed
    return _sized(
        _new_tuple(Answer, (status, out, body, not head_only)), method, debug, fixed_headers
    )


def answer_preconditions(
    method: str,
    request_headers: Mapping[str, str],
    offer: Offer,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    cache_control: str | None = None,
    vary: tuple[str, ...] = (),
    compress: bool = True,
    private: bool = False,
    fixed_headers: Mapping[str, str] | None = None,
) -> Answer | None:
    """The 304/412 :func:`answer_request` would give for ``offer``, else ``None``; no body is made.

    For a body that is expensive and may turn out to be another representation
    (an image conversion that falls back to the original): ask first, then build.
    """
    last_modified = offer.last_modified
    if last_modified is None and headers:
        last_modified = _stated_last_modified(headers)
    if (
        private
        or offer.private
        or (headers and _sets_cookie(headers))
        or not 200 <= status < 300
        or (offer.etag is None and last_modified is None)
    ):
        return None
    may_gzip = compress and (offer.content_type is None or _is_compressible(offer.content_type))
    return _precondition_answer(
        method,
        request_headers,
        offer.etag,
        last_modified,
        may_gzip,
        (cache_control, vary, fixed_headers, headers),
    )


def _precondition_answer(
    method: str,
    request_headers: Mapping[str, str],
    etag: str | None,
    last_modified: int | None,
    may_gzip: bool,
    options: tuple[Any, ...],
) -> Answer | None:
    """The 304/412 for a representation with these validators, before any body exists.

    A condition may name the identity or, when the answer may be gzipped, the
    gzip ETag; the answer carries the one it named.
    """
    if not _has_preconditions(request_headers):
        return None
    candidates = () if etag is None else _gzip_candidates(etag) if may_gzip else (etag,)
    outcome, named = _evaluate_preconditions(method, request_headers, candidates, last_modified)
    if outcome is None:
        return None
    cache_control, vary, fixed_headers, headers = options
    if headers:  # of the caller's headers, a 304/412 keeps those about caching
        out = _response_headers(
            None,
            cache_control,
            vary,
            may_gzip,
            last_modified,
            fixed_headers,
            _not_modified_headers(headers),
        )
    else:
        fixed = tuple(fixed_headers.items()) if fixed_headers else ()
        try:
            out = _validation_headers(cache_control, tuple(vary), may_gzip, last_modified, fixed)
        except TypeError:  # an option that is no key (a header given as a list): made here
            out = _response_headers(
                None, cache_control, vary, may_gzip, last_modified, fixed_headers, None
            )
        else:
            out = out.copy()
    if etag is not None:
        out["ETag"] = named or etag
    return _new_tuple(Answer, (outcome, out, "", False))  # Answer(...) without its __new__


@functools.lru_cache(maxsize=256)
def _validation_headers(
    cache_control: str | None,
    vary: tuple[str, ...],
    may_gzip: bool,
    last_modified: int | None,
    fixed_headers: tuple[tuple[str, str], ...],
) -> dict[str, str]:
    """A 304/412's headers but its ETag, memoised: a function of these options alone.

    The key holds no request and no ETag (a site has a few of each option); callers
    copy the answer before adding to it.
    """
    return _response_headers(
        None, cache_control, vary, may_gzip, last_modified, dict(fixed_headers), None
    )


def _stated_last_modified(headers: Mapping[str, str]) -> int | None:
    """The ``Last-Modified`` a caller states in its headers, as a validator (an input)."""
    for name, value in headers.items():
        if name.lower() == "last-modified":
            return parse_http_date(value)
    return None


def _response_headers(
    content_type: str | None,
    cache_control: str | None,
    vary: tuple[str, ...],
    may_gzip: bool,
    last_modified: int | None,
    fixed_headers: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of an answer, from its inputs (``None`` type: a 304/412, which has none)."""
    out: dict[str, str] = {} if content_type is None else {"Content-Type": content_type}
    out[_NOSNIFF[0]] = _NOSNIFF[1]
    if cache_control is not None:
        out["Cache-Control"] = cache_control
    if last_modified is not None:
        out["Last-Modified"] = http_date(last_modified)
    if fixed_headers:
        out.update(fixed_headers)
    if extra:
        out.update(extra)
    if not vary and not headers and "Vary" not in out:  # the common case, without a loop
        if may_gzip:
            out["Vary"] = "Accept-Encoding"
        return out
    fields = list(vary)
    if headers:
        for name, value in headers.items():
            if name.lower() == "vary":
                fields.extend(field.strip() for field in str(value).split(","))
            else:
                out[name] = value
    if may_gzip:
        fields.append("Accept-Encoding")
    if fields:
        existing = out.get("Vary")  # e.g. "Origin" from CORS with a named origin
        for field in fields:
            if field:
                existing = _merged_vary(existing, field)
        if existing:
            out["Vary"] = existing
    return out


def _merged_vary(existing: str | None, field: str) -> str:
    """``existing`` with ``field`` appended unless it is there already (case-insensitive)."""
    if not existing:
        return field
    if field.lower() in (part.strip().lower() for part in existing.split(",")):
        return existing
    return f"{existing}, {field}"


def _at_least(body: str | bytes, size: int) -> bool:
    """Whether ``body`` (text as UTF-8) is at least ``size`` bytes long."""
    if len(body) >= size:
        return True
    return isinstance(body, str) and not body.isascii() and len(body.encode("utf-8")) >= size


def _sized(
    answer: Answer, method: str, debug: bool, fixed_headers: Mapping[str, str] | None
) -> Answer:
    """``answer``, with no body for HEAD, or a 500 when the body is over Lambda's limit."""
    if method == "HEAD":
        return answer._replace(body="")
    size = _payload_size(answer.body, answer.headers)
    if size > LAMBDA_RESPONSE_LIMIT:
        return _too_large_answer(size, debug, fixed_headers)
    return answer


def _has_preconditions(request_headers: Mapping[str, str]) -> bool:
    """Whether a request (lower-case header names) has any conditional header."""
    return (
        "if-none-match" in request_headers
        or "if-match" in request_headers
        or "if-modified-since" in request_headers
        or "if-unmodified-since" in request_headers
    )


@functools.lru_cache(maxsize=1024)  # asked of every conditional request for a compressible type
def _gzip_etag(etag: str) -> str:
    """The gzip representation's ETag: never the identity's (RFC 9110 §8.8.3)."""
    return etag[:-1] + '-gz"'


@functools.lru_cache(maxsize=1024)  # asked of every conditional request for a compressible type
def _gzip_candidates(etag: str) -> tuple[str, str]:
    """The ETags a condition may name when the answer may be gzipped: identity, then gzip."""
    return etag, _gzip_etag(etag)


def _not_modified_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caching headers of ``headers`` for a 304/412 (RFC 9110 §15.4.5), no body headers.

    The toolkit's own (nosniff, CORS, security headers) are always kept.
    """
    return {name: value for name, value in headers.items() if name.lower() in _NOT_MODIFIED_HEADERS}


def _fixed_headers(
    cors_origin: str | None, security_headers: bool | Mapping[str, str] | None
) -> dict[str, str]:
    """Headers every answer of a manager carries: CORS and the chosen security headers."""
    out: dict[str, str] = {}
    if security_headers is True:
        out.update(DEFAULT_SECURITY_HEADERS)
    elif isinstance(security_headers, Mapping):
        out.update(security_headers)
    elif security_headers not in (None, False):
        raise ValueError(
            f"security_headers is True, False, None or a mapping, not {security_headers!r}"
        )
    if cors_origin:
        out["Access-Control-Allow-Origin"] = cors_origin
        if cors_origin != "*":
            out["Vary"] = "Origin"
    return out


def _static_offer(static_file: _StaticSnapshot, content_type: str) -> Offer:
    """A static file on offer: its content-hash ETag, its body and gzip form on demand.

    As its own type, the offer is made once per version and kept on the snapshot.
    """
    if content_type == static_file.content_type and static_file.offer is not None:
        return static_file.offer
    made = static_file._bytes
    offer = Offer(content_type, made.body, static_file.etag, None, made.gzip_body, True)
    if content_type == static_file.content_type:
        static_file.offer = offer
    return offer


def _no_body() -> bytes:
    """The body of an offer asked only about its preconditions."""
    raise RuntimeError("answer_preconditions never builds a body")


_ATTACHMENT = {"Content-Disposition": "attachment"}


def _sniffed_type(body: bytes) -> tuple[str, Mapping[str, str] | None]:
    """The type of bytes known only by sniffing: never an active type inline.

    HTML, XHTML, XML, SVG or JavaScript from someone else's bytes would run
    on the site's origin: it goes out as ``application/octet-stream``, an attachment.
    """
    media_type = sniff_content_type(body)
    if _is_active_type(media_type):
        return "application/octet-stream", _ATTACHMENT
    return media_type, None


def _error_answer(status_code: int, message: str, fixed_headers: Mapping[str, str]) -> Answer:
    """The toolkit's own HTML error page, with the manager's fixed headers; never stored."""
    import html

    titles = {400: "Bad Request", 403: "Forbidden", 413: "Content Too Large"}
    title = f"{status_code} {titles.get(status_code, 'Error')}"
    body = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{html.escape(message)}</p></body></html>"
    )
    headers = _response_headers(
        "text/html; charset=utf-8", PRIVATE_CACHE_CONTROL, (), False, None, fixed_headers, None
    )
    return Answer(status_code, headers, body, True)


# ---------------------------------------------------------------------------
# The Chalice adapter: responses API Gateway delivers intact, routes and URLs
# ---------------------------------------------------------------------------


class _GatewayResponse(Response):
    """A Chalice ``Response`` marshalled for API Gateway by its body type.

    Bytes travel base64-encoded with ``isBase64Encoded`` (API Gateway decodes
    them when the request's first Accept type matches binaryMediaTypes, which
    the toolkit sets to ``*/*``); text travels as text and reaches the client
    intact whatever its Accept header. This holds whatever ``binary_types``
    says, so a gzip body with a text Content-Type still arrives as bytes
    (aws/chalice#1776).
    """

    #: For a 304/412 of the toolkit: what answers the request in full, privately, should it
    #: turn personal before it leaves (:meth:`Exchange.finish`).
    private_answer: tuple[Any, ...] | None = None

    def to_dict(self, binary_types: list[str] | None = None) -> dict[str, Any]:
        body = self.body
        headers = self.headers
        if (type(body) is str or type(body) is bytes) and _TEXT_ONLY.issuperset(
            map(type, headers.values())
        ):  # what Chalice makes of it (every header single), without its loop per header
            response = {
                "headers": dict(headers),
                "multiValueHeaders": {},
                "statusCode": self.status_code,
                "body": body,
            }
        else:
            response = super().to_dict(None)
            body = response["body"]
        if type(body) is str:  # the common case, without an isinstance check
            return response
        if isinstance(body, (bytes, bytearray)):
            response["body"] = base64.b64encode(body).decode("ascii")
            response["isBase64Encoded"] = True
        return response


_TEXT_ONLY = frozenset((str,))

_CHALICE_INSTALLED = "_chalice_http_toolkit_gateway"


def install_gateway_support(app: Any) -> None:
    """Make every response of ``app`` reach clients intact through API Gateway REST.

    Adds ``*/*`` to the API's binary media types (API Gateway then decodes a
    base64 body whatever the browser's first Accept type is) and registers an
    HTTP middleware that marshals bodies by type, treats a missing ``Accept``
    as ``*/*`` (RFC 9110 §12.5.1; Chalice would otherwise answer 400 for a
    ``*/*`` binary type) and enforces the Lambda payload limit for the app's
    own routes too. Idempotent. A ``Blueprint`` has no API of its own: call
    this on the ``Chalice`` app it is registered with.
    """
    _install_gateway(app, _gateway_middleware)


def _install_gateway(app: Any, middleware: Callable[[Any, Callable[[Any], Any]], Any]) -> None:
    """:func:`install_gateway_support` with ``middleware`` (``_gateway_middleware`` first)."""
    if getattr(app, _CHALICE_INSTALLED, False):
        return
    api = getattr(app, "api", None)
    if api is not None:
        # ``*/*`` covers every other entry; a one-item list also keeps Chalice's
        # per-request binary checks cheap.
        api.binary_types[:] = ["*/*"]
    else:
        logger.warning(
            "%s has no API Gateway settings (a Blueprint?): call install_gateway_support(app) "
            "on the Chalice app so binary responses survive API Gateway",
            type(app).__name__,
        )
    app.register_middleware(middleware, "http")
    setattr(app, _CHALICE_INSTALLED, True)


def _gateway_middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
    if request is not None and request.headers.get("accept") is None:
        _accept_anything(request)
    return _gateway_marshalled(get_response(request))


def _accept_anything(request: Any, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """Give a request without ``Accept`` the ``*/*`` that RFC 9110 §12.5.1 says it means.

    ``headers``: the request's, lower-case, when the caller has them. Returns the new ones.
    """
    headers = dict(request.headers.items() if headers is None else headers)
    headers["accept"] = "*/*"
    request.headers = CaseInsensitiveMapping(headers)
    return headers


def _gateway_marshalled(response: Any, fixed_headers: Mapping[str, str] | None = None) -> Any:
    """``response`` as a :class:`_GatewayResponse`, or a 500 when over Lambda's payload limit.

    ``fixed_headers``: what the toolkit's own answers carry (a manager's), for that 500.
    """
    if type(response) is _GatewayResponse:
        return response
    body = response.body
    if isinstance(body, (str, bytes)):
        size = _payload_size(body, response.headers)
        if size > LAMBDA_RESPONSE_LIMIT:
            return _gateway_response(_too_large_answer(size, False, fixed_headers))
    return _GatewayResponse(body=body, headers=response.headers, status_code=response.status_code)


def _gateway_response(answer: Answer) -> _GatewayResponse:
    """An answer as the response Chalice hands to API Gateway."""
    return _GatewayResponse(answer.body, answer.headers, answer.status)  # positional: cheaper


_AppLike = Any  # chalice.Chalice or chalice.Blueprint


def _not_found_paths(routes: Iterable[str], max_depth: int) -> list[str]:
    """The not-found routes for an app with ``routes``: one variable path part per level
    down to ``max_depth``, then a greedy tail, never beside a variable part of another name.

    At each level the app's own variable part is followed under its name; the app's
    greedy part ends the walk (it takes every deeper path); a path the app has is not
    added again.

    >>> _not_found_paths(["/", "/{id}/update", "/post/{slug}", "/files/{path+}"], 2)
    ['/{id}', '/{id}/{n1}', '/{id}/{n1}/{proxy+}']
    >>> _not_found_paths(["/{proxy+}"], 4)
    []
    """
    children: dict[str, list[str]] = {}
    for route in routes:
        parent = ""
        for segment in route.strip("/").split("/") if route.strip("/") else ():
            children.setdefault(parent, []).append(segment)
            parent += "/" + segment
    existing = set(routes)
    paths, parent, names, depth = [], "", set(), 0
    while True:
        variables = [part for part in children.get(parent, ()) if part.startswith("{")]
        if variables and variables[0].endswith("+}"):
            return paths
        if depth >= max_depth and not variables:
            paths.append(parent + "/{" + _unused_name("proxy", names) + "+}")
            return paths
        segment = variables[0] if variables else "{" + _unused_name(f"n{depth}", names) + "}"
        names.add(segment.strip("{}"))
        parent += "/" + segment
        if parent not in existing:
            paths.append(parent)
        depth += 1


def _unused_name(name: str, used: set[str]) -> str:
    """``name``, or ``name`` with underscores appended until no other part of the path has it."""
    while name in used:
        name += "_"
    return name


def _match_greedy_routes_locally() -> None:
    """Route ``chalice local`` and ``chalice.test.Client`` as API Gateway does.

    Chalice's local router matches a route only when it has as many segments as the
    path, takes the first such route in the app's order, and knows no greedy
    ``{name+}`` (a path deeper than every route got the local gateway's 403 "Missing
    Authentication Token"). The local router here is API Gateway's resource matching
    (:class:`_RouteTable`, the one the front doors use): a literal segment beats a
    ``{param}``, which beats a greedy tail; ``/files/{path+}`` beats the not-found
    routes' ``/{n0}/{n1}/{n2}`` for ``/files/a/b``, as deployed. Values stay as the
    path carries them, as Chalice's own router leaves them.
    Once per process; never on Lambda, where API Gateway does the routing.
    """
    from chalice import local

    matcher = local.RouteMatcher
    if getattr(matcher, "_chalice_http_toolkit_greedy", False):
        return

    def match_route(self: Any, url: str) -> Any:
        table = self.__dict__.get("_chalice_http_toolkit_table")
        if table is None:
            table = self._chalice_http_toolkit_table = _RouteTable.build(self.route_urls)
        parsed = local.urlparse(url)
        found = table.match(_path_segments(parsed.path))
        if found is None:
            raise ValueError(f"No matching route found for: {url}")
        route, captured = found
        query = local.parse_qs(parsed.query, keep_blank_values=True)
        return local.MatchResult(route, captured, query)

    matcher.match_route = match_route
    matcher._chalice_http_toolkit_greedy = True


def ex_multipart(app: _AppLike) -> dict[str, dict[str, Any]]:
    """0.6.2's helper: the current request's multipart parts by name (the last one wins).

    Returns ``{name: {"data": bytes, "filename": str | None}}``; a malformed
    body raises :class:`FormError` (answered 400/413 by a ContentManager's
    middleware). New code: :meth:`ContentManager.form`.
    """
    request = app.current_request
    limits = FormLimits()
    media_type, options = _media_type_and_options(request.headers.get("content-type"))
    if media_type != "multipart/form-data":
        raise FormError(400, "The request is not multipart/form-data.")
    parts = _multipart_parts(_request_body(request, limits), options.get("boundary"), limits)
    return {name: {"data": data, "filename": filename} for name, filename, _, _, data in parts}


class ResponseWithBinary(_GatewayResponse):
    """0.6.2's name: a ``Response`` whose bytes body reaches the client intact for every Accept.

    Bytes travel base64-encoded with ``isBase64Encoded`` (the toolkit sets the
    API's binary media types to ``*/*``), text as text; there is no ``STAGE``
    switch. Setting ``isBase64Encoded`` (0.6.2 code does) changes nothing.
    """

    isBase64Encoded = False


_EXECUTE_API_HOST = r"[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:443)?"

_ROUTE_PARAMETER = r"\{([^}+]+)(\+?)\}"


def _script_root(exchange: Exchange | None) -> str:
    """``/{stage}`` on the execute-api URL, else ``""`` (CloudFront, custom domain, local).

    API Gateway serves the stage under its own path on the execute-api host;
    behind CloudFront (the origin path holds the stage; its function sets
    ``X-Forwarded-Host``) or a custom domain mapped at its root there is none.
    """
    if exchange is None:
        return ""
    headers = exchange.headers
    if "x-forwarded-host" in headers:
        return ""
    stage = (exchange.request.context or {}).get("stage")
    # "$default" (HTTP API, Function URL, ALB through lambda_handler) is not in the path.
    if stage and stage != "$default" and _is_execute_api_host(headers.get("host", "")):
        return "/" + stage
    return ""


@functools.lru_cache(maxsize=64)
def _is_execute_api_host(host: str) -> bool:
    """Whether ``host`` is API Gateway's own ``{api}.execute-api.{region}.amazonaws.com``."""
    # Asked of every page: memoised for the few hosts a site sees (longer is no hostname).
    return _is_short_execute_api_host(host) if len(host) <= 255 else _matches_execute_api(host)


def _matches_execute_api(host: str) -> bool:
    # The pattern is compiled only for hosts that may match (a cold start behind a domain never).
    if ".execute-api." not in host.lower():
        return False
    return re.fullmatch(_EXECUTE_API_HOST, host, re.IGNORECASE) is not None


_is_short_execute_api_host = functools.lru_cache(maxsize=64)(_matches_execute_api)


def _routes_of(app: _AppLike) -> Mapping[str, Mapping[str, Any]]:
    """Chalice's route table: path → method → RouteEntry (a Blueprint's app's, once registered)."""
    routes = getattr(app, "routes", None)
    if routes is None:  # a Blueprint: its app's, once registered
        try:
            routes = app.current_app.routes
        except (AttributeError, RuntimeError):
            routes = None
    return routes or {}


def _route_path(app: _AppLike, view_name: str) -> str:
    """The path of the view named ``view_name`` (its first, when one view has several).

    Two different view functions under one name (two blueprints registered without
    a ``name_prefix``) raise ``ValueError`` naming the view and both paths: which
    one a link meant cannot be guessed.
    """
    found: dict[Any, str] = {}  # view function -> its first path
    for path, methods in _routes_of(app).items():
        for entry in methods.values():
            if entry.view_name == view_name:
                found.setdefault(entry.view_function, path)
    if not found:
        raise ValueError(f"url_for: no route has the view name {view_name!r}")
    if len(found) > 1:
        raise ValueError(
            f"url_for: {len(found)} views share the name {view_name!r} "
            f"({', '.join(sorted(found.values()))}); register the blueprints with name_prefix="
        )
    return next(iter(found.values()))


def _build_url(path: str, params: dict[str, Any]) -> str:
    """``path`` with its ``{name}`` parts filled, percent-encoded; unused ``params`` form the query.

    A value that would leave its place in the path is refused with ``ValueError``:
    an empty one (``//`` would make a link to another host), ``.`` or ``..``
    (which the browser resolves upwards), and for a greedy ``{name+}`` any such
    segment. ``/`` is encoded except in a greedy part. ``None`` values are left out
    of the query.
    """
    from urllib.parse import quote, urlencode

    def fill(match: re.Match) -> str:
        name, greedy = match.group(1), match.group(2)
        if name not in params:
            raise ValueError(f"url_for: route {path} needs a value for {name!r}")
        value = str(params.pop(name))
        segments = value.split("/") if greedy else [value]
        if any(segment in ("", ".", "..") for segment in segments):
            raise ValueError(
                f"url_for: {value!r} for {name!r} in {path} would leave the path "
                "(an empty part, '.' or '..')"
            )
        return quote(value, safe="/" if greedy else "")

    built = re.sub(_ROUTE_PARAMETER, fill, path)
    query = [(name, value) for name, value in params.items() if value is not None]
    return built + ("?" + urlencode(query, doseq=True) if query else "")


# The resource path of a request no route matches (no route has it): lambda_handler hands
# it to an app with the toolkit's middleware, which answers it with the site's 404 page.
_UNROUTED_RESOURCE_PATH = "/_chalice_http_toolkit/not-found"


class _RouteTable:
    """API Gateway's resource matching over a Chalice route table.

    At each path segment a literal resource wins over a ``{param}``, which wins over
    a greedy ``{name+}`` that takes the rest of the path (at least one segment).
    A trailing slash is ignored, as API Gateway does.
    """

    __slots__ = ("greedy", "literal", "params", "paths", "route")

    def __init__(self) -> None:
        self.literal: dict[str, _RouteTable] = {}
        self.params: list[tuple[str, _RouteTable]] = []
        self.greedy: tuple[str, str] | None = None
        self.route: str | None = None
        self.paths: dict[tuple[str, bool], Any] = {}  # the root's memo of match_path()

    @classmethod
    def build(cls, routes: Iterable[str]) -> _RouteTable:
        root = cls()
        for route in routes:
            node = root
            for segment in _path_segments(route):
                if segment.startswith("{") and segment.endswith("+}"):
                    node.greedy = (segment[1:-2], route)
                    break
                if segment.startswith("{") and segment.endswith("}"):
                    name = segment[1:-1]
                    child = next((c for n, c in node.params if n == name), None)
                    if child is None:
                        child = cls()
                        node.params.append((name, child))
                    node = child
                else:
                    node = node.literal.setdefault(segment, cls())
            else:
                node.route = route
        return root

    def match_path(self, path: str, encoded: bool) -> tuple[str, dict[str, str]] | None:
        """:meth:`match` for a request path (``encoded``: still percent-encoded), remembered.

        A table lives as long as the app's routes are unchanged (:func:`_route_table`), so
        a path's route does too; up to ``_ROUTED_PATHS`` short paths are kept. The
        parameters are a copy (the view may change them); ``{}`` is shared: read only.
        """
        key = (path, encoded)
        found = self.paths.get(key, _MISSING)
        if found is _MISSING:
            segments = _path_segments(path)
            if encoded and "%" in path:
                segments = [unquote(part) if "%" in part else part for part in segments]
            found = self.match(segments)
            if len(self.paths) < _ROUTED_PATHS and len(path) <= _ROUTED_PATH_LENGTH:
                self.paths[key] = found
        return found if found is None or not found[1] else (found[0], dict(found[1]))

    def match(self, segments: list[str]) -> tuple[str, dict[str, str]] | None:
        """The route for a request path's (decoded) segments and its parameters, or ``None``."""
        captured: dict[str, str] = {}
        route = self._match(segments, 0, captured)
        return None if route is None else (route, captured)

    def _match(self, segments: list[str], index: int, captured: dict[str, str]) -> str | None:
        if index == len(segments):
            return self.route
        segment = segments[index]
        child = self.literal.get(segment)
        if child is not None:
            route = child._match(segments, index + 1, captured)
            if route is not None:
                return route
        if segment:
            for name, child in self.params:
                route = child._match(segments, index + 1, captured)
                if route is not None:
                    captured[name] = segment
                    return route
        if self.greedy is not None and any(segments[index:]):
            name, route = self.greedy
            # As API Gateway: ``{proxy+}`` is ``pathParameters["proxy"]`` (Chalice passes no
            # argument for it; the view reads ``current_request.uri_params``).
            captured[name] = "/".join(segments[index:])
            return route
        return None


# Request paths (of at most so many characters) a route table remembers the route of;
# others are matched on every request.
_ROUTED_PATHS = 4096

_ROUTED_PATH_LENGTH = 256


def _path_segments(path: str) -> list[str]:
    path = path.strip("/") if path != "/" else ""
    return path.split("/") if path else []


_ROUTE_TABLE_ATTRIBUTE = "_chalice_http_toolkit_route_table"


def _route_table(app: Any) -> _RouteTable:
    """The app's :class:`_RouteTable`, rebuilt when routes were added since."""
    routes = app.routes
    cached = getattr(app, _ROUTE_TABLE_ATTRIBUTE, None)
    if cached is None or cached[0] != len(routes):
        cached = (len(routes), _RouteTable.build(list(routes)))
        setattr(app, _ROUTE_TABLE_ATTRIBUTE, cached)
    return cached[1]


# ---------------------------------------------------------------------------
# The parts of a ContentManager: static URLs, pages, answers and visitors
# ---------------------------------------------------------------------------


class _StaticSite:
    """Static files by URL: the index, image variants and content-hashed URLs (``static()``)."""

    def __init__(
        self,
        static_dir: str,
        images: StaticImages,
        *,
        auto_reload: bool,
        static_cache_bytes: int,
        memo_bytes: int,
    ) -> None:
        self.static_dir = static_dir
        self.static_prefix = "/static"
        self.static_files = StaticIndex(
            static_dir, auto_reload=auto_reload, cache_bytes=static_cache_bytes
        )
        self.images = images
        self._static_urls = BoundedCache(memo_bytes)  # (filename, width) -> URL

    def static_url(self, filename: str, width: int | None = None) -> str:
        """Cache-busting URL for a static file: ``/static/css/site.<hash>.css``.

        ``width`` asks for a raster image resized to one of ``image_widths``
        (``/static/img/hero.<hash>.w640.jpg``); another width, or a width on a
        file that is not a raster image, raises ``ValueError``. A missing file
        gets its plain URL (and a warning) so the page still renders.
        """
        url = self._static_urls.peek((filename, width))  # read per static() call: no LRU step
        if url is None:
            url = self._static_url(filename, width)
            self._static_urls.put((filename, width), url)
        return url

    def _static_url(self, filename: str, width: int | None) -> str:
        relpath = filename.lstrip("/")
        if width is not None and width not in self.images.widths:
            raise ValueError(f"width {width!r} is not one of image_widths {self.images.widths}")
        static_file = self.static_files.get(relpath)
        if static_file is None:
            logger.warning("static(): %r is not in %s", filename, self.static_dir)
            url = relpath
        else:
            if width is not None and static_file.content_type not in IMAGE_FORMATS:
                raise ValueError(f"{filename!r} is not a raster image; it has no width variants")
            url = _fingerprinted(relpath, static_file.fingerprint)
        return f"{self.static_prefix}/{_with_width(url, width) if width else url}"

    def srcset(self, filename: str) -> str:
        """A ``srcset`` value for a raster image: its ``image_widths`` variants and itself.

        Only widths below the image's own are listed (never upscale), then the
        original at its own width; an unreadable image gets its plain URL only.
        """
        static_file = self.static_files.get(filename.lstrip("/"))
        if static_file is None or static_file.content_type not in IMAGE_FORMATS:
            return self.static_url(filename)
        size = self.images.dimensions(static_file)
        if size is None:
            return self.static_url(filename)
        candidates = [
            f"{self.static_url(filename, width)} {width}w"
            for width in self.images.widths
            if width < size[0]
        ]
        candidates.append(f"{self.static_url(filename)} {size[0]}w")
        return ", ".join(candidates)


class _Pages:
    """Templates rendered, and their ETags known without rendering (the page cache)."""

    def __init__(
        self,
        templates_dir: str,
        statics: _StaticSite,
        own_globals: Callable[[], dict[str, Any]],
        *,
        auto_reload: bool,
        page_cache_bytes: int,
        memo_cache_bytes: int,
    ) -> None:
        self.templates_dir = templates_dir
        self.statics = statics
        self.auto_reload = auto_reload
        self._make_own_globals = own_globals
        self._env: Any = None
        self._own_globals: dict[str, Any] = {}  # the toolkit's helpers in templates
        self._planned_by_build = False  # a page plan made before the environment
        #: Pages rendered by :meth:`CloudFront.template`, keyed by their ETag.
        self.pages = BoundedCache(page_cache_bytes)
        self._template_deps = BoundedCache(memo_cache_bytes)  # filename -> _TemplateDeps
        # Memos of what files determine hold nothing while files may change.
        memo_bytes = 0 if auto_reload else memo_cache_bytes
        self._page_plans = BoundedCache(memo_bytes)  # (filename, salt) -> _PagePlan
        self._template_etags = BoundedCache(memo_bytes)  # (filename, salt, memo key) -> ETag
        # (filename, salt) -> [digests computed, digests that paid off, renders since]:
        # whether hashing a template's arguments ever spares a render (see page_offer).
        self._digest_payoff: dict[tuple[str, str], list[int]] = {}

    def clear(self) -> None:
        """Forget every memo and page."""
        for cache in (self._template_deps, self._page_plans, self._template_etags, self.pages):
            cache.clear()

    @property
    def env(self) -> Any:
        """The ``jinja2.Environment`` (created on first use).

        Autoescape is on for every template except those whose extension names a
        non-markup text type (.txt, .json, .js, .css, .md); ``.j2``/``.jinja``/
        ``.tmpl`` suffixes are looked through, an extensionless name is HTML.
        """
        if self._env is None:
            import jinja2

            self._env = _environment_class()(
                loader=jinja2.FileSystemLoader(self.templates_dir),
                autoescape=_template_autoescape,
                auto_reload=self.auto_reload,
                # A plain dict instead of a locked LRU: a site's templates are few,
                # and every include looks its template up in this cache.
                cache_size=-1,
                bytecode_cache=_prepared_bytecode(self.templates_dir),  # a build's work
            )
            env = self._env
            if self._planned_by_build:
                self._check_build_defaults(env)
            own = self._own_globals
            own.update(self._make_own_globals())
            # A helper the site adds or replaces later makes the page plans stale.
            env.globals = _Registry({**env.globals, **own}, self._forget_plans)
            env.filters = _Registry(env.filters, self._forget_plans, _at_render_time)
            env.tests = _Registry(env.tests, self._forget_plans, _at_render_time)
        return self._env

    def _check_build_defaults(self, env: Any) -> None:
        """Forget the plans made before ``env`` if the build's Jinja2 had other defaults."""
        recorded = _prepared_entries(self.templates_dir, _prepared_path())[2]
        if recorded != _jinja_defaults(env):
            logger.warning("prepared file: another Jinja2 made it; its templates are parsed anew")
            self._template_deps.clear()
            self._forget_plans()

    def _forget_plans(self) -> None:
        """Forget what was learnt of templates' helpers (the site changed one)."""
        self._page_plans.clear()
        self._template_etags.clear()
        self.pages.clear()

    def load_template(self, filename: str) -> Any:
        """The compiled ``jinja2.Template``; a missing one raises :class:`TemplateNotFoundError`."""
        import jinja2

        try:
            return self.env.get_template(filename)
        except jinja2.TemplateNotFound as error:
            missing = error.name if error.name and error.name != filename else filename
            raise TemplateNotFoundError(
                f"template {missing!r} not found in {self.templates_dir}"
                + (f" (needed by {filename!r})" if missing != filename else "")
            ) from error

    def render_template(self, filename: str, **kwargs: Any) -> str:
        """Render ``filename`` with ``kwargs``; a missing template raises TemplateNotFoundError."""
        template = self.load_template(filename)
        try:
            return template.render(kwargs)
        except LookupError as error:
            import jinja2

            if isinstance(error, jinja2.TemplateNotFound):
                raise TemplateNotFoundError(
                    f"template {error.name!r} not found in {self.templates_dir} "
                    f"(needed by {filename!r})"
                ) from error
            raise

    def template_dependencies(self, filename: str) -> _TemplateDeps:
        """The template's transitive extends/include/import closure, parsed once.

        With ``auto_reload`` a changed file (mtime or size) invalidates the entry.
        """
        cached = self._template_deps.get(filename)
        if cached is not _MISSING and (
            not self.auto_reload or all(_stat_key(path) == key for path, key in cached.files)
        ):
            return cached
        # a build's work; before the environment is made, read without importing Jinja2
        deps = _prepared_template(self._env, filename, self.templates_dir)
        if deps is None:
            deps = _analyse_template(self.env, filename, self.templates_dir)
        self._template_deps.put(filename, deps)
        return deps

    def template_etag(self, filename: str, kwargs: Mapping[str, Any], salt: str = "") -> str | None:
        """Quoted ETag of a template's output computed without rendering it.

        Hashes the template's name, its closure, the static files it names (or
        every static file when a ``static()`` argument is not constant), the
        static prefix and a canonical digest of ``kwargs``. ``None`` when the
        output cannot be predicted: a dynamic include, a volatile or personal
        name (``random``), or an argument with no canonical form; the caller
        then renders (and hashes) the body.
        """
        return self._page_etag(filename, kwargs, salt)[0]

    def _page_etag(
        self, filename: str, kwargs: Mapping[str, Any], salt: str, remembered_only: bool = False
    ) -> tuple[str | None, _PagePlan, Offer | None]:
        """:meth:`template_etag`, the template's :class:`_PagePlan`, and the page's offer.

        Memoised together; the offer (of a memoised ETag only) renders from the memo
        key, an exact copy of the arguments. ``remembered_only``: the memo's ETag, else
        ``None`` (no digest is computed).
        """
        key = _memo_key(kwargs)
        memo: tuple[Any, ...] | None = None if key is None else (filename, salt, key)
        if memo is not None:
            found = self._template_etags.get(memo)
            if found is not _MISSING:  # (it pays when it spares a render: page(), a 304)
                return found
        plan = self._page_plan(filename, salt)
        values: list[tuple[str, Any]] = []
        if plan.values:  # the site's value globals: read now, they may have changed
            site_globals = self.env.globals
            values = [(name, site_globals.get(name)) for name in plan.values if name not in kwargs]
            values_key = _memo_key(values)
            memo = None if memo is None or values_key is None else (*memo, values_key)
            if memo is not None:
                found = self._template_etags.get(memo)
                if found is not _MISSING:
                    return found
        if remembered_only:
            return None, plan, None
        etag = None
        has_bytes = False
        if plan.base is not None:
            arguments, has_bytes = _canonical_digest(
                [(name, kwargs[name]) for name in sorted(kwargs)]
                + [("\0" + name, value) for name, value in values]
            )
            if arguments is not None:
                hasher = plan.base.copy()
                hasher.update(arguments.encode())
                etag = quote_etag(hasher.hexdigest())
                self._digest_paid(filename, salt, False)
        if memo is None or etag is None or has_bytes:
            return etag, plan, None
        # The page's offer, made once for the requests that find this entry: its body is
        # rendered (and kept) only when asked for. This request renders from its own
        # arguments (no copy to make).
        render = functools.partial(self._render_kept, filename, key, plan.content_type, etag)
        found = (etag, plan, Offer(plan.content_type, render, etag))
        # the plan and the key are shared with the entry's key: count their references only
        self._template_etags.put(memo, found, cost=_held_size(etag) + _MEMO_OFFER_BYTES)
        return etag, plan, None

    def _render_kept(self, filename: str, key: bytes, content_type: str, etag: str) -> str:
        """The page a memoised ETag names, rendered from its memo key and kept under it.

        ``marshal.loads(key)`` is a copy of the arguments that made the ETag (the memo
        holds no value that marshal would write as another type), so a later change to
        the objects a view passed never reaches a page rendered under the old ETag.
        """
        made = _Page(self.render_template(filename, **marshal.loads(key)), content_type, etag)
        self.pages.put(etag, made, cost=made.cost())
        return made.body

    def _page_plan(self, filename: str, salt: str) -> _PagePlan:
        plan = self._page_plans.get((filename, salt))
        if plan is _MISSING:
            plan = self._make_page_plan(filename, salt)
            self._page_plans.put((filename, salt), plan, cost=1024)  # a blake2b state and names
        return plan

    def _make_page_plan(self, filename: str, salt: str) -> _PagePlan:
        """What serving ``filename`` needs besides its arguments (see :class:`_PagePlan`)."""
        deps = self.template_dependencies(filename)
        if self._env is None:  # the build's analysis, Jinja2's defaults (a cold start's 304)
            defaults = _prepared_entries(self.templates_dir, _prepared_path())[2]
            self._planned_by_build = True
            impure = _default_template_helpers(deps, self._make_own_globals(), defaults["globals"])
            values: tuple[str, ...] = ()
        else:
            impure, values = _template_helpers(self.env, deps, self._own_globals)
        content_type = _template_content_type(filename)
        if deps.digest is None or impure:
            return _PagePlan(None, content_type, ())
        static_files = self.statics.static_files
        if deps.static_refs is None:
            statics = static_files.digest()
        else:
            parts = []
            for relpath in sorted(deps.static_refs):
                static_file = static_files.get(relpath.lstrip("/"))
                parts.append(f"{relpath}={static_file.digest if static_file else '-'}")
            statics = "\0".join(parts)
        hasher = _blake2b()
        for part in (
            f"t2\0{__version__}\0{len(filename)}:{filename}\0{salt}\0{self.statics.static_prefix}\0"
            f"{self.statics.images.widths}\0",
            deps.digest,
            statics,
        ):
            hasher.update(part.encode("utf-8", "surrogatepass"))
        return _PagePlan(hasher, content_type, values)

    def page_offer(
        self, filename: str, kwargs: Mapping[str, Any], salt: str = "", *, private: bool = False
    ) -> Offer:
        """The offer of ``filename`` rendered with ``kwargs``: ETag, type, body on demand.

        When the ETag is known without rendering, the body is the page kept under
        it (rendered once per container, ``page_cache_bytes``). Otherwise (dynamic
        includes, volatile names, arguments with no canonical form) the page is
        rendered now and its bytes hashed, and it is never cached. When ``private``
        (the request read who is asking) it is a ``private`` offer with no ETag at
        all, rendered for this request and kept nowhere; when rendering read who is
        asking (a helper of the site's), the answer is private (:meth:`answer`).
        """
        return self._page_offer(filename, kwargs, salt, private)[0]

    def _page_offer(
        self,
        filename: str,
        kwargs: Mapping[str, Any],
        salt: str,
        private: bool,
        request_headers: Mapping[str, str] | None = None,
    ) -> tuple[Offer, list[int] | None]:
        """:meth:`page_offer`, and the template's digest payoff (where a 304 counts as spared).

        ``request_headers`` (lower-case): a conditional request is asked of the memo even
        while the template renders and hashes.
        """
        payoff = self._digest_payoff.get((filename, salt))
        remembered_only = False
        if payoff is not None and payoff[0] >= _DIGEST_TRIALS and payoff[1] * 8 < payoff[0]:
            # Hashing this template's arguments has not spared a render in the last
            # trials (new arguments every request): render and hash the output, and try
            # the digest now and then. A revalidation of arguments that came before
            # keeps the ETag the memo knows (it costs no digest, and it is the one the
            # client holds): a 304, not the page rendered whole under another ETag.
            payoff[2] += 1
            remembered_only = payoff[2] % _DIGEST_RETRY_EVERY != 0
            if remembered_only and (
                private or request_headers is None or not _has_preconditions(request_headers)
            ):
                return self._rendered_offer(filename, kwargs, private, fast_gzip=True), payoff
        etag, plan, remembered = self._page_etag(filename, kwargs, salt, remembered_only)
        if etag is None and remembered_only:
            return self._rendered_offer(filename, kwargs, private, fast_gzip=True), payoff
        # (the template's first digest, in this request, made its payoff)
        counted = payoff if payoff is not None else self._digest_payoff.get((filename, salt))
        if etag is None or private:
            return self._rendered_offer(filename, kwargs, private), counted
        pages = self.pages
        kept = pages.get(etag)
        if kept is not _MISSING:  # the arguments' digest spared a render (304 or not)
            if counted is not None:
                counted[1] += 1
            return kept.offer, None
        if remembered is not None:  # (its gzip form is made by the answer, the first time)
            return remembered, counted
        content_type = plan.content_type
        held: list[_Page] = []

        def page() -> str:
            made = _Page(self.render_template(filename, **kwargs), content_type, etag)
            pages.put(etag, made, cost=made.cost())
            held.append(made)
            return made.body

        def gzip_body() -> bytes | None:  # called after page()
            return held[0].offer.gzip_body()

        return Offer(content_type, page, etag, None, gzip_body), counted

    def _rendered_offer(
        self, filename: str, kwargs: Mapping[str, Any], private: bool, fast_gzip: bool = False
    ) -> Offer:
        """``filename`` rendered now: ETag from the output, or a private offer.

        ``fast_gzip``: a body made for one request is compressed at zlib's fastest level
        (a gzip form that is cached is worth the default level's smaller output).
        """
        body = self.render_template(filename, **kwargs)
        content_type = _template_content_type(filename)
        if private:
            return Offer(content_type, lambda: body, private=True)
        etag = quote_etag(_digest(body.encode("utf-8", "surrogatepass")))
        if not fast_gzip:
            return Offer(content_type, lambda: body, etag=etag)
        return Offer(content_type, lambda: body, etag, None, lambda: _gzip_if_smaller(body, 1))

    def _digest_paid(self, filename: str, salt: str, paid: bool) -> None:
        """Count an argument digest of ``filename``: computed, or sparing a render (``paid``)."""
        payoff = self._digest_payoff.get((filename, salt))
        if payoff is None:
            if len(self._digest_payoff) >= _DIGEST_PAYOFF_ENTRIES:
                self._digest_payoff.clear()
            payoff = self._digest_payoff[(filename, salt)] = [0, 0, 0]
        payoff[0] += 1
        if paid:
            payoff[1] += 1
        if payoff[0] >= _DIGEST_WINDOW:  # (remembered ETags count as paid, not as trials)
            payoff[1] = min(payoff[1], payoff[0]) // 2
            payoff[0] //= 2


class _Responder:
    """Answers the current exchange: offers, text, redirects, static files and assets."""

    def __init__(
        self,
        app: _AppLike | None,
        statics: _StaticSite,
        pages: _Pages,
        *,
        compress: bool,
        fixed_headers: dict[str, str],
        memo_cache_bytes: int,
    ) -> None:
        self.app = app
        self.pages = pages  # the site's error pages (``404.html``) are templates
        self.compress = compress
        self._fixed_headers = fixed_headers
        self.static_files = statics.static_files
        self.images = statics.images
        self._asset_types = BoundedCache(memo_cache_bytes)  # (resource, ETag) -> type, headers

    def answer(
        self,
        offer: Offer,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        cache_control: str | None = None,
        vary: tuple[str, ...] = (),
        private: bool = False,
    ) -> Response:
        """Answer the current request with ``offer`` (see :func:`answer_request`).

        A request that read or wrote who is asking is answered ``private``; one
        that turns personal after this answer was made is answered again, privately,
        when it leaves (:meth:`Exchange.finish`).
        """
        exchange = _current_exchange(self.app)
        private = private or _personal(exchange)
        return self._respond(exchange, offer, status_code, headers, cache_control, vary, private)

    def _respond(
        self,
        exchange: Exchange | None,
        offer: Offer,
        status_code: int,
        headers: Mapping[str, str] | None,
        cache_control: str | None,
        vary: tuple[str, ...],
        private: bool,
    ) -> Response:
        """:meth:`answer` in ``exchange``, whose privacy the caller decided (``private``)."""
        if exchange is None:
            method, request_headers = "GET", {}
        else:
            method, request_headers = exchange.method, exchange.headers
        debug = bool(getattr(self.app, "debug", False))
        answer = _answer(
            method,
            request_headers,
            offer,
            status_code,
            headers,
            cache_control,
            vary,
            self.compress,
            private,
            self._fixed_headers,
            debug,
        )
        response = _gateway_response(answer)
        if answer.status in (304, 412) and not private:
            # How to answer in full and privately, should the request turn personal
            # after this (a view that reads the session after calling cf.template).
            response.private_answer = (self, offer, status_code, headers, cache_control, vary)
        return response

    def _request_parts(self) -> tuple[str, Mapping[str, str]]:
        exchange = _current_exchange(self.app)
        if exchange is None:
            return "GET", {}
        return exchange.method, exchange.headers

    def _text(
        self, body: str, content_type: str, status_code: int, headers: Mapping[str, str] | None
    ) -> Response:
        return self.answer(Offer(content_type, lambda: body), status_code, headers)

    def html(self, body: str, status_code: int = 200, headers: dict | None = None) -> Response:
        """An HTML response (``text/html; charset=utf-8``)."""
        return self._text(body, "text/html; charset=utf-8", status_code, headers)

    def xml(self, body: str, status_code: int = 200, headers: dict | None = None) -> Response:
        """An XML response (``application/xml; charset=utf-8``)."""
        return self._text(body, "application/xml; charset=utf-8", status_code, headers)

    def json(self, body: Any, status_code: int = 200, headers: dict | None = None) -> Response:
        """A JSON response of any JSON-able object."""
        return self._text(json.dumps(body), "application/json; charset=utf-8", status_code, headers)

    def redirect(self, url: str, status_code: int = 301) -> Response:
        """A redirect to ``url``: 301 (default), 302, 303 (after a form post), 307 or 308."""
        if status_code not in (301, 302, 303, 307, 308):
            raise ValueError(
                f"redirect status must be 301, 302, 303, 307 or 308, not {status_code}"
            )
        if any(ch in url for ch in "\r\n\0"):
            raise ValueError(f"redirect URL contains control characters: {url!r}")
        headers = _response_headers(None, None, (), False, None, self._fixed_headers, None)
        headers["Location"] = url
        return _gateway_response(Answer(status_code, headers, "", True))

    def _refusal(self, status_code: int, message: str) -> Response:
        """The toolkit's own error page (a CSRF 403, a form's 400/413): HTML, never stored."""
        return _gateway_response(_error_answer(status_code, message, self._fixed_headers))

    def not_found(self, message: str = "Not Found") -> Response:
        """A plain-text 404."""
        return self._text(message, "text/plain; charset=utf-8", 404, None)

    def static(
        self,
        filename: str,
        status_code: int = 200,
        headers: dict | None = None,
        *,
        cache_control: str | None = None,
    ) -> Response:
        """Serve a file from ``static_dir`` with a content-hash ETag, ranges and gzip.

        ``filename`` may be fingerprinted (as produced by ``static()``); when
        the fingerprint is current the response may be cached for a year.
        Anything not in the static index (traversal included) is a 404.
        JPEG, PNG, WebP and AVIF files are negotiated by ``Accept`` (see
        :func:`negotiate_image_format`) and may carry a width (``hero.w640.jpg``).
        """
        index = self.static_files
        found = None
        if "%" not in filename and "\\" not in filename:
            found = index.known(filename)
        if found is not None:
            relpath = filename
            static_file, immutable = found
        else:
            relpath = _clean_segments(filename.split("/"))
            static_file, immutable = index.resolve(relpath) if relpath else (None, False)
        width = None
        if static_file is None and relpath:
            static_file, immutable, width = self.images.resolve_width(self.static_files, relpath)
        if static_file is None:
            return self.not_found()
        try:  # one version of the file: its body, ETag and gzip form agree
            static_file = static_file.snapshot()
        except FileNotFoundError:
            return self.not_found()
        if immutable:
            cache_control = IMMUTABLE_CACHE_CONTROL
        if static_file.content_type in IMAGE_FORMATS:
            return self._static_image(static_file, width, status_code, headers, cache_control)
        return self.answer(
            _static_offer(static_file, static_file.content_type),
            status_code,
            headers,
            cache_control=cache_control,
        )

    def asset(
        self,
        body: bytes,
        status_code: int = 200,
        headers: dict | None = None,
        *,
        content_type: str | None = None,
    ) -> Response:
        """Serve bytes made at run time (e.g. from a database) with an ETag.

        The type is ``content_type`` when given, else sniffed; a sniffed active
        type (HTML, XML, SVG, JavaScript) goes out as ``application/octet-stream``
        with ``Content-Disposition: attachment``, never inline on the site's origin.
        """
        etag = quote_etag(_digest(body))
        # The ETag names the bytes, so it names their sniffed type too.
        offer = self.asset_offer(lambda: body, etag, ("bytes",), content_type=content_type)
        return self.answer(offer, status_code, headers)

    def asset_offer(
        self,
        get_body: Callable[[], bytes],
        etag: str,
        resource: Any,
        *,
        content_type: str | None = None,
    ) -> Offer:
        """The offer of a run-time asset: ``content_type``, or the type sniffed from its body.

        The sniffed type is remembered under ``(resource, etag)``: a version string
        names a body only within its resource.
        """
        if content_type is not None:
            return Offer(content_type, get_body, etag=etag, allow_ranges=True)
        known = self._asset_types.get((resource, etag))
        if known is not _MISSING:
            return Offer(known[0], get_body, etag, None, None, True, known[1])

        def describe(body: bytes) -> tuple[str, Mapping[str, str] | None]:
            described = _sniffed_type(body)
            self._asset_types.put((resource, etag), described)
            return described

        return Offer(None, get_body, etag=etag, allow_ranges=True, describe=describe)

    def _static_image(
        self,
        static_file: _StaticLike,
        width: int | None,
        status_code: int,
        headers: Mapping[str, str] | None,
        cache_control: str | None,
    ) -> Response:
        """A raster image as the request's ``Accept`` prefers, resized to ``width`` if given.

        The formats the client accepts are tried best first; one known not to be
        served (failed, over budget, not smaller) is skipped, and the original
        comes last. Every representation has its own ETag and all carry
        ``Vary: Accept``; a cached conversion is served like a static file, a new
        one is encoded only after If-None-Match had its chance to answer 304
        (against the first format not known to fail: the one that would be served).
        """
        images = self.images
        media_type = images.media_type(static_file)
        source_format = IMAGE_FORMATS.get(media_type)
        if source_format is None:  # e.g. a GIF named .png: served as what it is
            if width is not None:
                return self.not_found("No resized variant of this file")
            return self.answer(
                _static_offer(static_file, media_type),
                status_code,
                headers,
                cache_control=cache_control,
            )
        method, request_headers = self._request_parts()
        chosen = None
        for target in images.candidates(request_headers.get("accept"), source_format, width):
            variant = images.variant(static_file, target, width)
            body = images.known(variant)
            if body is _MISSING:
                if images.over_budget(static_file, variant):
                    continue
                answered = answer_preconditions(
                    method,
                    request_headers,
                    Offer(variant.content_type, _no_body, etag=variant.etag),
                    status=status_code,
                    headers=headers,
                    cache_control=cache_control,
                    vary=("Accept",),
                    compress=self.compress,
                    fixed_headers=self._fixed_headers,
                )
                if answered is not None:
                    return _gateway_response(answered)
                body = images.render(static_file, variant)
            if body is not None:
                chosen = variant, body
                break
        if chosen is None:  # the original: nothing to convert, or every conversion refused
            offer = _static_offer(static_file, media_type)
        else:
            variant, converted = chosen
            offer = Offer(
                variant.content_type, lambda: converted, etag=variant.etag, allow_ranges=True
            )
        return self.answer(
            offer, status_code, headers, cache_control=cache_control, vary=("Accept",)
        )

    def convert_by_accepts(self, img: bytes, accepts: str, default: str | None = "WEBP") -> bytes:
        """Convert ``img`` to the first of image/jpeg, jpg, webp or png that ``accepts`` names.

        The 0.6.2 rule: field order, not q-values (but q=0 does not name a type).
        With no match the image becomes ``default`` (a Pillow format name);
        ``default=None`` then raises ``ValueError``. Bytes Pillow cannot read
        or will not decode (a bomb) come back unchanged, with a log line.
        """
        target = None
        for token, quality in parse_accept_header(accepts):
            if quality > 0 and token in ("image/jpeg", "image/jpg", "image/webp", "image/png"):
                target = "JPEG" if token == "image/jpg" else IMAGE_FORMATS[token]
                break
        if target is None:
            if default is None:
                raise ValueError(f"no supported image type in Accept {accepts!r}")
            target = default.upper()
            from PIL import Image

            Image.init()
            if target not in Image.SAVE:
                raise ValueError(f"Pillow cannot write images as {default!r}")
        try:
            body = _encode_image(img, target, None, self.images.quality, self.images.max_pixels)
        except _ImageError as error:
            logger.warning("convert_by_accepts: %s; returning the image unchanged", error)
            return img
        return img if body is None else body


class _Visitors:
    """Who is asking, for one manager's settings: form, cookies, session, flash, CSRF, ``g``."""

    def __init__(
        self,
        app: _AppLike | None,
        *,
        secret_key: str | bytes | Iterable[str | bytes] | None,
        session_cookie: str,
        session_max_age: int,
        session_cookie_secure: bool,
        csrf: bool,
        trusted_origins: Iterable[str],
        form_limits: FormLimits | None,
    ) -> None:
        keys = _secret_keys(secret_key)
        _check_session_settings(session_cookie, session_max_age, session_cookie_secure)
        self.app = app
        signer = _SessionSigner(keys, session_max_age, session_cookie) if keys else None
        self._session_signer = signer
        self.session_cookie = session_cookie
        self.session_max_age = session_max_age
        self.session_cookie_secure = session_cookie_secure
        self.csrf = csrf
        self.trusted_origins = tuple(trusted_origins)
        self.form_limits = form_limits or FormLimits()

    def _exchange(self, what: str) -> Exchange:
        exchange = _current_exchange(self.app)
        if exchange is None:
            raise RuntimeError(f"{what} needs a request: call it inside a view")
        return exchange

    @property
    def g(self) -> Any:
        """The current request's namespace (Flask's ``g``): empty at the start of every request."""
        return self._exchange("g").g

    def form(self) -> FormData:
        """The current request's form: urlencoded or multipart fields, and ``.files``.

        Parsed once per request within ``form_limits``; a malformed body is
        answered 400, an oversized one 413 (an HTML page), never a 500.
        """
        return _exchange_form(self._exchange("form()"), self.form_limits)

    def cookies(self) -> dict[str, str]:
        """The current request's cookies (RFC 6265); reading them makes the response private."""
        return dict(self._exchange("cookies()").cookies())

    @property
    def session(self) -> Session:
        """The current request's session (a signed cookie; needs ``secret_key``)."""
        return self._session_of(self._exchange("session"))

    def _session_of(self, exchange: Exchange) -> Session:
        """This manager's session in ``exchange``, loaded from its cookie on first use."""
        found = exchange.sessions.get(self)
        if found is not None:
            return found[0]
        if self._session_signer is None:
            raise RuntimeError(
                "sessions, flash and CSRF tokens need ContentManager(..., secret_key=...): "
                "read it from an environment variable, never from the source"
            )
        cookie = exchange.cookies(read=False).get(self.session_cookie)
        data = self._session_signer.verify(cookie, _now()) if cookie else None
        session = Session(data or {}, self._session_signer, new=data is None)
        session.modified = bool(cookie) and data is None  # drop a bad cookie
        if not exchange.sessions:
            exchange.sessions = {}  # (not the shared empty default)
        exchange.sessions[self] = (session, cookie is not None)
        return session

    def flash(self, message: str, category: str = "message") -> None:
        """Keep ``message`` in the session for the next page's ``get_flashed_messages()``."""
        session = self.session
        session[_FLASHES_KEY] = [*session.get(_FLASHES_KEY, []), [str(category), str(message)]]

    def get_flashed_messages(
        self, with_categories: bool = False, category_filter: Iterable[str] = ()
    ) -> list[Any]:
        """The flashed messages (removed from the session; the same list all this request).

        ``with_categories=True`` gives ``(category, message)`` pairs.
        """
        exchange = self._exchange("get_flashed_messages()")
        session = self._session_of(exchange)
        if exchange.flashes is None:
            exchange.flashes = {}
        flashes = exchange.flashes.get(self)
        if flashes is None:
            stored = session.pop(_FLASHES_KEY, None) if _FLASHES_KEY in session else None
            flashes = exchange.flashes[self] = [
                (str(item[0]), str(item[1]))
                for item in (stored if isinstance(stored, list) else ())
                if isinstance(item, list) and len(item) == 2
            ]
        wanted = set(category_filter)
        flashes = [item for item in flashes if not wanted or item[0] in wanted]
        return flashes if with_categories else [message for _, message in flashes]

    def csrf_token(self) -> str:
        """The session's CSRF token: a form's hidden ``csrf_token`` field or ``X-CSRF-Token``."""
        session = self.session
        token = session.get(_CSRF_KEY)
        if not isinstance(token, str):
            import secrets

            token = secrets.token_urlsafe(32)
            session[_CSRF_KEY] = token
        return token


class _Routes:
    """The routes the toolkit registers on the app (static files, the not-found page), and URLs."""

    def __init__(
        self,
        app: _AppLike | None,
        statics: _StaticSite,
        pages: _Pages,
        responder: _Responder,
        set_prefix: Callable[[str], None],
    ) -> None:
        self.app = app
        self.statics = statics
        self.pages = pages
        self.responder = responder
        self._set_prefix = set_prefix

    def url_for(self, view_name: str, **params: Any) -> str:
        """The URL of the route whose view is ``view_name``; unused ``params`` form the query.

        Right on the execute-api URL (``/{stage}`` prefix), behind CloudFront, on
        a custom domain and under ``chalice local``. An unknown view or a missing
        path parameter raises ``ValueError``.
        """
        if self.app is None:
            raise ValueError("url_for needs the ContentManager's app")
        url = _build_url(_route_path(self.app, view_name), dict(params))
        return _script_root(_current_exchange(self.app)) + url

    def register_static_routes(
        self,
        prefix: str | None = None,
        *,
        max_depth: int | None = None,
        cache_control: str | None = "no-cache",
    ) -> None:
        """Register GET/HEAD routes that serve ``static_dir`` under ``prefix``.

        One route per directory depth (``/static/{p0}``, ``/static/{p0}/{p1}``,
        …) rather than a greedy ``{proxy+}``: the local router of ``chalice
        local`` and ``chalice.test.Client`` matches one segment per
        parameter, so this works the same locally and deployed. ``max_depth``
        defaults to the deepest file in the directory.
        """
        if self.app is None:
            raise ValueError("register_static_routes needs the ContentManager's app")
        if prefix is not None:
            self._set_prefix(prefix)
        base = self.statics.static_prefix
        if max_depth is None:
            max_depth = max(
                (relpath.count("/") + 1 for relpath in self.statics.static_files.files), default=1
            )
        for depth in range(1, max_depth + 1):
            names = [f"p{index}" for index in range(depth)]
            path = base + "".join(f"/{{{name}}}" for name in names)
            self.app.route(
                path, methods=["GET", "HEAD"], name=f"chalice_http_toolkit_static_{depth}"
            )(self._static_view(names, cache_control))

    def _static_view(self, names: list[str], cache_control: str | None) -> Callable[..., Response]:
        import operator

        segments = operator.itemgetter(*names)  # one name gives the value, not a tuple
        single = len(names) == 1

        def view(**params: str) -> Response:
            exchange = _current_exchange(self.app)
            if exchange is not None:  # a file's answer: whatever a middleware read is not in it
                exchange.resource = True
            filename = segments(params) if single else "/".join(segments(params))
            return self.responder.static(filename, cache_control=cache_control)

        setattr(view, _STATIC_VIEW_ATTRIBUTE, (self.responder, tuple(names), cache_control))
        return view

    def register_not_found_routes(
        self, template: str = "404.html", *, max_depth: int = 4, **template_kwargs: Any
    ) -> None:
        """Register catch-all GET/HEAD routes that render ``template`` with status 404.

        API Gateway answers unknown paths with a JSON 403 of its own; these
        routes (``/{n0}`` … ``max_depth`` segments, plus a greedy tail) make the
        site's own 404 page show instead. API Gateway refuses two variable path
        parts with different names under one parent: where the app already has
        one, these routes reuse its name (``/{id}/update`` gives ``/{id}``,
        ``/{id}/{n1}``, …), and under the app's own greedy ``{name+}`` they add
        nothing. Call it after the app's routes (blueprints included).
        Unknown URLs through :func:`lambda_handler` need none of these routes.
        """
        if self.app is None:
            raise ValueError("register_not_found_routes needs the ContentManager's app")

        # As an error page has them (``404.html`` serves abort(404) too), unless given.
        kwargs = {"status_code": 404, "title": "404 Not Found", "description": None}
        kwargs.update(template_kwargs)

        def view(**params: str) -> Response:
            return self.responder.html(self.pages.render_template(template, **kwargs), 404)

        for index, path in enumerate(_not_found_paths(list(_routes_of(self.app)), max_depth)):
            self.app.route(
                path, methods=["GET", "HEAD"], name=f"chalice_http_toolkit_not_found_{index + 1}"
            )(view)
        if not _on_lambda():
            _match_greedy_routes_locally()


class _RequestGlobals:
    """``g`` in templates: the current request's namespace (:attr:`ContentManager.g`)."""

    __slots__ = ("_cm",)

    def __init__(self, cm: _Visitors) -> None:
        self._cm = cm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cm.g, name)


# ---------------------------------------------------------------------------
# Error pages: abort(), and the site's page for an error a browser asked for
# ---------------------------------------------------------------------------

#: Media types that name a page: a request whose ``Accept`` ranks one of them at least as
#: high as JSON gets the site's error page; other requests keep Chalice's JSON errors.
_PAGE_TYPES = ("text/html", "application/xhtml+xml")

#: The body of Chalice's error responses (its own 404/405/415, a ``ChaliceViewError``,
#: the 500 of an exception in a view): exactly these two keys.
_CHALICE_ERROR_KEYS = frozenset(("Code", "Message"))

# Chalice's exception name for a status, where it has one (``raise NotFoundError``).
_CHALICE_ERROR_CODES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
}


class HTTPError(ChaliceUnhandledError):
    """An HTTP error that ends a request with the site's error page: :func:`abort` raises it.

    A ``ChaliceUnhandledError``, so Chalice lets it through to the toolkit's
    middleware, which answers ``status_code`` with ``<status_code>.html`` (or a
    plain page; Chalice's JSON error for a client that does not ask for HTML).
    """

    def __init__(self, status_code: int, description: str | None = None) -> None:
        super().__init__(description or _status_phrase(status_code))
        self.status_code = status_code
        self.description = description


def abort(status_code: int, description: str | None = None) -> NoReturn:
    """End the current request with the site's error page of ``status_code`` (Flask's ``abort``).

    ``status_code`` is a client or server error (400-599); anything else is a
    developer's mistake and raises ``ValueError`` (a redirect is ``cm.redirect``).
    ``description`` is shown on the page, HTML-escaped.

    >>> abort(404, "No such post.")
    Traceback (most recent call last):
    ...
    chalice_http_toolkit.HTTPError: No such post.
    """
    if type(status_code) is not int or not 400 <= status_code <= 599:
        raise ValueError(f"abort() takes an error status (400-599), not {status_code!r}")
    raise HTTPError(status_code, description)


def _status_phrase(status: int) -> str:
    """``404`` → ``"Not Found"``; ``"Error"`` for a status HTTP does not name."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _wants_page(accept: str | None) -> bool:
    """Whether a request's ``Accept`` asks for an HTML page rather than JSON.

    True when ``text/html`` (or XHTML) is named with a weight above zero that is
    at least JSON's, as browsers do for a page; a missing field, ``*/*`` alone
    (``fetch()``, curl, API clients) or JSON first is not a page.

    >>> _wants_page("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    True
    >>> _wants_page("*/*"), _wants_page("application/json, text/html;q=0.5"), _wants_page(None)
    (False, False, False)
    """
    page = json_weight = 0.0
    for token, quality in parse_accept_header(accept):
        if token in _PAGE_TYPES:
            page = max(page, quality)
        elif token == "application/json":
            json_weight = max(json_weight, quality)
    return page > 0.0 and page >= json_weight


def _error_page_body(pages: _Pages, status: int, description: str | None) -> str:
    """The site's ``<status>.html`` rendered, or a plain page when there is none or it fails.

    The template gets ``status_code``, ``title`` (``"404 Not Found"``) and
    ``description``. A template that raises is logged with its traceback and the
    plain page answers instead: an error page never raises, so it never loops.
    """
    import html

    title = f"{status} {_status_phrase(status)}"
    name = f"{status}.html"
    try:
        template = pages.load_template(name)
        return template.render(status_code=status, title=title, description=description)
    except TemplateNotFoundError:
        pass  # the site has no page for this status
    # The site already failed once; whatever its error template raises (a syntax error,
    # a missing include, a global or filter that fails, an abort() in it), the plain
    # page is the answer.
    except Exception:
        logger.exception("the error page %s failed to render; answering a plain page", name)
    text = f"<p>{html.escape(description)}</p>" if description else ""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1>{text}</body></html>"
    )


def _error_response(
    responder: _Responder,
    exchange: Exchange,
    status: int,
    description: str | None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``status`` answered the way the request asks: the site's page, or Chalice's JSON.

    The page is never stored by a cache (``private, no-store``); HEAD gets its
    headers only.
    """
    if not _wants_page(exchange.headers.get("accept")):
        code = _CHALICE_ERROR_CODES.get(status, _status_phrase(status).replace(" ", ""))
        message = description or _status_phrase(status)
        return Response(
            body={"Code": code, "Message": message}, status_code=status, headers=headers
        )
    body = _error_page_body(responder.pages, status, description)
    offer = Offer("text/html; charset=utf-8", lambda: body)
    return responder.answer(offer, status, headers, private=True)


def _page_for_chalice_error(responder: _Responder, exchange: Exchange, response: Any) -> Any:
    """Chalice's JSON error (its 404/405/415, a ``ChaliceViewError``, the 500 of an exception
    in a view, which Chalice has logged with its traceback) as the site's error page, when
    the request asks for a page; any other response as it is.

    With ``app.debug`` Chalice's 500 is the traceback as text, and stays so.
    """
    body = response.body
    if (
        response.status_code >= 400
        and type(body) is dict
        and body.keys() == _CHALICE_ERROR_KEYS
        and _wants_page(exchange.headers.get("accept"))
    ):
        # A 5xx page never shows the message (a ChaliceViewError's may be an exception's text).
        message = body["Message"]
        description = message if isinstance(message, str) and response.status_code < 500 else None
        allow = {"Allow": response.headers["Allow"]} if "Allow" in response.headers else None
        return _error_response(responder, exchange, response.status_code, description, allow)
    return response


_HEAD_INSTALLED = "_chalice_http_toolkit_head"


def _answer_head_for_get(app: _AppLike) -> None:
    """Give every GET route of ``app`` a HEAD method (the GET's view), as Flask does.

    RFC 9110 §9.3.2: HEAD is GET without the body; link checkers and uptime
    monitors send it. The HEAD methods are routes (so API Gateway has them
    deployed, and ``chalice local`` has them); routes registered later get one too,
    and a route's own HEAD replaces the added one. The toolkit's middleware drops
    the body. A ``Blueprint`` does it on the app it is registered with.
    ``ContentManager(..., app)`` calls it.
    """
    if hasattr(app, "_deferred_registrations"):  # a Blueprint: its app is known later
        app._deferred_registrations.append(lambda parent, _options: _answer_head_for_get(parent))
        return
    if getattr(app, _HEAD_INSTALLED, False):
        return
    register = app._register_route
    added: set[str] = set()  # paths whose HEAD is the GET's, added here

    def register_route(**kwargs: Any) -> None:
        for path in added:  # a route registered with its own HEAD must not meet ours
            app.routes[path].pop("HEAD", None)
        added.clear()
        try:
            register(**kwargs)
        finally:
            _add_heads(app.routes, added)

    app._register_route = register_route
    _add_heads(app.routes, added)
    setattr(app, _HEAD_INSTALLED, True)


def _add_heads(routes: Mapping[str, dict[str, Any]], added: set[str]) -> None:
    import copy

    for path, methods in routes.items():
        if "GET" in methods and "HEAD" not in methods:
            entry = copy.copy(methods["GET"])
            entry.method = "HEAD"
            methods["HEAD"] = entry
            added.add(path)


def _flask_response(responder: _Responder, exchange: Exchange, response: Any) -> Any:
    """``response`` as Flask would answer: Chalice's JSON errors as pages for a browser,
    and no body for HEAD (the toolkit's middleware calls it after the view)."""
    response = _page_for_chalice_error(responder, exchange, response)
    return _without_body(response) if exchange.method == "HEAD" else response


def _without_body(response: Any) -> Any:
    """A HEAD request's answer: the GET's status and headers, no body (RFC 9110 §9.3.2)."""
    response.body = ""
    return response


# ---------------------------------------------------------------------------
# The middleware: the exchange, CSRF before the view, sessions and privacy after it
# ---------------------------------------------------------------------------


def _csrf_refusal(cm: _Visitors, exchange: Exchange) -> str | None:
    """Why ``cm`` refuses the exchange's unsafe request as a forgery, or ``None``."""
    headers = exchange.headers
    refusal = cross_origin_refusal(exchange.method, headers, cm.trusted_origins)
    if refusal is not None or not cm._session_signer:
        return refusal
    submitted = headers.get(CSRF_HEADER)
    media_type, _ = _media_type_and_options(headers.get("content-type"))
    if submitted is None:
        if media_type not in _FORM_TYPES:
            return None  # not something a cross-site form can send (JSON needs CORS)
        submitted = _exchange_form(exchange, cm.form_limits).get(CSRF_FIELD)
    expected = cm._session_of(exchange).get(_CSRF_KEY)
    if not submitted:
        return "the form has no CSRF token: reload the page and send it again"
    if not isinstance(expected, str) or not _constant_time_equal(submitted, expected):
        return "the form's CSRF token is not this session's: reload the page and send it again"
    return None


def _has_error_pages(app: Any) -> bool:
    """Whether ``app`` has the toolkit's middleware, which answers errors with the site's pages."""
    return getattr(app, _SITE_ATTRIBUTE, None) is not None


_SITE_ATTRIBUTE = "_chalice_http_toolkit_site"


class _Site:
    """The managers of one app (each with its own settings) and the app's one middleware.

    A manager is here as the parts the middleware uses: its responder (refusals, error
    pages) and its visitors (CSRF, sessions).
    """

    __slots__ = ("app", "gateway", "managers")

    def __init__(self, app: _AppLike, gateway: bool) -> None:
        self.app = app
        #: Whether this middleware also does :func:`install_gateway_support`'s (one layer less).
        self.gateway = gateway
        self.managers: list[tuple[_Responder, _Visitors]] = []

    def middleware(self, request: Any, get_response: Callable[[Any], Any]) -> Any:
        """Build the exchange, refuse forgeries, run the view, and finish the exchange."""
        if request is None:  # not an HTTP request Chalice routes: it answers itself
            return (
                _gateway_marshalled(get_response(request))
                if self.gateway
                else get_response(request)
            )
        exchange = _local.exchange
        if exchange is None or exchange.request is not request:
            exchange = Exchange(request)
        elif exchange.active:  # a Blueprint's site inside its app's: its managers' checks only
            return self._checked(exchange, get_response)
        if self.gateway and "accept" not in exchange.headers:
            exchange.headers = _accept_anything(request, exchange.headers)
        exchange.active = True
        _local.exchange = exchange
        try:
            if request.path == _UNROUTED_RESOURCE_PATH:  # lambda_handler's unrouted request
                response = _error_response(self.managers[0][0], exchange, 404, None)
            elif exchange.method in _UNSAFE_METHODS:
                response = self._checked(exchange, get_response)
            else:
                response = get_response(request)
        except FormError as error:
            logger.info("form refused: %s %s: %s", request.method, request.path, error.message)
            response = self.managers[0][0]._refusal(error.status_code, error.message)
        except HTTPError as error:  # abort()
            response = _error_response(
                self.managers[0][0], exchange, error.status_code, error.description
            )
        if response.status_code >= 400 or exchange.method == "HEAD":  # error pages, HEAD
            response = _flask_response(self.managers[0][0], exchange, response)
        try:
            response = exchange.finish(response, _save_sessions)
        finally:
            exchange.active = False
            _local.exchange = None
        if self.gateway and type(response) is not _GatewayResponse:
            return _gateway_marshalled(response, self.managers[0][0]._fixed_headers)
        return response

    def _checked(self, exchange: Exchange, get_response: Callable[[Any], Any]) -> Any:
        """The view's response, unless one of the managers refuses a forgery (CSRF)."""
        request = exchange.request
        if exchange.method in _UNSAFE_METHODS and not _is_exempt(self.app, request):
            for responder, visitors in self.managers:
                refusal = _csrf_refusal(visitors, exchange) if visitors.csrf else None
                if refusal is not None:
                    logger.info("CSRF: %s %s: %s", request.method, request.path, refusal)
                    return responder._refusal(403, refusal)
        return get_response(request)


def _join_site(app: _AppLike, responder: _Responder, visitors: _Visitors) -> None:
    """Add a manager (its parts) to ``app``'s site, registering the middleware on first use."""
    site = getattr(app, _SITE_ATTRIBUTE, None)
    if site is None:
        # One middleware for both when the gateway's is not there yet: each layer of
        # Chalice's chain costs every request.
        site = _Site(app, gateway=not getattr(app, _CHALICE_INSTALLED, False))
        setattr(app, _SITE_ATTRIBUTE, site)
        _answer_head_for_get(app)
        if site.gateway:
            _install_gateway(app, site.middleware)
        else:
            app.register_middleware(site.middleware, "http")
    site.managers.append((responder, visitors))


def _is_exempt(app: _AppLike, request: Any) -> bool:
    entry = _routes_of(app).get(request.path, {}).get(request.method)
    return entry is not None and getattr(entry.view_function, _CSRF_EXEMPT, False)


def _save_sessions(exchange: Exchange, response: Any) -> None:
    """Save every manager's session the request changed, each with its manager's settings."""
    for cm, (session, _) in exchange.sessions.items():
        _save_session(cm, session, exchange, response)


def _save_session(cm: _Visitors, session: Session, exchange: Exchange, response: Any) -> None:
    if not session.modified:
        return
    if session:
        value = cm._session_signer.sign(_fitted_session_payload(session), _now())
        set_cookie(
            response,
            cm.session_cookie,
            value,
            max_age=cm.session_max_age,
            secure=cm.session_cookie_secure,
        )
    elif cm.session_cookie in exchange.cookies(read=False):
        delete_cookie(response, cm.session_cookie)


# ---------------------------------------------------------------------------
# ContentManager: the facade that holds the parts and registers the routes
# ---------------------------------------------------------------------------

#: Which attribute of a ContentManager holds each part (see :class:`_Delegate`).
_PART_ATTRIBUTES: Mapping[type, str] = {
    _StaticSite: "_statics",
    _Pages: "_pages",
    _Responder: "_responder",
    _Visitors: "_visitors",
    _Routes: "_routes",
}


class _Delegate:
    """A facade attribute that one of its parts serves: ``html = _Delegate(_Responder)``.

    Read on the class it is the part's own (its signature and docstring, for help()).
    A method is bound once per manager (:func:`_bind_delegates`): calling
    ``cm.html`` costs what calling the part's method does.
    """

    def __init__(self, part: type) -> None:
        self.part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, manager: Any, owner: type | None = None) -> Any:
        if manager is None:
            return getattr(self.part, self.name)
        return getattr(getattr(manager, _PART_ATTRIBUTES[self.part]), self.name)


def _bind_delegates(manager: Any) -> None:
    """Put the parts' bound methods on ``manager`` itself (a non-data descriptor yields to them).

    Only methods: a property (``session``) or a value (``static_prefix``) is read
    from its part every time. (The class dictionaries are read directly, as
    ``inspect.getattr_static`` would: importing inspect costs milliseconds of a cold start.)
    """
    for name, delegate in vars(type(manager)).items():
        if not isinstance(delegate, _Delegate):
            continue
        found = next(
            (vars(klass)[name] for klass in delegate.part.__mro__ if name in vars(klass)), None
        )
        if isinstance(found, types.FunctionType):
            manager.__dict__[name] = delegate.__get__(manager)


class ContentManager:
    """Templates, static files, assets and response helpers for one Chalice app.

    ``app`` may be a ``Chalice`` app or a ``Blueprint``; responses consult its
    ``current_request`` for conditional requests, ranges and compression.
    Options are keyword-only: ``cors`` (``True`` for ``*`` or an origin; off by
    default), ``compress`` (gzip text bodies), ``auto_reload`` (re-read
    changed templates and static files; defaults to on everywhere except on
    AWS Lambda), ``security_headers`` (``True`` for
    :data:`DEFAULT_SECURITY_HEADERS`, or a mapping of headers; none by
    default; ``X-Content-Type-Options: nosniff`` is always sent). Images:
    ``image_widths`` (the only widths ``static(…, width=)`` serves),
    ``image_quality`` (format → encoder quality), ``image_cache_bytes``
    (bound of the per-container cache of converted images) and
    ``image_max_pixels`` (larger images are served untouched); ``static_cache_bytes``
    bounds the static file bodies kept in memory. Pages:
    ``page_cache_bytes`` bounds the per-container cache of pages rendered by
    :meth:`CloudFront.template` under their ETag (0 turns it off);
    ``memo_cache_bytes`` bounds the memos (template ETags, ``static()`` URLs,
    sniffed types). Every bound is the memory Python holds (:class:`BoundedCache`).
    Forms, sessions and CSRF: ``secret_key`` (a string, or a list newest first),
    ``session_cookie``, ``session_max_age``, ``session_cookie_secure``, ``csrf``,
    ``trusted_origins`` and ``form_limits`` (see :meth:`form`, :attr:`session`).

    The work is done by its parts, one job each: ``_StaticSite`` (static URLs),
    ``_Pages`` (templates and page ETags), ``_Responder`` (answers) and
    ``_Visitors`` (who is asking); this class holds them and registers the routes.
    """

    def __init__(
        self,
        templates_dir: str,
        static_dir: str,
        app: _AppLike | None = None,
        *,
        cors: bool | str | None = None,
        compress: bool = True,
        auto_reload: bool | None = None,
        image_widths: Iterable[int] = DEFAULT_IMAGE_WIDTHS,
        image_quality: Mapping[str, int] | None = None,
        image_cache_bytes: int = 32 * 1024 * 1024,
        static_cache_bytes: int = DEFAULT_STATIC_CACHE_BYTES,
        image_max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS,
        page_cache_bytes: int = 16 * 1024 * 1024,
        memo_cache_bytes: int = 4 * 1024 * 1024,
        security_headers: bool | Mapping[str, str] | None = None,
        secret_key: str | bytes | Iterable[str | bytes] | None = None,
        session_cookie: str = "session",
        session_max_age: int = 31 * 24 * 3600,
        session_cookie_secure: bool = True,
        csrf: bool = True,
        trusted_origins: Iterable[str] = (),
        form_limits: FormLimits | None = None,
    ) -> None:
        self.templates_dir = templates_dir
        self.static_dir = static_dir
        self.app = app
        self.cors_origin = "*" if cors is True else (cors or None)
        if auto_reload is None:
            auto_reload = not _on_lambda()
        #: Whether files may change under a running container (the parts are told from here).
        self.auto_reload = auto_reload
        images = StaticImages(
            widths=image_widths,
            quality=image_quality,
            cache_bytes=image_cache_bytes,
            max_pixels=image_max_pixels,
        )
        self._statics = _StaticSite(
            static_dir,
            images,
            auto_reload=auto_reload,
            static_cache_bytes=static_cache_bytes,
            memo_bytes=0 if auto_reload else memo_cache_bytes,
        )
        self._pages = _Pages(
            templates_dir,
            self._statics,
            self._template_globals,
            auto_reload=auto_reload,
            page_cache_bytes=page_cache_bytes,
            memo_cache_bytes=memo_cache_bytes,
        )
        self._responder = _Responder(
            app,
            self._statics,
            self._pages,
            compress=compress,
            fixed_headers=_fixed_headers(self.cors_origin, security_headers),
            memo_cache_bytes=memo_cache_bytes,
        )
        self._visitors = _Visitors(
            app,
            secret_key=secret_key,
            session_cookie=session_cookie,
            session_max_age=session_max_age,
            session_cookie_secure=session_cookie_secure,
            csrf=csrf,
            trusted_origins=trusted_origins,
            form_limits=form_limits,
        )
        self._routes = _Routes(
            app, self._statics, self._pages, self._responder, self.set_static_handler_prefix
        )
        if app is not None:
            # the app's middleware: the exchange, CSRF, sessions, privacy, error pages
            _join_site(app, self._responder, self._visitors)
        _bind_delegates(self)

    # Static URLs
    static_files = _Delegate(_StaticSite)
    images = _Delegate(_StaticSite)
    static_prefix = _Delegate(_StaticSite)
    static_url = _Delegate(_StaticSite)
    srcset = _Delegate(_StaticSite)
    # Templates and pages
    env = _Delegate(_Pages)
    pages = _Delegate(_Pages)
    load_template = _Delegate(_Pages)
    render_template = _Delegate(_Pages)
    template_dependencies = _Delegate(_Pages)
    template_etag = _Delegate(_Pages)
    page_offer = _Delegate(_Pages)
    # Answers
    compress = _Delegate(_Responder)
    answer = _Delegate(_Responder)
    html = _Delegate(_Responder)
    xml = _Delegate(_Responder)
    json = _Delegate(_Responder)
    redirect = _Delegate(_Responder)
    not_found = _Delegate(_Responder)
    static = _Delegate(_Responder)
    asset = _Delegate(_Responder)
    asset_offer = _Delegate(_Responder)
    convert_by_accepts = _Delegate(_Responder)
    _refusal = _Delegate(_Responder)
    # Who is asking
    g = _Delegate(_Visitors)
    form = _Delegate(_Visitors)
    cookies = _Delegate(_Visitors)
    session = _Delegate(_Visitors)
    flash = _Delegate(_Visitors)
    get_flashed_messages = _Delegate(_Visitors)
    csrf_token = _Delegate(_Visitors)
    csrf = _Delegate(_Visitors)
    session_cookie = _Delegate(_Visitors)
    session_max_age = _Delegate(_Visitors)
    session_cookie_secure = _Delegate(_Visitors)
    trusted_origins = _Delegate(_Visitors)
    form_limits = _Delegate(_Visitors)
    # Routes and URLs
    url_for = _Delegate(_Routes)
    register_static_routes = _Delegate(_Routes)
    register_not_found_routes = _Delegate(_Routes)

    def _template_globals(self) -> dict[str, Any]:
        """The toolkit's helpers in templates (made when the environment is)."""
        visitors = self._visitors
        return {
            "static": self._statics.static_url,
            "srcset": self._statics.srcset,
            "url_for": self._routes.url_for,
            "csrf_token": visitors.csrf_token,
            "get_flashed_messages": visitors.get_flashed_messages,
            "g": _RequestGlobals(visitors),
        }

    def set_static_handler_prefix(self, path: str) -> None:
        """Set the static route's URL prefix; ``static()`` in templates builds URLs under it."""
        self._statics.static_prefix = "/" + path.strip("/") if path.strip("/") else ""
        self.clear_caches()

    def clear_caches(self) -> None:
        """Forget every memo and page (not the static index): what ``static()`` gives may change."""
        self._statics._static_urls.clear()
        self._pages.clear()

    def prime(self) -> dict[str, float]:
        """Do this container's start-up work now; milliseconds per step (also logged).

        Loads libmagic, imports Pillow, compiles every template and computes its
        dependency hash, reads and hashes every static file: what the first requests
        after a cold start would otherwise pay for. The keep-warm payload calls it.
        """
        return _prime(self)


def _prime_libmagic(content_manager: ContentManager) -> int:
    return 0 if load_libmagic() is None else 1


def _prime_pillow(content_manager: ContentManager) -> int:
    try:
        from PIL import Image
    except ImportError as error:
        logger.info("prime: Pillow is not installed (%s)", error)
        return 0
    Image.preinit()  # the common format plugins Image.open() would import on first use
    _writable_image_formats()
    return 1


def _prime_templates(content_manager: ContentManager) -> int:
    """Compile every template; compute its dependency closure and hash."""
    import jinja2

    compiled = 0
    for name in content_manager.env.list_templates():
        if any(part.startswith(".") for part in name.split("/")):
            continue
        try:
            content_manager.load_template(name)
            content_manager.template_dependencies(name)
        except (jinja2.TemplateError, TemplateNotFoundError, UnicodeDecodeError) as error:
            logger.warning("prime: template %s does not compile: %s", name, error)
        else:
            compiled += 1
    return compiled


def _prime_static(content_manager: ContentManager) -> int:
    """Read and hash every static file; gzip the compressible ones; sniff the images."""
    index = content_manager.static_files
    index.digest()
    for static_file in index.files.values():
        if content_manager.compress and _is_compressible(static_file.content_type):
            static_file.gzip_body()
        if static_file.content_type in IMAGE_FORMATS:
            content_manager.images.media_type(static_file)
    return len(index.files)


_PRIME_STEPS: tuple[tuple[str, Callable[[ContentManager], int]], ...] = (
    ("libmagic", _prime_libmagic),
    ("pillow", _prime_pillow),
    ("templates", _prime_templates),
    ("static", _prime_static),
)


def _prime(content_manager: ContentManager) -> dict[str, float]:
    import time

    timings = {}
    for step, work in _PRIME_STEPS:
        started = time.perf_counter()
        done = work(content_manager)
        timings[step] = round((time.perf_counter() - started) * 1000, 3)
        logger.info("prime: %s: %d in %.1f ms", step, done, timings[step])
    return timings


# ---------------------------------------------------------------------------
# CloudFront: validators and Cache-Control so the CDN can revalidate cheaply
# ---------------------------------------------------------------------------

#: ``stale-while-revalidate`` of :class:`CloudFront`'s pages: an hour (RFC 5861 §3).
EDGE_STALE_WHILE_REVALIDATE = 3600

#: ``stale-if-error`` of :class:`CloudFront`'s pages: a day (RFC 5861 §4).
EDGE_STALE_IF_ERROR = 86400


def edge_cache_control(
    fresh: int = 0,
    stale_while_revalidate: int = EDGE_STALE_WHILE_REVALIDATE,
    stale_if_error: int = EDGE_STALE_IF_ERROR,
) -> str:
    """``Cache-Control`` of a public page that the edge answers without waiting for the origin.

    Browsers revalidate with the edge every time (``max-age=0``); the edge holds the
    page ``fresh`` seconds (``s-maxage``, RFC 9111 §5.2.2.10), then answers with it
    while it revalidates in the background, and with the last good copy when the
    origin fails (RFC 5861). A negative or non-integer number raises ``ValueError``.

    >>> edge_cache_control(60)
    'public, max-age=0, s-maxage=60, stale-while-revalidate=3600, stale-if-error=86400'
    """
    for name, value in (
        ("fresh", fresh),
        ("stale_while_revalidate", stale_while_revalidate),
        ("stale_if_error", stale_if_error),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number of seconds >= 0, not {value!r}")
    return (
        f"public, max-age=0, s-maxage={fresh}, stale-while-revalidate={stale_while_revalidate}, "
        f"stale-if-error={stale_if_error}"
    )


class CloudFront:
    """Conditional responses for pages, static files and assets behind CloudFront.

    Every response carries a content-based ETag and ``Cache-Control``, and a
    matching ``If-None-Match`` is answered with 304 without rendering or reading
    the body. Pages are answered at the edge by default (:attr:`page_cache_control`,
    :func:`edge_cache_control`'s defaults); ``default_cache_control`` (0.6.2's
    positional argument, e.g. ``"no-cache"``) replaces that default for every
    response. ``etag_salt`` (keyword-only) is mixed into template ETags: change it
    when something outside the template and its arguments changes the output.
    """

    def __init__(
        self,
        content_manager: ContentManager,
        app: _AppLike | None = None,
        default_cache_control: str | None = None,
        *,
        etag_salt: str = "",
    ) -> None:
        self.content_manager = content_manager
        self.app = app if app is not None else content_manager.app
        self.default_cache_control = default_cache_control
        self.etag_salt = etag_salt
        #: The pages' default: ``edge_cache_control(fresh, ...)`` to keep them longer.
        self.page_cache_control = edge_cache_control()

    def _cache_control(self, cache_control: str | None, status_code: int | None = None) -> str:
        """The ``Cache-Control`` of CloudFront's answers when the route names none.

        A route's ``cache_control`` wins, then ``default_cache_control`` (0.6.2's
        argument: ``"no-cache"`` still means revalidate every time, for everything).
        Without either, a page (``status_code`` given) is answered at the edge
        (:attr:`page_cache_control`) when it is a success, and an error page is
        ``no-store``; static files and assets are ``no-cache``. Personal answers
        become ``private, no-store`` whatever this says.
        """
        if cache_control is not None:
            return cache_control
        if self.default_cache_control is not None:
            return self.default_cache_control
        if status_code is None:
            return "no-cache"
        return self.page_cache_control if 200 <= status_code < 300 else "no-store"

    def template(
        self,
        filename: str,
        status_code: int = 200,
        headers: dict | None = None,
        cache_control: str | None = None,
        **kwargs: Any,
    ) -> Response:
        """Render a page, or answer 304 from a hash of the template closure and ``kwargs``.

        When the ETag cannot be computed without rendering (dynamic includes,
        volatile names such as the ``random`` filter, arguments with no
        canonical form) the page is rendered and the body hashed, so a changed
        page is never answered with 304. Otherwise the rendered page is kept
        under its ETag (``page_cache_bytes``): the same template with the same
        arguments is rendered once per container. The Content-Type follows the
        template's extension (HTML when it names none).
        """
        cm = self.content_manager
        exchange = _current_exchange(cm.app)
        private = _personal(exchange)
        salt = self.etag_salt + _script_root(exchange)  # url_for() differs by host and stage
        offer, payoff = cm._pages._page_offer(
            filename, kwargs, salt, private, None if exchange is None else exchange.headers
        )
        private = private or _personal(exchange)  # rendering may have read who is asking
        response = cm._responder._respond(
            exchange,
            offer,
            status_code,
            headers,
            self._cache_control(cache_control, status_code),
            (),
            private,
        )
        if payoff is not None and response.status_code == 304:  # the digest spared a render
            payoff[1] += 1
        return response

    def static(
        self,
        filename: str,
        status_code: int = 200,
        headers: dict | None = None,
        cache_control: str | None = None,
    ) -> Response:
        """Serve a static file with a content-hash ETag and ``Cache-Control``."""
        return self.content_manager.static(
            filename, status_code, headers, cache_control=self._cache_control(cache_control)
        )

    def asset(
        self,
        get_asset: Callable[[], bytes],
        get_etag: Callable[[], str],
        status_code: int = 200,
        headers: dict | None = None,
        cache_control: str | None = None,
        *,
        content_type: str | None = None,
    ) -> Response:
        """Serve a run-time asset; ``get_asset`` is not called when ``get_etag()`` still matches.

        The type is ``content_type`` when given, else sniffed from the body (an
        active type goes out as an attachment, see :meth:`ContentManager.asset`)
        and remembered for this route, its parameters and ``get_etag()``.
        """
        cm = self.content_manager
        etag = _version_etag(str(get_etag()))
        exchange = _current_exchange(self.app)
        offer = cm.asset_offer(
            get_asset, etag, _resource(exchange, get_asset), content_type=content_type
        )
        return cm._responder._respond(
            exchange,
            offer,
            status_code,
            headers,
            self._cache_control(cache_control),
            (),
            _personal(exchange),
        )


def _version_etag(version: str) -> str:
    """The ETag of an asset's version string: its digest (the string may be any length)."""
    if len(version) <= _MEMO_VERSION_CHARS:
        return _short_version_etag(version)
    return quote_etag(_digest(version.encode("utf-8", "surrogatepass")))


# Versions a site repeats (a row's timestamp, a hash) are short: their ETags are memoised.
_MEMO_VERSION_CHARS = 128


@functools.lru_cache(maxsize=1024)
def _short_version_etag(version: str) -> str:
    return quote_etag(_digest(version.encode("utf-8", "surrogatepass")))


def _resource(exchange: Exchange | None, get_asset: Callable[[], bytes]) -> tuple[Any, ...]:
    """What names the resource being served: the route, its parameters, the producing code."""
    code = getattr(get_asset, "__code__", None)
    producer = (code.co_filename, code.co_firstlineno) if code else repr(get_asset)
    if exchange is None:
        return (producer,)
    request = exchange.request
    uri_params = request.uri_params
    query_params = request.query_params
    return (
        request.path,
        tuple(sorted(uri_params.items())) if uri_params else (),
        tuple(sorted(query_params.items())) if query_params else (),
        producer,
    )


# ---------------------------------------------------------------------------
# Keep-warm: a schedule that invokes the API handler, which primes its container
# ---------------------------------------------------------------------------

#: Environment variable naming the API handler function the keep-warm schedule invokes.
KEEP_WARM_FUNCTION_ENV = "CHALICE_HTTP_TOOLKIT_API_FUNCTION"

# A top-level key API Gateway never sends, and a resource path no route has.
_KEEP_WARM_MARKER = "chalice_http_toolkit_keep_warm"

_KEEP_WARM_RESOURCE_PATH = "/_chalice_http_toolkit/keep-warm"


def keep_warm_event() -> dict[str, Any]:
    """The warm-up payload the keep-warm schedule sends to the API handler function.

    Chalice builds a request, and runs HTTP middleware, only for events with
    ``requestContext.resourcePath``; so this is a minimal API Gateway proxy event
    whose resource path no route has, plus a marker key API Gateway never sends.
    """
    return {
        _KEEP_WARM_MARKER: True,
        "resource": _KEEP_WARM_RESOURCE_PATH,
        "path": _KEEP_WARM_RESOURCE_PATH,
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
        "requestContext": {"resourcePath": _KEEP_WARM_RESOURCE_PATH, "httpMethod": "GET"},
    }


def is_keep_warm_event(event: Any) -> bool:
    """True for a :func:`keep_warm_event` payload: the marker key AND the sentinel path."""
    if type(event) is not dict and not isinstance(event, Mapping):  # (an ABC check costs more)
        return False
    if event.get(_KEEP_WARM_MARKER) is not True:
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and context.get("resourcePath") == _KEEP_WARM_RESOURCE_PATH


# On an app with the keep-warm schedule: its manager, so lambda_handler answers the payload.
_KEEP_WARM_ATTRIBUTE = "_chalice_http_toolkit_keep_warm"


def _keep_warm_response(content_manager: ContentManager) -> Response:
    """Prime the container; the answer to a keep-warm payload (milliseconds per step)."""
    timings = content_manager.prime()
    return Response(
        body=json.dumps({"warm": True, "prime_ms": timings}),
        headers={"Content-Type": "application/json"},
        status_code=200,
    )


def _keep_warm_middleware(content_manager: ContentManager) -> Callable[..., Any]:
    def keep_warm_middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
        # ``request`` is None for events that are not HTTP: Chalice answers those itself.
        if (
            request is None
            or request.path != _KEEP_WARM_RESOURCE_PATH
            or not is_keep_warm_event(request.to_original_event())
        ):
            return get_response(request)
        return _keep_warm_response(content_manager)

    return keep_warm_middleware


def _api_function_name(
    schedule_name: str, function_name: str | None, environ: Mapping[str, str]
) -> str | None:
    """The API handler function the schedule ``schedule_name`` should invoke, or ``None``.

    ``function_name``, else ``$CHALICE_HTTP_TOOLKIT_API_FUNCTION``, else derived from
    the schedule function's own name: ``chalice deploy`` names the API handler
    ``{app}-{stage}`` and a schedule ``{app}-{stage}-{name}``. CloudFormation
    (``chalice package``) generates other names: set the variable there.
    """
    if function_name:
        return function_name
    configured = environ.get(KEEP_WARM_FUNCTION_ENV)
    if configured:
        return configured
    own = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    suffix = f"-{schedule_name}"
    if own.endswith(suffix) and len(own) > len(suffix):
        return own[: -len(suffix)]
    return None


@functools.lru_cache(maxsize=1)
def _lambda_client() -> Any:
    # botocore, not boto3: Chalice depends on botocore only. Deferred: only the
    # schedule function needs it, and it is slow to import.
    import botocore.session

    return botocore.session.get_session().create_client("lambda")


def _invoke_warm_ups(client: Any, function_name: str, invocations: int) -> int:
    """Invoke ``function_name`` asynchronously with the warm-up payload; how many were sent."""
    from botocore.exceptions import BotoCoreError, ClientError

    payload = json.dumps(keep_warm_event()).encode()
    for sent in range(invocations):
        try:
            client.invoke(FunctionName=function_name, InvocationType="Event", Payload=payload)
        except (BotoCoreError, ClientError) as error:
            logger.error(
                "keep-warm: cannot invoke %s (%s); the schedule function's role needs "
                "lambda:InvokeFunction on it",
                function_name,
                error,
            )
            return sent
    logger.info("keep-warm: invoked %s %d time(s)", function_name, invocations)
    return invocations


def register_keep_warm(
    app: Any,
    content_manager: ContentManager,
    *,
    rate_minutes: int = 5,
    invocations: int = 1,
    name: str = "keep_warm",
    function_name: str | None = None,
) -> Callable[..., Any]:
    """Keep the API handler function warm and primed; returns the schedule handler.

    Registers an HTTP middleware that answers :func:`keep_warm_event` payloads with
    :meth:`ContentManager.prime` before Chalice's routing, and a schedule ``name``
    (every ``rate_minutes``) whose own Lambda function invokes the API handler
    asynchronously ``invocations`` times with that payload. Assign the result to a
    module-level name equal to ``name`` in ``app.py`` (``keep_warm =
    register_keep_warm(app, cm)``): Lambda looks the handler up as ``app.<name>``.
    The schedule's role needs ``lambda:InvokeFunction`` on the API handler, which
    Chalice's policy generator does not see. The API handler's name is
    ``function_name``, else ``$CHALICE_HTTP_TOOLKIT_API_FUNCTION``, else derived
    from the schedule function's name (``{app}-{stage}-{name}`` → ``{app}-{stage}``).
    """
    for option, value in (("rate_minutes", rate_minutes), ("invocations", invocations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive int, not {value!r}")
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier (app.py binds it), not {name!r}")
    from chalice import Rate

    app.register_middleware(_keep_warm_middleware(content_manager), "http")
    setattr(app, _KEEP_WARM_ATTRIBUTE, content_manager)

    def keep_warm(event: Any) -> dict[str, Any]:
        target = _api_function_name(name, function_name, os.environ)
        if target is None:
            logger.error(
                "keep-warm: no API handler to invoke: set %s (or pass function_name)",
                KEEP_WARM_FUNCTION_ENV,
            )
            return {"function": None, "invoked": 0}
        return {
            "function": target,
            "invoked": _invoke_warm_ups(_lambda_client(), target, invocations),
        }

    keep_warm.__name__ = keep_warm.__qualname__ = name
    return app.schedule(Rate(rate_minutes, unit=Rate.MINUTES), name=name)(keep_warm)


# ---------------------------------------------------------------------------
# Front doors: Function URLs, HTTP APIs and ALB in front of a Chalice app
# ---------------------------------------------------------------------------

#: Request header CloudFront adds to every origin request (an origin custom header)
#: and :func:`lambda_handler` checks when an origin secret is configured.
ORIGIN_SECRET_HEADER = "X-Origin-Verify"

#: Environment variable with the origin secret(s) of :func:`lambda_handler`;
#: several comma-separated values are all accepted (for rotation).
ORIGIN_SECRET_ENV = "CHALICE_HTTP_TOOLKIT_ORIGIN_SECRET"

_NOT_FOUND_BODY = '{"message":"Not Found"}'

# An ALB takes at most 1 MB of response JSON from a Lambda target (6 MB elsewhere).
_ALB_RESPONSE_LIMIT = 1024 * 1024


class _BadEvent(ValueError):
    """An HTTP event of a known front door whose fields are missing or of the wrong type."""


def _all_text(values: Iterable[Any]) -> bool:
    """Whether every one of ``values`` is a str (one join: quicker than a check per value)."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _lower_case_names(headers: Mapping[Any, Any]) -> bool | None:
    """Whether every header name is in lower case; ``None`` when one is not a str."""
    try:
        names = "\n".join(headers)
    except TypeError:
        return None
    return names.lower() == names  # (an ASCII lower() is far quicker than islower())


def _string_map(value: Any, field: str, lower: bool = False) -> dict[str, str]:
    """``value`` as a dict of strings (names lower-cased with ``lower``); ``{}`` for null."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _BadEvent(f"{field} must be an object of strings")
    out = {}
    for name, text in value.items():
        if type(name) is not str or type(text) is not str:
            raise _BadEvent(f"{field} must be an object of strings")
        out[name.lower() if lower else name] = text
    return out


def _string_list_map(value: Any, field: str) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
        for k, v in value.items()
    ):
        raise _BadEvent(f"{field} must be an object of string lists")
    return {name: list(values) for name, values in value.items()}


def _join_header(name: str, values: list[str]) -> str:
    # Cookie pairs are separated by "; " (RFC 6265 §5.4); other fields by commas.
    return "; ".join(values) if name == "cookie" else ", ".join(values)


def _body_of(event: Mapping[str, Any]) -> tuple[str | None, bool]:
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise _BadEvent("body must be a string")
    return (body or None), bool(event.get("isBase64Encoded"))


def _rest_event(
    table: _RouteTable,
    method: str,
    path: str,
    encoded: bool,
    headers: dict[str, str],
    multi_headers: dict[str, list[str]],
    query: dict[str, list[str]],
    body: tuple[str | None, bool],
    context: dict[str, Any],
) -> dict[str, Any]:
    """The API Gateway REST proxy event Chalice routes (of an ALB's); when no route matches,
    one for :data:`_UNROUTED_RESOURCE_PATH`, which the toolkit's middleware answers with the
    404 page (:func:`_event_from_v2` builds the same event in one literal).

    ``encoded``: the path is still percent-encoded (as an ALB passes it); path
    parameters reach the view decoded, as REST APIs hand them.
    """
    found = table.match_path(path, encoded)
    route, captured = found or (_UNROUTED_RESOURCE_PATH, {})
    context["resourcePath"] = route
    context["httpMethod"] = method
    return {
        "resource": route,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {name: values[-1] for name, values in query.items()}
        if query
        else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": captured or None,
        "stageVariables": None,
        "requestContext": context,
        "body": body[0],
        "isBase64Encoded": body[1],
    }


class _V2Request(
    collections.namedtuple("_V2Request", "method raw_path path encoded headers context http")
):
    """What a payload format 2.0 event under a static prefix asks for, read for the static door.

    Made with ``_new_tuple(_V2Request, fields)``: half the time of the generated ``__new__``.
    """

    __slots__ = ()  # fields typed below: annotations only, so the class costs no import time

    method: str
    raw_path: str
    path: str  # without an HTTP API's named stage
    encoded: bool  # the path is still percent-encoded (Function URLs)
    headers: dict[str, str]  # as sent (lower-case names), the cookies array joined in; read only
    context: Mapping[str, Any]
    http: Mapping[str, Any]


def _event_from_v2(
    event: Mapping[str, Any], table: _RouteTable, static: tuple[str, ...] = ()
) -> dict[str, Any] | _V2Request:
    """The REST event Chalice routes for a payload format 2.0 event (HTTP API, Function URL);
    malformed: raises :class:`_BadEvent`. A GET or HEAD under one of the ``static`` prefixes
    (the static door's) comes back as the :class:`_V2Request` the door reads instead.

    This is the door's cost: the event is read once and the REST event built in one literal
    with what Chalice's ``Request`` and the view read (no ``multiValueHeaders``: neither
    reads it, and ``chalice local`` leaves it out too).
    """
    context = event.get("requestContext")  # a Mapping: _event_kind checked it
    http = context.get("http")
    method = http.get("method") if type(http) is dict or isinstance(http, Mapping) else None
    if type(method) is not str:
        raise _BadEvent("requestContext.http.method is missing")
    method = method.upper()
    raw_path = event.get("rawPath", _MISSING)
    if raw_path is _MISSING:
        raw_path = http.get("path")
    if not isinstance(raw_path, str) or not raw_path.startswith("/"):
        raise _BadEvent("rawPath must be a path")
    stage = context.get("stage") or "$default"
    path = raw_path
    # An HTTP API's named stage (not $default) leads rawPath; routes do not have it.
    if stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        path = path[len(stage) + 1 :] or "/"
    # Repeated headers arrive joined with commas already, names in lower case (Chalice
    # lower-cases them anyway; the static door checks). The event's own dict goes on, read
    # only: one join checks every value is a str (a JSON object's names always are).
    headers = event.get("headers")
    if type(headers) is dict:
        if not _all_text(headers.values()):
            raise _BadEvent("headers must be an object of strings")
    else:
        headers = _string_map(headers, "headers")
    cookies = event.get("cookies")
    if cookies:
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise _BadEvent("cookies must be a list of strings")
        headers = {**headers, "cookie": "; ".join(cookies)}
    # Function URLs pass the path percent-encoded; HTTP APIs decode it first.
    domain = context.get("domainName") or ""
    encoded = ".lambda-url." in domain
    if static and path.startswith(static) and method in ("GET", "HEAD"):
        return _new_tuple(_V2Request, (method, raw_path, path, encoded, headers, context, http))
    raw_query = event.get("rawQueryString")
    query: dict[str, list[str]] | None = None
    if isinstance(raw_query, str):
        if raw_query:
            query = {}
            for name, value in parse_qsl(raw_query, keep_blank_values=True):
                query.setdefault(name, []).append(value)
    else:
        query = {
            name: [value]
            for name, value in _string_map(event.get("queryStringParameters"), "query").items()
        }
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise _BadEvent("body must be a string")
    route, captured = table.match_path(path, encoded) or (_UNROUTED_RESOURCE_PATH, None)
    get = context.get
    return {
        "resource": route,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "queryStringParameters": {name: values[-1] for name, values in query.items()}
        if query
        else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": captured or None,
        "stageVariables": event.get("stageVariables") or None,
        "requestContext": {
            "path": raw_path,
            "stage": stage,
            "requestId": get("requestId"),
            "domainName": domain,
            "apiId": get("apiId"),
            "accountId": get("accountId"),
            "protocol": http.get("protocol"),
            "requestTimeEpoch": get("timeEpoch"),
            "identity": {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")},
            "authorizer": get("authorizer"),
            "resourcePath": route,
            "httpMethod": method,
        },
        "body": body or None,
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


_STATIC_DOOR_ATTRIBUTE = "_chalice_http_toolkit_static_door"

# (the app's route table, URL prefixes of the toolkit's static routes,
#  {(path, encoded): (manager, file, Cache-Control)})
_StaticDoor = tuple[_RouteTable, tuple[str, ...], dict[tuple[str, bool], tuple[Any, str, Any]]]


def _static_door(app: Any) -> _StaticDoor:
    """The route table and the prefixes (``/static/``) of the toolkit's static routes that
    may skip Chalice: one look-up per request for both.

    No prefix when the app has an HTTP middleware of its own: it must see every request.
    Made again, with an empty memo of routed paths, when routes or middleware were added.
    """
    routes = app.routes
    middleware = getattr(app, "middleware_handlers", ())
    key = (len(routes), len(middleware))
    cached = getattr(app, _STATIC_DOOR_ATTRIBUTE, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    prefixes: set[str] = set()
    ours = all(
        getattr(func, "__module__", None) == __name__
        for func, event_type in middleware
        if event_type in ("http", "all")
    )
    for route, methods in list(routes.items()) if ours else ():
        entry = methods.get("GET")
        if entry is not None and hasattr(entry.view_function, _STATIC_VIEW_ATTRIBUTE):
            prefixes.add(route[: route.index("/{") + 1])
    door: _StaticDoor = (_route_table(app), tuple(sorted(prefixes)), {})
    setattr(app, _STATIC_DOOR_ATTRIBUTE, (key, door))
    return door


def _static_route(app: Any, table: _RouteTable, request: _V2Request) -> tuple[Any, str, Any] | None:
    """(responder, file name, Cache-Control) when a static route of the toolkit gets the path."""
    found = table.match_path(request.path, request.encoded)
    if found is None:
        return None
    route, captured = found
    entry = app.routes[route].get(request.method)
    served = getattr(entry.view_function, _STATIC_VIEW_ATTRIBUTE, None) if entry else None
    if served is None or entry.cors is not None:
        return None
    responder, names, cache_control = served
    return responder, "/".join(captured[name] for name in names), cache_control


def _static_answer(app: Any, request: _V2Request, door: _StaticDoor) -> Answer | None:
    """What the toolkit's static route would answer, without Chalice; ``None``: ask Chalice.

    Only a GET/HEAD without a body type for a route of ``register_static_routes`` whose
    file is in the index and is not a negotiated image; everything else (404s, image
    variants, CORS set on the route, an app whose binary types are not ``*/*``) goes
    through Chalice, which gives the same answer the long way.
    """
    table, prefixes, routed = door
    if request.method not in ("GET", "HEAD") or not request.path.startswith(prefixes):
        return None
    headers = request.headers
    lower = _lower_case_names(headers)
    if lower is None:
        raise _BadEvent("headers must be an object of strings")
    if not lower:
        headers = _string_map(headers, "headers", lower=True)
    key = (request.path, request.encoded)  # GET and HEAD share the view
    served = routed.get(key)
    if served is None:
        served = _static_route(app, table, request)
        if served is None:
            return None
        if len(routed) < _ROUTED_PATHS and len(request.path) <= _ROUTED_PATH_LENGTH:
            routed[key] = served
    responder, filename, cache_control = served
    return _static_file_answer(app, request.method, headers, responder, filename, cache_control)


def _static_file_answer(
    app: Any,
    method: str,
    headers: Mapping[str, str],
    responder: Any,
    filename: str,
    cache_control: str | None,
) -> Answer | None:
    """The static view's answer for ``filename`` (as the route hands it to the responder) to
    a GET/HEAD with these ``headers`` (lower-case names); ``None``: Chalice must answer.
    """
    if (
        "content-type" in headers  # Chalice checks it against the route
        or "*/*" not in app.api.binary_types  # else Chalice may refuse a binary answer
    ):
        return None
    # As ContentManager.static() finds the file (images are negotiated there); its answer
    # depends on the file alone (the static view marks its exchange a resource).
    index = responder.static_files
    static_file = None
    if not index.auto_reload and "%" not in filename and "\\" not in filename:
        static_file = index.files.get(filename)
    immutable = False
    if static_file is None:
        relpath = _clean_segments(filename.split("/"))
        static_file, immutable = index.resolve(relpath) if relpath else (None, False)
        if static_file is None:
            return None
    try:
        snapshot = static_file.snapshot()
        if snapshot.content_type in IMAGE_FORMATS:
            return None
        return _answer(
            method,
            headers,
            _static_offer(snapshot, snapshot.content_type),
            200,
            None,
            IMMUTABLE_CACHE_CONTROL if immutable else cache_control,
            (),
            responder.compress,
            False,
            responder._fixed_headers,
            bool(getattr(responder.app, "debug", False)),
        )
    except OSError:  # gone meanwhile: Chalice's route gives its answer
        return None


def _rest_static_answer(app: Any, event: Mapping[str, Any]) -> Answer | None:
    """:func:`_static_answer` for a REST proxy event: the resource and path parameters API
    Gateway matched, read as Chalice reads them (``requestContext.resourcePath`` and
    ``httpMethod``, ``pathParameters``, ``headers``); ``None``: ask Chalice.

    ``event["path"]`` is not read: behind a custom domain's base path mapping it carries
    the mapping's prefix. An event Chalice could not make a request of (a field missing,
    a header that is not a string) is Chalice's to answer too.
    """
    context = event["requestContext"]
    method = context.get("httpMethod")
    if method != "GET" and method != "HEAD":
        return None
    resource = context.get("resourcePath")
    entry = app.routes.get(resource, _NO_METHODS).get(method) if type(resource) is str else None
    served = getattr(entry.view_function, _STATIC_VIEW_ATTRIBUTE, None) if entry else None
    if (
        served is None
        or entry.cors is not None
        or "body" not in event
        or "multiValueQueryStringParameters" not in event
        or not _static_door(app)[1]  # the app has an HTTP middleware of its own
    ):
        return None
    responder, names, cache_control = served
    params = event.get("pathParameters")
    headers = event.get("headers") or {}
    try:
        filename = "/".join([params[name] for name in names])
        # Lower-case names, the last of two spellings winning, as Chalice's request has them.
        headers = dict(zip(map(str.lower, headers), headers.values()))
    except (TypeError, KeyError, AttributeError):
        return None
    if not _all_text(headers.values()):
        return None
    return _static_file_answer(app, method, headers, responder, filename, cache_control)


_NO_METHODS: Mapping[str, Any] = types.MappingProxyType({})


def _rest_response(answer: Answer) -> dict[str, Any]:
    """An answer as the REST proxy result Chalice makes of the route's (``_GatewayResponse``)."""
    body = answer.body
    if isinstance(body, (bytes, bytearray)):
        return {
            "headers": answer.headers,
            "multiValueHeaders": {},
            "statusCode": answer.status,
            "body": base64.b64encode(body).decode("ascii"),
            "isBase64Encoded": True,
        }
    return {
        "headers": answer.headers,
        "multiValueHeaders": {},
        "statusCode": answer.status,
        "body": body,
    }


def _v2_response(answer: Answer) -> dict[str, Any]:
    """An answer as the payload format 2.0 response ``_to_v2`` makes of Chalice's."""
    body = answer.body
    if isinstance(body, (bytes, bytearray)):
        return {
            "statusCode": answer.status,
            "headers": answer.headers,
            "body": base64.b64encode(body).decode("ascii"),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": answer.status,
        "headers": answer.headers,
        "body": body,
        "isBase64Encoded": False,
    }


def _event_from_alb(event: Mapping[str, Any], table: _RouteTable) -> dict[str, Any]:
    """A REST event from an ALB target-group event.

    The load balancer passes the path and the query string as the client sent them,
    percent-encoded; with multi-value headers enabled only the ``multiValue*`` fields.
    """

    method = event.get("httpMethod")
    path = event.get("path")
    if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
        raise _BadEvent("httpMethod and path are required")
    if "multiValueHeaders" in event:
        headers = {
            name.lower(): values
            for name, values in _string_list_map(
                event["multiValueHeaders"], "multiValueHeaders"
            ).items()
        }
        raw_query = _string_list_map(
            event.get("multiValueQueryStringParameters"), "multiValueQueryStringParameters"
        )
    else:
        headers = {
            name: [value]
            for name, value in _string_map(event.get("headers"), "headers", lower=True).items()
        }
        raw_query = {
            name: [value]
            for name, value in _string_map(
                event.get("queryStringParameters"), "queryStringParameters"
            ).items()
        }
    query = {
        unquote_plus(name): [unquote_plus(value) for value in values]
        for name, values in raw_query.items()
    }
    forwarded = headers.get("x-forwarded-for", [""])[-1]
    rest_context = {
        "path": path,
        "stage": "$default",
        "elb": event["requestContext"].get("elb"),
        "identity": {
            "sourceIp": forwarded.split(",")[-1].strip() or None,
            "userAgent": headers.get("user-agent", [None])[-1],
        },
    }
    single = {name: _join_header(name, values) for name, values in headers.items()}
    return _rest_event(
        table, method.upper(), path, True, single, headers, query, _body_of(event), rest_context
    )


def _event_kind(event: Any) -> str | None:
    """``"rest"``, ``"v2"``, ``"alb"`` or ``None`` for an event no front door sends."""
    # ``type(...) is dict`` first: the runtime hands dicts, and an ABC check costs more.
    if type(event) is not dict and not isinstance(event, Mapping):
        return None
    context = event.get("requestContext")
    if type(context) is not dict and not isinstance(context, Mapping):
        return None
    if event.get("version") == "2.0" or "http" in context:
        return "v2"
    if "elb" in context:
        return "alb"
    if "httpMethod" in event or "resourcePath" in context:
        return "rest"
    return None


def _result_header_pairs(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = [(name, str(value)) for name, value in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        pairs.extend((name, str(value)) for value in values)
    return pairs


def _to_v2(result: Mapping[str, Any]) -> dict[str, Any]:
    """A REST proxy result as payload format 2.0: one ``cookies`` entry per Set-Cookie."""
    multi = result.get("multiValueHeaders")
    single = result.get("headers") or {}
    # The usual answer: no cookie, no repeated header, every value a str (Chalice passes
    # others as given); Chalice made ``single`` for it.
    if not multi and not _sets_cookie(single) and _all_text(single.values()):
        return {
            "statusCode": result["statusCode"],
            "headers": single,
            "body": result.get("body") or "",
            "isBase64Encoded": bool(result.get("isBase64Encoded")),
        }
    headers: dict[str, str] = {}
    cookies = []
    pairs = _result_header_pairs(result) if multi else (result.get("headers") or {}).items()
    for name, value in pairs:
        if type(value) is not str:
            value = str(value)
        if name.lower() == "set-cookie":
            cookies.append(value)
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    response = {
        "statusCode": result["statusCode"],
        "headers": headers,
        "body": result.get("body") or "",
        "isBase64Encoded": bool(result.get("isBase64Encoded")),
    }
    if cookies:
        response["cookies"] = cookies
    return response


@functools.lru_cache(maxsize=64)
def _status_description(status: int) -> str:
    """``"200 OK"``: the ALB response's ``statusDescription``."""
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _to_alb(result: Mapping[str, Any], multi_value: bool) -> dict[str, Any]:
    """A REST proxy result as an ALB response, multi-value when the target group is."""
    size = len(result.get("body") or "")
    if size > _ALB_RESPONSE_LIMIT - 16 * 1024:
        logger.error(
            "lambda_handler: a response of about %d bytes exceeds the ALB's 1 MB limit for "
            "Lambda targets; serve large files from S3 (behind CloudFront) instead",
            size,
        )
        result = _plain_response(500, "Response too large for the load balancer; see the log.")
    response: dict[str, Any] = {
        "statusCode": result["statusCode"],
        "statusDescription": _status_description(result["statusCode"]),
        "body": result.get("body") or "",
        "isBase64Encoded": bool(result.get("isBase64Encoded")),
    }
    if multi_value:
        headers: dict[str, list[str]] = {}
        for name, value in _result_header_pairs(result):
            headers.setdefault(name, []).append(value)
        response["multiValueHeaders"] = headers
        return response
    single: dict[str, str] = {}
    for name, value in _result_header_pairs(result):
        if name.lower() == "set-cookie" and name in single:
            logger.warning(
                "lambda_handler: an ALB target group without multi-value headers carries one "
                "Set-Cookie; the others are dropped (enable lambda.multi_value_headers.enabled)"
            )
            single[name] = value
        elif name in single:
            single[name] = f"{single[name]}, {value}"
        else:
            single[name] = value
    response["headers"] = single
    return response


def _plain_response(
    status: int, body: str, content_type: str = "text/plain; charset=utf-8"
) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": body}


def _in_format(kind: str, event: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "v2":
        return _to_v2(result)
    if kind == "alb":
        return _to_alb(result, "multiValueHeaders" in event)
    return dict(result)


def _origin_secrets(origin_secret: str | Iterable[str] | None) -> tuple[bytes, ...]:
    """The origin secrets as bytes; a blank, short or non-text one raises ``ValueError``.

    ``None`` reads :data:`ORIGIN_SECRET_ENV` (comma-separated; unset means no
    protection). A secret that is given but blank (``""``, ``"  "``, ``[]``, an
    empty variable) would let every request in silently, so it is refused.
    """
    where = "origin_secret"
    if origin_secret is None:
        if ORIGIN_SECRET_ENV not in os.environ:
            return ()
        where = f"${ORIGIN_SECRET_ENV}"
        origin_secret = os.environ[ORIGIN_SECRET_ENV].split(",")
    elif isinstance(origin_secret, str):
        origin_secret = [origin_secret]
    candidates = list(origin_secret)
    how = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
    if not candidates:
        raise ValueError(f"{where} is empty: it would let every request in; {how}")
    secrets = []
    for secret in candidates:
        if not isinstance(secret, str) or not secret.strip():
            raise ValueError(
                f"{where} holds a blank or non-text secret ({secret!r}): it would protect "
                f"nothing; {how}"
            )
        secret = secret.strip()
        if len(secret) < 16 or not secret.isascii() or not secret.isprintable():
            raise ValueError(
                f"an origin secret must be at least 16 characters long, printable ASCII; {how}"
            )
        secrets.append(secret.encode("ascii"))
    return tuple(secrets)


def _origin_secret_matches(event: Mapping[str, Any], secrets: tuple[bytes, ...]) -> bool:
    """Whether the event carries one of ``secrets`` in :data:`ORIGIN_SECRET_HEADER`.

    A value that is not ASCII (a lone surrogate from a JSON escape included)
    never matches and never raises.
    """
    import hmac

    wanted = ORIGIN_SECRET_HEADER.lower()
    sent = [
        value.encode("ascii")
        for field in ("headers", "multiValueHeaders")
        if isinstance(event.get(field), Mapping)
        for name, values in event[field].items()
        if isinstance(name, str) and name.lower() == wanted
        for value in (values if isinstance(values, list) else [values])
        if isinstance(value, str) and value.isascii()
    ]
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = False
    for value in sent:
        for secret in secrets:
            matched |= hmac.compare_digest(value, secret)
    return matched


def _admitted_v2(event: Mapping[str, Any], secrets: tuple[bytes, ...]) -> dict[str, Any] | None:
    """A 2.0 event that carries one of ``secrets``, as AWS sends it (header names in lower
    case): a copy without the header. ``None`` for any other event, which
    :func:`_origin_secret_matches` and :func:`_without_origin_secret` decide the long way.
    """
    headers = event.get("headers")
    if type(headers) is not dict:
        return None
    value = headers.get(_ORIGIN_SECRET_NAME)
    if type(value) is not str or not value.isascii():
        return None
    if not _lower_case_names(headers):  # another spelling of the header may be there too
        return None
    if not _is_origin_secret(value, secrets):
        return None
    headers = dict(headers)
    del headers[_ORIGIN_SECRET_NAME]
    return {**event, "headers": headers}


def _is_origin_secret(value: str, secrets: tuple[bytes, ...]) -> bool:
    """Whether ``value`` (ASCII) is one of ``secrets``, every candidate compared in constant
    time (as :func:`_origin_secret_matches` compares them)."""
    import hmac

    sent = value.encode("ascii")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sent, secret)
    return matched


def _admitted_rest(event: Mapping[str, Any], secrets: tuple[bytes, ...]) -> dict[str, Any] | None:
    """A REST event that carries one of ``secrets`` in one spelling of the header, as
    CloudFront sends it (:data:`ORIGIN_SECRET_HEADER`, or in lower case): a copy without the
    header in ``headers`` and ``multiValueHeaders``, neither of the caller's dicts changed.

    ``None`` for any other event (the secret in another spelling, two spellings, a value
    that is not the secret): :func:`_origin_secret_matches` and
    :func:`_without_origin_secret` decide it the long way.
    """
    headers = event.get("headers")
    if type(headers) is not dict:
        return None
    name = ORIGIN_SECRET_HEADER
    value = headers.get(name)
    if value is None:
        name = _ORIGIN_SECRET_NAME
        value = headers.get(name)
    if type(value) is not str or not value.isascii() or not _is_origin_secret(value, secrets):
        return None
    multi = event.get("multiValueHeaders")
    if multi is None:
        multi = {}
    elif type(multi) is not dict:
        return None
    try:
        # No other spelling in either field: the lower-cased names hold the header's name
        # once in ``headers`` and once more only where ``multiValueHeaders`` has it too.
        names = "\n".join([*headers, *multi]).lower()
    except TypeError:  # a name that is not a string
        return None
    if names.count(_ORIGIN_SECRET_NAME) != 1 + (name in multi):
        return None
    headers = dict(headers)
    del headers[name]
    admitted = {**event, "headers": headers}
    if name in multi:
        multi = dict(multi)
        del multi[name]  # all its values: the last (in ``headers``) is the secret
        admitted["multiValueHeaders"] = multi
    return admitted


_ORIGIN_SECRET_NAME = ORIGIN_SECRET_HEADER.lower()


def _without_origin_secret(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` without the secret header, so the app never sees or logs it."""
    wanted = ORIGIN_SECRET_HEADER.lower()
    copy = dict(event)
    for field in ("headers", "multiValueHeaders"):
        if isinstance(copy.get(field), Mapping):
            copy[field] = {k: v for k, v in copy[field].items() if str(k).lower() != wanted}
    return copy


def lambda_handler(
    app: Any, *, origin_secret: str | Iterable[str] | None = None
) -> Callable[[Any, Any], dict[str, Any]]:
    """A Lambda handler for ``app`` behind any HTTP front door AWS offers.

    A GET/HEAD for a file of ``register_static_routes`` is answered from the static index
    before Chalice runs (REST and 2.0 events; the route's answer). Other REST API (v1)
    events go to ``app`` unchanged; HTTP API and Function URL events (payload format
    2.0) and ALB events (with or without multi-value headers) become the REST event
    Chalice routes (API Gateway's resource matching, greedy ``{proxy+}`` included), and
    the answer goes back in the caller's format: 2.0 with a ``cookies`` entry per
    Set-Cookie, ALB with ``statusDescription``. A path no route
    matches is a 404; an event no front door sends is logged and answered 500, a
    malformed one 400. With ``origin_secret`` (or ``$CHALICE_HTTP_TOOLKIT_ORIGIN_SECRET``,
    comma-separated for rotation), a request without that value in
    :data:`ORIGIN_SECRET_HEADER` is refused with 403 (keep-warm payloads excepted).
    """
    secrets = _origin_secrets(origin_secret)

    def handler(event: Any, context: Any) -> dict[str, Any]:
        # A Function URL's or HTTP API's event as the runtime hands it, known at once.
        v2 = type(event) is dict and event.get("version") == "2.0"
        kind = "v2" if v2 and type(event.get("requestContext")) is dict else _event_kind(event)
        if kind is None:
            logger.error(
                "lambda_handler: not an HTTP event of API Gateway, a Function URL or an ALB "
                "(top-level keys: %s); is this function wired to the right trigger?",
                sorted(map(str, event))[:20]
                if isinstance(event, Mapping)
                else type(event).__name__,
            )
            return _plain_response(500, "Internal Server Error: unknown event shape")
        if kind == "rest" and event.get(_KEEP_WARM_MARKER) is True and is_keep_warm_event(event):
            warming = getattr(app, _KEEP_WARM_ATTRIBUTE, None)  # register_keep_warm's manager
            if warming is not None:
                return _keep_warm_response(warming).to_dict()
        elif secrets:
            if kind == "v2":
                admitted = _admitted_v2(event, secrets)
            else:
                admitted = _admitted_rest(event, secrets) if kind == "rest" else None
            if admitted is None:
                if not _origin_secret_matches(event, secrets):
                    logger.warning(
                        "lambda_handler: refused a request without the origin secret header %s",
                        ORIGIN_SECRET_HEADER,
                    )
                    return _in_format(kind, event, _plain_response(403, "Forbidden"))
                admitted = _without_origin_secret(event)
            event = admitted
        if kind == "rest":
            if event.get("pathParameters"):  # (a static route has some)
                answered = _rest_static_answer(app, event)
                if answered is not None:
                    return _rest_response(answered)
            return app(event, context)
        try:
            if kind == "v2":
                door = _static_door(app)
                rest = _event_from_v2(event, door[0], door[1])
                if type(rest) is _V2Request:  # under a static prefix: the door may answer
                    answered = _static_answer(app, rest, door)
                    if answered is not None:
                        return _v2_response(answered)
                    rest = _event_from_v2(event, door[0])
            else:
                rest = _event_from_alb(event, _route_table(app))
        except _BadEvent as error:
            logger.error("lambda_handler: malformed %s event: %s", kind, error)
            return _in_format(kind, event, _plain_response(400, f"Bad Request: {error}"))
        if rest["resource"] == _UNROUTED_RESOURCE_PATH and not _has_error_pages(app):
            return _in_format(
                kind, event, _plain_response(404, _NOT_FOUND_BODY, "application/json")
            )
        result = app(rest, context)
        return _to_v2(result) if kind == "v2" else _in_format(kind, event, result)

    return handler


# ---------------------------------------------------------------------------
# Background tasks: 0.6.2's TaskingControllerFactory, on SQS or in-process
# ---------------------------------------------------------------------------

#: Environment variable that forces the task mode: ``local`` (in-process) or ``sqs``.
TASKS_MODE_ENV = "CHALICE_HTTP_TOOLKIT_TASKS"

#: SQS's message size limit that every queue accepts: the body plus each message
#: attribute's name, data type and value, in bytes (the scaffold's queue sets
#: ``MaximumMessageSize`` to this, so a message that passes here fits the queue).
SQS_MESSAGE_LIMIT = 256 * 1024

_SQS_MAX_ATTRIBUTES = 10

# Compiled on first use (the text class alone takes milliseconds): a cold start that
# posts no task does not pay for them.
_SQS_PATTERNS = {
    "queue_name": r"[A-Za-z0-9_-]{1,75}\.fifo|[A-Za-z0-9_-]{1,80}",
    "attribute_name": r"(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,256}",
    "attribute_type": r"(String|Number|Binary)(\.[\x21-\x7e]+)?",
    # MessageGroupId / MessageDeduplicationId: 1 to 128 alphanumeric or punctuation characters.
    "id": r"[\x21-\x7e]{1,128}",
    # What SQS accepts in a body or a string value: XML 1.0's characters.
    "invalid_text": "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]",
}


@functools.cache
def _sqs_pattern(name: str) -> re.Pattern[str]:
    return re.compile(_SQS_PATTERNS[name])


_SQS_THROTTLED = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "AWS.SimpleQueueService.RequestThrottled",
        "KmsThrottled",
    }
)

_SQS_NO_QUEUE = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})


class TaskQueueError(RuntimeError):
    """A task could not be handed to its queue; names the queue and the cause.

    ``cause`` is a short word for programs: ``unreachable``, ``throttled``,
    ``no-such-queue``, ``no-region``, ``no-credentials`` or ``refused``.
    """

    def __init__(self, queue_name: str, cause: str, detail: str) -> None:
        super().__init__(f"task queue {queue_name!r}: {detail}")
        self.queue_name = queue_name
        self.cause = cause


class TaskBatchError(RuntimeError):
    """Every message of an SQS batch failed: raised so Lambda retries the batch.

    Raising retries the batch whether or not the event source mapping reports
    batch item failures; the first task's exception is the ``__cause__``.
    """

    def __init__(self, queue_name: str, message_ids: list[str]) -> None:
        super().__init__(
            f"task queue {queue_name!r}: {len(message_ids)} message(s) failed: "
            + ", ".join(message_ids)
        )
        self.queue_name = queue_name
        self.message_ids = message_ids


def task_mode(environ: Mapping[str, str] | None = None) -> str:
    """``"sqs"`` on Lambda or with an SQS endpoint configured, else ``"local"``.

    ``$CHALICE_HTTP_TOOLKIT_TASKS`` (``local`` or ``sqs``) overrides; the endpoint is
    ``$AWS_ENDPOINT_URL_SQS`` or ``$AWS_ENDPOINT_URL`` (what botocore honours).
    """
    environ = os.environ if environ is None else environ
    forced = environ.get(TASKS_MODE_ENV)
    if forced:
        if forced not in ("local", "sqs"):
            raise ValueError(f"{TASKS_MODE_ENV} must be 'local' or 'sqs', not {forced!r}")
        return forced
    if environ.get("AWS_LAMBDA_FUNCTION_NAME") or _sqs_endpoint(environ):
        return "sqs"
    return "local"


def _sqs_endpoint(environ: Mapping[str, str]) -> str | None:
    return environ.get("AWS_ENDPOINT_URL_SQS") or environ.get("AWS_ENDPOINT_URL") or None


def _sqs_text(queue_name: str, what: str, value: str) -> str:
    bad = _sqs_pattern("invalid_text").search(value)
    if bad:
        raise ValueError(
            f"task queue {queue_name!r}: {what} holds {bad.group()!r} at {bad.start()}, "
            "a character SQS refuses"
        )
    return value


def _sqs_attribute(queue_name: str, name: Any, value: Any) -> dict[str, Any]:
    """One message attribute in boto3's form: a plain value or ``{"DataType": ...}``."""
    import decimal

    where = f"task queue {queue_name!r}: message attribute {name!r}"
    if not isinstance(name, str):
        raise TypeError(f"{where}: the name must be a str")
    if not _sqs_pattern("attribute_name").fullmatch(name) or name.lower().startswith(
        ("aws.", "amazon.")
    ):
        raise ValueError(
            f"{where}: SQS allows 1-256 of A-Z a-z 0-9 _ - . (no leading, trailing or "
            "double period, no AWS./Amazon. prefix)"
        )
    if isinstance(value, bool):
        raise TypeError(f"{where}: a bool is neither String nor Number; send 'true'/'false'")
    if isinstance(value, str):
        value = {"DataType": "String", "StringValue": value}
    elif isinstance(value, (int, float, decimal.Decimal)):
        value = {"DataType": "Number", "StringValue": str(value)}
    elif isinstance(value, (bytes, bytearray, memoryview)):
        value = {"DataType": "Binary", "BinaryValue": bytes(value)}
    elif not isinstance(value, Mapping):
        raise TypeError(
            f"{where}: {type(value).__name__} is not an attribute value (str, int, float, "
            "bytes or {'DataType': ..., 'StringValue'/'BinaryValue': ...})"
        )
    data_type = value.get("DataType")
    if not isinstance(data_type, str) or not _sqs_pattern("attribute_type").fullmatch(data_type):
        raise ValueError(f"{where}: DataType must be String, Number or Binary, not {data_type!r}")
    if data_type.startswith("Binary"):
        data = value.get("BinaryValue")
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise TypeError(f"{where}: a Binary attribute needs non-empty bytes as BinaryValue")
        return {"DataType": data_type, "BinaryValue": bytes(data)}
    text = value.get("StringValue")
    if not isinstance(text, str) or not text:
        raise TypeError(f"{where}: a {data_type} attribute needs a non-empty str StringValue")
    if data_type.startswith("Number"):
        _sqs_number(where, text)
    return {"DataType": data_type, "StringValue": _sqs_text(queue_name, where, text)}


def _sqs_number(where: str, text: str) -> None:
    """Refuse what SQS refuses as a Number: up to 38 significant digits, 10^-128 to 10^+126.

    (The SQS Developer Guide, "Message attribute data types"; leading and
    trailing zeros do not count. ``nan`` and ``inf`` are not numbers there.)
    """
    import decimal

    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise ValueError(f"{where}: {text!r} is not a Number (digits, a point, an exponent)")
    number = decimal.Decimal(text)
    if number.is_zero():
        return
    digits = len(number.normalize(decimal.Context(prec=len(text))).as_tuple().digits)
    if digits > 38:
        raise ValueError(f"{where}: {text!r} has {digits} significant digits; SQS keeps 38")
    if not -128 <= number.adjusted() < 126:
        raise ValueError(f"{where}: {text!r} is outside SQS's range, 10^-128 to 10^+126")


def _sqs_message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes SQS counts against its limit: body, and each attribute's name, type and value."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        data = value.get("BinaryValue")
        if data is None:
            data = value["StringValue"].encode("utf-8")
        size += len(name.encode("utf-8")) + len(value["DataType"].encode("utf-8")) + len(data)
    return size


def _lambda_message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """boto3's attribute form as Lambda's SQS event writes it (camelCase, base64 binary)."""
    converted = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        if "BinaryValue" in value:
            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        else:
            entry["stringValue"] = value["StringValue"]
        converted[name] = entry
    return converted


@functools.lru_cache(maxsize=8)
def _sqs_client(region: str, endpoint_url: str | None) -> Any:
    # botocore, not boto3: Chalice depends on botocore only, and Lambda's runtime has it.
    # Deferred: only a post() in queue mode needs it, and it is slow to import.
    import botocore.config
    import botocore.session

    config = botocore.config.Config(
        connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3}
    )
    return botocore.session.get_session().create_client(
        "sqs", region_name=region, endpoint_url=endpoint_url, config=config
    )


class TaskingController:
    """Hands work to an SQS queue, or runs it in-process when there is no queue to reach.

    Build it with :func:`TaskingControllerFactory`. ``post()`` validates a message
    the same way in both modes; :func:`task_mode` decides where it goes.
    """

    def __init__(self, queue_name: str, message_group_id: str) -> None:
        if not isinstance(queue_name, str) or not _sqs_pattern("queue_name").fullmatch(queue_name):
            raise ValueError(
                f"queue_name must be an SQS queue name (1-80 of A-Z a-z 0-9 _ -, FIFO ones "
                f"ending in .fifo), not {queue_name!r}"
            )
        if not isinstance(message_group_id, str) or not _sqs_pattern("id").fullmatch(
            message_group_id
        ):
            raise ValueError(
                f"task queue {queue_name!r}: message_group_id must be 1-128 printable ASCII "
                f"characters, not {message_group_id!r}"
            )
        self.queue_name = queue_name
        self.message_group_id = message_group_id
        self.fifo = queue_name.endswith(".fifo")
        #: The queue's Lambda function (0.6.2's name): ``on_message_<queue name>``.
        self.handler_name = "on_message_" + re.sub(r"[.-]", "_", queue_name)
        self._message_handler: Callable[[Any], Any] | None = None
        self._lambda_handler: Callable[[Any, Any], Any] | None = None
        self._queue_urls: dict[tuple[str, str | None], str] = {}
        self._delivery = threading.local()

    def __repr__(self) -> str:
        return f"<TaskingController queue={self.queue_name!r} group={self.message_group_id!r}>"

    # -- the worker side -------------------------------------------------------

    def set_message_handler(self, message_handler: Callable[[Any], Any]) -> None:
        """Run ``message_handler(record)`` for each message (a ``chalice.app.SQSRecord``)."""
        if not callable(message_handler):
            raise TypeError(
                f"task queue {self.queue_name!r}: the message handler must be callable, "
                f"not {message_handler!r}"
            )
        self._message_handler = message_handler

    def handler(self, message_handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Decorator form of :meth:`set_message_handler`; returns the function unchanged."""
        self.set_message_handler(message_handler)
        return message_handler

    def register_handler(
        self, app: Any, *, batch_size: int = 1, name: str | None = None
    ) -> Callable[..., Any]:
        """Register the queue's Lambda function on ``app``; returns Chalice's handler.

        Lambda looks the function up as ``app.<name>`` (default :attr:`handler_name`):
        when ``app.py`` holds ``app``, the handler is bound there under that name;
        else assign the result in ``app.py`` (``worker = tasks.register_handler(app)``).
        A batch reports the messages whose task raised (``batchItemFailures``), which
        needs ``FunctionResponseTypes: [ReportBatchItemFailures]`` on the event source
        mapping when ``batch_size`` > 1; a batch whose every message failed raises
        :class:`TaskBatchError`, so Lambda retries it in either configuration.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be an int, not {batch_size!r}")
        limit = 10 if self.fifo else 10_000
        if not 1 <= batch_size <= limit:
            raise ValueError(f"batch_size must be 1 to {limit} for this queue, not {batch_size}")
        name = self.handler_name if name is None else name
        if not name.isidentifier():
            raise ValueError(f"name must be a Python identifier (app.py binds it), not {name!r}")
        if self._lambda_handler is not None:
            raise RuntimeError(f"task queue {self.queue_name!r}: register_handler() called twice")

        def on_message(event: Any) -> dict[str, Any]:
            return self._process_batch(event)

        on_message.__name__ = on_message.__qualname__ = name
        wrapped = app.on_sqs_message(queue=self.queue_name, batch_size=batch_size, name=name)(
            on_message
        )
        self._lambda_handler = wrapped
        _bind_in_app_module(app, name, wrapped)
        return wrapped

    def _process_batch(self, event: Any) -> dict[str, Any]:
        """Run each record's task; report the failed ones and, per FIFO group, the rest.

        After a failure, later messages of the same message group are not run and are
        reported failed too, so they come back after it, in order (AWS's advice for
        FIFO queues); other groups carry on.
        """
        failures: list[str] = []
        first_error: BaseException | None = None
        failed_groups: set[str] = set()
        count = 0
        for record in event:
            count += 1
            raw = record.to_dict()
            message_id = raw.get("messageId", "?")
            group = (raw.get("attributes") or {}).get("MessageGroupId")
            if group is not None and group in failed_groups:
                logger.warning(
                    "task queue %s: message %s not run: an earlier message of group %s failed",
                    self.queue_name,
                    message_id,
                    group,
                )
                failures.append(message_id)
                continue
            try:
                if self._message_handler is None:
                    raise RuntimeError(
                        f"task queue {self.queue_name!r}: no message handler "
                        "(set_message_handler(fn) or @tasks.handler)"
                    )
                self._message_handler(record)
            except Exception as error:  # any task's failure fails its record only, logged
                logger.exception("task queue %s: message %s failed", self.queue_name, message_id)
                failures.append(message_id)
                if group is not None:
                    failed_groups.add(group)
                first_error = first_error or error
                errors = getattr(self._delivery, "errors", None)
                if errors is not None:
                    errors.append(error)
        if failures and len(failures) == count:
            raise TaskBatchError(self.queue_name, failures) from first_error
        if failures:
            logger.warning(
                "task queue %s: %d of %d message(s) reported failed (batchItemFailures)",
                self.queue_name,
                len(failures),
                count,
            )
        return {"batchItemFailures": [{"itemIdentifier": item} for item in failures]}

    # -- the sending side ------------------------------------------------------

    def post(
        self,
        message_body: str,
        message_attributes: Mapping[str, Any] | None = None,
        *,
        deduplication_id: str | None = None,
        group_id: str | None = None,
    ) -> dict[str, Any]:
        """Send ``message_body`` to the queue; returns SQS's answer (``MessageId``, ...).

        ``message_attributes`` maps names to a str, int, float or bytes, or to boto3's
        ``{"DataType": ..., "StringValue"/"BinaryValue": ...}``. The deduplication id
        defaults to a fresh UUID; pass one to make retried posts count once (FIFO).
        Locally (:func:`task_mode`) the registered handler runs now, in this thread,
        and its exception is raised here. Raises ``TypeError``/``ValueError`` for a
        message SQS would refuse and :class:`TaskQueueError` when SQS cannot take it.
        """
        try:
            message = self._message(message_body, message_attributes, deduplication_id, group_id)
        except (TypeError, ValueError) as error:
            logger.error("task not posted: %s", error)
            raise
        if task_mode() == "local":
            return self._deliver_locally(*message)
        return self._send(*message)

    def _message(
        self,
        body: Any,
        attributes: Mapping[str, Any] | None,
        deduplication_id: str | None,
        group_id: str | None,
    ) -> tuple[str, dict[str, Any], str, str]:
        """Validate a message as SQS would: (body, boto3 attributes, dedup id, group id)."""
        queue = self.queue_name
        if not isinstance(body, str):
            raise TypeError(
                f"task queue {queue!r}: the message body must be a str (json.dumps it), "
                f"not {type(body).__name__}"
            )
        if not body:
            raise ValueError(f"task queue {queue!r}: SQS refuses an empty message body")
        _sqs_text(queue, "the message body", body)
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, Mapping):
            raise TypeError(f"task queue {queue!r}: message_attributes must be a dict")
        if len(attributes) > _SQS_MAX_ATTRIBUTES:
            raise ValueError(
                f"task queue {queue!r}: {len(attributes)} message attributes, SQS allows "
                f"{_SQS_MAX_ATTRIBUTES}"
            )
        converted = {name: _sqs_attribute(queue, name, value) for name, value in attributes.items()}
        size = _sqs_message_size(body, converted)
        if size > SQS_MESSAGE_LIMIT:
            raise ValueError(
                f"task queue {queue!r}: the message is {size} bytes, over SQS's "
                f"{SQS_MESSAGE_LIMIT} (put the data in S3 and post its key)"
            )
        import uuid

        ids = {"deduplication_id": deduplication_id, "group_id": group_id}
        for option, value in ids.items():
            if value is not None and (
                not isinstance(value, str) or not _sqs_pattern("id").fullmatch(value)
            ):
                raise ValueError(
                    f"task queue {queue!r}: {option} must be 1-128 printable ASCII characters, "
                    f"not {value!r}"
                )
        return (
            body,
            converted,
            deduplication_id or uuid.uuid4().hex,
            group_id or self.message_group_id,
        )

    def _deliver_locally(
        self, body: str, attributes: dict[str, Any], deduplication_id: str, group_id: str
    ) -> dict[str, Any]:
        """Run the registered handler on a record shaped as Lambda's SQS event writes one."""
        import hashlib
        import time
        import uuid

        if self._lambda_handler is None:
            raise RuntimeError(
                f"task queue {self.queue_name!r}: no handler registered to run the task "
                "locally; call register_handler(app)"
            )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "local"
        message_id = str(uuid.uuid4())
        now = str(int(time.time() * 1000))
        md5 = hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()
        system = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SenderId": "local",
            "ApproximateFirstReceiveTimestamp": now,
        }
        if self.fifo:
            system.update(
                SequenceNumber=now.ljust(20, "0"),
                MessageGroupId=group_id,
                MessageDeduplicationId=deduplication_id,
            )
        record = {
            "messageId": message_id,
            "receiptHandle": f"local-{message_id}",
            "body": body,
            "attributes": system,
            "messageAttributes": _lambda_message_attributes(attributes),
            "md5OfBody": md5,
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{region}:000000000000:{self.queue_name}",
            "awsRegion": region,
        }
        logger.info("task queue %s: running message %s locally", self.queue_name, message_id)
        outer = getattr(self._delivery, "errors", None)  # a task that posts a task
        self._delivery.errors = errors = []
        try:
            self._lambda_handler({"Records": [record]}, None)
        except TaskBatchError:
            if not errors:
                raise
            raise errors[0] from None
        finally:
            self._delivery.errors = outer
        return {"MessageId": message_id, "MD5OfMessageBody": md5}

    def _send(
        self, body: str, attributes: dict[str, Any], deduplication_id: str, group_id: str
    ) -> dict[str, Any]:
        """``SendMessage`` to the queue; the queue URL is looked up once per container."""
        from botocore.exceptions import BotoCoreError, ClientError

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise self._failed("no-region", "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
        endpoint = _sqs_endpoint(os.environ)
        client = _sqs_client(region, endpoint)
        params: dict[str, Any] = {"MessageBody": body}
        if attributes:
            params["MessageAttributes"] = attributes
        if self.fifo:
            params["MessageGroupId"] = group_id
            params["MessageDeduplicationId"] = deduplication_id
        key = (region, endpoint)
        where = endpoint or f"SQS in {region}"
        try:
            url = self._queue_urls.get(key)
            if url is None:
                url = client.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
                self._queue_urls[key] = url
            response = client.send_message(QueueUrl=url, **params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _SQS_NO_QUEUE:
                self._queue_urls.pop(key, None)
                raise self._failed(
                    "no-such-queue", f"no such queue at {where} (create it first)"
                ) from error
            if code in _SQS_THROTTLED:
                raise self._failed(
                    "throttled", f"throttled by {where} after retries ({code})"
                ) from error
            raise self._failed("refused", f"{where} refused the message: {error}") from error
        except BotoCoreError as error:
            from botocore.exceptions import NoCredentialsError

            if isinstance(error, NoCredentialsError):
                raise self._failed("no-credentials", f"no AWS credentials ({error})") from error
            raise self._failed("unreachable", f"cannot reach {where}: {error}") from error
        logger.info(
            "task queue %s: sent message %s (group %s)",
            self.queue_name,
            response.get("MessageId"),
            group_id if self.fifo else "-",
        )
        return response

    def _failed(self, cause: str, detail: str) -> TaskQueueError:
        failure = TaskQueueError(self.queue_name, cause, detail)
        logger.error("task not posted: %s", failure)
        return failure


def _bind_in_app_module(app: Any, name: str, handler: Callable[..., Any]) -> None:
    """Bind ``handler`` as ``app.<name>`` in the ``app`` module that holds ``app``.

    Chalice's handler string for the function is ``app.<name>`` (the Lambda handler),
    so that module must have the attribute; 0.6.2 set it on the Chalice object instead.
    """
    import sys

    module = sys.modules.get("app")
    if module is None or not any(value is app for value in vars(module).values()):
        logger.debug("tasks: bind %s in app.py yourself (no app module holds this app)", name)
        return
    existing = getattr(module, name, None)
    if existing is not None and existing is not handler:
        raise RuntimeError(f"app.py already has a {name!r}; pass register_handler(name=...)")
    setattr(module, name, handler)


def TaskingControllerFactory(queue_name: str, message_group_id: str) -> TaskingController:
    """A :class:`TaskingController` for the SQS queue ``queue_name`` (0.6.2's API).

    Nothing touches AWS here: the queue URL is looked up by the first ``post()``
    in queue mode. ``message_group_id`` is the FIFO group every post joins unless
    ``post(group_id=...)`` says otherwise.
    """
    return TaskingController(queue_name, message_group_id)
