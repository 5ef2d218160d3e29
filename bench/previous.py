"""Benchmark: this module against an earlier revision of itself, in one process.

``make bench-previous REV=<commit>`` (default: the commit before the last merge of
main's history, ``HEAD~1``) loads ``git show REV:chalice_http_toolkit.py`` and the
working tree's module side by side, builds the same site on each (tests/sites.py's
files, deployed mode), and times ``app(event, context)`` with API Gateway REST events
that carry a browser's ``Accept``. Rows: template 304, cached page (with and without
gzip), static 304 and 200, asset 304, a JSON view that reads the session, a page with
new arguments every request, and a bare Chalice route. The variants run in interleaved
rounds; each figure is the median of the rounds' medians. Read the ratios.

Environment: ``BENCH_PREVIOUS_ITERATIONS`` (timed requests per row and variant,
default 5000). A benchmark, not a test: nothing fails on a slow number.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "bench"  # deployed mode: memos on, files fixed

from chalice import Chalice, Response  # noqa: E402

from apigw import lambda_context, make_event  # noqa: E402
from sites import write_site  # noqa: E402

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Host": "www.example.com"}
KEY = "bench-previous-secret-key-0123456789abcdef"


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def site_app(toolkit: ModuleType, templates: Path, static: Path) -> tuple[Chalice, Any]:
    app = Chalice(app_name="previous")
    cm = toolkit.ContentManager(str(templates), str(static), app, secret_key=KEY)
    cf = toolkit.CloudFront(cm, app)
    cm.register_static_routes("/static")

    @app.route("/")
    def index() -> Any:
        return cf.template("index.html", title="Home", items=["a", "b"])

    @app.route("/fresh/{n}")
    def fresh(n: str) -> Any:
        return cf.template("index.html", title=n, items=[f"{n}-{i}" * 5 for i in range(20)])

    @app.route("/asset")
    def asset() -> Any:
        return cf.asset(lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, lambda: "v1")

    @app.route("/session")
    def session() -> Any:
        return cm.json({"n": cm.session.get("n", 0)})

    return app, cm


def event(app: Chalice, path: str, headers: dict[str, str] | None = None) -> dict:
    return make_event(app, "GET", path, {**BROWSER, **(headers or {})})


def etag(app: Chalice, path: str) -> str:
    return app(event(app, path), lambda_context())["headers"]["ETag"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", default="HEAD~1", help="the earlier revision")
    args = parser.parse_args(argv)
    iterations = int(os.environ.get("BENCH_PREVIOUS_ITERATIONS", "5000"))
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{args.rev}:chalice_http_toolkit.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-previous-"))
    (folder / "previous_toolkit.py").write_text(source)
    variants = {
        args.rev: load("previous_toolkit", folder / "previous_toolkit.py"),
        "now": load("current_toolkit", ROOT / "chalice_http_toolkit.py"),
    }
    templates, static = write_site(folder / "site")
    context = lambda_context()
    bare = Chalice(app_name="bare")

    @bare.route("/")
    def bare_route() -> Response:
        return Response(body="hi", headers={"Content-Type": "text/plain"})

    rows: dict[str, dict[str, tuple[Chalice, dict | None]]] = {}
    for name, toolkit in variants.items():
        app, cm = site_app(toolkit, templates, static)
        url = cm.static_url("css/site.css")
        for row, path, headers in (
            ("template 304", "/", {"If-None-Match": etag(app, "/")}),
            ("cached page", "/", None),
            ("cached page, gzip", "/", {"Accept-Encoding": "gzip"}),
            ("static 304", url, {"If-None-Match": etag(app, url)}),
            ("static 200", url, None),
            ("asset 304", "/asset", {"If-None-Match": etag(app, "/asset")}),
            ("JSON reading the session", "/session", None),
        ):
            rows.setdefault(row, {})[name] = (app, event(app, path, headers))
        rows.setdefault("new arguments every request", {})[name] = (app, None)

    def median_us(app: Chalice, request: dict | None, count: int) -> float:
        samples = []
        for number in range(count):
            current = request or event(app, f"/fresh/x{number}-{time.perf_counter_ns()}")
            start = time.perf_counter_ns()
            app(current, context)
            samples.append(time.perf_counter_ns() - start)
        return statistics.median(samples) / 1000

    rounds = 5
    results = {row: {name: [] for name in [*variants, "bare"]} for row in rows}
    for _ in range(rounds):
        for row, apps in rows.items():
            results[row]["bare"].append(median_us(bare, event(bare, "/"), iterations // rounds))
            for name in variants:
                app, request = apps[name]
                results[row][name].append(median_us(app, request, iterations // rounds))
    old, new = variants
    print(f"{'row':28} {'bare':>7} {old:>9} {'now':>9} {'now/' + old:>12} {'now/bare':>9}")
    for row, figures in results.items():
        b, o, n = (statistics.median(figures[key]) for key in ("bare", old, new))
        print(f"{row:28} {b:7.1f} {o:9.1f} {n:9.1f} {n / o:12.2f} {n / b:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
