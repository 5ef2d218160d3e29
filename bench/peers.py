"""Benchmark: this toolkit beside what a user would pick instead, on the same site.

``make bench`` runs this in ``.venv-bench`` after ``bench/run.py``. The peers are
Flask + WhiteNoise behind apig-wsgi and Starlette behind Mangum; with
them, our module (loaded by path as ``cht_new``), chalice-http-toolkit 0.6.2 (REST
only: it has no other front door) and a bare Chalice app, the baseline. Every
variant serves the same templates and static files (``bench/run.py``'s site plus
a catalogue page of 20 items x 5 fields) and gets the same Lambda events: API
Gateway REST proxy events and Function URL (payload 2.0) events, through each
one's own Lambda handler.

The rows are those of issue 22: the catalogue page with new arguments on every
request (without and with ``Accept-Encoding: gzip``), a static 304 through REST
and through a Function URL, a static 200 through a Function URL, the bare route
through a Function URL (and its difference to the same request as a REST event,
measured again in that row, interleaved), and the first page after a cold start
under the Lambda Runtime Interface Emulator (``aws-lambda-rie`` from ``.venv-tools``
running ``awslambdaric``, as ``tests/rie.py`` runs it), for each variant. Beside the
bare Chalice app's cold start, two rows make ours readable: a bare Chalice app rendering
the same page with plain Jinja2 (importing Jinja2 is a floor for any first page), and
ours answering the page's 304 first (CloudFront revalidating, with the ETag a container
gave, after the container was recycled). Medians of many interleaved requests; read the
ratios, not the microseconds. Nothing here fails on a slow number.

Environment: ``BENCH_ITERATIONS`` (default 5000), ``BENCH_BUDGET`` (seconds per
row and variant, default 3), ``BENCH_RIE_RUNS`` (cold starts per variant, default 7;
0 skips them).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import py_compile
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests"))

import run as base  # noqa: E402  (bench/run.py: the site, events, timer)

RESULTS = BENCH / "peers_results.json"

# ---------------------------------------------------------------------------
# The page: a catalogue of 20 items x 5 fields, new arguments on every request
# ---------------------------------------------------------------------------

CATALOG_TEMPLATE = (
    "{% extends 'base.html' %}{% block title %}{{ title }}{% endblock %}"
    '{% block body %}<h1>{{ title }}</h1><p>{{ intro }}</p><table class="catalog">'
    "<tr><th>SKU</th><th>Product</th><th>Description</th><th>Price</th><th>Stock</th></tr>"
    "{% for item in items %}<tr><td>{{ item.sku }}</td>"
    '<td><a href="/p/{{ item.sku|lower }}">{{ item.name }}</a></td>'
    "<td>{{ item.description }}</td><td>{{ '%.2f'|format(item.price) }} EUR</td>"
    "<td>{{ item.stock }}</td></tr>{% endfor %}</table>{% endblock %}"
)

#: The arguments of one catalogue request; ``n`` makes every request's values new.
#: Also the source the cold-start handlers run (so it is written once, here).
CATALOG_ARGS_SOURCE = """
NAV = [{"href": f"/c/{name}", "label": name.title()} for name in ("shoes", "bags", "hats")]
DESCRIPTION = "Hand-stitched & waxed <canvas>, brass fittings; made to last for years. "


def catalog_args(n):
    return {
        "title": f"Catalogue, page {n}",
        "intro": "Goods from small workshops & studios, shipped within two days.",
        "year": 2025,
        "nav": NAV,
        "items": [
            {
                "sku": f"SKU-{n}-{index:02d}",
                "name": f"Product {index} <{n % 97}>",
                "description": DESCRIPTION * 2,
                "price": 19.5 + index + (n % 13) / 10,
                "stock": (n * 7 + index) % 50,
            }
            for index in range(20)
        ],
    }
"""
exec(compile(CATALOG_ARGS_SOURCE, "<catalog_args>", "exec"))  # defines catalog_args, NAV
_REQUESTS = itertools.count()


def next_args() -> dict[str, Any]:
    return catalog_args(next(_REQUESTS))  # type: ignore[name-defined]  # noqa: F821


def write_site(root: Path) -> tuple[Path, Path]:
    templates, static = base.write_site(root, first_conversions=0)
    (templates / "catalog.html").write_text(CATALOG_TEMPLATE)
    return templates, static


# ---------------------------------------------------------------------------
# The variants: each a Lambda handler(event, context) on the same site
# ---------------------------------------------------------------------------


def build_bare(templates: Path) -> Any:
    """A bare Chalice app: a small Response, and the catalogue rendered with plain Jinja2."""
    from chalice import Chalice, Response

    app = Chalice(app_name="bare")
    template = base._jinja_env(templates).get_template("catalog.html")

    @app.route("/bare")
    def bare() -> Response:
        return Response(body="hello", headers={"Content-Type": "text/plain"})

    @app.route("/fresh")
    def fresh() -> Response:
        return Response(
            body=template.render(next_args()),
            headers={"Content-Type": "text/html; charset=utf-8"},
        )

    return app


def build_ours(templates: Path, static: Path) -> Any:
    """Our module: CloudFront pages, registered static routes; ``lambda_handler`` for every door."""
    from chalice import Chalice

    module = base.load_ours()
    app = Chalice(app_name="ours")
    cm = module.ContentManager(
        str(templates),
        str(static),
        app,
        auto_reload=False,
        secret_key=base.SECRET_KEY,
    )
    cm.set_static_handler_prefix("/static")
    cm.register_static_routes()
    cf = module.CloudFront(cm, app)
    return _page_routes(app, cf)


def _page_routes(app: Any, cf: Any) -> Any:
    """The bare route and the catalogue page, as ours and 0.6.2 both serve them."""
    from chalice import Response

    @app.route("/bare")
    def bare() -> Response:
        return Response(body="hello", headers={"Content-Type": "text/plain"})

    @app.route("/fresh")
    def fresh() -> Any:
        return cf.template("catalog.html", **next_args())

    return app


def build_old(templates: Path, static: Path) -> Any | None:
    """0.6.2 on the same site (REST only), its defaults as deployed."""
    from chalice import Chalice

    loaded = base.load_old()
    if loaded is None:
        return None
    content_manager, cloud_front = loaded
    app = Chalice(app_name="old")
    app.api.binary_types.append("image/*")
    cm = content_manager(str(templates), str(static), app)
    cm.set_static_handler_prefix("/static")
    cf = cloud_front(cm, app)

    @app.route("/static/{p0}/{p1}/{p2}")
    def static3(p0: str, p1: str, p2: str) -> Any:
        return cf.static(f"{p0}/{p1}/{p2}", cache_control="no-cache")

    return _page_routes(app, cf)


def build_flask(templates: Path, static: Path) -> Callable[[dict, Any], dict]:
    """Flask + WhiteNoise (static files before Flask) behind apig-wsgi."""
    from apig_wsgi import make_lambda_handler
    from flask import Flask, render_template
    from whitenoise import WhiteNoise

    app = Flask("peer_flask", template_folder=str(templates), static_folder=None)
    app.jinja_env.globals["static"] = lambda name: f"/static/{name}"
    app.wsgi_app = WhiteNoise(app.wsgi_app, root=str(static), prefix="static/")

    @app.route("/bare")
    def bare() -> Any:
        return "hello", 200, {"Content-Type": "text/plain"}

    @app.route("/fresh")
    def fresh() -> Any:
        return render_template("catalog.html", **next_args())

    return make_lambda_handler(app, binary_support=True)


def build_starlette(templates: Path, static: Path) -> Callable[[dict, Any], dict]:
    """Starlette (Jinja2Templates, StaticFiles) behind Mangum."""
    from mangum import Mangum
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    pages = Jinja2Templates(directory=str(templates))
    pages.env.globals["static"] = lambda name: f"/static/{name}"

    async def bare(request: Any) -> Any:
        return PlainTextResponse("hello")

    async def fresh(request: Any) -> Any:
        return pages.TemplateResponse(request, "catalog.html", next_args())

    app = Starlette(
        routes=[
            Route("/bare", bare),
            Route("/fresh", fresh),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ]
    )
    return Mangum(app, lifespan="off")


# ---------------------------------------------------------------------------
# Events and checks
# ---------------------------------------------------------------------------

CSS = "/static/css/vendor/theme.css"
ROUTES_APP: Any = None  # a Chalice app whose routes name the REST events' resources


def rest_event(path: str, headers: dict[str, str]) -> dict:
    return base.make_event(ROUTES_APP, "GET", path, headers)


def url_event(path: str, headers: dict[str, str]) -> dict:
    return base.function_url_event(rest_event(path, headers))


def _header(response: dict, name: str) -> str | None:
    for field in ("headers", "multiValueHeaders"):
        for key, value in (response.get(field) or {}).items():
            if key.lower() == name.lower():
                return value[0] if isinstance(value, list) else value
    return None


def _check(name: str, handler: Callable, event: dict, status: int, prefix: str = "") -> None:
    with base.quiet():
        response = handler(event, base.CONTEXT)
    got = _header(response, "Content-Type") or ""
    if response["statusCode"] != status or not got.startswith(prefix):
        raise RuntimeError(f"{name}: {response['statusCode']} {got!r}, expected {status} {prefix}")


def conditional(handler: Callable, event: dict) -> dict:
    """``event`` with the validator of its first answer (If-None-Match, else If-Modified-Since)."""
    with base.quiet():
        first = handler(event, base.CONTEXT)
    etag, modified = _header(first, "ETag"), _header(first, "Last-Modified")
    copy = json.loads(json.dumps(event))
    v2 = copy.get("version") == "2.0"
    name, value = ("If-None-Match", etag) if etag else ("If-Modified-Since", modified)
    if value is None:
        raise RuntimeError(f"{event.get('path') or event.get('rawPath')}: no validator")
    copy["headers"][name.lower() if v2 else name] = value
    if not v2:
        copy["multiValueHeaders"][name] = [value]
    return copy


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------

VARIANTS = ("ours", "old", "flask", "starlette")
LABELS = {
    "ours": "ours",
    "old": "0.6.2",
    "flask": "Flask+WhiteNoise/apig-wsgi",
    "starlette": "Starlette/Mangum",
}
#: Our module without the files prepare_deployment() writes (the cold start parses templates).
UNPREPARED = "ours, unprepared"
PAGE = "realistic page, new arguments every request (20 items x 5 fields)"
PAGE_GZIP = "the same with gzip requested"
ROWS = (
    PAGE,
    PAGE_GZIP,
    "static 304 (REST event)",
    "static 304 via Function URL",
    "static 200 via Function URL",
    "bare route (REST event)",
    "bare route via Function URL",
)


#: The markdown row of the Function URL door's cost: the bare route via Function URL minus
#: the same as a REST event, measured interleaved in the Function URL's row.
OVER_REST = "Function URL over REST (bare route: via Function URL minus REST event, µs)"
REST_AGAIN = " (REST event)"


def _no_gzip(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "Accept-Encoding"}


def row_events(handlers: dict[str, Callable]) -> dict[str, dict[str, dict | None]]:
    """Per row, per variant, the event (None: the variant has no such door)."""
    page = base._headers(base.PAGE_ACCEPT)
    css = base._headers(base.CSS_ACCEPT)
    plain = base._headers("*/*")
    out: dict[str, dict[str, dict | None]] = {}
    for kind, handler in handlers.items():
        rest_only = kind == "old"
        events = {
            PAGE: rest_event("/fresh", _no_gzip(page)),
            PAGE_GZIP: rest_event("/fresh", page),
            "static 304 (REST event)": conditional(handler, rest_event(CSS, css)),
            "static 304 via Function URL": None
            if rest_only
            else conditional(handler, url_event(CSS, css)),
            "static 200 via Function URL": None if rest_only else url_event(CSS, css),
            "bare route (REST event)": rest_event("/bare", plain),
            "bare route via Function URL": None if rest_only else url_event("/bare", plain),
        }
        for name, event in events.items():
            out.setdefault(name, {})[kind] = event
    return out


def measure(
    handlers: dict[str, Callable], bare: Any, timer: base.Timer
) -> dict[str, dict[str, Any]]:
    """Median µs per row and variant, measured interleaved, with the bare route's in each row."""
    events = row_events(handlers)
    checks = {
        PAGE: (200, "text/html"),
        PAGE_GZIP: (200, "text/html"),
        "static 304 (REST event)": (304, ""),
        "static 304 via Function URL": (304, ""),
        "static 200 via Function URL": (200, "text/css"),
        "bare route (REST event)": (200, "text/plain"),
        "bare route via Function URL": (200, "text/plain"),
    }
    for name, per_kind in events.items():
        for kind, event in per_kind.items():
            if event is not None:
                _check(f"{name} ({kind})", handlers[kind], event, *checks[name])
    bare_rest = rest_event("/bare", base._headers("*/*"))
    jinja = rest_event("/fresh", _no_gzip(base._headers(base.PAGE_ACCEPT)))
    context = base.CONTEXT
    results: dict[str, dict[str, Any]] = {}
    with base.quiet():
        for name in ROWS:
            variants: dict[str, Callable[[], Any]] = {
                "bare": lambda: bare(bare_rest, context),
                "bare+jinja": lambda: bare(jinja, context),
            }
            if name not in (PAGE, PAGE_GZIP):
                del variants["bare+jinja"]
            for kind, event in events[name].items():
                if event is not None:
                    handler = handlers[kind]
                    variants[kind] = lambda handler=handler, event=event: handler(event, context)
            if name == "bare route via Function URL":
                # The REST event again, interleaved with the Function URL's: the door's cost
                # is a difference of a few µs, less than the drift between two rows.
                for kind, event in events["bare route (REST event)"].items():
                    if kind in variants:
                        handler = handlers[kind]
                        variants[f"{kind}{REST_AGAIN}"] = lambda handler=handler, event=event: (
                            handler(event, context)
                        )
            samples = timer.measure(variants)
            medians = {kind: base.median(values) for kind, values in samples.items()}
            results[name] = {k: v for k, v in medians.items() if not k.endswith(REST_AGAIN)}
            results[name]["n"] = {kind: len(values) for kind, values in samples.items()}
            rest_again = {
                k.removesuffix(REST_AGAIN): v for k, v in medians.items() if k.endswith(REST_AGAIN)
            }
            if rest_again:
                results[name]["rest_event"] = rest_again
    return results


# ---------------------------------------------------------------------------
# Cold start under the Lambda Runtime Interface Emulator
# ---------------------------------------------------------------------------

#: A bare Chalice app rendering the catalogue with plain Jinja2: the Jinja2 import floor.
BARE_JINJA = "bare+jinja"
#: Ours, its first request the page's 304 (the ETag of the page a container gave first).
OURS_304 = "ours 304"

_HANDLERS = {
    "bare": """
from chalice import Chalice, Response
app = Chalice(app_name="bare")

@app.route("/fresh")
def fresh():
    return Response(body="hello", headers={"Content-Type": "text/plain"})

handler = app
""",
    BARE_JINJA: """
import itertools
import jinja2
from chalice import Chalice, Response
app = Chalice(app_name="bare-jinja")
env = jinja2.Environment(
    loader=jinja2.FileSystemLoader("templates"),
    autoescape=jinja2.select_autoescape(("html", "htm", "xml", "svg")),
    auto_reload=False,
)
env.globals["static"] = lambda name: "/static/" + name
COUNT = itertools.count()

@app.route("/fresh")
def fresh():
    body = env.get_template("catalog.html").render(catalog_args(next(COUNT)))
    return Response(body=body, headers={"Content-Type": "text/html; charset=utf-8"})

handler = app
""",
    "ours": """
import itertools
from chalice import Chalice
from chalice_http_toolkit import CloudFront, ContentManager, lambda_handler
app = Chalice(app_name="ours")
cm = ContentManager("templates", "static", app, secret_key=SECRET_KEY)
cm.register_static_routes()
cf = CloudFront(cm, app)
COUNT = itertools.count()

@app.route("/fresh")
def fresh():
    return cf.template("catalog.html", **catalog_args(next(COUNT)))

handler = lambda_handler(app)
""",
    "old": """
import itertools
from chalice import Chalice
from chalice_http_toolkit.cloudfront import CloudFront
from chalice_http_toolkit.content import ContentManager
app = Chalice(app_name="old")
cm = ContentManager("templates", "static", app)
cm.set_static_handler_prefix("/static")
cf = CloudFront(cm, app)
COUNT = itertools.count()

@app.route("/fresh")
def fresh():
    return cf.template("catalog.html", **catalog_args(next(COUNT)))

handler = app
""",
    "flask": """
import itertools
from apig_wsgi import make_lambda_handler
from flask import Flask, render_template
from whitenoise import WhiteNoise
app = Flask(__name__, template_folder="templates", static_folder=None)
app.jinja_env.globals["static"] = lambda name: "/static/" + name
app.wsgi_app = WhiteNoise(app.wsgi_app, root="static", prefix="static/")
COUNT = itertools.count()

@app.route("/fresh")
def fresh():
    return render_template("catalog.html", **catalog_args(next(COUNT)))

handler = make_lambda_handler(app, binary_support=True)
""",
    "starlette": """
import itertools
from mangum import Mangum
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
pages = Jinja2Templates(directory="templates")
pages.env.globals["static"] = lambda name: "/static/" + name
COUNT = itertools.count()

async def fresh(request):
    return pages.TemplateResponse(request, "catalog.html", catalog_args(next(COUNT)))

app = Starlette(routes=[Route("/fresh", fresh), Mount("/static", StaticFiles(directory="static"))])
handler = Mangum(app, lifespan="off")
""",
}


def task_root(kind: str, site: Path, root: Path) -> Path:
    """A Lambda task directory: the site, the handler, our module as `setup` ships it."""
    task = root / kind
    shutil.copytree(site / "templates", task / "templates")
    shutil.copytree(site / "static", task / "static")
    if kind.startswith("ours"):
        module = task / "chalice_http_toolkit.py"
        shutil.copy2(ROOT / "chalice_http_toolkit.py", module)
        py_compile.compile(
            str(module),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
        prepare = getattr(base.load_ours(), "prepare_deployment", None)
        if prepare is not None and kind == "ours":  # what a build computes before deploying
            prepare(str(task / "templates"), path=str(task / "chalice_http_toolkit.prepared.json"))
    handler = _HANDLERS["ours" if kind.startswith("ours") else kind]
    key = f"SECRET_KEY = {base.SECRET_KEY!r}\n"
    (task / "handler.py").write_text(key + CATALOG_ARGS_SOURCE + handler)
    return task


def _invoke_first(emulator: Any, event: dict, timeout: float = 60) -> tuple[int, float, dict]:
    """POST ``event`` as soon as the emulator listens; (status, ms since it started, answer)."""
    host, port = emulator.rie_address.split(":")
    body = json.dumps(event).encode()
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            connection.request("POST", base_invoke_path(), body=body)
            response = connection.getresponse()
            payload = response.read()
        except ConnectionRefusedError:
            if time.monotonic() > deadline or emulator.process.poll() is not None:
                raise RuntimeError(f"no emulator: {emulator.last_output()}") from None
            time.sleep(0.001)
            continue
        finally:
            connection.close()
        elapsed = (time.monotonic() - emulator.started_at) * 1e3
        answer = json.loads(payload or b"{}")
        return int(answer.get("statusCode", response.status)), elapsed, answer


def base_invoke_path() -> str:
    import rie

    return rie.INVOKE_PATH


def cold_starts(site: Path, runs: int, kinds: list[str]) -> dict[str, Any]:
    """Median ms from the emulator's start to the first page's answer, per variant."""
    import rie

    binary = rie.rie_binary()
    tools = os.environ.get("TOOLS_VENV")  # `make bench` names the tools venv it built
    if (binary is None or not binary.exists()) and tools:
        arch = rie._ARCH.get(platform.machine().lower(), platform.machine())
        pattern = f"lib/python*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"
        found = sorted(Path(tools).glob(pattern))
        binary = found[-1] if found else None
    if binary is None or not binary.exists():
        return {"skipped": "aws-lambda-rie not found (make tools installs it into .venv-tools)"}
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="cht-peers-rie-") as tmp:
        roots = {kind: task_root(kind, site, Path(tmp)) for kind in kinds if kind != OURS_304}
        event = rest_event("/fresh", _no_gzip(base._headers(base.PAGE_ACCEPT)))
        events = dict.fromkeys(kinds, event)
        expected = dict.fromkeys(kinds, 200)

        def first_answer(kind: str) -> tuple[int, float, dict]:
            env = rie.lambda_environment(f"bench-{kind}".replace(" ", "-").replace("+", "-"))
            log = Path(tmp) / f"{kind}.log"
            emulator = rie.Emulator(binary, "handler.handler", roots[kind], env, log)
            try:
                emulator.start()
                return _invoke_first(emulator, events[kind])
            finally:
                emulator.stop()

        if OURS_304 in kinds:  # the ETag a container gives the first page (its arguments: n=0)
            roots[OURS_304] = roots["ours"]
            etag = _header(first_answer("ours")[2], "ETag")
            if etag is None:
                raise RuntimeError("cold start of ours: the page has no ETag")
            events[OURS_304] = json.loads(json.dumps(event))
            events[OURS_304]["headers"]["If-None-Match"] = etag
            events[OURS_304]["multiValueHeaders"]["If-None-Match"] = [etag]
            expected[OURS_304] = 304
        for _ in range(runs):
            for kind in kinds:
                status, elapsed, _ = first_answer(kind)
                if status != expected[kind]:
                    raise RuntimeError(f"cold start of {kind}: status {status}")
                samples[kind].append(elapsed)
    out: dict[str, Any] = {"runs": runs}
    for kind, values in samples.items():
        out[kind] = {"median_ms": base.median(values), "min_ms": min(values)}
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _us(value: float | None) -> str:
    return base._us(value)


def _over_rest_row(url: dict[str, Any], rest: dict[str, Any]) -> str:
    """The row of the Function URL door's cost: µs over the same request as a REST event
    (``rest``: that row's own REST medians, else the REST row's)."""
    rest = url.get("rest_event") or rest
    cells = [
        f"{url[kind] - rest[kind]:+.1f}" if url.get(kind) and rest.get(kind) else "n/a"
        for kind in VARIANTS
    ]
    over = url["ours"] - rest["ours"]
    return f"| {OVER_REST} | {' | '.join(cells)} | | ≤ +3 µs: {'PASS' if over <= 3 else 'MISS'} |"


def markdown(results: dict[str, Any]) -> str:
    rows = results["rows"]
    lines = [
        "| row | ours | 0.6.2 | Flask+WhiteNoise/apig-wsgi | Starlette/Mangum "
        "| bare route | ours target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in ROWS:
        row = rows[name]
        target = ""
        if name in (PAGE, PAGE_GZIP):
            limit = 1.1 * row["bare+jinja"]
            target = f"≤ 1.1x (bare Jinja2 + bare route) = {_us(limit)}: " + (
                "PASS" if row["ours"] <= limit else "MISS"
            )
        elif "static" in name and row.get("flask"):
            target = "ahead of Flask+WhiteNoise" if row["ours"] < row["flask"] else "behind Flask"
        cells = [_us(row.get(kind)) for kind in VARIANTS]
        lines.append(f"| {name} | {' | '.join(cells)} | {_us(row['bare'])} | {target} |")
        if name == "bare route via Function URL":
            lines.append(_over_rest_row(row, rows["bare route (REST event)"]))
    cold = results.get("cold_start") or {}
    if "bare" in cold:
        bare_ms = cold["bare"]["median_ms"]
        cells = [
            f"{cold[kind]['median_ms']:.1f} ms ({cold[kind]['median_ms'] / bare_ms:.2f}x)"
            if kind in cold
            else "n/a"
            for kind in VARIANTS
        ]
        ratio = cold["ours"]["median_ms"] / bare_ms
        lines.append(
            "| first page after a cold start under the Lambda Runtime Interface Emulator "
            f"| {' | '.join(cells)} | {bare_ms:.1f} ms | ≤ 1.4x bare Chalice: "
            f"{'PASS' if ratio <= 1.4 else 'MISS'} |"
        )
        for kind, label, note in (
            (UNPREPARED, "the same, ours without prepare_deployment", ""),
            (
                BARE_JINJA,
                "the same, a bare Chalice app rendering it with plain Jinja2",
                "the Jinja2 import floor",
            ),
            (OURS_304, "the page's 304 first after a cold start (the ETag a container gave)", ""),
        ):
            if kind in cold:
                ms = cold[kind]["median_ms"]
                lines.append(
                    f"| {label} | {ms:.1f} ms ({ms / bare_ms:.2f}x) | | | | {bare_ms:.1f} ms "
                    f"| {note} |"
                )
    elif cold:
        lines.append(f"| first page after a cold start | {cold.get('skipped')} | | | | | |")
    meta = results["meta"]
    lines += [
        "",
        f"µs per request (medians, up to {meta['iterations']} per row and variant, interleaved); "
        f"cold start: ms from the emulator's start to the first page's answer (medians of "
        f"{cold.get('runs', 0)} runs). Python {meta['python']}, {meta['machine']}. Peers: "
        f"{meta['peers']}. The peers serve without compression middleware (their usual setup "
        "behind CloudFront), 0.6.2 has no Function URL door.",
    ]
    return "\n".join(lines)


def run(*, iterations: int, budget: float, rie_runs: int, output: Path | None) -> dict[str, Any]:
    """Measure every row and the cold starts; write ``output``; return the results."""
    from importlib.metadata import version

    global ROUTES_APP
    with tempfile.TemporaryDirectory(prefix="cht-peers-") as tmp:
        site = Path(tmp) / "site"
        templates, static = write_site(site)
        ours = build_ours(templates, static)
        ROUTES_APP = ours
        handlers: dict[str, Callable] = {"ours": base.load_ours().lambda_handler(ours)}
        old = build_old(templates, static)
        if old is not None:
            handlers["old"] = old
        handlers["flask"] = build_flask(templates, static)
        handlers["starlette"] = build_starlette(templates, static)
        bare = build_bare(templates)
        rows = measure(handlers, bare, base.Timer(iterations, budget))
        kinds = ["bare", BARE_JINJA, *handlers]
        if hasattr(base.load_ours(), "prepare_deployment"):
            kinds.insert(kinds.index("ours") + 1, OURS_304)
            kinds.insert(kinds.index("ours") + 1, UNPREPARED)
        cold = cold_starts(site, rie_runs, kinds) if rie_runs else {}
    peers = ", ".join(
        f"{name} {version(name)}"
        for name in ("flask", "whitenoise", "apig-wsgi", "starlette", "mangum")
    )
    results = {
        "meta": {
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "iterations": iterations,
            "budget_s": budget,
            "peers": peers,
        },
        "rows": rows,
        "cold_start": cold,
    }
    if output is not None:
        output.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = run(
        iterations=int(os.environ.get("BENCH_ITERATIONS", "5000")),
        budget=float(os.environ.get("BENCH_BUDGET", "3")),
        rie_runs=int(os.environ.get("BENCH_RIE_RUNS", "7")),
        output=args.output,
    )
    print(markdown(results))
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
