"""chalice-http-toolkit: a Flask-like website toolkit for AWS Chalice.

Copy this one file into your project's ``chalicelib/`` and get Jinja2 templates,
static files, binary assets, image negotiation and a CloudFront cache layer
(content-based validators, 304 Not Modified, Cache-Control) on AWS Lambda.

The module is ordered the way a request flows: header helpers, content types,
the static index, templates, images, responses, ``ContentManager``,
``CloudFront``, keep-warm and the libmagic loader. Jinja2, Pillow and
python-magic are imported lazily, so a cold start pays only for what it uses.
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
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from chalice.app import CaseInsensitiveMapping, ChaliceUnhandledError, Response

__version__ = "1.0.0"

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "DEFAULT_IMAGE_MAX_PIXELS",
    "DEFAULT_IMAGE_QUALITY",
    "DEFAULT_IMAGE_WIDTHS",
    "FORM_CONTENT_TYPES",
    "IMAGE_ACCEPT_ANY",
    "IMAGE_ACCEPT_AVIF",
    "IMAGE_ACCEPT_WEBP",
    "IMAGE_FORMATS",
    "KEEP_WARM_FUNCTION_ENV",
    "LAMBDA_RESPONSE_LIMIT",
    "PRIVATE_CACHE_CONTROL",
    "SESSION_COOKIE_LIMIT",
    "WRITABLE_IMAGE_FORMATS",
    "CloudFront",
    "ContentManager",
    "FormData",
    "FormError",
    "FormLimits",
    "ImageCache",
    "ImageVariant",
    "MultiValues",
    "ResponseTooLargeError",
    "ResponseWithBinary",
    "Session",
    "SessionTooLargeError",
    "StaticFile",
    "StaticImages",
    "StaticIndex",
    "TemplateNotFoundError",
    "UploadedFile",
    "accepts_encoding",
    "content_type_for",
    "cross_origin_refusal",
    "csrf_exempt",
    "delete_cookie",
    "etag_matches",
    "evaluate_preconditions",
    "ex_multipart",
    "http_date",
    "if_range_matches",
    "install_gateway_support",
    "is_keep_warm_event",
    "keep_warm_event",
    "load_libmagic",
    "negotiate_image_format",
    "normalise_image_accept",
    "parse_accept_header",
    "parse_cookie_header",
    "parse_etags",
    "parse_form",
    "parse_http_date",
    "parse_range",
    "quote_etag",
    "register_keep_warm",
    "set_cookie",
    "sniff_content_type",
    "stable_digest",
]

logger = logging.getLogger("chalice_http_toolkit")

#: Lambda's synchronous response payload limit (bytes of the whole JSON response).
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024

#: ``Cache-Control`` for a static URL that carries the file's content hash.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

#: Bodies smaller than this are not worth compressing.
COMPRESS_MIN_SIZE = 1024


def _digest(*parts: bytes) -> str:
    """Hex digest of ``parts``: blake2b, 128 bits, identical in every process."""
    import hashlib  # deferred: hashlib loads OpenSSL, which a cold start may not need

    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


# ---------------------------------------------------------------------------
# HTTP header helpers (pure: strings in, values out; no Chalice, no I/O)
# ---------------------------------------------------------------------------


def quote_etag(tag: str, weak: bool = False) -> str:
    """Quote an opaque tag as an entity-tag (RFC 9110 §8.8.3).

    Raises ``ValueError`` for a tag that cannot be quoted (developer input is
    held to the grammar).

    >>> quote_etag('abc'), quote_etag('abc', weak=True)
    ('"abc"', 'W/"abc"')
    """
    if '"' in tag or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in tag):
        raise ValueError(f"invalid entity-tag characters in {tag!r}")
    return f'W/"{tag}"' if weak else f'"{tag}"'


class ETagList(NamedTuple):
    """Opaque tags named by an ``If-None-Match``/``If-Match`` field."""

    tags: frozenset[str]
    strong: frozenset[str]
    star: bool


_ETAG_ITEM = re.compile(r'(W/)?"([^"]*)"|(\*)|([^,\s"]+)')


def parse_etags(value: str | None) -> ETagList:
    """Parse an entity-tag list; lenient with garbage (RFC 9110 §13.1.2).

    Weak and strong tags are both collected in ``tags`` (the weak comparison
    set); ``strong`` holds only the strong ones. Commas inside quotes belong
    to the tag. Unquoted tokens are accepted as tags because some clients send
    them.

    >>> parse_etags('W/"a", "b"').tags == {'a', 'b'}
    True
    >>> parse_etags('*').star
    True
    """
    if not value:
        return ETagList(frozenset(), frozenset(), False)
    tags: set[str] = set()
    strong: set[str] = set()
    star = False
    for match in _ETAG_ITEM.finditer(value):
        weak, quoted, is_star, bare = match.groups()
        if is_star:
            star = True
        elif quoted is not None:
            tags.add(quoted)
            if not weak:
                strong.add(quoted)
        else:
            tags.add(bare)
    return ETagList(frozenset(tags), frozenset(strong), star)


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
_IMF_FIXDATE = re.compile(
    r"[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT", re.ASCII
)
_RFC850_DATE = re.compile(
    r"[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT", re.ASCII
)
_ASCTIME_DATE = re.compile(
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
        parsed = _etag_list(if_none_match)
        for etag in etags:
            if parsed.star or _opaque(etag) in parsed.tags:
                return (304 if safe else 412), etag
        return None, None
    if safe and last_modified is not None:
        modified_since = parse_http_date(headers.get("if-modified-since"))
        if modified_since is not None and last_modified <= modified_since:
            return 304, current
    return None, None


class ByteRange(NamedTuple):
    """An inclusive byte range ``first``..``last`` of a representation."""

    first: int
    last: int


#: Returned by :func:`parse_range` for a range no byte of the representation satisfies.
RANGE_NOT_SATISFIABLE = ByteRange(-1, -1)

_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)


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
    return _with_charset(media_type)


# ---------------------------------------------------------------------------
# Static index: scanned once per container, hashed lazily, looked up by dict
# ---------------------------------------------------------------------------

_FINGERPRINTED_NAME = re.compile(r"(?P<stem>.+)\.(?P<hash>[0-9a-f]{12})(?P<ext>\.[^./]+)?")


class StaticFile:
    """One file under ``static_dir``: its type, content hash and cached bodies."""

    def __init__(self, path: str, relpath: str) -> None:
        self.path = path
        self.relpath = relpath
        self.content_type = content_type_for(relpath)
        self._stat_key: tuple[int, int] | None = None
        self._body: bytes | None = None
        self._gzip_body: bytes | None = None
        self._digest: str | None = None

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            body = handle.read()
        info = os.stat(self.path)
        self._stat_key = (info.st_mtime_ns, info.st_size)
        self._body = body
        self._gzip_body = None
        self._digest = _digest(body)
        if self.content_type == "application/octet-stream":
            self.content_type = content_type_for(self.relpath, body)

    def refresh(self) -> None:
        """Reload when the file changed on disk (local development only)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if self._stat_key != (info.st_mtime_ns, info.st_size):
            self._load()

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._load()
        return self._body  # type: ignore[return-value]

    @property
    def digest(self) -> str:
        """Content hash: the validator, identical on every container."""
        if self._digest is None:
            self._load()
        return self._digest  # type: ignore[return-value]

    @property
    def fingerprint(self) -> str:
        """Short content hash used in cache-busting URLs."""
        return self.digest[:12]

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    def gzip_body(self) -> bytes | None:
        """The gzip body, computed once; ``None`` when it would not be smaller."""
        if self._gzip_body is None:
            self._gzip_body = _gzip(self.body)
        return self._gzip_body if len(self._gzip_body) < len(self.body) else None


class StaticIndex:
    """Every servable file under a directory, keyed by its relative path.

    Requests are answered from this dictionary only, so a path that is not a
    regular file inside the directory (traversal, encoded dots, absolute
    paths, symlinks leaving the tree, dotfiles) simply is not found.
    """

    def __init__(self, root: str, auto_reload: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.auto_reload = auto_reload
        self.files: dict[str, StaticFile] = {}
        self.scan()

    def scan(self) -> None:
        """(Re)build the index by walking the directory once."""
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
                files[relpath] = StaticFile(real, relpath)
        self.files = files

    def get(self, relpath: str) -> StaticFile | None:
        """The file at ``relpath`` (``a/b.css``), or ``None``."""
        static_file = self.files.get(relpath)
        if self.auto_reload:
            if static_file is None and os.path.isfile(os.path.join(self.root, relpath)):
                self.scan()
                static_file = self.files.get(relpath)
            if static_file is not None:
                static_file.refresh()
        return static_file

    def resolve(self, relpath: str) -> tuple[StaticFile | None, bool]:
        """Find a file by plain or fingerprinted name, and whether the fingerprint is current."""
        static_file = self.get(relpath)
        if static_file is not None:
            return static_file, False
        directory, _, name = relpath.rpartition("/")
        match = _FINGERPRINTED_NAME.fullmatch(name)
        if match is None:
            return None, False
        plain = match["stem"] + (match["ext"] or "")
        static_file = self.get(f"{directory}/{plain}" if directory else plain)
        if static_file is None:
            return None, False
        return static_file, static_file.fingerprint == match["hash"]

    def digest(self) -> str:
        """One hash over every file's path and content (re-read first with ``auto_reload``)."""
        if self.auto_reload:
            self.scan()
        return _digest(
            *(
                f"{relpath}\0{self.files[relpath].digest}\0".encode()
                for relpath in sorted(self.files)
            )
        )


def _fingerprinted(relpath: str, fingerprint: str) -> str:
    directory, slash, name = relpath.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return f"{relpath}.{fingerprint}"
    return f"{directory}{slash}{stem}.{fingerprint}.{extension}"


def _clean_segments(segments: Iterable[str]) -> str | None:
    """Join URL path segments into an index key, or ``None`` for anything suspicious."""
    from urllib.parse import unquote

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
    elif kind is set or kind is frozenset:
        # Set order depends on PYTHONHASHSEED; the sorted member encodings do not.
        members = sorted(_encoded_text(item, depth + 1) for item in value)
        out.append(f"S{len(members)}{{")
        out.extend(members)
        out.append("}")
    elif kind in (datetime.datetime, datetime.date, datetime.time):
        out.append(f"D{kind.__name__}:{value.isoformat()};")
    else:
        _encode_other(value, out, depth)


def _encode_other(value: Any, out: list[str], depth: int) -> None:
    """Encode the less common types; anything unknown has no canonical form."""
    import dataclasses
    import decimal
    import enum
    import uuid

    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(value, enum.Enum):
        out.append(f"E{name}:")
        _encode(value.value, out, depth + 1)
    elif isinstance(value, (decimal.Decimal, uuid.UUID)):
        out.append(f"X{name}:{value};")
    elif isinstance(value, os.PathLike):
        out.append(f"P{name}:")
        _encode(os.fspath(value), out, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append(f"C{name}{{")
        for field in dataclasses.fields(value):
            _encode(field.name, out, depth + 1)
            _encode(getattr(value, field.name), out, depth + 1)
        out.append("}")
    elif isinstance(value, tuple) and hasattr(kind, "_fields"):  # a namedtuple
        out.append(f"U{name}:")
        _encode(tuple(value), out, depth + 1)
    elif isinstance(value, (collections.OrderedDict, collections.defaultdict, collections.Counter)):
        out.append(f"U{name}:")
        _encode(dict(value), out, depth + 1)
    elif isinstance(value, str) and kind.__module__ == "markupsafe":
        # Markup renders unescaped where a plain str would be escaped: tag the class.
        out.append(f"U{name}:")
        _encode(str(value), out, depth + 1)
    else:
        raise _NoCanonicalForm(f"no canonical form for {kind.__qualname__}")


def _encoded_text(value: Any, depth: int) -> str:
    out: list[str] = []
    _encode(value, out, depth)
    return "".join(out)


def _encoded(value: Any, depth: int) -> bytes:
    return _encoded_text(value, depth).encode("utf-8", "surrogatepass")


def stable_digest(value: Any) -> str | None:
    """A digest of ``value`` identical in every process, or ``None`` if it has no canonical form.

    Covers None, bool, int, float, str, bytes, lists, tuples, dicts, sets,
    dates and times, Decimal, UUID, Enum, paths, dataclasses and subclasses of
    str/int/float/bytes (tagged with their class). No ``pickle``, no ``hash()``:
    the result does not depend on PYTHONHASHSEED or set order.
    """
    return _stable_digest(value)


def _marshal_key(value: Any) -> bytes | None:
    """Bytes that identify ``value`` within this process, for a memo; ``None`` if unsuitable.

    ``marshal`` (C, fast) writes exact built-in types only and keeps tuple/list
    and bool/int apart, so equal bytes mean an equal value. They are a memo key,
    never a digest: they follow set order, object sharing and dict insertion
    order, which may differ for equal values (a miss, never a wrong answer).
    """
    try:
        key = marshal.dumps(value)
    except ValueError:  # a type marshal does not write (datetime, Markup, …)
        return None
    return key if len(key) <= _MEMO_MAX_KEY else None


_MEMO_MAX_KEY = 32 * 1024
_MEMO_SIZE = 128  # entries per ContentManager: 4 MB at most
_STATIC_URL_MEMO_SIZE = 4096
_SNIFF_MEMO_SIZE = 1024


def _stable_digest(value: Any) -> str | None:
    try:
        return _digest(_encoded(value, 0))
    except (_NoCanonicalForm, RecursionError):
        return None


class _TemplateDeps(NamedTuple):
    """What a template's output depends on, found by parsing (not rendering)."""

    digest: str | None  # hash of the sources of the whole closure; None when dynamic
    static_refs: frozenset[str] | None  # constant static() paths; None when any is dynamic
    files: tuple[tuple[str, tuple[int, int] | None], ...]  # for reload checks


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

_ENCODER_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "AVIF": {"speed": 7},
    "WEBP": {"method": 4},
    "JPEG": {"optimize": True, "progressive": True},
    "PNG": {"compress_level": 6},
}
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


def _modern_image_format(weights: Mapping[str, float]) -> str | None:
    """AVIF or WebP when named explicitly with q > 0: the higher q wins, a tie goes to AVIF."""
    writable = _writable_image_formats()
    avif = weights.get("image/avif", 0.0) if "AVIF" in writable else 0.0
    webp = weights.get("image/webp", 0.0) if "WEBP" in writable else 0.0
    if avif <= 0.0 and webp <= 0.0:
        return None
    return "AVIF" if avif >= webp else "WEBP"


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
    weights = _image_weights(accept)
    modern = _modern_image_format(weights)
    if modern is not None:
        return None if modern == source_format else modern
    source_type = _FORMAT_MEDIA_TYPES.get(source_format, f"image/{source_format.lower()}")
    if not weights or _media_type_acceptable(weights, source_type):
        return None
    writable = _writable_image_formats()
    jpeg = weights.get("image/jpeg", 0.0) if "JPEG" in writable else 0.0
    png = weights.get("image/png", 0.0) if "PNG" in writable else 0.0
    if jpeg <= 0.0 and png <= 0.0:
        return None
    fallback = "JPEG" if jpeg >= png else "PNG"
    return None if fallback == source_format else fallback


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


_negotiate_cached = functools.lru_cache(maxsize=256)(negotiate_image_format)


class _ImageError(Exception):
    """An image cannot be converted (corrupt, a bomb, unreadable): serve the original."""


class _ImageLeftAlone(_ImageError):
    """An image is deliberately not converted (animated): serve the original."""


def _open_image(data: bytes, max_pixels: int, decode: bool = True) -> Any:
    """Open (and ``decode``) ``data``; a bomb or a damaged file raises :class:`_ImageError`.

    Without ``decode`` only the header is read: size and EXIF, no pixels.
    """
    import io
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        # Pillow warns (DecompressionBombWarning) before it raises: treat both as a refusal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise _ImageError(f"decompression bomb refused ({error})") from error
        except (OSError, SyntaxError, ValueError) as error:  # UnidentifiedImageError is an OSError
            raise _ImageError(f"not a readable image ({error})") from error
        width, height = image.size
        if width * height > max_pixels:
            raise _ImageError(f"{width}x{height} pixels exceed the limit of {max_pixels}")
        if not decode:
            return image
        # MPO (a JPEG with extra pictures from a camera) is a still image; its first frame is it.
        if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
            raise _ImageLeftAlone(f"animated {image.format} ({image.n_frames} frames)")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise _ImageError(f"corrupt image data ({error})") from error
    return image


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


def _encode_image(
    data: bytes,
    target: str,
    width: int | None,
    quality: Mapping[str, int],
    max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS,
) -> bytes | None:
    """Re-encode an image as ``target``, at most ``width`` pixels wide, ready for the web.

    EXIF orientation is applied and metadata dropped; alpha is kept, or flattened
    onto white for JPEG; an ICC profile is kept when the colour model stays,
    else converted to sRGB. Returns ``None`` when the result would be the source
    itself (same format, ``width`` not smaller: never upscale). Raises
    :class:`_ImageError` for input Pillow cannot or should not decode.
    """
    import io

    from PIL import Image, ImageOps

    image = _open_image(data, max_pixels)
    source_format = "JPEG" if image.format == "MPO" else image.format
    if (
        width is not None
        and width >= image.width
        and target == source_format
        and image.getexif().get(0x0112, 1) == 1
    ):
        return None
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if image.mode == "CMYK" or (image.mode == "L" and target in ("WEBP", "AVIF")):
        mode = "RGBA" if has_alpha else "RGB"
        image = _to_srgb(image, icc, mode) if icc else image.convert(mode)
        icc = None
    elif has_alpha and image.mode != "RGBA":
        image = image.convert("RGBA")
    elif image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    if target == "JPEG" and image.mode == "RGBA":
        flattened = Image.new("RGB", image.size, (255, 255, 255))
        flattened.paste(image, mask=image.getchannel("A"))
        image = flattened
    if width is not None and width < image.width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
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
        raise _ImageError(f"cannot encode as {target} ({error})") from error
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


class ImageVariant(NamedTuple):
    """One converted and/or resized representation of a static image."""

    key: tuple[str, str, int | None]  # (source digest, Pillow format, width)
    etag: str
    content_type: str


_MISSING: Any = object()


class ImageCache:
    """Bodies made by one container, least recently used evicted first.

    Holds converted images (``StaticImages.cache``) and rendered pages
    (``ContentManager.pages``). Bounded by the bytes of the bodies it holds;
    ``None`` entries (an image's original is served: animated, corrupt, nothing
    to do) are counted at a nominal size.
    ``hits``, ``misses`` and ``size`` tell how it is doing. Safe to share between
    threads (``chalice local`` serves each request on its own thread).
    """

    _NOMINAL_SIZE = 64

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

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any) -> Any:
        """The cached body (or ``None``), else the module's ``_MISSING`` sentinel."""
        with self._lock:
            body = self._entries.get(key, _MISSING)
            if body is _MISSING:
                self.misses += 1
                return body
            self._entries.move_to_end(key)  # now the most recently used
            self.hits += 1
            return body

    def put(self, key: Any, body: Any, cost: int | None = None) -> None:
        """Store ``body`` (bytes or ``None``; anything else with its ``cost`` in bytes)."""
        if cost is None:
            cost = self._NOMINAL_SIZE if body is None else len(body)
        if cost > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, _MISSING)
            if previous is not _MISSING:
                self.size -= self._costs.pop(key)
            while self._entries and self.size + cost > self.max_bytes:
                oldest, _ = self._entries.popitem(last=False)
                self.size -= self._costs.pop(oldest)
            self._entries[key] = body
            self._costs[key] = cost
            self.size += cost


_WIDTH_NAME = re.compile(r"(?P<stem>.+)\.w(?P<width>[1-9][0-9]{0,4})(?P<ext>\.[^./]+)")


def _with_width(relpath: str, width: int) -> str:
    """``img/hero.abc.jpg`` → ``img/hero.abc.w640.jpg``."""
    stem, dot, extension = relpath.rpartition(".")
    if not dot or "/" in extension:
        return f"{relpath}.w{width}"
    return f"{stem}.w{width}.{extension}"


class StaticImages:
    """Negotiated and resized variants of the raster images in a :class:`StaticIndex`.

    Decisions that depend only on a file's content (its real type, its size)
    are made once per content digest; encoded bodies live in an
    :class:`ImageCache`, so a repeat request is a few dictionary lookups.
    """

    def __init__(
        self,
        *,
        widths: Iterable[int] = DEFAULT_IMAGE_WIDTHS,
        quality: Mapping[str, int] | None = None,
        cache_bytes: int = 64 * 1024 * 1024,
        max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS,
    ) -> None:
        self.widths = _check_widths(widths)
        self.quality = _check_quality(quality)
        self.max_pixels = max_pixels
        self.cache = ImageCache(cache_bytes)
        self.encodes = 0
        # Mixed into variant ETags: other settings or encoders give other bytes.
        settings = json.dumps([__version__, sorted(self.quality.items()), _ENCODER_OPTIONS])
        self._settings_tag = _digest(settings.encode())[:8]
        self._media_types: dict[str, str] = {}
        self._dimensions: dict[str, tuple[int, int] | None] = {}

    def media_type(self, static_file: StaticFile) -> str:
        """The file's real type by its leading bytes; a lying extension is logged once."""
        media_type = self._media_types.get(static_file.digest)
        if media_type is None:
            declared = static_file.content_type
            media_type = _signature_media_type(static_file.body)  # same with or without libmagic
            if media_type == "application/octet-stream":
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

    def variant(self, static_file: StaticFile, target: str, width: int | None) -> ImageVariant:
        """Key, ETag and type of ``static_file`` as ``target`` (a Pillow format) at ``width``."""
        token = target.lower() if width is None else f"w{width}-{target.lower()}"
        return ImageVariant(
            (static_file.digest, target, width),
            f'"{static_file.digest}-{token}-{self._settings_tag}"',
            _FORMAT_MEDIA_TYPES[target],
        )

    def render(self, static_file: StaticFile, variant: ImageVariant) -> bytes | None:
        """Encode ``variant`` and cache it; ``None`` (logged) means serve the original."""
        _, target, width = variant.key
        self.encodes += 1
        try:
            body = _encode_image(static_file.body, target, width, self.quality, self.max_pixels)
        except _ImageLeftAlone as reason:
            logger.info("images: %s left as it is: %s", static_file.relpath, reason)
            body = None
        except _ImageError as error:
            logger.warning("images: %s: %s; serving the original", static_file.relpath, error)
            body = None
        except ImportError:
            logger.warning("images: Pillow is not installed; serving %s", static_file.relpath)
            body = None
        self.cache.put(variant.key, body)
        return body

    def dimensions(self, static_file: StaticFile) -> tuple[int, int] | None:
        """Displayed width and height (EXIF orientation applied); ``None`` if unreadable."""
        key = static_file.digest
        if key not in self._dimensions:
            size = None
            try:
                image = _open_image(static_file.body, self.max_pixels, decode=False)
            except _ImageError as error:
                logger.warning("images: %s: %s", static_file.relpath, error)
            except ImportError:
                logger.warning("images: Pillow is not installed; no srcset widths")
            else:
                size = image.size
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    size = (size[1], size[0])
            self._dimensions[key] = size
        return self._dimensions[key]

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
# Responses: one builder for bodies, validators, compression and the size limit
# ---------------------------------------------------------------------------


class ResponseTooLargeError(ValueError):
    """A response would exceed Lambda's 6 MB synchronous payload limit."""


def _gzip(data: bytes) -> bytes:
    import zlib

    # A window no larger than the body (and a hash table to match) finds the same
    # matches as the default 32 KB window but is several times cheaper to set up.
    window = min(15, max(10, (len(data) - 1).bit_length()))
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + window, min(8, window - 6))  # gzip
    return compressor.compress(data) + compressor.flush()


def _gzip_if_smaller(body: str | bytes) -> bytes | None:
    """The gzip form of a body of at least :data:`COMPRESS_MIN_SIZE` bytes, if it is smaller."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if len(data) < COMPRESS_MIN_SIZE:
        return None
    compressed = _gzip(data)
    return compressed if len(compressed) < len(data) else None


class _Page:
    """A rendered page kept under its ETag, with its gzip form made on first use."""

    __slots__ = ("_gzip_body", "body")

    def __init__(self, body: str) -> None:
        self.body = body
        self._gzip_body: Any = _MISSING

    def gzip_body(self) -> bytes | None:
        if self._gzip_body is _MISSING:
            self._gzip_body = _gzip_if_smaller(self.body)
        return self._gzip_body


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


class _GatewayResponse(Response):
    """A Chalice ``Response`` marshalled for API Gateway by its body type.

    Bytes travel base64-encoded with ``isBase64Encoded`` (API Gateway decodes
    them when the request's first Accept type matches binaryMediaTypes, which
    the toolkit sets to ``*/*``); text travels as text and reaches the client
    intact whatever its Accept header. This holds whatever ``binary_types``
    says, so a gzip body with a text Content-Type still arrives as bytes
    (aws/chalice#1776).
    """

    def to_dict(self, binary_types: list[str] | None = None) -> dict[str, Any]:
        response = super().to_dict(None)
        body = response["body"]
        if isinstance(body, (bytes, bytearray)):
            response["body"] = base64.b64encode(body).decode("ascii")
            response["isBase64Encoded"] = True
        return response


def _too_large_response(size: int, debug: bool) -> _GatewayResponse:
    message = (
        f"Response of about {size} bytes exceeds AWS Lambda's {LAMBDA_RESPONSE_LIMIT}-byte "
        "response payload limit; serve large files from S3 (behind CloudFront) instead."
    )
    logger.error(message)
    body = message if debug else "Response too large for AWS Lambda; see the function's log."
    return _GatewayResponse(
        body=body, headers={"Content-Type": "text/plain; charset=utf-8"}, status_code=500
    )


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
    app.register_middleware(_gateway_middleware, "http")
    setattr(app, _CHALICE_INSTALLED, True)


def _gateway_middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
    if request is not None and request.headers.get("accept") is None:
        headers = dict(request.headers.items())
        headers["accept"] = "*/*"
        request.headers = CaseInsensitiveMapping(headers)
    response = get_response(request)
    if type(response) is _GatewayResponse:
        return response
    body = response.body
    if isinstance(body, (str, bytes)):
        size = _payload_size(body, response.headers)
        if size > LAMBDA_RESPONSE_LIMIT:
            return _too_large_response(size, debug=False)
    return _GatewayResponse(body=body, headers=response.headers, status_code=response.status_code)


class _Representation(NamedTuple):
    """A body and the metadata that identifies it, before per-request handling."""

    body: str | bytes
    content_type: str
    etag: str | None = None
    last_modified: int | None = None
    gzip_body: Callable[[], bytes | None] | None = None  # cached gzip body, made on first use
    allow_ranges: bool = False


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
    )
)


def _lower_case_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Request headers keyed by lower-case name, as a plain dict where possible.

    Chalice's ``CaseInsensitiveMapping`` keeps such a dict; reading it directly
    spares the lower-casing and the exception its ``get`` pays per absent header.
    """
    inner = getattr(headers, "_dict", None)
    return inner if type(inner) is dict else headers


def _merge_vary(headers: dict[str, str], field: str) -> None:
    existing = headers.get("Vary")
    if not existing:
        headers["Vary"] = field
    elif field.lower() not in (part.strip().lower() for part in existing.split(",")):
        headers["Vary"] = f"{existing}, {field}"


# ---------------------------------------------------------------------------
# ContentManager
# ---------------------------------------------------------------------------

_AppLike = Any  # chalice.Chalice or chalice.Blueprint


class ContentManager:
    """Templates, static files, assets and response helpers for one Chalice app.

    ``app`` may be a ``Chalice`` app or a ``Blueprint``; responses consult its
    ``current_request`` for conditional requests, ranges and compression.
    Options are keyword-only: ``cors`` (``True`` for ``*`` or an origin; off by
    default), ``compress`` (gzip text bodies), ``auto_reload`` (re-read
    changed templates and static files; defaults to on everywhere except on
    AWS Lambda). Images: ``image_widths`` (the only widths ``static(…, width=)``
    serves), ``image_quality`` (format → encoder quality), ``image_cache_bytes``
    (bound of the per-container cache of converted images) and
    ``image_max_pixels`` (larger images are served untouched). Pages:
    ``page_cache_bytes`` bounds the per-container cache of pages rendered by
    :meth:`CloudFront.template` under their ETag (0 turns it off). Forms,
    sessions and CSRF: ``secret_key`` (a string, or a list newest first),
    ``session_cookie``, ``session_max_age``, ``session_cookie_secure``, ``csrf``,
    ``trusted_origins`` and ``form_limits`` (see :meth:`form`, :attr:`session`).
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
        image_cache_bytes: int = 64 * 1024 * 1024,
        image_max_pixels: int = DEFAULT_IMAGE_MAX_PIXELS,
        page_cache_bytes: int = 16 * 1024 * 1024,
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
        self.static_prefix = "/static"
        self.cors_origin = "*" if cors is True else (cors or None)
        self.compress = compress
        if auto_reload is None:
            auto_reload = "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        self.auto_reload = auto_reload
        self.static_files = StaticIndex(static_dir, auto_reload=auto_reload)
        self.images = StaticImages(
            widths=image_widths,
            quality=image_quality,
            cache_bytes=image_cache_bytes,
            max_pixels=image_max_pixels,
        )
        self._env: Any = None
        self._template_deps: dict[str, _TemplateDeps] = {}
        # (filename, salt) -> blake2b state after everything but the arguments
        self._etag_bases: dict[tuple[str, str], Any] = {}
        # (filename, salt, marshalled kwargs) -> ETag, when not auto-reloading
        self._template_etags: collections.OrderedDict[tuple[str, str, bytes], str | None] = (
            collections.OrderedDict()
        )
        self._static_urls: dict[tuple[str, int | None], str] = {}
        self._sniffed: collections.OrderedDict[str, str] = collections.OrderedDict()  # ETag → type
        #: Pages rendered by :meth:`CloudFront.template`, keyed by their ETag.
        self.pages = ImageCache(page_cache_bytes)
        # Forms, sessions, CSRF (sections after CloudFront).
        keys = _secret_keys(secret_key)
        if not re.fullmatch(_COOKIE_NAME, session_cookie):
            raise ValueError(f"session_cookie {session_cookie!r} is not a cookie name")
        if not isinstance(session_max_age, int) or session_max_age <= 0:
            raise ValueError("session_max_age must be a positive number of seconds")
        self._session_signer = _SessionSigner(keys, session_max_age) if keys else None
        self.session_cookie = session_cookie
        self.session_max_age = session_max_age
        self.session_cookie_secure = session_cookie_secure
        self.csrf = csrf
        self.trusted_origins = tuple(trusted_origins)
        self.form_limits = form_limits or FormLimits()
        self._personal_templates: dict[str, tuple[_TemplateDeps, bool]] = {}
        if app is not None:
            install_gateway_support(app)
            _install_interactive(self)

    # -- Jinja2 -------------------------------------------------------------

    @property
    def env(self) -> Any:
        """The ``jinja2.Environment`` (created on first use; autoescape for html/htm/xml/svg)."""
        if self._env is None:
            import jinja2

            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(self.templates_dir),
                autoescape=jinja2.select_autoescape(("html", "htm", "xml", "svg")),
                auto_reload=self.auto_reload,
                # A plain dict instead of a locked LRU: a site's templates are few,
                # and every include looks its template up in this cache.
                cache_size=-1,
            )
            self._env.globals["static"] = self.static_url
            self._env.globals["srcset"] = self.srcset
            self._env.globals.update(_template_globals(self))
        return self._env

    def set_static_handler_prefix(self, path: str) -> None:
        """Set the static route's URL prefix; ``static()`` in templates builds URLs under it."""
        self.static_prefix = "/" + path.strip("/") if path.strip("/") else ""
        self._template_deps.clear()
        self._etag_bases.clear()
        self._template_etags.clear()
        self._static_urls.clear()

    def static_url(self, filename: str, width: int | None = None) -> str:
        """Cache-busting URL for a static file: ``/static/css/site.<hash>.css``.

        ``width`` asks for a raster image resized to one of ``image_widths``
        (``/static/img/hero.<hash>.w640.jpg``); another width, or a width on a
        file that is not a raster image, raises ``ValueError``. A missing file
        gets its plain URL (and a warning) so the page still renders.
        """
        url = self._static_urls.get((filename, width))
        if url is None:
            url = self._static_url(filename, width)
            # Deployed, a file's hash never changes; the bound caps names nobody has.
            if not self.auto_reload and len(self._static_urls) < _STATIC_URL_MEMO_SIZE:
                self._static_urls[(filename, width)] = url
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

    def _load_template(self, filename: str) -> Any:
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
        template = self._load_template(filename)
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
        if cached is not None and (
            not self.auto_reload or all(_stat_key(path) == key for path, key in cached.files)
        ):
            return cached
        deps = self._analyse_template(filename)
        self._template_deps[filename] = deps
        return deps

    def _analyse_template(self, filename: str) -> _TemplateDeps:
        import jinja2
        from jinja2 import meta

        env = self.env
        pending = [filename]
        seen: set[str] = set()
        sources: list[bytes] = []
        files: list[tuple[str, tuple[int, int] | None]] = []
        static_refs: set[str] | None = set()
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
                        f"template {name!r} not found in {self.templates_dir}"
                    ) from None
                dynamic = True  # e.g. ``{% include 'x' ignore missing %}``: let rendering decide
                continue
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
        sources.sort()
        return _TemplateDeps(
            None if dynamic else _digest(*sources),
            None if static_refs is None else frozenset(static_refs),
            tuple(files),
        )

    def template_etag(self, filename: str, kwargs: Mapping[str, Any], salt: str = "") -> str | None:
        """Quoted ETag of a template's output computed without rendering it.

        Hashes the template closure, the static files it names (or every
        static file when a ``static()`` argument is not constant), the static
        prefix and a canonical digest of ``kwargs``. ``None`` when the output
        cannot be predicted: a dynamic include or an argument with no
        canonical form; the caller then renders and hashes the body.
        """
        key = None if self.auto_reload else _marshal_key(kwargs)
        if key is not None:
            etag = self._template_etags.get((filename, salt, key), _MISSING)
            if etag is not _MISSING:
                return etag
        base = self._etag_bases.get((filename, salt))
        if base is None:
            base = self._template_etag_base(filename, salt)
            if not self.auto_reload:  # deployed: templates and static files are fixed
                self._etag_bases[(filename, salt)] = base
        etag = None
        if base is not False:
            arguments = stable_digest([(name, kwargs[name]) for name in sorted(kwargs)])
            if arguments is not None:
                hasher = base.copy()
                hasher.update(arguments.encode())
                etag = '"' + hasher.hexdigest() + '"'
        if key is not None:
            if len(self._template_etags) >= _MEMO_SIZE:
                self._template_etags.popitem(last=False)  # the oldest
            self._template_etags[(filename, salt, key)] = etag
        return etag

    def _template_etag_base(self, filename: str, salt: str) -> Any:
        """A blake2b state over all a template's ETag depends on but its arguments.

        ``False`` when the output cannot be predicted (a dynamic include).
        """
        import hashlib

        deps = self.template_dependencies(filename)
        if deps.digest is None:
            return False
        if deps.static_refs is None:
            statics = self.static_files.digest()
        else:
            parts = []
            for relpath in sorted(deps.static_refs):
                static_file = self.static_files.get(relpath.lstrip("/"))
                parts.append(f"{relpath}={static_file.digest if static_file else '-'}")
            statics = "\0".join(parts)
        hasher = hashlib.blake2b(digest_size=16)
        for part in (
            f"t1\0{__version__}\0{salt}\0{self.static_prefix}\0{self.images.widths}\0",
            deps.digest,
            statics,
        ):
            hasher.update(part.encode())
        return hasher

    def prime(self) -> dict[str, float]:
        """Do this container's start-up work now; milliseconds per step (also logged).

        Loads libmagic, imports Pillow, compiles every template and computes its
        dependency hash, reads and hashes every static file: what the first requests
        after a cold start would otherwise pay for. The keep-warm payload calls it.
        """
        return _prime(self)

    # -- responses ----------------------------------------------------------

    @property
    def _request(self) -> Any:
        return getattr(self.app, "current_request", None) if self.app is not None else None

    def _request_parts(self) -> tuple[str, Mapping[str, str]]:
        request = self._request
        if request is None:
            return "GET", {}
        return request.method, _lower_case_headers(request.headers)

    def _base_headers(
        self,
        content_type: str,
        headers: Mapping[str, str] | None,
        cache_control: str | None,
        vary: tuple[str, ...],
        last_modified: int | None,
    ) -> dict[str, str]:
        out: dict[str, str] = {"Content-Type": content_type}
        if cache_control is not None:
            out["Cache-Control"] = cache_control
        if last_modified is not None:
            out["Last-Modified"] = http_date(last_modified)
        for field in vary:
            _merge_vary(out, field)
        if self.cors_origin:
            out["Access-Control-Allow-Origin"] = self.cors_origin
            if self.cors_origin != "*":
                _merge_vary(out, "Origin")
        if headers:
            for name, value in headers.items():
                if name.lower() == "vary":
                    for field in str(value).split(","):
                        _merge_vary(out, field.strip())
                else:
                    out[name] = value
        if self.compress and _is_compressible(out["Content-Type"]):
            _merge_vary(out, "Accept-Encoding")
        return out

    def _not_modified(
        self,
        etag: str,
        content_type: str,
        status_code: int,
        headers: Mapping[str, str] | None,
        cache_control: str | None,
    ) -> _GatewayResponse | None:
        """A 304/412 for ``etag`` before any body exists (pages, assets), else ``None``."""
        request = self._request
        if request is None or not 200 <= status_code < 300:
            return None
        request_headers = _lower_case_headers(request.headers)
        if not _has_preconditions(request_headers):
            return None
        out = self._base_headers(content_type, headers, cache_control, (), None)
        return _precondition_response(out, etag, None, request.method, request_headers)

    def _respond(
        self,
        representation: _Representation,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        cache_control: str | None = None,
        vary: tuple[str, ...] = (),
    ) -> _GatewayResponse:
        """Build every toolkit response: validators, 304/412, ranges, gzip, HEAD, size limit."""
        if _request_is_personal(self._request):  # read or wrote the session: never shared
            cache_control = PRIVATE_CACHE_CONTROL
            representation = representation._replace(etag=None, last_modified=None)
        method, request_headers = self._request_parts()
        body = representation.body
        etag = representation.etag
        last_modified = representation.last_modified
        out = self._base_headers(
            representation.content_type, headers, cache_control, vary, last_modified
        )
        if last_modified is None and "Last-Modified" in out:
            last_modified = parse_http_date(out["Last-Modified"])
        if etag is not None:
            if 200 <= status_code < 300:
                answered = _precondition_response(out, etag, last_modified, method, request_headers)
                if answered is not None:
                    return answered
            out["ETag"] = etag

        if representation.allow_ranges and status_code == 200:
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
                    return _GatewayResponse(body="", headers=out, status_code=416)
                if byte_range is not None:
                    out["Content-Range"] = f"bytes {byte_range.first}-{byte_range.last}/{len(data)}"
                    return self._finish(
                        data[byte_range.first : byte_range.last + 1], out, 206, method
                    )

        if (
            200 <= status_code < 300
            and "Accept-Encoding" in out.get("Vary", "")
            and accepts_encoding(request_headers.get("accept-encoding"))
        ):
            if representation.gzip_body is not None:
                compressed = representation.gzip_body()
            else:
                compressed = _gzip_if_smaller(body)
            if compressed is not None:
                out["Content-Encoding"] = "gzip"
                if etag is not None:
                    out["ETag"] = _gzip_etag(etag)
                return self._finish(compressed, out, status_code, method)
        return self._finish(body, out, status_code, method)

    def _finish(
        self, body: str | bytes, headers: dict[str, str], status_code: int, method: str
    ) -> _GatewayResponse:
        size = _payload_size(body, headers)
        if size > LAMBDA_RESPONSE_LIMIT:
            return _too_large_response(size, debug=bool(getattr(self.app, "debug", False)))
        if method == "HEAD":
            body = ""
        return _GatewayResponse(body=body, headers=headers, status_code=status_code)

    def _text(
        self, body: str, content_type: str, status_code: int, headers: Mapping[str, str] | None
    ) -> _GatewayResponse:
        return self._respond(_Representation(body, content_type), status_code, headers)

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
        headers = {"Location": url}
        if self.cors_origin:
            headers["Access-Control-Allow-Origin"] = self.cors_origin
        return _GatewayResponse(body="", headers=headers, status_code=status_code)

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
        static_file = None
        if not index.auto_reload and "%" not in filename and "\\" not in filename:
            # A key of the index is a clean relative path by construction.
            static_file = index.files.get(filename)
        if static_file is not None:
            relpath, immutable = filename, False
        else:
            relpath = _clean_segments(filename.split("/"))
            static_file, immutable = index.resolve(relpath) if relpath else (None, False)
        width = None
        if static_file is None and relpath:
            static_file, immutable, width = self.images.resolve_width(self.static_files, relpath)
        if static_file is None:
            return self.not_found()
        if static_file.content_type in IMAGE_FORMATS:
            return self._static_image(
                static_file,
                width,
                status_code,
                headers,
                IMMUTABLE_CACHE_CONTROL if immutable else cache_control,
            )
        return self._respond(
            _Representation(
                static_file.body,
                static_file.content_type,
                etag=static_file.etag,
                gzip_body=static_file.gzip_body
                if _is_compressible(static_file.content_type)
                else None,
                allow_ranges=True,
            ),
            status_code,
            headers,
            cache_control=IMMUTABLE_CACHE_CONTROL if immutable else cache_control,
        )

    def asset(self, body: bytes, status_code: int = 200, headers: dict | None = None) -> Response:
        """Serve bytes made at run time (e.g. from a database) with a sniffed type and an ETag."""
        return self._asset(
            body, status_code, headers, etag=f'"{_digest(body)}"', cache_control=None
        )

    def _asset(
        self,
        body: bytes,
        status_code: int,
        headers: Mapping[str, str] | None,
        etag: str | None,
        cache_control: str | None,
    ) -> _GatewayResponse:
        extra = {"X-Content-Type-Options": "nosniff"}
        if headers:
            extra.update(headers)
        # The ETag names the bytes (the premise of a 304), so it can name their type too.
        content_type = self._sniffed.get(etag) if etag is not None else None
        if content_type is None:
            content_type = sniff_content_type(body)
            if etag is not None:
                if len(self._sniffed) >= _SNIFF_MEMO_SIZE:
                    self._sniffed.popitem(last=False)
                self._sniffed[etag] = content_type
        return self._respond(
            _Representation(body, content_type, etag=etag, allow_ranges=True),
            status_code,
            extra,
            cache_control=cache_control,
        )

    def _static_image(
        self,
        static_file: StaticFile,
        width: int | None,
        status_code: int,
        headers: Mapping[str, str] | None,
        cache_control: str | None,
    ) -> _GatewayResponse:
        """A raster image as the request's ``Accept`` prefers, resized to ``width`` if given.

        Every representation has its own ETag and all carry ``Vary: Accept``;
        a cached conversion is served like a static file, a new one is
        encoded only after If-None-Match had its chance to answer 304.
        """
        images = self.images
        media_type = images.media_type(static_file)
        source_format = IMAGE_FORMATS.get(media_type)
        if source_format is None:  # e.g. a GIF named .png: served as what it is
            if width is not None:
                return self.not_found("No resized variant of this file")
            return self._respond(
                _Representation(
                    static_file.body, media_type, etag=static_file.etag, allow_ranges=True
                ),
                status_code,
                headers,
                cache_control,
            )
        accept = self._request_parts()[1].get("accept")
        target = _negotiate_cached(accept, source_format)
        body = None
        if target is not None or width is not None:
            variant = images.variant(static_file, target or source_format, width)
            body = images.cache.get(variant.key)
            if body is _MISSING:
                vary_headers = dict(headers or {})
                _merge_vary(vary_headers, "Accept")
                answered = self._not_modified(
                    variant.etag, variant.content_type, status_code, vary_headers, cache_control
                )
                if answered is not None:
                    return answered
                body = images.render(static_file, variant)
        if body is None:  # the original: nothing to convert, or conversion refused (logged)
            representation = _Representation(
                static_file.body, media_type, etag=static_file.etag, allow_ranges=True
            )
        else:
            representation = _Representation(
                body, variant.content_type, etag=variant.etag, allow_ranges=True
            )
        return self._respond(representation, status_code, headers, cache_control, vary=("Accept",))

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

    # -- routes -------------------------------------------------------------

    # -- forms, cookies, sessions, url_for (sections after CloudFront) -------

    def _current_request(self, what: str) -> Any:
        request = self._request
        if request is None:
            raise RuntimeError(f"{what} needs a request: call it inside a view")
        return request

    def form(self) -> FormData:
        """The current request's form: urlencoded or multipart fields, and ``.files``.

        Parsed once per request within ``form_limits``; a malformed body is
        answered 400, an oversized one 413 (an HTML page), never a 500.
        """
        return _request_form(self._current_request("form()"), self.form_limits)

    def cookies(self) -> dict[str, str]:
        """The current request's cookies (RFC 6265); reading them makes the response private."""
        request = self._current_request("cookies()")
        _mark_personal(request)
        return dict(_request_cookies(request))

    @property
    def session(self) -> Session:
        """The current request's session (a signed cookie; needs ``secret_key``)."""
        return self._load_session(self._current_request("session"))

    def _load_session(self, request: Any) -> Session:
        state = _request_state(request)
        state.personal = True
        if state.session is None:
            if self._session_signer is None:
                raise RuntimeError(
                    "sessions, flash and CSRF tokens need ContentManager(..., secret_key=...): "
                    "read it from an environment variable, never from the source"
                )
            cookie = _request_cookies(request).get(self.session_cookie)
            data = self._session_signer.verify(cookie, _now()) if cookie else None
            state.session = Session(data or {}, self._session_signer, new=data is None)
            state.session.modified = bool(cookie) and data is None  # drop a bad cookie
        return state.session

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
        request = self._current_request("get_flashed_messages()")
        session = self._load_session(request)
        state = _request_state(request)
        if state.flashes is None:
            stored = session.pop(_FLASHES_KEY, None) if _FLASHES_KEY in session else None
            state.flashes = [
                (str(item[0]), str(item[1]))
                for item in (stored if isinstance(stored, list) else ())
                if isinstance(item, list) and len(item) == 2
            ]
        wanted = set(category_filter)
        flashes = [item for item in state.flashes if not wanted or item[0] in wanted]
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

    def url_for(self, view_name: str, **params: Any) -> str:
        """The URL of the route whose view is ``view_name``; unused ``params`` form the query.

        Right on the execute-api URL (``/{stage}`` prefix), behind CloudFront, on
        a custom domain and under ``chalice local``. An unknown view or a missing
        path parameter raises ``ValueError``.
        """
        if self.app is None:
            raise ValueError("url_for needs the ContentManager's app")
        url = _build_url(_route_path(self.app, view_name), dict(params))
        return _script_root(self._request) + url

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
            self.set_static_handler_prefix(prefix)
        base = self.static_prefix
        if max_depth is None:
            max_depth = max(
                (relpath.count("/") + 1 for relpath in self.static_files.files), default=1
            )
        for depth in range(1, max_depth + 1):
            names = [f"p{index}" for index in range(depth)]
            path = base + "".join(f"/{{{name}}}" for name in names)
            self.app.route(
                path, methods=["GET", "HEAD"], name=f"chalice_http_toolkit_static_{depth}"
            )(self._static_view(names, cache_control))

    def _static_view(self, names: list[str], cache_control: str | None) -> Callable[..., Response]:
        def view(**params: str) -> Response:
            return self.static(
                "/".join(params[name] for name in names), cache_control=cache_control
            )

        return view

    def register_not_found_routes(
        self, template: str = "404.html", *, max_depth: int = 4, **template_kwargs: Any
    ) -> None:
        """Register catch-all GET/HEAD routes that render ``template`` with status 404.

        API Gateway answers unknown paths with a JSON 403 of its own; these
        routes (``/{p0}`` … ``max_depth`` segments, plus a greedy tail when
        deployed) make the site's own 404 page show instead.
        """
        if self.app is None:
            raise ValueError("register_not_found_routes needs the ContentManager's app")

        def view(**params: str) -> Response:
            return self.html(self.render_template(template, **template_kwargs), status_code=404)

        for depth in range(1, max_depth + 1):
            path = "".join(f"/{{n{index}}}" for index in range(depth))
            self.app.route(
                path, methods=["GET", "HEAD"], name=f"chalice_http_toolkit_not_found_{depth}"
            )(view)
        tail = "".join(f"/{{n{index}}}" for index in range(max_depth)) + "/{proxy+}"
        self.app.route(tail, methods=["GET", "HEAD"], name="chalice_http_toolkit_not_found_tail")(
            view
        )


def _has_preconditions(request_headers: Mapping[str, str]) -> bool:
    """Whether a request (lower-case header names) has any conditional header."""
    return (
        "if-none-match" in request_headers
        or "if-match" in request_headers
        or "if-modified-since" in request_headers
        or "if-unmodified-since" in request_headers
    )


def _precondition_response(
    out: dict[str, str],
    etag: str,
    last_modified: int | None,
    method: str,
    request_headers: Mapping[str, str],
) -> _GatewayResponse | None:
    """The 304/412 for a response with headers ``out`` and validator ``etag``, or ``None``.

    A condition may name the identity or the gzip representation's ETag when the
    response varies by ``Accept-Encoding``; the answer carries the one it named.
    """
    if last_modified is None and "Last-Modified" in out:
        last_modified = parse_http_date(out["Last-Modified"])
    candidates = (etag, _gzip_etag(etag)) if "Accept-Encoding" in out.get("Vary", "") else (etag,)
    outcome, answered_etag = _evaluate_preconditions(
        method, request_headers, candidates, last_modified
    )
    if outcome is None:
        return None
    out["ETag"] = answered_etag or etag
    return _GatewayResponse(body="", headers=_not_modified_headers(out), status_code=outcome)


def _gzip_etag(etag: str) -> str:
    """The gzip representation's ETag: never the identity's (RFC 9110 §8.8.3)."""
    return etag[:-1] + '-gz"'


def _not_modified_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The 200's caching headers for a 304/412 (RFC 9110 §15.4.5), and no body headers."""
    return {name: value for name, value in headers.items() if name.lower() in _NOT_MODIFIED_HEADERS}


# ---------------------------------------------------------------------------
# CloudFront: validators and Cache-Control so the CDN can revalidate cheaply
# ---------------------------------------------------------------------------


class CloudFront:
    """Conditional responses for pages, static files and assets behind CloudFront.

    Every response carries a content-based ETag and ``Cache-Control``
    (``default_cache_control`` unless overridden), and a matching
    ``If-None-Match`` is answered with 304 without rendering or reading the
    body. ``etag_salt`` (keyword-only) is mixed into template ETags: change it
    when something outside the template and its arguments changes the output.
    """

    def __init__(
        self,
        content_manager: ContentManager,
        app: _AppLike | None = None,
        default_cache_control: str = "no-cache",
        *,
        etag_salt: str = "",
    ) -> None:
        self.content_manager = content_manager
        self.app = app if app is not None else content_manager.app
        self.default_cache_control = default_cache_control
        self.etag_salt = etag_salt

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
        arguments with no canonical form) the page is rendered and the body
        hashed, so a changed page is never answered with 304. Otherwise the
        rendered page is kept under its ETag (``page_cache_bytes``): the same
        template with the same arguments is rendered once per container.
        """
        cm = self.content_manager
        cache_control = self.default_cache_control if cache_control is None else cache_control
        request = cm._request
        if _request_is_personal(request) or _template_is_personal(cm, filename):
            body = cm.render_template(filename, **kwargs)  # personal: rendered, never cached
            representation = _Representation(body, "text/html; charset=utf-8")
            return cm._respond(representation, status_code, headers, cache_control)
        etag = cm.template_etag(filename, kwargs, self.etag_salt + _script_root(request))
        if etag is not None:
            answered = cm._not_modified(
                etag, "text/html; charset=utf-8", status_code, headers, cache_control
            )
            if answered is not None:
                return answered
        if etag is None:
            body = cm.render_template(filename, **kwargs)
            representation = _Representation(
                body, "text/html; charset=utf-8", etag=f'"{_digest(body.encode("utf-8"))}"'
            )
        else:
            # The ETag names the output (the premise of answering 304 without
            # rendering), so a page rendered once for it is that page.
            page = cm.pages.get(etag)
            if page is _MISSING:
                page = _Page(cm.render_template(filename, **kwargs))
                cm.pages.put(etag, page, cost=2 * len(page.body))  # room for its gzip form
            representation = _Representation(
                page.body, "text/html; charset=utf-8", etag=etag, gzip_body=page.gzip_body
            )
        return cm._respond(representation, status_code, headers, cache_control)

    def static(
        self,
        filename: str,
        status_code: int = 200,
        headers: dict | None = None,
        cache_control: str | None = None,
    ) -> Response:
        """Serve a static file with a content-hash ETag and ``Cache-Control``."""
        return self.content_manager.static(
            filename,
            status_code,
            headers,
            cache_control=self.default_cache_control if cache_control is None else cache_control,
        )

    def asset(
        self,
        get_asset: Callable[[], bytes],
        get_etag: Callable[[], str],
        status_code: int = 200,
        headers: dict | None = None,
        cache_control: str | None = None,
    ) -> Response:
        """Serve a run-time asset; ``get_asset`` is not called when ``get_etag()`` still matches."""
        cm = self.content_manager
        cache_control = self.default_cache_control if cache_control is None else cache_control
        etag = f'"{_digest(str(get_etag()).encode("utf-8"))}"'
        answered = cm._not_modified(
            etag, "application/octet-stream", status_code, headers, cache_control
        )
        if answered is not None:
            return answered
        return cm._asset(get_asset(), status_code, headers, etag, cache_control)


# ---------------------------------------------------------------------------
# Request state: what one request read or wrote, and whether it is personal
# ---------------------------------------------------------------------------

#: ``Cache-Control`` of a response that read or wrote the session or set a cookie.
PRIVATE_CACHE_CONTROL = "private, no-store"

_STATE_ATTRIBUTE = "_chalice_http_toolkit_state"
_UNSAFE_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))


class _RequestState:
    """Per-request memo kept on Chalice's ``Request`` object (one per request and thread)."""

    __slots__ = ("cookies", "flashes", "form", "personal", "session")

    def __init__(self) -> None:
        self.personal = False
        self.form: FormData | None = None
        self.cookies: dict[str, str] | None = None
        self.session: Session | None = None
        self.flashes: list[tuple[str, str]] | None = None


def _request_state(request: Any) -> _RequestState:
    state = request.__dict__.get(_STATE_ATTRIBUTE)
    if state is None:
        state = _RequestState()
        setattr(request, _STATE_ATTRIBUTE, state)
    return state


def _mark_personal(request: Any) -> None:
    """Mark ``request``'s response as personal: never stored by a shared cache."""
    if request is not None:
        _request_state(request).personal = True


def _request_is_personal(request: Any) -> bool:
    """Whether the request read or wrote the session or cookies (its answer is private)."""
    if request is None:
        return False
    state = request.__dict__.get(_STATE_ATTRIBUTE)
    return state is not None and state.personal


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


def _request_headers(request: Any) -> Mapping[str, str]:
    return _lower_case_headers(request.headers)


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


class FormData(MultiValues):
    """A request's form fields (``str`` values) and its uploaded files (``.files``)."""

    def __init__(
        self,
        fields: Iterable[tuple[str, str]] = (),
        files: Iterable[tuple[str, UploadedFile]] = (),
    ) -> None:
        super().__init__(fields)
        #: Uploaded files by field name: ``form.files.get("photo")`` is an :class:`UploadedFile`.
        self.files = MultiValues(files)


# A multipart part: (name, filename, content_type, charset, data).
_Part = tuple[str, "str | None", "str | None", "str | None", bytes]


#: The form content types, for a form route's ``content_types=`` (Chalice answers others 415).
FORM_CONTENT_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data"]
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

    Text is UTF-8 (a multipart part may name another charset); repeated names
    keep every value. Another content type gives an empty form (as Flask's
    ``request.form`` for JSON). A malformed body raises :class:`FormError` 400,
    one over ``limits`` :class:`FormError` 413.

    >>> parse_form(b"a=1&a=%C3%A9&b=", "application/x-www-form-urlencoded").getlist("a")
    ['1', 'é']
    """
    limits = limits or FormLimits()
    if len(body) > limits.max_bytes:
        raise FormError(413, f"The form is larger than {limits.max_bytes} bytes.")
    media_type, options = _media_type_and_options(content_type)
    if media_type == "application/x-www-form-urlencoded":
        return FormData(_parse_urlencoded(body, limits))
    if media_type == "multipart/form-data":
        fields: list[tuple[str, str]] = []
        files: list[tuple[str, UploadedFile]] = []
        for name, filename, content_type, charset, data in _multipart_parts(
            body, options.get("boundary"), limits
        ):
            if filename is not None:
                content = content_type or "application/octet-stream"
                files.append((name, UploadedFile(filename, content, data)))
            else:
                fields.append((name, _decode_text(data, charset)))
        return FormData(fields, files)
    return FormData()


def _decode_text(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8")
    except LookupError:
        raise FormError(400, f"Unknown charset {charset!r} in the form.") from None
    except UnicodeDecodeError:
        raise FormError(400, f"A form field is not valid {charset or 'UTF-8'} text.") from None


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
    try:
        import multipart
    except ImportError as error:
        raise ImportError(
            "reading multipart/form-data needs the 'multipart' package: add multipart to "
            "requirements.txt"
        ) from error
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


def _request_body(request: Any, limits: FormLimits) -> bytes:
    """The request body as bytes, base64-decoded when API Gateway encoded it."""
    raw = request.__dict__.get("_body")
    if isinstance(raw, (str, bytes)) and len(raw) > limits.max_bytes * 4 // 3 + 4:
        raise FormError(413, f"The form is larger than {limits.max_bytes} bytes.")
    try:
        body = request.raw_body
    except (binascii.Error, ValueError):
        raise FormError(400, "The request body is not valid base64.") from None
    return body.encode("utf-8") if isinstance(body, str) else body


def _request_form(request: Any, limits: FormLimits) -> FormData:
    state = _request_state(request)
    if state.form is None:
        content_type = _request_headers(request).get("content-type")
        state.form = parse_form(_request_body(request, limits), content_type, limits)
    return state.form


def ex_multipart(app: _AppLike) -> dict[str, dict[str, Any]]:
    """0.6.2's helper: the current request's multipart parts by name (the last one wins).

    Returns ``{name: {"data": bytes, "filename": str | None}}``; a malformed
    body raises :class:`FormError` (answered 400/413 by a ContentManager's
    middleware). New code: :meth:`ContentManager.form`.
    """
    request = app.current_request
    limits = FormLimits()
    media_type, options = _media_type_and_options(_request_headers(request).get("content-type"))
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


# ---------------------------------------------------------------------------
# Cookies: RFC 6265 parsing and Set-Cookie headers
# ---------------------------------------------------------------------------

_COOKIE_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # an RFC 9110 token
_COOKIE_VALUE = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"  # cookie-octets
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}


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


def _request_cookies(request: Any) -> dict[str, str]:
    state = _request_state(request)
    if state.cookies is None:
        # API Gateway keeps only the last of repeated headers in ``headers``.
        event = request.__dict__.get("_event_dict") or {}
        multi = event.get("multiValueHeaders") or {}
        values = next((v for k, v in multi.items() if k.lower() == "cookie"), None)
        header = "; ".join(values) if values else _request_headers(request).get("cookie")
        state.cookies = parse_cookie_header(header)
    return state.cookies


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
    ``ValueError``. The response becomes ``Cache-Control: private, no-store``.
    """
    if not re.fullmatch(_COOKIE_NAME, name):
        raise ValueError(f"cookie name {name!r} is not an RFC 6265 token")
    if not re.fullmatch(_COOKIE_VALUE, value):
        raise ValueError(
            f"cookie value {value!r} has characters a cookie cannot carry "
            "(space, comma, semicolon, quote, backslash, non-ASCII): encode it first"
        )
    parts = [f"{name}={value}"]
    if max_age is not None:
        max_age = int(max_age)
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


def delete_cookie(
    response: Response, name: str, *, path: str = "/", domain: str | None = None
) -> Response:
    """Make the browser drop cookie ``name`` (same ``path`` and ``domain`` as set); returns it."""
    return set_cookie(response, name, "", max_age=0, path=path, domain=domain)


def _now() -> float:
    import time

    return time.time()


# ---------------------------------------------------------------------------
# Sessions and flash: a signed, timestamped cookie (HMAC-SHA256)
# ---------------------------------------------------------------------------

#: Browsers keep at most 4096 bytes of a cookie's name and value (RFC 6265 §6.1).
SESSION_COOKIE_LIMIT = 4093
_SESSION_SALT = b"chalice-http-toolkit session v1"
_FLASHES_KEY = "_flashes"
_CSRF_KEY = "_csrf"


class SessionTooLargeError(ValueError):
    """The session would not fit in one cookie (about 4 KB)."""


class _SessionSigner:
    """Signs and verifies session cookies: ``payload.timestamp.signature`` (base64url).

    The signature is HMAC-SHA256 over ``payload.timestamp`` with a key derived
    from each secret; the newest secret signs, every one verifies (rotation).
    """

    def __init__(self, secret_keys: list[bytes], max_age: int) -> None:
        import hashlib
        import hmac

        self._hmac = hmac
        self._sha256 = hashlib.sha256
        self.keys = [hmac.new(key, _SESSION_SALT, hashlib.sha256).digest() for key in secret_keys]
        self.max_age = max_age

    def _signature(self, key: bytes, message: bytes) -> bytes:
        return self._hmac.new(key, message, self._sha256).digest()

    @staticmethod
    def payload(data: Mapping[str, Any]) -> bytes:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=")

    def sign(self, payload: bytes, now: float) -> str:
        message = payload + b"." + str(int(now)).encode()
        signature = base64.urlsafe_b64encode(self._signature(self.keys[0], message)).rstrip(b"=")
        return (message + b"." + signature).decode("ascii")

    def size(self, payload: bytes) -> int:
        return len(payload) + 1 + 10 + 1 + 43  # a 10-digit timestamp, 32 bytes of base64url

    def verify(self, cookie: str, now: float) -> dict[str, Any] | None:
        """The session a cookie carries; ``None`` (and a log line) when it is not one of ours."""
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
            self._hmac.compare_digest(self._signature(key, message), signature) for key in self.keys
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
    :class:`SessionTooLargeError`. Mutating a nested value in place is not
    seen: set ``session.modified = True`` then.
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
            self._check()
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

    def _check(self) -> bytes:
        try:
            payload = self._signer.payload(self._data)
        except (TypeError, ValueError) as error:
            raise TypeError(f"session values must be JSON: {error}") from None
        size = self._signer.size(payload)
        if size > SESSION_COOKIE_LIMIT:
            raise SessionTooLargeError(
                f"the session is {size} bytes as a cookie; browsers keep at most "
                f"{SESSION_COOKIE_LIMIT}: keep less in it (an id, not the data)"
            )
        return payload

    def __repr__(self) -> str:
        return f"Session({self._data!r})"


def _secret_keys(secret_key: str | bytes | Iterable[str | bytes] | None) -> list[bytes]:
    if secret_key is None:
        return []
    keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
    out = []
    for key in keys:
        if not isinstance(key, (str, bytes)) or not key:
            raise ValueError("secret_key must be a non-empty string or a list of them")
        out.append(key.encode("utf-8") if isinstance(key, str) else key)
    if not out:
        raise ValueError("secret_key must be a non-empty string or a list of them")
    return out


# ---------------------------------------------------------------------------
# CSRF: Fetch Metadata / Origin, and the session's token for form posts
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


def _csrf_refusal(cm: ContentManager, request: Any) -> str | None:
    headers = _request_headers(request)
    refusal = cross_origin_refusal(request.method, headers, cm.trusted_origins)
    if refusal is not None or not cm._session_signer:
        return refusal
    submitted = headers.get(CSRF_HEADER)
    media_type, _ = _media_type_and_options(headers.get("content-type"))
    if submitted is None:
        if media_type not in _FORM_TYPES:
            return None  # not something a cross-site form can send (JSON needs CORS)
        submitted = _request_form(request, cm.form_limits).get(CSRF_FIELD)
    expected = cm._load_session(request).get(_CSRF_KEY)
    if not submitted:
        return "the form has no CSRF token: reload the page and send it again"
    if not isinstance(expected, str) or not _constant_time_equal(submitted, expected):
        return "the form's CSRF token is not this session's: reload the page and send it again"
    return None


def _constant_time_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# ---------------------------------------------------------------------------
# url_for: URLs of Chalice routes, right behind every front door
# ---------------------------------------------------------------------------

_EXECUTE_API_HOST = r"[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:443)?"
_ROUTE_PARAMETER = r"\{([^}+]+)(\+?)\}"


def _script_root(request: Any) -> str:
    """``/{stage}`` on the execute-api URL, else ``""`` (CloudFront, custom domain, local).

    API Gateway serves the stage under its own path on the execute-api host;
    behind CloudFront (the origin path holds the stage; its function sets
    ``X-Forwarded-Host``) or a custom domain mapped at its root there is none.
    """
    if request is None:
        return ""
    headers = _request_headers(request)
    if "x-forwarded-host" in headers:
        return ""
    stage = (getattr(request, "context", None) or {}).get("stage")
    if stage and _is_execute_api_host(headers.get("host", "")):
        return "/" + stage
    return ""


@functools.lru_cache(maxsize=64)
def _is_execute_api_host(host: str) -> bool:
    return re.fullmatch(_EXECUTE_API_HOST, host, re.IGNORECASE) is not None


def _routes_of(app: _AppLike) -> Mapping[str, Mapping[str, Any]]:
    """Chalice's route table: path → method → RouteEntry (a Blueprint's app's, once registered)."""
    routes = getattr(app, "routes", None)
    if routes is None:
        routes = getattr(getattr(app, "_current_app", None), "routes", None)
    return routes or {}


def _route_path(app: _AppLike, view_name: str) -> str:
    for path, methods in _routes_of(app).items():
        for entry in methods.values():
            if entry.view_name == view_name:
                return path
    raise ValueError(f"url_for: no route has the view name {view_name!r}")


def _build_url(path: str, params: dict[str, Any]) -> str:
    from urllib.parse import quote, urlencode

    def fill(match: re.Match) -> str:
        name, greedy = match.group(1), match.group(2)
        if name not in params:
            raise ValueError(f"url_for: route {path} needs a value for {name!r}")
        return quote(str(params.pop(name)), safe="/" if greedy else "")

    built = re.sub(_ROUTE_PARAMETER, fill, path)
    query = [(name, value) for name, value in params.items() if value is not None]
    return built + ("?" + urlencode(query, doseq=True) if query else "")


# ---------------------------------------------------------------------------
# The middleware: CSRF before the view, session cookie and privacy after it
# ---------------------------------------------------------------------------

_INTERACTIVE_INSTALLED = "_chalice_http_toolkit_interactive"
#: Names in templates whose output is personal: a template using one is never shared.
_SESSION_TEMPLATE_NAMES = frozenset(("csrf_token", "get_flashed_messages", "session"))


def _error_page(status_code: int, message: str) -> _GatewayResponse:
    import html

    titles = {400: "Bad Request", 403: "Forbidden", 413: "Content Too Large"}
    title = f"{status_code} {titles.get(status_code, 'Error')}"
    body = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>{html.escape(message)}</p></body></html>"
    )
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": PRIVATE_CACHE_CONTROL}
    return _GatewayResponse(body=body, headers=headers, status_code=status_code)


def _install_interactive(cm: ContentManager) -> None:
    """Register the middleware of forms, sessions and CSRF on ``cm.app`` (once per app)."""
    app = cm.app
    if app is None or getattr(app, _INTERACTIVE_INSTALLED, False):
        return

    def interactive_middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
        if request is None:
            return get_response(request)
        try:
            if cm.csrf and request.method in _UNSAFE_METHODS and not _is_exempt(app, request):
                refusal = _csrf_refusal(cm, request)
                if refusal is not None:
                    logger.info("CSRF: %s %s: %s", request.method, request.path, refusal)
                    return _error_page(403, refusal)
            response = get_response(request)
        except FormError as error:
            logger.info("form refused: %s %s: %s", request.method, request.path, error.message)
            return _error_page(error.status_code, error.message)
        state = request.__dict__.get(_STATE_ATTRIBUTE)
        if state is not None:
            _save_session(cm, state.session, request, response)
        headers = response.headers
        if (
            (state is not None and state.personal)
            or "Set-Cookie" in headers
            or "set-cookie" in headers
        ):
            _make_private(headers)  # (set_cookie() did already; a hand-made header too)
        return response

    app.register_middleware(interactive_middleware, "http")
    setattr(app, _INTERACTIVE_INSTALLED, True)


def _is_exempt(app: _AppLike, request: Any) -> bool:
    entry = _routes_of(app).get(request.path, {}).get(request.method)
    return entry is not None and getattr(entry.view_function, _CSRF_EXEMPT, False)


def _save_session(cm: ContentManager, session: Session | None, request: Any, response: Any) -> None:
    if session is None or not session.modified:
        return
    if session:
        value = cm._session_signer.sign(session._check(), _now())
        set_cookie(
            response,
            cm.session_cookie,
            value,
            max_age=cm.session_max_age,
            secure=cm.session_cookie_secure,
        )
    elif cm.session_cookie in _request_cookies(request):
        delete_cookie(response, cm.session_cookie)


def _template_is_personal(cm: ContentManager, filename: str) -> bool:
    """Whether the template's closure names a personal global (``csrf_token()``, flashes).

    Such a page is rendered for every request and answered private: no
    ETag before rendering, no page cache. Cached per template analysis.
    """
    cached = cm._personal_templates.get(filename)
    if cached is not None and not cm.auto_reload and cm._template_deps.get(filename) is cached[0]:
        return cached[1]  # deployed: the template's analysis has not changed
    deps = cm.template_dependencies(filename)
    if cached is not None and cached[0] is deps:
        return cached[1]
    import jinja2
    from jinja2 import meta, nodes

    env = cm.env
    pending, seen, personal = [filename], set(), False
    while pending and not personal:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            source, path, _ = env.loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            continue
        tree = env.parse(source, name, path)
        personal = any(node.name in _SESSION_TEMPLATE_NAMES for node in tree.find_all(nodes.Name))
        pending.extend(ref for ref in meta.find_referenced_templates(tree) if ref is not None)
    cm._personal_templates[filename] = (deps, personal)
    return personal


def _template_globals(cm: ContentManager) -> dict[str, Callable[..., Any]]:
    return {
        "csrf_token": cm.csrf_token,
        "get_flashed_messages": cm.get_flashed_messages,
        "url_for": cm.url_for,
    }


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
    if not isinstance(event, Mapping) or event.get(_KEEP_WARM_MARKER) is not True:
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and context.get("resourcePath") == _KEEP_WARM_RESOURCE_PATH


def _keep_warm_middleware(content_manager: ContentManager) -> Callable[..., Any]:
    def keep_warm_middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
        # ``request`` is None for events that are not HTTP: Chalice answers those itself.
        if (
            request is None
            or request.path != _KEEP_WARM_RESOURCE_PATH
            or not is_keep_warm_event(request.to_original_event())
        ):
            return get_response(request)
        timings = content_manager.prime()
        return Response(
            body=json.dumps({"warm": True, "prime_ms": timings}),
            headers={"Content-Type": "application/json"},
            status_code=200,
        )

    return keep_warm_middleware


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
            content_manager._load_template(name)
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
