"""CDN simulation: what viewers and the Lambda see behind CloudFront, with origin faults.

``make cdn-sim`` (and ``make bench``) runs this in ``.venv-bench``. The site of
``bench/run.py`` (a page with includes, two stylesheets, a script, a JPEG photo; a home
page and 30 posts of it) is served by our toolkit with today's ``no-cache`` pages and with
pages answered at the edge (``stale-while-revalidate``/``stale-if-error``), and by
chalice-http-toolkit 0.6.2, each as several Lambda containers behind the CloudFront model
of ``bench/cdn_model.py``, configured by the template ``cli.py cloudfront`` writes and
running its CloudFront Function under node. The same seeded traffic goes to each: page
views (half the home page, half the posts by a Zipf law) from a browser mix (Chrome,
Safari, Firefox, curl) with their own HTTP caches, over simulated time, with origin faults
injected: the Lambda down (503) for 10 minutes, throttled (429/502 for 30% of calls) for
10 minutes, a deploy that answers 500 for every page for 5 minutes (it also changes a
template and a stylesheet; the fixed deploy keeps the change), and an origin that hangs
(time-outs) for 5 minutes. Times are for the default 6,000 page views (about 200 minutes);
fewer views scale the schedule down.

Reported per 1,000 page views: origin calls, bytes, renders and image conversions;
page views that waited for the origin and for a cold start; viewer 5xx, overall and
during each fault (for pages the edge held, and all); the longest wait; and what viewers
saw of the old content after the fixed deploy (views, seconds). A report, not a test:
nothing here fails on a number.

Environment: ``CDN_SIM_VIEWS`` (page views, default 6000), ``CDN_SIM_CONTAINERS``
(default 3), ``CDN_SIM_SEED`` (default 2025).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The API Gateway and CloudFront models sit beside this script. ROOT is not put on
# sys.path: our module's file name would shadow the 0.6.2 package, so ours is loaded by
# path (bench/run.py's load_ours).
from apigw import invoke
from cdn_model import (
    COLD_START_SECONDS,
    ROUND_TRIP_SECONDS,
    CloudFrontModel,
    Fault,
    FaultyOrigin,
    LambdaOrigin,
    Seen,
    SimClock,
    count_renders,
    image_type,
    make_clients,
    page_view,
)
from cloudfront_function import ViewerRequestFunction

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "cdn_results.json"

ZIP_EPOCH = 315532800  # Chalice's deployment zip stamps every file 1980-01-01
PHOTO_TYPE = "image/jpeg"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = _load("bench_run", HERE / "run.py")
cli = _load("toolkit_cli", ROOT / "cli.py")


def stamp(root: Path) -> None:
    for path in root.rglob("*"):
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))


def redeploy_site(templates: Path, static: Path) -> None:
    """A content change: a new paragraph on the page, a new rule in a stylesheet."""
    index = templates / "index.html"
    index.write_text(index.read_text().replace("<p>{{ intro }}</p>", "<p>{{ intro }} New!</p>"))
    css = static / "print.css"
    css.write_text(css.read_text() + "h1 { color: #7a1f5c; }\n")
    stamp(templates.parent)


class TimedApp:
    """A container's Chalice app whose invocations are timed (``app(event, context)`` only)."""

    def __init__(self, app: Any, durations: list[float]) -> None:
        self._app = app
        self._durations = durations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __call__(self, event: dict, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._app(event, context)
        finally:
            self._durations.append(time.perf_counter() - started)


def duration_histogram(durations: list[float]) -> dict[str, int]:
    """Invocations by duration bucket, keyed by the bucket's upper bound in µs.

    25 µs buckets below 2 ms, 500 µs above: enough to bill each invocation in whole
    milliseconds (rounded up) at another CPU speed, as ``bench/cost.py`` does.
    """
    histogram: Counter[int] = Counter()
    for seconds in durations:
        micros = seconds * 1e6
        step = 25 if micros < 2000 else 500
        histogram[max(step, math.ceil(micros / step) * step)] += 1
    return {str(bound): histogram[bound] for bound in sorted(histogram)}


def named(media_type: str, accept: str | None) -> bool:
    """AVIF and WebP count as advertised only when the client named them."""
    if media_type not in ("image/avif", "image/webp"):
        return True
    return any(
        part.split(";")[0].strip().lower() == media_type and "q=0" not in part.replace(" ", "")
        for part in (accept or "").split(",")
    )


#: Mean seconds between two page views (exponential gaps).
MEAN_GAP = 2.0
#: Page views of the schedule below; other counts scale it.
SCHEDULE_VIEWS = 6000
#: The posts beside the home page, and the share of views the home page gets.
POSTS = 30
HOME_SHARE = 0.5
#: Seconds without a request after which the edge evicts an object (an assumption:
#: CloudFront documents that it may evict rarely requested objects, not when).
EVICT_AFTER = 1800.0
#: The injected faults: (name, start minute, minutes, kind, share of calls).
FAULT_SCHEDULE = (
    ("outage: Lambda down (503)", 20, 10, "down", 1.0),
    ("throttling: 429/502 for 30% of calls", 50, 10, "throttle", 0.3),
    ("bad deploy: 500 for every page", 80, 5, "bad-deploy", 1.0),
    ("time-outs: the origin hangs", 120, 5, "timeout", 1.0),
)
BAD_DEPLOY = "bad-deploy"


def faults_for(views: int, origin: float = 0.0) -> list[Fault]:
    """The schedule, in simulated seconds from ``origin``, scaled to ``views`` page views."""
    scale = views / SCHEDULE_VIEWS
    return [
        Fault(
            name, origin + start * 60 * scale, origin + (start + minutes) * 60 * scale, kind, share
        )
        for name, start, minutes, kind, share in FAULT_SCHEDULE
    ]


def pages_of(rng: random.Random) -> Callable[[], str]:
    """A page picker: the home page for :data:`HOME_SHARE` of views, else a post by Zipf."""
    weights = [1 / rank for rank in range(1, POSTS + 1)]
    posts = [f"/posts/{n}" for n in range(1, POSTS + 1)]

    def pick() -> str:
        if rng.random() < HOME_SHARE:
            return "/"
        return rng.choices(posts, weights)[0]

    return pick


def with_posts(app: Any, cf: Any) -> Any:
    """``app`` with ``/posts/{n}``: the same template, another title (0.6.2 and ours alike)."""

    @app.route("/posts/{n}")
    def post(n: str) -> Any:
        return cf.template("index.html", **{**bench.PAGE_ARGS, "title": f"Post {n}"})

    return app


def build_ours(*args: Any, fresh: int = 0) -> Callable[[Path, Path, bytes], Any]:
    """A builder of our site whose pages use ``CloudFront(cm, app, *args)``, with
    ``edge_cache_control(fresh)`` as its pages' default."""

    def build(templates: Path, static: Path, asset: bytes) -> Any:
        from chalice import Chalice

        module = bench.load_ours()
        app = Chalice(app_name="ours")
        cm = module.ContentManager(
            str(templates),
            str(static),
            app,
            auto_reload=False,
            secret_key=bench.SECRET_KEY,
        )
        cm.set_static_handler_prefix("/static")
        cf = module.CloudFront(cm, app, *args)
        cf.page_cache_control = module.edge_cache_control(fresh)
        cm.register_static_routes()
        return with_posts(bench._site_routes(app, cm, cf, asset, ["GET", "HEAD"]), cf)

    return build


def build_old(templates: Path, static: Path, asset: bytes) -> Any:
    """0.6.2's site (``bench/run.py``) with the posts, through 0.6.2's own CloudFront."""
    app = bench.build_old(templates, static, asset)
    _, cloud_front = bench.load_old()
    return with_posts(app, cloud_front(app.content_manager, app))


def simulate(
    build: Callable[[Path, Path, bytes], Any],
    template: dict,
    function_code: str | None,
    views: int,
    containers: int,
    seed: int,
) -> dict[str, Any]:
    """Run the traffic against one toolkit; the figures for the report."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        templates, static = bench.write_site(root, first_conversions=0)
        asset = (root / "asset.png").read_bytes()
        stamp(root)
        rng = random.Random(seed)  # the traffic: the same for every toolkit
        clock = SimClock()
        durations: list[float] = []
        lambdas = LambdaOrigin(
            lambda: TimedApp(build(templates, static, asset), durations),
            containers,
            random.Random(seed + 1),
            clock,
        )
        faults = faults_for(views, clock.now)
        origin = FaultyOrigin(lambdas, clock, faults, random.Random(seed + 2))
        function = ViewerRequestFunction(function_code) if function_code else None
        cdn = CloudFrontModel(template, origin, clock, function, evict_after=EVICT_AFTER)
        viewer_bytes = [0]
        request = cdn.request

        def counted(url: str, headers: dict[str, str]) -> Any:
            reply = request(url, headers)
            viewer_bytes[0] += len(reply.body)  # as sent: compressed where CloudFront did
            return reply

        cdn.request = counted
        clients = make_clients(300, rng)
        pick = pages_of(rng)
        paths = ["/", *(f"/posts/{n}" for n in range(1, POSTS + 1))]
        seen: list[Seen] = []
        old_css = (static / "print.css").read_bytes()
        [bad] = [fault for fault in faults if fault.kind == BAD_DEPLOY]
        changed = fixed = False
        with count_renders() as renders, bench.quiet():
            old_pages = _references(build, templates, static, asset, paths)
            reference_renders = sum(renders.values())
            for _ in range(views):
                clock.now += rng.expovariate(1 / MEAN_GAP)
                if not changed and clock.now >= bad.start:
                    redeploy_site(templates, static)  # the bad deploy carries the change
                    lambdas.redeploy()
                    changed = True
                if not fixed and clock.now >= bad.end:
                    lambdas.redeploy()  # the fixed deploy: the same content, working
                    fixed = True
                client = rng.choice(clients)
                if rng.random() < 0.2:
                    client.cache.clear()  # a new visitor
                seen += page_view(cdn, client, pick(), clock.now)
            renders_total = sum(renders.values()) - reference_renders
        if function is not None:
            function.close()
        figures = _figures(cdn, lambdas, seen, (old_pages, old_css), bad.end, renders_total, views)
        figures["faults"] = _fault_figures(seen, faults, cdn.behaviour_for("/").origin_timeout)
        figures["faults_failed_origin_calls"] = dict(origin.failed)
        figures["edge_evictions"] = cdn.evictions
        figures["viewer_body_bytes_per_1000_views"] = round(viewer_bytes[0] * 1000 / views)
        figures["origin_cold_starts"] = lambdas.cold_starts
        figures["origin_duration_ms_per_1000_views"] = round(sum(durations) * 1e6 / views, 1)
        figures["origin_duration_histogram_us"] = duration_histogram(durations)
        return figures


def _references(
    build: Callable, templates: Path, static: Path, asset: bytes, paths: list[str]
) -> dict[str, bytes]:
    """What one container of the current deployment answers for each of ``paths``."""
    app = build(templates, static, asset)
    return {path: invoke(app, "GET", path, {"Accept": "*/*"}).body for path in paths}


def _figures(
    cdn: CloudFrontModel,
    origin: LambdaOrigin,
    seen: list[Seen],
    stale: tuple[dict[str, bytes], bytes],
    fixed_at: float,
    renders: int,
    views: int,
) -> dict[str, Any]:
    per_1000 = 1000 / views
    conversions = sum(
        1
        for request in cdn.origin_log
        if request.status == 200
        and request.content_type.startswith("image/")
        and request.content_type != PHOTO_TYPE
    )
    pages = [s for s in seen if s.kind == "page"]
    late = [s for s in seen if s.time > fixed_at]
    old_pages, old_css = stale
    behind = [s for s in late if s.kind == "page" and s.content == old_pages.get(s.url)]
    stale_css = sum(1 for s in late if s.kind == "css" and s.content == old_css)
    images = [s for s in seen if s.kind == "image"]
    broken = sum(1 for s in images if s.status == 200 and image_type(s.content) is None)
    unadvertised = sum(
        1
        for s in images
        if image_type(s.content) is not None
        and not named(image_type(s.content), s.profile.image_accept)
    )
    requests = sum(cdn.results.values())
    at_edge = cdn.results["Hit"] + cdn.results["StaleHit"] + cdn.results["StaleIfError"]
    return {
        "page_views": views,
        "viewer_requests_to_cloudfront": requests,
        "origin_invocations_per_1000_views": round(origin.invocations * per_1000, 1),
        "origin_requests_per_1000_views": round(len(cdn.origin_log) * per_1000, 1),
        "origin_background_requests_per_1000_views": round(
            sum(1 for r in cdn.origin_log if r.background) * per_1000, 1
        ),
        "origin_bytes_per_1000_views": round(origin.bytes * per_1000),
        "renders_per_1000_views": round(renders * per_1000, 1),
        "image_conversions_per_1000_views": round(conversions * per_1000, 1),
        "origin_304_share": round(
            sum(1 for r in cdn.origin_log if r.status == 304) / max(1, len(cdn.origin_log)), 3
        ),
        "cache_results": dict(cdn.results),
        "served_without_origin": round(cdn.results["Hit"] / max(1, requests), 3),
        "answered_at_the_edge": round(at_edge / max(1, requests), 3),
        "page_views_waited_for_origin": round(
            sum(1 for s in pages if s.waited > 0) / max(1, len(pages)), 4
        ),
        "page_views_waited_for_cold_start": round(
            sum(1 for s in pages if s.cold_start) / max(1, len(pages)), 4
        ),
        "viewer_page_5xx_per_1000_views": round(
            sum(1 for s in pages if s.status >= 500) * per_1000, 2
        ),
        "after_redeploy": {
            "page_views_seen": sum(1 for s in late if s.kind == "page"),
            "stale_pages": len(behind),
            "stale_pages_max_per_url": max(Counter(s.url for s in behind).values(), default=0),
            "stale_pages_max_seconds": round(max((s.time - fixed_at for s in behind), default=0)),
            "stale_stylesheets": stale_css,
        },
        "viewer_responses_5xx": sum(1 for s in seen if s.status >= 500),
        "images_seen": len(images),
        "broken_images": broken,
        "unadvertised_image_formats": unadvertised,
        "image_formats": dict(
            Counter(f"{s.profile.name}: {image_type(s.content)}" for s in images)
        ),
    }


def _fault_figures(seen: list[Seen], faults: list[Fault], timeout: float) -> dict[str, Any]:
    """Per fault: page views, viewer errors per 1,000 (pages the edge held, all), waits."""
    out = {}
    for fault in faults:
        pages = [s for s in seen if s.kind == "page" and fault.start <= s.time < fault.end]
        held = [s for s in pages if s.held]
        count = max(1, len(pages))
        out[fault.name] = {
            "page_views": len(pages),
            "page_views_held_at_edge": len(held),
            "viewer_5xx_per_1000_held": round(
                sum(1 for s in held if s.status >= 500) * 1000 / max(1, len(held)), 1
            ),
            "viewer_5xx_per_1000": round(
                sum(1 for s in pages if s.status >= 500) * 1000 / count, 1
            ),
            "viewer_4xx_per_1000": round(
                sum(1 for s in pages if 400 <= s.status < 500) * 1000 / count, 1
            ),
            "waited_for_origin": round(sum(1 for s in pages if s.waited > 0) / count, 3),
            "max_wait_seconds_held": round(max((s.waited for s in held), default=0.0), 2),
            "max_wait_seconds": round(max((s.waited for s in pages), default=0.0), 2),
            "origin_timeout_seconds": timeout,
        }
    return out


#: name: (what it is, its builder, whether the CloudFront Function runs).
VARIANTS: dict[str, tuple[str, Callable[[Path, Path, bytes], Any], bool]] = {
    "ours, no-cache": (
        "this toolkit, pages no-cache (0.6.2's default, before issue 26)",
        build_ours("no-cache"),
        True,
    ),
    "ours": (
        "this toolkit's defaults: pages answered at the edge (s-maxage=0)",
        build_ours(),
        True,
    ),
    "ours, fresh 60 s": (
        "this toolkit, cf.page_cache_control = edge_cache_control(60): s-maxage=60",
        build_ours(fresh=60),
        True,
    ),
    "ours, raw Accept": (
        "this toolkit, no CloudFront Function (raw Accept in the key)",
        build_ours(),
        False,
    ),
    "0.6.2": ("chalice-http-toolkit 0.6.2", build_old, True),
}

ROWS = [
    ("origin invocations / 1,000 views", "origin_invocations_per_1000_views"),
    ("origin requests (failed ones too) / 1,000 views", "origin_requests_per_1000_views"),
    ("... of which background revalidations", "origin_background_requests_per_1000_views"),
    ("origin bytes / 1,000 views", "origin_bytes_per_1000_views"),
    ("renders / 1,000 views", "renders_per_1000_views"),
    ("image conversions / 1,000 views", "image_conversions_per_1000_views"),
    ("share of origin answers that are 304", "origin_304_share"),
    ("share of viewer requests answered at the edge", "answered_at_the_edge"),
    ("share of page views that waited for the origin", "page_views_waited_for_origin"),
    ("share of page views that waited for a cold start", "page_views_waited_for_cold_start"),
    ("viewer 5xx pages / 1,000 views (all faults)", "viewer_page_5xx_per_1000_views"),
    ("stale page views after the content change (run)", ("after_redeploy", "stale_pages")),
    ("... most for one URL", ("after_redeploy", "stale_pages_max_per_url")),
    ("... latest, seconds after the fixed deploy", ("after_redeploy", "stale_pages_max_seconds")),
    ("stale stylesheets after the content change (run)", ("after_redeploy", "stale_stylesheets")),
    ("broken images: 200, not an image (run)", "broken_images"),
    ("images in a format the client did not name (run)", "unadvertised_image_formats"),
]
FAULT_ROWS = [
    ("page views", "page_views"),
    ("... of pages the edge held", "page_views_held_at_edge"),
    ("viewer 5xx / 1,000 views of held pages", "viewer_5xx_per_1000_held"),
    ("viewer 5xx / 1,000 views", "viewer_5xx_per_1000"),
    ("viewer 4xx / 1,000 views", "viewer_4xx_per_1000"),
    ("share of views that waited for the origin", "waited_for_origin"),
    ("longest wait of a held page, s", "max_wait_seconds_held"),
    ("longest wait, s", "max_wait_seconds"),
]


def _value(figures: dict[str, Any], key: Any) -> Any:
    return figures[key[0]][key[1]] if isinstance(key, tuple) else figures[key]


def markdown(results: dict[str, Any]) -> str:
    names = list(results["toolkits"])
    views = results["meta"]["page_views"]
    header = f"| {views:,} page views | " + " | ".join(names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    lines = [header, rule]
    for label, key in ROWS:
        values = [_value(results["toolkits"][name], key) for name in names]
        lines.append(f"| {label} | " + " | ".join(f"{v:,}" for v in values) + " |")
    for fault in results["toolkits"][names[0]]["faults"]:
        lines.append(f"| **{fault}** |" + " |" * len(names))
        for label, key in FAULT_ROWS:
            values = [results["toolkits"][name]["faults"][fault][key] for name in names]
            lines.append(f"| {label} | " + " | ".join(f"{v:,}" for v in values) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    views = int(os.environ.get("CDN_SIM_VIEWS", str(SCHEDULE_VIEWS)))
    containers = int(os.environ.get("CDN_SIM_CONTAINERS", "3"))
    seed = int(os.environ.get("CDN_SIM_SEED", "2025"))
    template = cli.cloudfront_template()
    [code] = [
        resource["Properties"]["FunctionCode"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::CloudFront::Function"
    ]
    # 0.6.2 as its documentation deploys it: STAGE=prod (read when 0.6.2 is imported).
    os.environ["STAGE"] = "prod"
    names = [name for name in VARIANTS if name != "0.6.2"]
    if bench.load_old() is not None:
        names.append("0.6.2")
    else:
        print("chalice-http-toolkit 0.6.2 is not installed: no 0.6.2 column", file=sys.stderr)
    toolkits = {}
    for name in names:
        _, build, function = VARIANTS[name]
        toolkits[name] = simulate(
            build, template, code if function else None, views, containers, seed
        )
    results = {
        "meta": {
            "what": __doc__.splitlines()[0],
            "variants": {name: VARIANTS[name][0] for name in names},
            "page_views": views,
            "containers": containers,
            "seed": seed,
            "browser_mix": "Chrome 55%, Safari 20%, Firefox 15%, curl 10%; 20% new visitors",
            "pages": f"home {HOME_SHARE:.0%}, {POSTS} posts by Zipf; a view every "
            f"{MEAN_GAP} s on average",
            "faults": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "share": f.share,
                    "start_s": round(f.start),
                    "end_s": round(f.end),
                }
                for f in faults_for(views)
            ],
            "assumptions": {
                "cold_start_seconds": COLD_START_SECONDS,
                "round_trip_seconds": ROUND_TRIP_SECONDS,
                "evict_after_seconds": EVICT_AFTER,
            },
            "notes": [
                "Every origin request goes through bench/apigw.py's API Gateway model, "
                "which serialises the Lambda result with awslambdaric's marshaller: a bytes "
                "body that is UTF-8 is delivered, non-UTF-8 bytes or a payload over the "
                "limit are a 502.",
                "0.6.2 returns static files as a bytes body (its STAGE=prod path base64-"
                "encodes images into ASCII bytes): all are delivered. It revalidates static "
                "files by mtime, which a Chalice deployment stamps 1980-01-01, so a changed "
                "stylesheet is answered 304 and stays stale after a redeploy.",
                "ours, raw Accept: the same template without the CloudFront Function, so "
                "the browsers' own Accept values are in the cache key.",
                "A page view waited for the origin when CloudFront fetched or revalidated "
                "the page (HTML) before answering; background revalidations (stale-while-"
                "revalidate) make nobody wait. CloudFront's documented stale-on-5xx "
                "behaviour applies to every variant: an expired page it holds is served "
                "after the origin's error or time-out.",
            ],
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "toolkits": toolkits,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
