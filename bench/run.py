"""Benchmark: this toolkit vs chalice-http-toolkit 0.6.2, through Chalice's real handler.

``make bench`` runs this in ``.venv-bench``. One realistic site (a base layout, an
index page with includes and a macro, flat and nested CSS, a JPEG photo, a PNG
asset) is written to a temporary directory and served by three Chalice apps: a
plain one (the baseline: a bare route returning a small Response), one built on
our module (loaded by path as ``cht_new``, because the PyPI package 0.6.2 is also
called ``chalice_http_toolkit``) and one built on 0.6.2. Every request is an API
Gateway REST proxy event passed to ``app(event, context)``.

Each row is the median of many timed requests after a warm-up; the three
variants are measured in interleaved rounds so that a noisy machine slows them
alike. Read the ratios, not the microseconds. This is a benchmark, not a test:
nothing here fails on a slow number.

Environment: ``BENCH_ITERATIONS`` (timed requests per row and variant, default
5000), ``BENCH_BUDGET`` (seconds per row and variant, default 3; caps slow rows
such as 0.6.2's per-request image conversion), ``BENCH_IMPORT_RUNS`` (default
15), ``BENCH_COLD_RUNS`` (default 5), ``BENCH_FIRST_CONVERSIONS`` (default 20).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import py_compile
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from images_memory import camera_photo, screenshot

ROOT = Path(__file__).resolve().parent.parent
OURS_MODULE = "cht_new"
RESULTS = Path(__file__).resolve().parent / "results.json"

# ---------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------

TEMPLATES = {
    "base.html": (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>{% block title %}{% endblock %} | Example Shop</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="{{ static(\'print.css\') }}">'
        '<link rel="stylesheet" href="{{ static(\'css/vendor/theme.css\') }}">'
        "<script defer src=\"{{ static('js/app.js') }}\"></script></head>\n"
        "<body>{% include 'partials/nav.html' %}<main>{% block body %}{% endblock %}</main>"
        "{% include 'partials/footer.html' %}</body></html>\n"
    ),
    "partials/nav.html": (
        '<nav><a href="/">Home</a>{% for link in nav %}'
        '<a href="{{ link.href }}">{{ link.label }}</a>{% endfor %}</nav>\n'
    ),
    "partials/footer.html": (
        "{% from 'macros.html' import copyright %}<footer>{{ copyright(year) }}"
        "<p>Served by Chalice on AWS Lambda.</p></footer>\n"
    ),
    "partials/card.html": (
        '<article class="card"><img src="{{ static(\'img/photo.jpg\') }}" alt="{{ item.name }}"'
        ' width="400" height="300"><h2>{{ item.name }}</h2><p>{{ item.description }}</p>'
        '<p class="price">{{ "%.2f"|format(item.price) }} EUR</p></article>\n'
    ),
    "macros.html": (
        "{% macro copyright(year) %}<small>&copy; {{ year }} Example</small>{% endmacro %}"
    ),
    "index.html": (
        "{% extends 'base.html' %}{% block title %}{{ title }}{% endblock %}"
        '{% block body %}<h1>{{ title }}</h1><p>{{ intro }}</p><section class="grid">'
        "{% for item in items %}{% include 'partials/card.html' %}{% endfor %}</section>"
        "{% endblock %}"
    ),
}

PAGE_ARGS: dict[str, Any] = {
    "title": "Spring collection <new>",
    "intro": "Hand-made goods from small workshops & studios, shipped within two days.",
    "year": 2025,
    "nav": [{"href": f"/c/{name}", "label": name.title()} for name in ("shoes", "bags", "hats")],
    "items": [
        {
            "name": f"Product {index}",
            "description": "A sturdy, good-looking thing that lasts for years. " * 2,
            "price": 19.5 + index,
        }
        for index in range(12)
    ],
}

_FRESH = itertools.count()


def fresh_args() -> dict[str, Any]:
    """PAGE_ARGS with a title never used before: the page must be rendered (no cache helps)."""
    return {**PAGE_ARGS, "title": f"Spring collection {next(_FRESH)}"}


JSON_BODY = {
    "status": "ok",
    "items": [{"id": index, "name": f"item {index}"} for index in range(10)],
}

ASSET_ETAG = "asset-v1"

#: The sessions' signing key of every benchmark site (long enough for the module's check).
SECRET_KEY = "bench-secret-0123456789abcdefghijklm"


def _css(seed: int, rules: int) -> str:
    return "".join(
        f".c{seed}-{index} {{ margin: {index}px; padding: {index % 7}px; color: #{index:06x}; }}\n"
        for index in range(rules)
    )


def _photo(width: int, height: int, seed: int) -> Any:
    """A small photo-like RGB image (the asset): smooth gradients plus sensor-like noise."""
    from PIL import Image

    gradient = Image.radial_gradient("L").resize((width, height))
    linear = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 18 + seed % 5)
    return Image.merge("RGB", (gradient, linear, Image.blend(gradient, noise, 0.35)))


def write_site(root: Path, first_conversions: int) -> tuple[Path, Path]:
    """Write templates and static files under ``root``; return (templates, static)."""
    import io

    templates = root / "templates"
    static = root / "static"
    for name, text in TEMPLATES.items():
        (templates / name).parent.mkdir(parents=True, exist_ok=True)
        (templates / name).write_text(text)
    for folder in ("css/vendor", "js", "img/first"):
        (static / folder).mkdir(parents=True, exist_ok=True)
    (static / "print.css").write_text(_css(1, 80))
    (static / "css" / "vendor" / "theme.css").write_text(_css(2, 80))
    (static / "js" / "app.js").write_text("document.documentElement.classList.add('js');\n" * 20)
    # Camera-like photos and screenshot-like PNGs (bench/images_memory.py), whose
    # conversions are smaller than them: the image rows time conversions that are served.
    # The repeated one is a product card's photo: its WebP (6 KB) is about as large as
    # the noise picture's this row used before, so the row stays comparable.
    camera_photo((320, 240)).save(static / "img" / "photo.jpg", "JPEG", quality=85)
    for index in range(first_conversions):
        first = static / "img" / "first"
        camera_photo((640, 480), seed=index).save(first / f"{index}.jpg", "JPEG", quality=85)
        screenshot((1280, 800), seed=index).save(first / f"{index}.png", "PNG")
    icon = io.BytesIO()
    _photo(64, 64, 3).save(icon, "PNG")
    (root / "asset.png").write_bytes(icon.getvalue())
    return templates, static


# ---------------------------------------------------------------------------
# The apps
# ---------------------------------------------------------------------------


def load_ours() -> Any:
    """Our ``chalice_http_toolkit.py``, loaded by file path as ``cht_new``."""
    if OURS_MODULE in sys.modules:
        return sys.modules[OURS_MODULE]
    spec = importlib.util.spec_from_file_location(OURS_MODULE, ROOT / "chalice_http_toolkit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[OURS_MODULE] = module
    spec.loader.exec_module(module)
    return module


def load_old() -> tuple[Any, Any] | None:
    """0.6.2's (ContentManager, CloudFront), or None when the package is not installed."""
    try:
        from chalice_http_toolkit.cloudfront import CloudFront
        from chalice_http_toolkit.content import ContentManager
        from chalice_http_toolkit.version import __version__
    except ImportError:
        return None
    if __version__ != "0.6.2":
        return None
    return ContentManager, CloudFront


def _jinja_env(templates: Path) -> Any:
    """A plain Jinja2 environment configured like ours on Lambda (autoescape, no auto-reload)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=jinja2.select_autoescape(("html", "htm", "xml", "svg")),
        auto_reload=False,
    )
    env.globals["static"] = lambda name: f"/static/{name}"
    return env


def build_bare(templates: Path) -> Any:
    """The baseline: a bare route, and a bare route rendering with plain Jinja2."""
    from chalice import Chalice, Response

    app = Chalice(app_name="bare")
    template = _jinja_env(templates).get_template("index.html")

    @app.route("/")
    def bare() -> Response:
        return Response(body="hello", headers={"Content-Type": "text/plain"})

    @app.route("/jinja")
    def jinja() -> Response:
        return Response(
            body=template.render(PAGE_ARGS), headers={"Content-Type": "text/html; charset=utf-8"}
        )

    app.jinja_template = template
    return app


def _site_routes(app: Any, cm: Any, cf: Any, asset: bytes, index_methods: list[str]) -> Any:
    """The routes both toolkits serve the same way (their method names are the same)."""

    @app.route("/", methods=index_methods)
    def index() -> Any:
        return cf.template("index.html", **PAGE_ARGS)

    @app.route("/fresh")
    def fresh() -> Any:
        return cf.template("index.html", **fresh_args())

    @app.route("/api/data")
    def data() -> Any:
        return cm.json(JSON_BODY)

    @app.route("/asset")
    def asset_route() -> Any:
        return cf.asset(lambda: asset, lambda: ASSET_ETAG)

    app.content_manager = cm
    return app


def build_ours(templates: Path, static: Path, asset: bytes) -> Any:
    """Our toolkit on the site: CloudFront pages, registered static routes, JSON, an asset.

    ``auto_reload=False`` is how it runs on Lambda (no stat() per template per request).
    """
    from chalice import Chalice

    module = load_ours()
    app = Chalice(app_name="ours")
    options = {"secret_key": SECRET_KEY} if hasattr(module, "parse_form") else {}
    cm = module.ContentManager(str(templates), str(static), app, auto_reload=False, **options)
    cm.set_static_handler_prefix("/static")
    cf = module.CloudFront(cm, app)
    cm.register_static_routes()
    if options:
        _form_routes(app, cm, cf)

    return _site_routes(app, cm, cf, asset, index_methods=["GET", "HEAD"])


def _form_routes(app: Any, cm: Any, cf: Any) -> None:
    """Our forms and sessions: a token page, a form POST, a page that reads the session."""

    @app.route("/token")
    def token() -> Any:
        return cm.json({"token": cm.csrf_token()})

    @app.route("/form", methods=["POST"], content_types=FORM_TYPES)
    def form() -> Any:
        fields = cm.form()
        upload = fields.files.get("upload")
        return cm.json({"name": fields.get("name"), "size": upload.size if upload else 0})

    @app.route("/session-page")
    def session_page() -> Any:
        cm.session.get("name")
        return cf.template("index.html", **PAGE_ARGS)


def build_old(templates: Path, static: Path, asset: bytes) -> Any:
    """0.6.2 on the same site: its flat ``/static/{filename}`` route plus one per depth.

    Its defaults as deployed: Jinja2's auto-reload on, mtimes read per static request.
    """
    from chalice import Chalice

    content_manager, cloud_front = load_old()
    app = Chalice(app_name="old")
    app.api.binary_types.append("image/*")  # as 0.6.2's scaffolded app.py does
    cm = content_manager(str(templates), str(static), app)
    cm.set_static_handler_prefix("/static")
    cf = cloud_front(cm, app)

    @app.route("/static/{p0}")
    def static1(p0: str) -> Any:
        return cf.static(p0, cache_control="no-cache")

    @app.route("/static/{p0}/{p1}")
    def static2(p0: str, p1: str) -> Any:
        return cf.static(f"{p0}/{p1}", cache_control="no-cache")

    @app.route("/static/{p0}/{p1}/{p2}")
    def static3(p0: str, p1: str, p2: str) -> Any:
        return cf.static(f"{p0}/{p1}/{p2}", cache_control="no-cache")

    return _site_routes(app, cm, cf, asset, index_methods=["GET"])


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------

#: What a browser behind CloudFront sends (CloudFront forwards Accept-Encoding: gzip).
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Accept-Language": "en-GB,en;q=0.9",
    "Accept-Encoding": "gzip",
    "Via": "2.0 0123456789abcdef.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "Qm9vbXBhcmFtcGFyYW1wYXJhbXBhcmFtcGFyYW1wYXJhbQ==",
    "X-Forwarded-For": "198.51.100.7, 130.176.0.1",
}
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CSS_ACCEPT = "text/css,*/*;q=0.1"
#: Negotiates WebP for us (named explicitly) and for 0.6.2 (exact comma-split match).
WEBP_ACCEPT = "image/webp,*/*;q=0.8"
#: Chrome's Accept for an <img>: AVIF for us, WebP for 0.6.2 (the first it knows).
CHROME_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
#: Row -> (path of picture ``index``, Accept, its source format) for the first conversions.
FIRST_CONVERSIONS = {
    "first image conversion": ("/static/img/first/{index}.jpg", WEBP_ACCEPT, "JPEG"),
    "first screenshot conversion (Chrome)": (
        "/static/img/first/{index}.png",
        CHROME_IMAGE_ACCEPT,
        "PNG",
    ),
}


class LambdaContext:
    """The attributes of a Lambda context object that Chalice reads."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = "256"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2025/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


CONTEXT = LambdaContext()


def _match_route(app: Any, path: str) -> tuple[str, dict[str, str]]:
    """The app's route for ``path`` and its captured parameters (literal segments win)."""
    segments = path.strip("/").split("/") if path.strip("/") else []
    best: tuple[int, str, dict[str, str]] | None = None
    for route in app.routes:
        parts = route.strip("/").split("/") if route.strip("/") else []
        if len(parts) != len(segments):
            continue
        captured = {}
        for part, segment in zip(parts, segments):
            if part.startswith("{") and part.endswith("}"):
                captured[part[1:-1]] = segment
            elif part != segment:
                break
        else:
            literal = len(parts) - len(captured)
            if best is None or literal > best[0]:
                best = (literal, route, captured)
    if best is None:
        raise LookupError(f"no route for {path}")
    return best[1], best[2]


def make_event(app: Any, method: str, path: str, headers: dict[str, str]) -> dict:
    """An API Gateway REST proxy event (the shape of apigw.py's ``make_event``)."""
    resource_path, captured = _match_route(app, path)
    all_headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com"}
    all_headers.update({"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"})
    all_headers.update(headers)
    return {
        "resource": resource_path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": captured or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource_path,
            "httpMethod": method,
            "path": "/api" + path,
            "stage": "api",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "198.51.100.7"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _headers(accept: str, **extra: str) -> dict[str, str]:
    return {**BROWSER, "Accept": accept, **extra}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send stdout to /dev/null: 0.6.2 prints several lines on every request."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def call(app: Any, event: dict) -> dict:
    return app(event, CONTEXT)


def header(response: dict, name: str) -> str | None:
    for key, value in response["headers"].items():
        if key.lower() == name.lower():
            return value
    return None


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


class Timer:
    """Collects per-request samples for named variants, measured in interleaved rounds."""

    def __init__(self, iterations: int, budget: float, rounds: int = 10) -> None:
        self.iterations = iterations
        self.budget = budget
        self.rounds = max(1, min(rounds, iterations))

    def measure(self, variants: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {name: [] for name in variants}
        per_round = max(1, self.iterations // self.rounds)
        round_budget = self.budget / self.rounds
        for fn in variants.values():
            warm_until = time.perf_counter() + self.budget / 10
            for _ in range(max(1, min(50, self.iterations // 10))):
                fn()
                if time.perf_counter() > warm_until:
                    break
        for _ in range(self.rounds):
            for name, fn in variants.items():
                out = samples[name]
                spent = 0.0
                for _ in range(per_round):
                    start = time.perf_counter()
                    fn()
                    elapsed = time.perf_counter() - start
                    out.append(elapsed * 1e6)
                    spent += elapsed
                    if spent > round_budget:
                        break  # a slow variant: fewer samples, same share of the budget
        return samples


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------


def _event(app: Any, path: str, headers: dict[str, str]) -> dict:
    return make_event(app, "GET", path, headers)


def _validated(app: Any, path: str, headers: dict[str, str], validator: str) -> dict:
    """A conditional request for ``path`` built from the validator of a first 200."""
    with quiet():
        first = call(app, _event(app, path, headers))
    if validator == "etag":
        condition = {"If-None-Match": header(first, "ETag") or ""}
    else:
        condition = {"If-Modified-Since": header(first, "Last-Modified") or ""}
    event = _event(app, path, {**headers, **condition})
    with quiet():
        status = call(app, event)["statusCode"]
    if status != 304:
        raise RuntimeError(f"{path} with {condition} answered {status}, not 304")
    return event


def _expect(app: Any, event: dict, status: int, content_type: str | None = None) -> None:
    """Check the row exercises what it says: a benchmark of a 500 is worthless."""
    with quiet():
        response = call(app, event)
    got = header(response, "Content-Type") or ""
    if response["statusCode"] != status or (content_type and not got.startswith(content_type)):
        raise RuntimeError(
            f"{event['path']} answered {response['statusCode']} {got!r}, "
            f"expected {status} {content_type or ''}"
        )


def _requests(app: Any, old: bool) -> dict[str, Callable[[], Any] | None]:
    """Zero-argument callables per row for one toolkit app (None: not applicable)."""
    page = _headers(PAGE_ACCEPT)
    css = _headers(CSS_ACCEPT)
    image = _headers(WEBP_ACCEPT)
    events: dict[str, dict | None] = {
        "JSON": _event(app, "/api/data", _headers("application/json")),
        "static 200, flat": _event(app, "/static/print.css", css),
        "static 200, nested": _event(app, "/static/css/vendor/theme.css", css),
        "static 304": _validated(
            app, "/static/css/vendor/theme.css", css, "modified" if old else "etag"
        ),
        "template 200": _event(app, "/", page),
        "template 200, no gzip": _event(
            app, "/", {k: v for k, v in page.items() if k != "Accept-Encoding"}
        ),
        "template 200, new arguments": _event(app, "/fresh", page),
        "template 200, new arguments, no gzip": _event(
            app, "/fresh", {k: v for k, v in page.items() if k != "Accept-Encoding"}
        ),
        "template 304": _validated(app, "/", page, "etag"),
        "image repeat (WebP)": _event(app, "/static/img/photo.jpg", image),
        "asset 200": _event(app, "/asset", _headers("*/*")),
        "asset 304": _validated(app, "/asset", _headers("*/*"), "etag"),
    }
    if not old and not hasattr(sys.modules[OURS_MODULE], "negotiate_image_format"):
        events["image repeat (WebP)"] = None
    forms = not old and hasattr(sys.modules[OURS_MODULE], "parse_form")
    events.update(_form_events(app) if forms else dict.fromkeys(FORM_ROWS))
    checks = {
        "JSON": (200, "application/json"),
        "static 200, flat": (200, "text/css"),
        "static 200, nested": (200, "text/css"),
        "template 200": (200, "text/html"),
        "template 200, no gzip": (200, "text/html"),
        "template 200, new arguments": (200, "text/html"),
        "template 200, new arguments, no gzip": (200, "text/html"),
        "image repeat (WebP)": (200, "image/webp"),
        "asset 200": (200, "image/png"),
        "form POST, urlencoded": (200, "application/json"),
        "form POST, 1 MB multipart": (200, "application/json"),
        "template 200 + session": (200, "text/html"),
    }
    for name, (status, content_type) in checks.items():
        if events[name] is not None:
            _expect(app, events[name], status, content_type)
    return {
        name: (None if event is None else (lambda event=event: call(app, event)))
        for name, event in events.items()
    }


def function_url_event(rest_event: dict) -> dict:
    """The payload format 2.0 event a Function URL sends for the same request."""
    headers = {name.lower(): value for name, value in rest_event["headers"].items()}
    headers["host"] = "abcdefghij.lambda-url.us-east-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": rest_event["path"],
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "http": {
                "method": rest_event["httpMethod"],
                "path": rest_event["path"],
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1796162400000,
        },
        "isBase64Encoded": False,
    }


def _adapter_rows(
    bare: Any, bare_event: dict, ours: Any, page_304: dict, timer: Timer
) -> dict[str, dict[str, Any]]:
    """The front-door adapter's cost: the same requests as Function URL events."""
    handler_for = getattr(sys.modules[OURS_MODULE], "lambda_handler", None)
    if handler_for is None:
        return {}
    bare_handler, ours_handler = handler_for(bare), handler_for(ours)
    bare_v2, page_v2 = function_url_event(bare_event), function_url_event(page_304)
    # The page's ETag on this host (url_for()'s URLs differ by host and stage).
    fresh = {k: v for k, v in page_v2["headers"].items() if k != "if-none-match"}
    answer = ours_handler({**page_v2, "headers": fresh}, CONTEXT)
    etag = {name.lower(): value for name, value in answer["headers"].items()}["etag"]
    page_v2["headers"]["if-none-match"] = etag
    if ours_handler(page_v2, CONTEXT)["statusCode"] != 304:
        raise RuntimeError("the template 304 through lambda_handler is not a 304")
    samples = timer.measure(
        {
            "bare": lambda: call(bare, bare_event),
            "adapter": lambda: bare_handler(bare_v2, CONTEXT),
            "page": lambda: ours_handler(page_v2, CONTEXT),
        }
    )
    return {
        "bare route via lambda_handler (Function URL)": {
            "ours": median(samples["adapter"]),
            "n": {"ours": len(samples["adapter"])},
        },
        "template 304 via lambda_handler (Function URL)": {
            "ours": median(samples["page"]),
            "n": {"ours": len(samples["page"])},
        },
    }


FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data"]
MULTIPART_BOUNDARY = "----bench7MA4YWxkTrZu0gW"


def _form_events(app: Any) -> dict[str, dict]:
    """POSTs carrying this session's CSRF token, as a browser sends them through API Gateway."""
    with quiet():
        first = call(app, _event(app, "/token", _headers("application/json")))
    cookie = first["multiValueHeaders"]["Set-Cookie"][0].split(";")[0]
    token = json.loads(first["body"])["token"]
    same_origin = {"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}
    fields = "&".join(f"field{i}=value+{i}+%C3%A9" for i in range(10))
    urlencoded = make_event(
        app,
        "POST",
        "/form",
        _headers(PAGE_ACCEPT, **same_origin, **{"Content-Type": FORM_TYPES[0]}),
    )
    urlencoded["body"] = f"name=Zo%C3%AB&{fields}&csrf_token={token}"
    data = bytes(range(256)) * 4096  # 1 MiB
    body = (
        (
            f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f'{token}\r\n--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="name"'
            f"\r\n\r\nZo\u00eb\r\n--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="upload"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
    multipart = make_event(
        app, "POST", "/form", _headers(PAGE_ACCEPT, **same_origin, **{"Content-Type": content_type})
    )
    # API Gateway with binaryMediaTypes */* hands the body over base64-encoded.
    multipart["body"] = base64.b64encode(body).decode("ascii")
    multipart["isBase64Encoded"] = True
    session_page = _event(app, "/session-page", _headers(PAGE_ACCEPT, Cookie=cookie))
    return {
        "form POST, urlencoded": urlencoded,
        "form POST, 1 MB multipart": multipart,
        "template 200 + session": session_page,
    }


def _first_conversion(app: Any, path: str, accept: str, expected: str | None) -> float:
    """Microseconds for the first request of ``path`` (a cold conversion).

    ``expected``: the Content-Type a served conversion has; anything else (the
    original, because the conversion was not smaller) fails the benchmark.
    """
    event = _event(app, path, _headers(accept))
    start = time.perf_counter()
    response = call(app, event)
    elapsed = (time.perf_counter() - start) * 1e6
    got = header(response, "Content-Type")
    if expected is not None and (response["statusCode"] != 200 or got != expected):
        raise RuntimeError(f"{path} answered {response['statusCode']} {got!r}, not {expected}")
    return elapsed


def _first_conversions(apps: dict[str, Any], count: int, row: str) -> dict[str, list[float]]:
    """Cold conversions per app, alternating between the apps so noise hits both alike."""
    path, accept, source_format = FIRST_CONVERSIONS[row]
    expected = {}
    if "ours" in apps:  # apps holds "ours" only when our module negotiates images
        target = sys.modules[OURS_MODULE].negotiate_image_format(accept, source_format)
        expected["ours"] = f"image/{(target or source_format).lower()}"
    out: dict[str, list[float]] = {name: [] for name in apps}
    for index in range(count):
        for name, app in apps.items():
            out[name].append(
                _first_conversion(app, path.format(index=index), accept, expected.get(name))
            )
    return out


TARGETS = {
    "static 304": ("<= 1.3x bare", 1.3, "bare"),
    "template 304": ("<= 1.3x bare", 1.3, "bare"),
    "asset 304": ("<= 1.3x bare", 1.3, "bare"),
    "static 200, flat": ("<= 1.5x bare", 1.5, "bare"),
    "static 200, nested": ("<= 1.5x bare", 1.5, "bare"),
    "template 200": ("<= 1.1x (bare + Jinja2)", 1.1, "bare+jinja"),
    # (the bare render is not compressed: the target is read without gzip, as beside the peers)
    "template 200, new arguments, no gzip": ("<= 1.1x (bare + Jinja2)", 1.1, "bare+jinja"),
    "image repeat (WebP)": ("<= 2x static 200", 2.0, "static 200, nested"),
}

ROW_ORDER = [
    "bare route",
    "JSON",
    "static 200, flat",
    "static 200, nested",
    "static 304",
    "template 200",
    "template 200, no gzip",
    "template 200, new arguments",
    "template 200, new arguments, no gzip",
    "template 304",
    "image repeat (WebP)",
    "first image conversion",
    "first screenshot conversion (Chrome)",
    "asset 200",
    "asset 304",
    "Jinja2 render (no Chalice)",
    "bare route + Jinja2 render",
    "bare route via lambda_handler (Function URL)",
    "template 304 via lambda_handler (Function URL)",
    "form POST, urlencoded",
    "form POST, 1 MB multipart",
    "template 200 + session",
]
FORM_ROWS = ROW_ORDER[-3:]


def measure_rows(
    site: tuple[Path, Path, bytes], timer: Timer, include_old: bool, first_conversions: int
) -> dict[str, dict[str, Any]]:
    """Median microseconds per row for bare, ours and (if installed) 0.6.2."""
    templates, static, asset = site
    bare = build_bare(templates)
    ours = build_ours(templates, static, asset)
    old = build_old(templates, static, asset) if include_old else None
    bare_event = _event(bare, "/", _headers("*/*"))
    jinja_event = _event(bare, "/jinja", _headers(PAGE_ACCEPT))
    template = bare.jinja_template

    def bare_call() -> Any:
        return call(bare, bare_event)

    ours_requests = _requests(ours, old=False)
    with quiet():
        old_requests = _requests(old, old=True) if old is not None else {}
    medians: dict[str, dict[str, Any]] = {name: {} for name in ROW_ORDER}
    bare_samples: list[float] = []
    with quiet():  # 0.6.2's prints go to /dev/null; both apps run under the same redirect
        for name, ours_fn in ours_requests.items():
            variants = {"bare": bare_call}
            if ours_fn is not None:
                variants["ours"] = ours_fn
            if old_requests.get(name) is not None:
                variants["old"] = old_requests[name]
            samples = timer.measure(variants)
            bare_samples += samples["bare"]
            medians[name] = {key: median(samples.get(key, [])) for key in ("ours", "old")}
            medians[name]["n"] = {key: len(samples.get(key, [])) for key in ("ours", "old")}
        samples = timer.measure(
            {
                "bare": bare_call,
                "jinja": lambda: template.render(PAGE_ARGS),
                "bare+jinja": lambda: call(bare, jinja_event),
            }
        )
        bare_samples += samples["bare"]
        medians["Jinja2 render (no Chalice)"] = {"ours": median(samples["jinja"])}
        medians["bare route + Jinja2 render"] = {"ours": median(samples["bare+jinja"])}
        medians["bare route"] = {"ours": median(bare_samples), "n": {"ours": len(bare_samples)}}
        page_304 = _validated(ours, "/", _headers(PAGE_ACCEPT), "etag")
        medians.update(_adapter_rows(bare, bare_event, ours, page_304, timer))
        converting = {"old": old} if old is not None else {}
        if hasattr(sys.modules[OURS_MODULE], "negotiate_image_format"):
            converting["ours"] = ours
        for row in FIRST_CONVERSIONS:
            firsts = _first_conversions(converting, first_conversions, row)
            ours_first, old_first = firsts.get("ours", []), firsts.get("old", [])
            medians[row] = {
                "ours": median(ours_first),
                "old": median(old_first),
                "n": {"ours": len(ours_first), "old": len(old_first)},
            }
    return medians


def judge(medians: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Ratios, targets and verdicts for the table."""
    bare = medians["bare route"]["ours"]
    bases = {
        "bare": bare,
        "bare+jinja": bare + medians["Jinja2 render (no Chalice)"]["ours"],
        "static 200, nested": medians["static 200, nested"].get("ours"),
    }
    rows = []
    for name in ROW_ORDER:
        ours = medians[name].get("ours")
        old = medians[name].get("old")
        row: dict[str, Any] = {
            "row": name,
            "ours_us": ours,
            "ours_x_bare": ours / bare if ours is not None else None,
            "old_us": old,
            "ours_over_old": ours / old if ours is not None and old else None,
            "samples": medians[name].get("n", {}),
            "target": None,
            "target_met": None,
            "faster_than_old": (ours < old) if ours is not None and old else None,
        }
        if name in TARGETS and ours is not None:
            text, factor, base = TARGETS[name]
            limit = factor * bases[base] if bases[base] is not None else None
            row["target"] = text
            row["target_us"] = limit
            row["target_met"] = ours <= limit if limit is not None else None
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Fresh interpreters: import cost, cold start, peak RSS
# ---------------------------------------------------------------------------

_IMPORT_SNIPPET = """
import importlib.machinery, importlib.util, json, sys, time
kind, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
import chalice
chalice_done = time.perf_counter()
if kind == "old":
    import chalice_http_toolkit.content, chalice_http_toolkit.cloudfront
else:
    if not path.endswith(".pyc"):  # compile it: no .pyc of any __pycache__ is read or written
        sys.pycache_prefix, sys.dont_write_bytecode = "/nonexistent-pycache", True
    loader = (importlib.machinery.SourcelessFileLoader if path.endswith(".pyc")
              else importlib.machinery.SourceFileLoader)("cht_new", path)
    spec = importlib.util.spec_from_file_location("cht_new", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cht_new"] = module
    spec.loader.exec_module(module)
done = time.perf_counter()
lazy = [name for name in ("jinja2", "PIL", "magic", "hashlib") if name in sys.modules]
print(json.dumps({"chalice_ms": (chalice_done - start) * 1e3,
                  "module_ms": (done - chalice_done) * 1e3, "loaded": lazy}))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    env.pop("PYTHONPATH", None)
    return env


def _run_child(args: list[str], cwd: str) -> dict:
    completed = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"child {args[:3]} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def import_cost(runs: int, include_old: bool, cwd: str) -> dict[str, Any]:
    """Median ms to import the module in a fresh interpreter, over ``import chalice``.

    ``ours`` loads a precompiled .pyc (as 0.6.2 loads from site-packages);
    ``ours, compiling`` loads the source, which is what a cold start pays when
    the deployment ships no .pyc (Lambda's /var/task is read-only, so none is written).
    """
    import py_compile

    pyc = py_compile.compile(
        str(ROOT / "chalice_http_toolkit.py"), cfile=str(Path(cwd) / "cht_new.pyc"), doraise=True
    )
    paths = {"ours": pyc, "ours, compiling": str(ROOT / "chalice_http_toolkit.py"), "old": ""}
    kinds = ["ours", "ours, compiling"] + (["old"] if include_old else [])
    samples: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            args = ["-c", _IMPORT_SNIPPET, "old" if kind == "old" else "ours", paths[kind]]
            samples[kind].append(_run_child(args, cwd))
    out: dict[str, Any] = {"runs": runs}
    for kind in kinds:
        out[kind] = {
            "chalice_ms": median([s["chalice_ms"] for s in samples[kind]]),
            "module_ms": median([s["module_ms"] for s in samples[kind]]),
            "loaded_at_import": samples[kind][-1]["loaded"],
        }
    out["target"] = "<= 5 ms over import chalice"
    out["target_met"] = out["ours"]["module_ms"] <= 5.0
    return out


def _child_cold(kind: str, site_root: str, prime: bool) -> dict[str, Any]:
    """In a fresh interpreter: import, build, optionally prime, then time the first requests."""
    start = time.perf_counter()
    import chalice  # noqa: F401

    if kind == "ours":
        load_ours()
    else:
        load_old()
    imported = time.perf_counter()
    root = Path(site_root)
    asset = (root / "asset.png").read_bytes()
    with quiet():
        build = build_ours if kind == "ours" else build_old
        app = build(root / "templates", root / "static", asset)
    built = time.perf_counter()
    result: dict[str, Any] = {"import_ms": (imported - start) * 1e3}
    result["build_ms"] = (built - imported) * 1e3
    if prime:
        prime_fn = getattr(app.content_manager, "prime", None)
        if prime_fn is None:
            return {"primed": "n/a"}
        prime_fn()
        result["prime_ms"] = (time.perf_counter() - built) * 1e3
    requests = {
        "template 200": ("/", _headers(PAGE_ACCEPT)),
        "static 200": ("/static/css/vendor/theme.css", _headers(CSS_ACCEPT)),
        "image (WebP)": ("/static/img/photo.jpg", _headers(WEBP_ACCEPT)),
    }
    for name, (path, headers) in requests.items():
        event = _event(app, path, headers)
        with quiet():
            first = time.perf_counter()
            call(app, event)
            second = time.perf_counter()
            call(app, event)
            third = time.perf_counter()
        result[f"{name} first_ms"] = (second - first) * 1e3
        result[f"{name} second_ms"] = (third - second) * 1e3
    return result


def cold_start(runs: int, include_old: bool, site_root: Path, cwd: str) -> dict[str, Any]:
    """Median first-request times in fresh interpreters, with and without priming."""
    kinds = [("ours", False), ("ours", True)] + ([("old", False)] if include_old else [])
    # As deployed by `setup`: a checked-hash .pyc beside the module, so no child compiles it
    # (a stale __pycache__ from an edit would otherwise be compiled again in every child).
    py_compile.compile(
        str(ROOT / "chalice_http_toolkit.py"),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    out: dict[str, Any] = {"runs": runs}
    for kind, prime in kinds:
        label = f"{kind}{', primed' if prime else ''}"
        samples = []
        for _ in range(runs):
            args = [__file__, "--child", "cold", kind, str(site_root)]
            samples.append(_run_child([*args, "prime"] if prime else args, cwd))
            if samples[-1].get("primed") == "n/a":
                break
        if samples[-1].get("primed") == "n/a":
            out[label] = "n/a"
            continue
        out[label] = {key: median([s[key] for s in samples]) for key in samples[0]}
    return out


def _child_rss(kind: str, site_root: str) -> dict[str, Any]:
    """Peak RSS after one request of each kind (bare: import chalice and one bare request)."""
    root = Path(site_root)
    asset = (root / "asset.png").read_bytes()
    with quiet():
        if kind == "bare":
            app = build_bare(root / "templates")
            call(app, _event(app, "/", _headers("*/*")))
        else:
            if kind == "ours":
                load_ours()
            build = build_ours if kind == "ours" else build_old
            app = build(root / "templates", root / "static", asset)
            for fn in _requests(app, old=kind == "old").values():
                if fn is not None:
                    fn()
    return {"peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    """This process's peak RSS in MiB.

    Linux's ``ru_maxrss`` survives fork and exec, so a child of a large parent
    reports the parent's size; ``VmHWM`` belongs to the new address space.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(include_old: bool, site_root: Path, cwd: str) -> dict[str, Any]:
    kinds = ["bare", "ours"] + (["old"] if include_old else [])
    return {
        kind: _run_child([__file__, "--child", "rss", kind, str(site_root)], cwd)["peak_rss_mib"]
        for kind in kinds
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _x(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _ms(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.1f}"


def _verdict(row: dict[str, Any]) -> str:
    parts = []
    if row["target_met"] is not None:
        parts.append("PASS" if row["target_met"] else "MISS")
    if row["faster_than_old"] is not None:
        parts.append("faster than 0.6.2" if row["faster_than_old"] else "SLOWER than 0.6.2")
    return "; ".join(parts)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| path | ours µs | x bare | 0.6.2 µs | ours / 0.6.2 | target | result |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['row']} | {_us(row['ours_us'])} | {_x(row['ours_x_bare'])} "
            f"| {_us(row['old_us'])} | {_x(row['ours_over_old'])} | {row['target'] or ''} "
            f"| {_verdict(row)} |"
        )
    imports = results.get("import")
    if imports:
        lines += ["", "| import in a fresh interpreter (median ms) | `import chalice` | module |"]
        lines.append("|---|---:|---:|")
        labels = (
            ("ours", "ours (.pyc)"),
            ("ours, compiling", "ours (source, no .pyc)"),
            ("old", "0.6.2 (.pyc)"),
        )
        for kind, label in labels:
            if kind in imports:
                item = imports[kind]
                loaded = ", ".join(item["loaded_at_import"]) or "none"
                lines.append(
                    f"| {label}; also loaded: {loaded} | {_ms(item['chalice_ms'])} "
                    f"| {_ms(item['module_ms'])} |"
                )
        verdict = "PASS" if imports["target_met"] else "MISS"
        lines.append(f"| target {imports['target']} | | {verdict} |")
    cold = results.get("cold_start")
    if cold:
        lines += [
            "",
            "| cold start, fresh interpreter (median ms) | import chalice + toolkit | build app "
            "| prime | 1st page | then 1st static | then 1st image | 2nd page |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, item in cold.items():
            if label == "runs":
                continue
            if not isinstance(item, dict):
                lines.append(f"| {label} | {item} | | | | | | |")
                continue
            lines.append(
                f"| {label} | {_ms(item.get('import_ms'))} | {_ms(item.get('build_ms'))} "
                f"| {_ms(item.get('prime_ms'))} | {_ms(item.get('template 200 first_ms'))} "
                f"| {_ms(item.get('static 200 first_ms'))} "
                f"| {_ms(item.get('image (WebP) first_ms'))} "
                f"| {_ms(item.get('template 200 second_ms'))} |"
            )
    rss = results.get("peak_rss_mib")
    if rss:
        lines += ["", "| peak RSS after one request of each kind | MiB |", "|---|---:|"]
        labels = {"bare": "bare Chalice", "ours": "ours", "old": "0.6.2"}
        lines += [f"| {labels[kind]} | {value:.1f} |" for kind, value in rss.items()]
    meta = results["meta"]
    lines += [
        "",
        f"Python {meta['python']}, Chalice {meta['chalice']}, {meta['machine']}; "
        f"up to {meta['iterations']} timed requests per row and variant after warm-up "
        f"(budget {meta['budget_s']} s), medians. The machine is shared and noisy: "
        "read the ratios, measured in one run, not the microseconds. "
        "0.6.2 prints on every request; stdout goes to /dev/null while timing "
        "(both toolkits run under the same redirect).",
    ]
    return "\n".join(lines)


def run(
    *,
    iterations: int,
    budget: float,
    import_runs: int,
    cold_runs: int,
    first_conversions: int,
    include_old: bool | None = None,
    output: Path | None = RESULTS,
) -> dict[str, Any]:
    """Run the whole benchmark; return the results (and write them to ``output``)."""
    import chalice

    if include_old is None:
        include_old = load_old() is not None
    load_ours()
    with tempfile.TemporaryDirectory(prefix="cht-bench-") as tmp:
        site_root = Path(tmp) / "site"
        templates, static = write_site(site_root, first_conversions)
        asset = (site_root / "asset.png").read_bytes()
        timer = Timer(iterations, budget)
        medians = measure_rows((templates, static, asset), timer, include_old, first_conversions)
        results: dict[str, Any] = {
            "meta": {
                "python": platform.python_version(),
                "chalice": chalice.__version__,
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "iterations": iterations,
                "budget_s": budget,
                "old_toolkit": "0.6.2" if include_old else None,
                "image_negotiation": hasattr(sys.modules[OURS_MODULE], "negotiate_image_format"),
            },
            "rows": judge(medians),
        }
        if import_runs:
            results["import"] = import_cost(import_runs, include_old, tmp)
        if cold_runs:
            results["cold_start"] = cold_start(cold_runs, include_old, site_root, tmp)
            results["peak_rss_mib"] = peak_rss(include_old, site_root, tmp)
    if output is not None:
        output.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        mode, kind, site_root, *flags = args.child
        if mode == "cold":
            print(json.dumps(_child_cold(kind, site_root, prime="prime" in flags)))
        else:
            print(json.dumps(_child_rss(kind, site_root)))
        return 0
    results = run(
        iterations=int(os.environ.get("BENCH_ITERATIONS", "5000")),
        budget=float(os.environ.get("BENCH_BUDGET", "3")),
        import_runs=int(os.environ.get("BENCH_IMPORT_RUNS", "15")),
        cold_runs=int(os.environ.get("BENCH_COLD_RUNS", "5")),
        first_conversions=int(os.environ.get("BENCH_FIRST_CONVERSIONS", "20")),
        output=args.output,
    )
    if results["meta"]["old_toolkit"] is None:
        print("chalice-http-toolkit 0.6.2 is not installed: its columns are n/a", file=sys.stderr)
    print(markdown(results))
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
