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
  revalidated on every request; else ``s-maxage``, ``max-age``, ``Expires`` (against the
  response's ``Date``) or the policy's DefaultTTL, clamped to [MinTTL, MaxTTL].
- Revalidation sends the stored ETag (If-None-Match) and Last-Modified
  (If-Modified-Since) as the origin sent them; a 304 refreshes the stored object and
  updates its headers (RFC 9111 §4.3.4).
- Viewers' conditional requests are answered from the cache; If-None-Match is ignored
  when the object has no ETag (then If-Modified-Since counts).
- Compression (``Compress``): only responses without Content-Encoding, of a type
  CloudFront compresses, with a Content-Length of 1,000 to 10,000,000 bytes; brotli when
  the key's encoding class has it, else gzip. A strong ETag becomes weak (``W/``), an
  invalid one (not starting with ``"`` or ``W/``) is removed. Not after a 304.
- Only 200 responses to GET are stored; one edge cache, no eviction, no request collapsing.
  Brotli is not re-implemented: a brotli object keeps its identity bytes (``Reply.content``
  is what the viewer decodes either way); gzip is real.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import random
import re
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
            )
        )
    return out


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


# ---------------------------------------------------------------------------
# The edge cache
# ---------------------------------------------------------------------------


class Delivered(NamedTuple):
    """What the origin (API Gateway) answered: lower-case header names."""

    status: int
    headers: dict[str, str]
    body: bytes


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

    def fresh(self, now: float) -> bool:
        return now - self.stored_at < self.ttl


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    source: str  # "Hit", "RefreshHit", "Miss", "Pass"

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


class CloudFrontModel:
    """One CloudFront edge cache in front of ``origin``, configured by ``template``."""

    def __init__(
        self,
        template: dict,
        origin: Origin,
        clock: Callable[[], float],
        viewer_function: ViewerFunction | None = None,
    ) -> None:
        self.behaviours = behaviours_from_template(template)
        self.origin = origin
        self.clock = clock
        self.viewer_function = viewer_function
        self.cache: dict[tuple, Stored] = {}
        self.origin_log: list[OriginRequest] = []
        self.results: Counter[str] = Counter()

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
        key = (
            path,
            query if behaviour.query_strings else "",
            tuple(headers.get(name) for name in behaviour.key_headers),
            encoding,
        )
        now = self.clock()
        stored = self.cache.get(key)
        if stored is not None and stored.fresh(now):
            source = "Hit"
        else:
            forwarded = {name: headers[name] for name in behaviour.key_headers if name in headers}
            forwarded.update(
                {name: headers[name] for name in behaviour.forwarded_headers if name in headers}
            )
            kept = [
                pair.strip()
                for pair in headers.get("cookie", "").split(";")
                if pair.split("=")[0].strip() in behaviour.forwarded_cookies
            ]
            if kept:
                forwarded["cookie"] = "; ".join(kept)
            if encoding:
                forwarded["accept-encoding"] = encoding
            target = path + ("?" + query if query and behaviour.query_strings else "")
            stored, source, answer = self._fetch(target, key, forwarded, stored, behaviour, now)
            if stored is None:
                self.results["Pass"] += 1
                return Reply(answer.status, dict(answer.headers), answer.body, "Pass")
        self.results[source] += 1
        return self._answer(stored, headers, source, now)

    def _fetch(
        self,
        target: str,
        key: tuple,
        headers: dict[str, str],
        stored: Stored | None,
        behaviour: Behaviour,
        now: float,
    ) -> tuple[Stored | None, str, Delivered]:
        conditional = dict(headers)
        if stored is not None and stored.origin_etag:
            conditional["if-none-match"] = stored.origin_etag
        if stored is not None and stored.last_modified:
            conditional["if-modified-since"] = stored.last_modified
        answer = self.origin(target, conditional)
        revalidation = len(conditional) > len(headers)
        self.origin_log.append(
            OriginRequest(
                target,
                key,
                answer.status,
                len(answer.body),
                revalidation,
                answer.headers.get("content-type", ""),
            )
        )
        if answer.status == 304 and stored is not None:
            for name in ("cache-control", "expires", "date", "last-modified", "vary"):
                if name in answer.headers:
                    stored.headers[name] = answer.headers[name]
            stored.stored_at = now
            stored.ttl = self._ttl(stored.headers, behaviour)
            self.cache[key] = stored
            return stored, "RefreshHit", answer
        directives = cache_directives(answer.headers.get("cache-control"))
        if answer.status != 200 or "no-store" in directives or "private" in directives:
            self.cache.pop(key, None)
            return None, "Pass", answer
        served_headers, body = self._maybe_compress(answer, behaviour, key[3])
        new = Stored(
            headers=served_headers,
            body=body,
            origin_etag=answer.headers.get("etag"),
            last_modified=answer.headers.get("last-modified"),
            stored_at=now,
            ttl=self._ttl(answer.headers, behaviour),
        )
        self.cache[key] = new
        return new, "Miss", answer

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
            reply.source,
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
        if len(self.containers) < self.size:
            self.containers.append(self.make_app())
            self.cold_starts += 1
            app = self.containers[-1]
        else:
            app = self.rng.choice(self.containers)
        event = make_event(app, "GET", url, headers)
        result = app(event, lambda_context())
        delivered = deliver(result, headers, app.api.binary_types)
        out = {name.lower(): value for name, value in delivered.headers.items()}
        out["content-length"] = str(len(delivered.body))
        out["date"] = formatdate(self.clock(), usegmt=True)
        self.invocations += 1
        self.bytes += len(delivered.body)
        return Delivered(delivered.status, out, delivered.body)


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
