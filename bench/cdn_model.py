"""A small, honest model of CloudFront in front of a Chalice app, with browsers and traffic.

Used by ``tests/test_cdn_simulation.py`` and ``bench/cdn_sim.py``. What it models, from
the CloudFront Developer Guide (custom origins, expiration, compression):

- Cache behaviours, cache and origin request policies are read from the template that
  ``cli.py cloudfront`` writes; the viewer-request function is the template's JavaScript
  run by node (``cloudfront_function.ViewerRequestFunction``).
- The cache key: path, query string (if the policy includes it), the key headers'
  values after the function, and the Accept-Encoding class (``br,gzip``, ``gzip``,
  ``br`` or none) when the policy enables gzip/brotli. Only that reaches the origin, plus
  the origin request policy's headers; never Host, never the viewer's validators.
- Freshness: ``no-store``/``private`` are not stored; ``no-cache`` is stored and
  revalidated on every request; else ``s-maxage`` over ``max-age`` (RFC 9111 §5.2.2.10),
  ``Expires`` (against the response's ``Date``) or the policy's DefaultTTL, clamped to
  [MinTTL, MaxTTL].
- Stale copies (RFC 5861, honoured by CloudFront since May 2023): within
  ``stale-while-revalidate`` after expiry the viewer gets the stored copy at once and the
  edge revalidates in the background, one revalidation per object at a time. When a
  revalidation the viewer waits for fails with a 5xx or a time-out, the expired copy is
  served ("How CloudFront processes HTTP 4xx and 5xx status codes from your origin": the
  object is in the edge cache but has expired), within ``stale-if-error`` when the object
  has one, and for the error's ErrorCachingMinTTL without asking the origin again; a 4xx
  goes to the viewer instead and, an assumption where the guide says nothing, removes the
  held copy (in a background revalidation too).
- Time-outs: an origin that raises :class:`OriginTimeoutError` holds the viewer for the
  origin's connection attempts x OriginReadTimeout (GET, "Origin response timeout"), then
  CloudFront answers 504 (or the expired copy, as for a 5xx).
- Errors (the Developer Guide's "HTTP 4xx and 5xx status codes that CloudFront caches"):
  404, 405, 410, 414 and 500-504 are cached, 400, 403, 412 and 415 only with max-age or
  s-maxage; for the greater of that value and the code's ErrorCachingMinTTL (10 s unless
  the distribution sets it), or the ErrorCachingMinTTL alone; ``no-store``, ``no-cache``
  and ``private`` prevent it for 404, 410, 414 and 501 only.
- Eviction: an object not requested for ``evict_after`` seconds is gone (CloudFront "might
  evict" rarely requested objects; how soon is not documented, so it is a parameter).
- Revalidation sends the stored ETag (If-None-Match) and Last-Modified
  (If-Modified-Since) as the origin sent them; a 304 refreshes the stored object and
  updates its headers (RFC 9111 §4.3.4).
- Viewers' conditional requests are answered from the cache; If-None-Match is ignored
  when the object has no ETag (then If-Modified-Since counts).
- Compression (``Compress``): only responses without Content-Encoding, of a type
  CloudFront compresses, with a Content-Length of 1,000 to 10,000,000 bytes; brotli when
  the key's encoding class has it, else gzip. A strong ETag becomes weak (``W/``), an
  invalid one (not starting with ``"`` or ``W/``) is removed. Not after a 304.
- Only 200 responses to GET are stored; one edge cache, no request collapsing.
  Brotli is not re-implemented: a brotli object keeps its identity bytes (``Reply.content``
  is what the viewer decodes either way); gzip is real.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, Callable, NamedTuple

from apigw import deliver, lambda_context, make_event

# ---------------------------------------------------------------------------
# The distribution, from the CloudFormation template
# ---------------------------------------------------------------------------

#: Content-Type values CloudFront compresses (the Developer Guide's list, abridged).
COMPRESSIBLE_TYPES = frozenset(
    [
        "application/javascript",
        "application/json",
        "application/rss+xml",
        "application/xhtml+xml",
        "application/xml",
        "application/x-javascript",
        "image/svg+xml",
        "text/css",
        "text/csv",
        "text/html",
        "text/javascript",
        "text/js",
        "text/plain",
        "text/xml",
    ]
)
COMPRESS_MIN, COMPRESS_MAX = 1_000, 10_000_000


@dataclass(frozen=True)
class Behaviour:
    """One cache behaviour with its cache policy and origin request policy."""

    path_pattern: str | None  # None: the default behaviour
    min_ttl: int
    default_ttl: int
    max_ttl: int
    key_headers: tuple[str, ...]
    query_strings: bool
    gzip: bool
    brotli: bool
    compress: bool
    viewer_function: bool
    forwarded_headers: tuple[str, ...] = ()
    forwarded_cookies: tuple[str, ...] = ()  # the origin request policy's cookie whitelist
    key_cookies: tuple[str, ...] = ()  # the cache policy's cookies: in the key, forwarded
    origin_timeout: float = 30.0 * 3  # how long a hanging origin holds a GET: attempts x read

    def matches(self, path: str) -> bool:
        return self.path_pattern is None or fnmatch.fnmatchcase(
            path.lstrip("/"), self.path_pattern.lstrip("/")
        )


def behaviours_from_template(template: dict) -> list[Behaviour]:
    """The distribution's behaviours, ordered as CloudFront tries them (default last)."""
    resources = template["Resources"]

    def policy(reference: dict, kind: str) -> dict:
        return resources[reference["Ref"]]["Properties"][kind]

    [distribution] = [r for r in resources.values() if r["Type"] == "AWS::CloudFront::Distribution"]
    config = distribution["Properties"]["DistributionConfig"]
    timeouts = {origin["Id"]: origin_timeout(origin) for origin in config["Origins"]}
    out = []
    for raw in [*config.get("CacheBehaviors", []), config["DefaultCacheBehavior"]]:
        cache = policy(raw["CachePolicyId"], "CachePolicyConfig")
        key = cache["ParametersInCacheKeyAndForwardedToOrigin"]
        forwarded: tuple[str, ...] = ()
        cookies: tuple[str, ...] = ()
        if "OriginRequestPolicyId" in raw:
            request = policy(raw["OriginRequestPolicyId"], "OriginRequestPolicyConfig")
            forwarded = tuple(h.lower() for h in request["HeadersConfig"].get("Headers", []))
            cookies = tuple(request["CookiesConfig"].get("Cookies", []))
        key_cookies = tuple(key["CookiesConfig"].get("Cookies", []))
        out.append(
            Behaviour(
                path_pattern=raw.get("PathPattern"),
                min_ttl=cache["MinTTL"],
                default_ttl=cache["DefaultTTL"],
                max_ttl=cache["MaxTTL"],
                key_headers=tuple(h.lower() for h in key["HeadersConfig"].get("Headers", [])),
                query_strings=key["QueryStringsConfig"]["QueryStringBehavior"] != "none",
                gzip=key["EnableAcceptEncodingGzip"],
                brotli=key["EnableAcceptEncodingBrotli"],
                compress=raw.get("Compress", False),
                viewer_function=any(
                    a["EventType"] == "viewer-request" for a in raw.get("FunctionAssociations", [])
                ),
                forwarded_headers=forwarded,
                forwarded_cookies=cookies,
                key_cookies=key_cookies,
                origin_timeout=timeouts[raw["TargetOriginId"]],
            )
        )
    return out


def origin_timeout(origin: dict) -> float:
    """How long a hanging custom origin holds a GET: connection attempts x OriginReadTimeout.

    CloudFront's defaults are 3 attempts and 30 s ("Origin response timeout": for GET and
    HEAD it drops the connection and tries again, up to the connection attempts).
    """
    read = origin.get("CustomOriginConfig", {}).get("OriginReadTimeout", 30)
    return float(origin.get("ConnectionAttempts", 3) * read)


def error_caching_min_ttls(template: dict) -> dict[int, int]:
    """ErrorCachingMinTTL per status code from the distribution's CustomErrorResponses."""
    resources = template["Resources"]
    [distribution] = [r for r in resources.values() if r["Type"] == "AWS::CloudFront::Distribution"]
    config = distribution["Properties"]["DistributionConfig"]
    return {
        entry["ErrorCode"]: entry["ErrorCachingMinTTL"]
        for entry in config.get("CustomErrorResponses", [])
        if "ErrorCachingMinTTL" in entry
    }


# ---------------------------------------------------------------------------
# Header helpers
# ---------------------------------------------------------------------------


def cache_directives(value: str | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            out[name.lower()] = argument.strip().strip('"') or None
    return out


def _seconds(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def encoding_class(accept_encoding: str | None, behaviour: Behaviour) -> str | None:
    """CloudFront's normalised Accept-Encoding: ``br,gzip``, ``br``, ``gzip`` or None."""
    tokens = {
        part.split(";")[0].strip().lower()
        for part in (accept_encoding or "").split(",")
        if not re.search(r";\s*q=0(\.0*)?\s*$", part)
    }
    names = [name for name, on in (("br", behaviour.brotli), ("gzip", behaviour.gzip)) if on]
    found = [name for name in names if name in tokens]
    return ",".join(found) or None


def _etags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def weak_match(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def _cookies(value: str | None) -> dict[str, str]:
    """A Cookie header's name/value pairs (the first of a repeated name)."""
    out: dict[str, str] = {}
    for pair in (value or "").split(";"):
        name, sep, cookie = pair.strip().partition("=")
        if sep and name:
            out.setdefault(name, cookie)
    return out


# ---------------------------------------------------------------------------
# The edge cache
# ---------------------------------------------------------------------------


class Delivered(NamedTuple):
    """What the origin (API Gateway) answered: lower-case header names; how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float = 0.0
    cold_start: bool = False


class OriginTimeoutError(Exception):
    """Raised by an origin that does not answer (a hanging Lambda, a dropped connection)."""


#: Error codes CloudFront caches whatever the headers say (the Developer Guide's list).
ERRORS_ALWAYS_CACHED = frozenset((404, 405, 410, 414, 500, 501, 502, 503, 504))
#: Error codes CloudFront caches only when the origin sends max-age or s-maxage.
ERRORS_CACHED_WITH_MAX_AGE = frozenset((400, 403, 412, 415))
#: The only error codes for which no-store, no-cache and private prevent caching.
ERRORS_HONOURING_NO_STORE = frozenset((404, 410, 414, 501))
#: ErrorCachingMinTTL when the distribution does not set one.
DEFAULT_ERROR_CACHING_MIN_TTL = 10


def error_ttl(
    status: int, headers: dict[str, str], behaviour: Behaviour, min_ttls: dict[int, int]
) -> float:
    """How long CloudFront keeps an error response; 0: not at all.

    "Control how long CloudFront caches errors": the greater of s-maxage/max-age (at most
    MaxTTL) and the code's ErrorCachingMinTTL, or the ErrorCachingMinTTL alone. (An
    ``Expires`` on an error is not modelled: the toolkit sends none.)
    """
    directives = cache_directives(headers.get("cache-control"))
    stated = _seconds(directives.get("s-maxage"))
    if stated is None:
        stated = _seconds(directives.get("max-age"))
    if status in ERRORS_CACHED_WITH_MAX_AGE and stated is None:
        return 0.0
    if status not in ERRORS_ALWAYS_CACHED | ERRORS_CACHED_WITH_MAX_AGE:
        return 0.0
    if status in ERRORS_HONOURING_NO_STORE and {"no-store", "no-cache", "private"} & set(
        directives
    ):
        return 0.0
    minimum = min_ttls.get(status, DEFAULT_ERROR_CACHING_MIN_TTL)
    if stated is not None:
        return float(max(min(stated, behaviour.max_ttl), minimum))
    return float(minimum)


#: The origin: ``(path with query, headers) -> Delivered``.
Origin = Callable[[str, dict[str, str]], Delivered]
#: The viewer-request function: ``(uri, headers) -> headers``.
ViewerFunction = Callable[[str, dict[str, str]], dict[str, str]]


@dataclass
class Stored:
    headers: dict[str, str]  # as served to viewers (after compression)
    body: bytes  # as served to viewers
    origin_etag: str | None  # as the origin sent it: used to revalidate
    last_modified: str | None
    stored_at: float
    ttl: float
    used_at: float = 0.0  # the last viewer request for it (eviction)
    revalidating_until: float = 0.0  # a background revalidation is under way until then
    error_until: float = 0.0  # after an origin 5xx: served expired, the origin not asked

    def fresh(self, now: float) -> bool:
        return now - self.stored_at < self.ttl

    def _stale_for(self, now: float) -> float:
        return now - self.stored_at - self.ttl

    def may_serve_while_revalidating(self, now: float) -> bool:
        """RFC 5861 §3: within ``stale-while-revalidate`` seconds after it became stale."""
        window = _seconds(
            cache_directives(self.headers.get("cache-control")).get("stale-while-revalidate")
        )
        return window is not None and self._stale_for(now) < window

    def may_serve_on_error(self, now: float) -> bool:
        """RFC 5861 §4 within ``stale-if-error``; without it, CloudFront's documented
        behaviour: an expired object still in the edge cache is served on a 5xx."""
        window = _seconds(cache_directives(self.headers.get("cache-control")).get("stale-if-error"))
        return window is None or self._stale_for(now) < window


@dataclass
class CachedError:
    """An error response CloudFront keeps (see :func:`error_ttl`)."""

    status: int
    headers: dict[str, str]
    body: bytes
    until: float


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    source: str  # "Hit", "StaleHit", "StaleIfError", "RefreshHit", "Miss", "Pass", "Error"
    waited: float = 0.0  # seconds the viewer waited for the origin
    cold_start: bool = False  # ... and the origin was a new Lambda container
    held: bool = False  # the edge held an object for the request's key

    @property
    def content(self) -> bytes:
        """The body as the viewer decodes it."""
        if self.headers.get("content-encoding") == "gzip":
            return gzip.decompress(self.body)
        return self.body


@dataclass
class OriginRequest:
    path: str
    key: tuple
    status: int
    bytes: int
    conditional: bool
    content_type: str
    background: bool = False  # a stale-while-revalidate revalidation: no viewer waited


class CloudFrontModel:
    """One CloudFront edge cache in front of ``origin``, configured by ``template``.

    ``evict_after``: seconds without a request after which an object is evicted (None:
    never).
    """

    def __init__(
        self,
        template: dict,
        origin: Origin,
        clock: Callable[[], float],
        viewer_function: ViewerFunction | None = None,
        *,
        evict_after: float | None = None,
    ) -> None:
        self.behaviours = behaviours_from_template(template)
        self.error_min_ttls = error_caching_min_ttls(template)
        self.origin = origin
        self.clock = clock
        self.viewer_function = viewer_function
        self.evict_after = evict_after
        self.cache: dict[tuple, Stored] = {}
        self.errors: dict[tuple, CachedError] = {}
        self.origin_log: list[OriginRequest] = []
        self.results: Counter[str] = Counter()
        self.evictions = 0

    def behaviour_for(self, path: str) -> Behaviour:
        return next(b for b in self.behaviours if b.matches(path))

    def request(self, url: str, viewer_headers: dict[str, str]) -> Reply:
        """A viewer's GET for ``url`` (path and query)."""
        path, _, query = url.partition("?")
        behaviour = self.behaviour_for(path)
        headers = {name.lower(): value for name, value in viewer_headers.items()}
        if behaviour.viewer_function and self.viewer_function is not None:
            headers = self.viewer_function(path, headers)
        encoding = encoding_class(headers.get("accept-encoding"), behaviour)
        cookies = _cookies(headers.get("cookie"))
        key = (
            path,
            query if behaviour.query_strings else "",
            tuple(headers.get(name) for name in behaviour.key_headers),
            encoding,
            *(
                (tuple(cookies.get(name) for name in behaviour.key_cookies),)
                if behaviour.key_cookies
                else ()
            ),
        )
        now = self.clock()
        stored = self._held(key, now)
        reply = self._respond(url, key, headers, cookies, stored, behaviour, encoding, now)
        return reply._replace(held=stored is not None)

    def _respond(
        self,
        url: str,
        key: tuple,
        headers: dict[str, str],
        cookies: dict[str, str],
        stored: Stored | None,
        behaviour: Behaviour,
        encoding: str | None,
        now: float,
    ) -> Reply:
        """The answer to a viewer's request for ``key``, given what the edge holds."""
        path, _, query = url.partition("?")
        if stored is not None and stored.fresh(now):
            return self._serve(stored, headers, "Hit", now)
        if stored is not None and stored.may_serve_while_revalidating(now):
            if now >= stored.revalidating_until:  # one revalidation per object at a time
                self._revalidate_in_background(url, key, headers, cookies, stored, behaviour, now)
            return self._serve(stored, headers, "StaleHit", now)
        if stored is not None and now < stored.error_until:
            return self._serve(stored, headers, "StaleIfError", now)
        error = self.errors.get(key)
        if stored is None and error is not None and now < error.until:
            self.results["Error"] += 1
            return Reply(error.status, dict(error.headers), error.body, "Error")
        forwarded = self._forwarded(headers, cookies, behaviour, encoding)
        target = path + ("?" + query if query and behaviour.query_strings else "")
        answer = self._call_origin(target, key, forwarded, stored, behaviour, now, False)
        waited = answer.seconds
        if answer.status >= 500 and stored is not None and stored.may_serve_on_error(now):
            stored.error_until = now + self.error_min_ttls.get(
                answer.status, DEFAULT_ERROR_CACHING_MIN_TTL
            )
            reply = self._serve(stored, headers, "StaleIfError", now)
            return reply._replace(waited=waited, cold_start=answer.cold_start)
        stored, source = self._store(key, answer, stored, behaviour, now)
        if stored is None:
            self.results[source] += 1
            return Reply(
                answer.status, dict(answer.headers), answer.body, source, waited, answer.cold_start
            )
        reply = self._serve(stored, headers, source, now)
        return reply._replace(waited=waited, cold_start=answer.cold_start)

    def _held(self, key: tuple, now: float) -> Stored | None:
        """The object stored under ``key``, unless it went unrequested long enough to be evicted."""
        stored = self.cache.get(key)
        if stored is None:
            return None
        if self.evict_after is not None and now - stored.used_at > self.evict_after:
            del self.cache[key]
            self.evictions += 1
            return None
        stored.used_at = now
        return stored

    @staticmethod
    def _forwarded(
        headers: dict[str, str], cookies: dict[str, str], behaviour: Behaviour, encoding: str | None
    ) -> dict[str, str]:
        """What reaches the origin: the key's headers and cookies, the origin request policy's."""
        forwarded = {name: headers[name] for name in behaviour.key_headers if name in headers}
        forwarded.update(
            {name: headers[name] for name in behaviour.forwarded_headers if name in headers}
        )
        names = (*behaviour.key_cookies, *behaviour.forwarded_cookies)
        kept = [f"{name}={cookies[name]}" for name in dict.fromkeys(names) if name in cookies]
        if kept:
            forwarded["cookie"] = "; ".join(kept)
        if encoding:
            forwarded["accept-encoding"] = encoding
        return forwarded

    def _revalidate_in_background(
        self,
        url: str,
        key: tuple,
        headers: dict[str, str],
        cookies: dict[str, str],
        stored: Stored,
        behaviour: Behaviour,
        now: float,
    ) -> None:
        """RFC 5861 §3: refresh ``stored`` while viewers get it; nobody waits for this.

        The answer is applied at once (the next viewer sees it); the object is marked as
        being revalidated for as long as the origin took, so that no second revalidation
        starts meanwhile. A 5xx or a time-out leaves the stale copy in place.
        """
        path, _, query = url.partition("?")
        forwarded = self._forwarded(headers, cookies, behaviour, key[3])
        target = path + ("?" + query if query and behaviour.query_strings else "")
        answer = self._call_origin(target, key, forwarded, stored, behaviour, now, True)
        stored.revalidating_until = now + answer.seconds
        if answer.status >= 500:
            return
        self._store(key, answer, stored, behaviour, now)

    def _call_origin(
        self,
        target: str,
        key: tuple,
        headers: dict[str, str],
        stored: Stored | None,
        behaviour: Behaviour,
        now: float,
        background: bool,
    ) -> Delivered:
        """One origin request, conditional when an object is held; a time-out becomes a 504."""
        conditional = dict(headers)
        if stored is not None and stored.origin_etag:
            conditional["if-none-match"] = stored.origin_etag
        if stored is not None and stored.last_modified:
            conditional["if-modified-since"] = stored.last_modified
        try:
            answer = Delivered(*self.origin(target, conditional))  # any (status, headers, body)
        except OriginTimeoutError:
            answer = Delivered(
                504, {"content-type": "text/html"}, b"504 Gateway Timeout", behaviour.origin_timeout
            )
        revalidation = len(conditional) > len(headers)
        self.origin_log.append(
            OriginRequest(
                target,
                key,
                answer.status,
                len(answer.body),
                revalidation,
                answer.headers.get("content-type", ""),
                background,
            )
        )
        return answer

    def _store(
        self,
        key: tuple,
        answer: Delivered,
        stored: Stored | None,
        behaviour: Behaviour,
        now: float,
    ) -> tuple[Stored | None, str]:
        """Keep what the origin answered: a 304 refreshes ``stored``, a storable 200 replaces
        it, an error is kept as CloudFront keeps errors and anything else removes it."""
        if answer.status == 304 and stored is not None:
            for name in ("cache-control", "expires", "date", "last-modified", "vary"):
                if name in answer.headers:
                    stored.headers[name] = answer.headers[name]
            stored.stored_at = now
            stored.ttl = self._ttl(stored.headers, behaviour)
            stored.error_until = 0.0
            self.cache[key] = stored
            return stored, "RefreshHit"
        directives = cache_directives(answer.headers.get("cache-control"))
        if answer.status != 200 or "no-store" in directives or "private" in directives:
            self.cache.pop(key, None)
            ttl = error_ttl(answer.status, answer.headers, behaviour, self.error_min_ttls)
            if answer.status >= 400 and ttl > 0:
                self.errors[key] = CachedError(
                    answer.status, dict(answer.headers), answer.body, now + ttl
                )
                return None, "Error"
            return None, "Error" if answer.status >= 400 else "Pass"
        served_headers, body = self._maybe_compress(answer, behaviour, key[3])
        new = Stored(
            headers=served_headers,
            body=body,
            origin_etag=answer.headers.get("etag"),
            last_modified=answer.headers.get("last-modified"),
            stored_at=now,
            ttl=self._ttl(answer.headers, behaviour),
            used_at=now,
        )
        self.cache[key] = new
        self.errors.pop(key, None)
        return new, "Miss"

    def _serve(self, stored: Stored, headers: dict[str, str], source: str, now: float) -> Reply:
        self.results[source] += 1
        return self._answer(stored, headers, source, now)

    @staticmethod
    def _ttl(headers: dict[str, str], behaviour: Behaviour) -> float:
        directives = cache_directives(headers.get("cache-control"))
        if "no-cache" in directives:
            seconds: float = 0
        elif _seconds(directives.get("s-maxage")) is not None:
            seconds = _seconds(directives["s-maxage"])  # type: ignore[assignment]
        elif _seconds(directives.get("max-age")) is not None:
            seconds = _seconds(directives["max-age"])  # type: ignore[assignment]
        elif "expires" in headers:
            expires, date = _http_time(headers["expires"]), _http_time(headers.get("date"))
            seconds = max(0.0, expires - date) if expires is not None and date is not None else 0
        else:
            seconds = behaviour.default_ttl
        return min(max(seconds, behaviour.min_ttl), behaviour.max_ttl)

    @staticmethod
    def _maybe_compress(
        answer: Delivered, behaviour: Behaviour, encoding: str | None
    ) -> tuple[dict[str, str], bytes]:
        headers = dict(answer.headers)
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        length = headers.get("content-length")
        if not (
            behaviour.compress
            and encoding
            and "content-encoding" not in headers
            and media_type in COMPRESSIBLE_TYPES
            and length is not None
            and COMPRESS_MIN <= int(length) <= COMPRESS_MAX
        ):
            return headers, answer.body
        if "br" in encoding.split(","):
            headers["content-encoding"] = "br"
            body = answer.body  # brotli is not re-implemented: see the module docstring
        else:
            headers["content-encoding"] = "gzip"
            body = gzip.compress(answer.body, mtime=0)
        headers["content-length"] = str(len(body))
        etag = headers.get("etag")
        if etag is not None and etag.startswith('"'):
            headers["etag"] = "W/" + etag
        elif etag is not None and not etag.startswith("W/"):
            del headers["etag"]
        return headers, body

    def _answer(self, stored: Stored, headers: dict[str, str], source: str, now: float) -> Reply:
        served = dict(stored.headers)
        served["age"] = str(int(now - stored.stored_at))
        served["x-cache"] = f"{source} from cloudfront"
        if_none_match = headers.get("if-none-match")
        etag = stored.headers.get("etag")
        not_modified = False
        if if_none_match is not None and etag is not None:
            tags = _etags(if_none_match)
            not_modified = "*" in tags or any(weak_match(tag, etag) for tag in tags)
        elif headers.get("if-modified-since") and stored.headers.get("last-modified"):
            since = _http_time(headers["if-modified-since"])
            modified = _http_time(stored.headers["last-modified"])
            not_modified = since is not None and modified is not None and modified <= since
        if not_modified:
            kept = ("etag", "cache-control", "last-modified", "expires", "vary", "age", "x-cache")
            return Reply(304, {k: v for k, v in served.items() if k in kept}, b"", source)
        return Reply(200, served, stored.body, source)


# ---------------------------------------------------------------------------
# Browsers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BrowserProfile:
    """The headers a client sends per kind of request; ``subresources``: fetches CSS/img/JS."""

    name: str
    page_accept: str | None
    image_accept: str | None
    css_accept: str | None
    script_accept: str | None
    accept_encoding: str | None
    caches: bool = True
    subresources: bool = True


CHROME = BrowserProfile(
    "chrome",
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "text/css,*/*;q=0.1",
    "*/*",
    "gzip, deflate, br, zstd",
)
FIREFOX = BrowserProfile(
    "firefox",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "image/avif,image/webp,*/*",
    "text/css,*/*;q=0.1",
    "*/*",
    "gzip, deflate, br, zstd",
)
SAFARI = BrowserProfile(
    "safari",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
    "text/css,*/*;q=0.1",
    "*/*",
    "gzip, deflate, br",
)
CURL = BrowserProfile("curl", "*/*", "*/*", "*/*", "*/*", None, caches=False, subresources=False)
#: The mix of page views: mostly browsers, some scripts.
BROWSER_MIX = ((CHROME, 0.55), (SAFARI, 0.2), (FIREFOX, 0.15), (CURL, 0.1))

_SUBRESOURCE = re.compile(
    r'<(?:link rel="stylesheet" href|img src|script(?: defer)? src)="(?P<url>[^"]+)"'
)


@dataclass
class Cached:
    reply: Reply
    stored_at: float
    lifetime: float


@dataclass
class Seen:
    """One response a client used: status 0 and source "Browser" when its own cache
    answered without a request; after a 304, the body from its own cache."""

    client: str
    profile: BrowserProfile
    kind: str  # "page", "css", "image", "script"
    url: str
    time: float
    status: int  # what came over the network (304 when the browser reused its copy)
    headers: dict[str, str]
    content: bytes
    source: str
    waited: float = 0.0  # seconds waited for the origin (through the edge)
    cold_start: bool = False  # ... for a new Lambda container
    held: bool = False  # the edge held the object


@dataclass
class Client:
    name: str
    profile: BrowserProfile
    cache: dict[str, Cached] = field(default_factory=dict)

    def accept_for(self, kind: str) -> str | None:
        return getattr(self.profile, f"{kind}_accept")

    def fetch(self, cdn: CloudFrontModel, url: str, kind: str, now: float) -> Seen:
        """Fetch ``url`` as this browser would: its HTTP cache first (RFC 9111)."""
        cached = self.cache.get(url) if self.profile.caches else None
        if cached is not None and now - cached.stored_at < cached.lifetime:
            reply = cached.reply  # fresh in the browser: no request at all
            return Seen(
                self.name, self.profile, kind, url, now, 0, reply.headers, reply.content, "Browser"
            )
        headers = {}
        accept = self.accept_for(kind)
        if accept is not None:
            headers["Accept"] = accept
        if self.profile.accept_encoding:
            headers["Accept-Encoding"] = self.profile.accept_encoding
        if cached is not None and "etag" in cached.reply.headers:
            headers["If-None-Match"] = cached.reply.headers["etag"]
        elif cached is not None and "last-modified" in cached.reply.headers:
            headers["If-Modified-Since"] = cached.reply.headers["last-modified"]
        reply = cdn.request(url, headers)
        used = reply
        if reply.status == 304 and cached is not None:
            used = cached.reply
            merged = {**cached.reply.headers, **reply.headers}
            self.cache[url] = Cached(cached.reply._replace(headers=merged), now, _lifetime(merged))
        elif reply.status == 200 and self.profile.caches:
            directives = cache_directives(reply.headers.get("cache-control"))
            if "no-store" not in directives:
                self.cache[url] = Cached(reply, now, _lifetime(reply.headers))
        return Seen(
            self.name, self.profile, kind, url, now, reply.status, used.headers, used.content,
            reply.source, reply.waited, reply.cold_start, reply.held,
        )  # fmt: skip


def _lifetime(headers: dict[str, str]) -> float:
    """A browser's freshness lifetime: max-age minus the CDN's Age; no-cache: 0."""
    directives = cache_directives(headers.get("cache-control"))
    max_age = _seconds(directives.get("max-age"))
    if "no-cache" in directives or max_age is None:
        return 0.0
    return max(0.0, max_age - int(headers.get("age", "0")))


def subresources(page: bytes) -> list[tuple[str, str]]:
    """``(url, kind)`` of the stylesheets, images and scripts a page links to."""
    out = []
    for match in _SUBRESOURCE.finditer(page.decode("utf-8", "replace")):
        tag = match.group(0)
        kind = "css" if tag.startswith("<link") else "image" if tag.startswith("<img") else "script"
        out.append((match["url"], kind))
    return out


# ---------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------


class SimClock:
    """Simulated seconds; nothing sleeps."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_clients(count: int, rng: random.Random) -> list[Client]:
    profiles, weights = zip(*BROWSER_MIX)
    return [Client(f"client-{index}", rng.choices(profiles, weights)[0]) for index in range(count)]


def page_view(
    cdn: CloudFrontModel,
    client: Client,
    page: str,
    now: float,
    extra: Iterable[tuple[str, str]] = (),
) -> list[Seen]:
    """One page view: the page, then (for browsers) what it links to, then ``extra``."""
    seen = [client.fetch(cdn, page, "page", now)]
    links = subresources(seen[0].content) if client.profile.subresources else []
    for url, kind in dict.fromkeys([*links, *extra]):  # each URL once, in page order
        seen.append(client.fetch(cdn, url, kind, now))
    return seen


# ---------------------------------------------------------------------------
# The origin: API Gateway REST in front of Lambda containers
# ---------------------------------------------------------------------------


#: A Lambda cold start's INIT (runtime and imports) as a viewer waits for it: an assumption.
COLD_START_SECONDS = 0.8
#: CloudFront to API Gateway to Lambda and back, on top of the handler's own time.
ROUND_TRIP_SECONDS = 0.03


class LambdaOrigin:
    """``app(event, context)`` through ``apigw.py``'s API Gateway model.

    ``make_app`` builds one container (a Chalice app with its own imports and
    ContentManager); each request goes to a container picked by ``rng``. API Gateway
    adds Content-Length and Date. ``redeploy`` drops every container.
    """

    def __init__(
        self, make_app: Callable[[], Any], containers: int, rng: random.Random, clock: SimClock
    ) -> None:
        self.make_app = make_app
        self.size = containers
        self.rng = rng
        self.clock = clock
        self.containers: list[Any] = []
        self.invocations = 0
        self.bytes = 0
        self.cold_starts = 0

    def redeploy(self) -> None:
        self.containers = []

    def __call__(self, url: str, headers: dict[str, str]) -> Delivered:
        cold = len(self.containers) < self.size
        if cold:
            self.containers.append(self.make_app())
            self.cold_starts += 1
            app = self.containers[-1]
        else:
            app = self.rng.choice(self.containers)
        event = make_event(app, "GET", url, headers)
        started = time.perf_counter()
        result = app(event, lambda_context())
        seconds = time.perf_counter() - started + (COLD_START_SECONDS if cold else 0.0)
        delivered = deliver(result, headers, app.api.binary_types)
        out = {name.lower(): value for name, value in delivered.headers.items()}
        out["content-length"] = str(len(delivered.body))
        out["date"] = formatdate(self.clock(), usegmt=True)
        self.invocations += 1
        self.bytes += len(delivered.body)
        return Delivered(delivered.status, out, delivered.body, seconds + ROUND_TRIP_SECONDS, cold)


@dataclass(frozen=True)
class Fault:
    """An origin fault from ``start`` to ``end`` (simulated seconds) for ``share`` of the calls.

    ``kind``: ``down`` (the Lambda cannot be invoked: API Gateway answers 503), ``throttle``
    (429 or 502, one or the other at random), ``bad-deploy`` (every page, not static files,
    answers 500) or ``timeout`` (the origin hangs: :class:`OriginTimeoutError`).
    """

    name: str
    start: float
    end: float
    kind: str
    share: float = 1.0


class FaultyOrigin:
    """``origin`` with ``faults`` injected by simulated time; ``static_prefix`` is spared by a
    bad deploy. Counts the calls that failed (they reach API Gateway, not the function)."""

    def __init__(
        self,
        origin: Origin,
        clock: Callable[[], float],
        faults: Iterable[Fault],
        rng: random.Random,
        static_prefix: str = "/static/",
    ) -> None:
        self.origin = origin
        self.clock = clock
        self.faults = tuple(faults)
        self.rng = rng
        self.static_prefix = static_prefix
        self.failed: Counter[str] = Counter()

    def active(self, now: float) -> Fault | None:
        return next((f for f in self.faults if f.start <= now < f.end), None)

    def __call__(self, url: str, headers: dict[str, str]) -> Delivered:
        fault = self.active(self.clock())
        if fault is None or (fault.share < 1 and self.rng.random() >= fault.share):
            return self.origin(url, headers)
        if fault.kind == "bad-deploy" and url.startswith(self.static_prefix):
            return self.origin(url, headers)
        self.failed[fault.name] += 1
        if fault.kind == "timeout":
            raise OriginTimeoutError(url)
        status = {"down": 503, "bad-deploy": 500}.get(fault.kind) or self.rng.choice((429, 502))
        body = b'{"message": "Internal server error"}'
        headers = {"content-type": "application/json", "content-length": str(len(body))}
        return Delivered(status, headers, body, ROUND_TRIP_SECONDS)


def image_type(body: bytes) -> str | None:
    """The image type of ``body`` from its signature (what a client decodes), else ``None``."""
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    if body[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return None


@contextlib.contextmanager
def count_renders() -> Iterator[Counter[str]]:
    """Count Jinja2 ``Template.render`` calls (the real render runs) by template name."""
    import jinja2.environment

    counts: Counter[str] = Counter()
    original = jinja2.environment.Template.render

    def render(self: Any, *args: Any, **kwargs: Any) -> str:
        counts[self.name or "<string>"] += 1
        return original(self, *args, **kwargs)

    jinja2.environment.Template.render = render  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        jinja2.environment.Template.render = original  # type: ignore[method-assign]
