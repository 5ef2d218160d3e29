"""CDN simulation: what reaches the Lambda behind CloudFront, our toolkit vs 0.6.2.

``make cdn-sim`` (and ``make bench``) runs this in ``.venv-bench``. The site of
``bench/run.py`` (a page with includes, two stylesheets, a script, a JPEG photo) is
served by our toolkit and by chalice-http-toolkit 0.6.2, each as several Lambda
containers behind the CloudFront model of ``bench/cdn_model.py``, configured by the
template ``cli.py cloudfront`` writes and running its CloudFront Function under node.
The same seeded traffic goes to each: page views from a browser mix (Chrome, Safari,
Firefox, curl) with their own HTTP caches, over simulated time, with a template and
stylesheet change and a redeploy (files stamped 1980-01-01, new containers) halfway.

Reported per 1,000 page views: origin invocations, origin bytes, template renders and
image conversions; plus the cache's hit ratio and what clients got wrong after the
redeploy (stale pages and stylesheets) and broken or unadvertised images. A report,
not a test: nothing here fails on a number.

Environment: ``CDN_SIM_VIEWS`` (page views, default 3000), ``CDN_SIM_CONTAINERS``
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
    CloudFrontModel,
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
        rng = random.Random(seed)
        clock = SimClock()
        durations: list[float] = []
        origin = LambdaOrigin(
            lambda: TimedApp(build(templates, static, asset), durations), containers, rng, clock
        )
        function = ViewerRequestFunction(function_code) if function_code else None
        cdn = CloudFrontModel(template, origin, clock, function)
        viewer_bytes = [0]
        request = cdn.request

        def counted(url: str, headers: dict[str, str]) -> Any:
            reply = request(url, headers)
            viewer_bytes[0] += len(reply.body)  # as sent: compressed where CloudFront did
            return reply

        cdn.request = counted
        clients = make_clients(300, rng)
        seen: list[Seen] = []
        old_css = (static / "print.css").read_bytes()
        with count_renders() as renders, bench.quiet():
            references = [_reference(build, templates, static, asset)]
            for half in range(2):
                if half == 1:
                    redeployed_at = clock.now
                    redeploy_site(templates, static)
                    origin.redeploy()
                    references.append(_reference(build, templates, static, asset))
                for _ in range(views // 2):
                    clock.now += rng.expovariate(1 / 2.0)
                    client = rng.choice(clients)
                    if rng.random() < 0.2:
                        client.cache.clear()  # a new visitor
                    seen += page_view(cdn, client, "/", clock.now)
            renders_total = sum(renders.values()) - 2  # minus the two reference renders
        if function is not None:
            function.close()
        stale = (references[0], old_css)
        figures = _figures(cdn, origin, seen, stale, redeployed_at, renders_total, views)
        figures["viewer_body_bytes_per_1000_views"] = round(viewer_bytes[0] * 1000 / views)
        figures["origin_cold_starts"] = origin.cold_starts
        figures["origin_duration_ms_per_1000_views"] = round(sum(durations) * 1e6 / views, 1)
        figures["origin_duration_histogram_us"] = duration_histogram(durations)
        return figures


def _reference(build: Callable, templates: Path, static: Path, asset: bytes) -> bytes:
    return invoke(build(templates, static, asset), "GET", "/", {"Accept": "*/*"}).body


def _figures(
    cdn: CloudFrontModel,
    origin: LambdaOrigin,
    seen: list[Seen],
    stale: tuple[bytes, bytes],
    redeployed_at: float,
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
    late = [s for s in seen if s.time > redeployed_at]
    old_page, old_css = stale
    stale_pages = sum(1 for s in late if s.kind == "page" and s.content == old_page)
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
    return {
        "page_views": views,
        "viewer_requests_to_cloudfront": requests,
        "origin_invocations_per_1000_views": round(origin.invocations * per_1000, 1),
        "origin_bytes_per_1000_views": round(origin.bytes * per_1000),
        "renders_per_1000_views": round(renders * per_1000, 1),
        "image_conversions_per_1000_views": round(conversions * per_1000, 1),
        "origin_304_share": round(
            sum(1 for r in cdn.origin_log if r.status == 304) / max(1, len(cdn.origin_log)), 3
        ),
        "cache_results": dict(cdn.results),
        "served_without_origin": round(cdn.results["Hit"] / max(1, requests), 3),
        "after_redeploy": {
            "page_views_seen": sum(1 for s in late if s.kind == "page"),
            "stale_pages": stale_pages,
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


VARIANTS = {
    "ours": ("this toolkit", "function"),
    "ours, raw Accept": ("this toolkit, no CloudFront Function (raw Accept in the key)", None),
    "0.6.2": ("chalice-http-toolkit 0.6.2", "function"),
}

ROWS = [
    ("origin invocations / 1,000 views", "origin_invocations_per_1000_views"),
    ("origin bytes / 1,000 views", "origin_bytes_per_1000_views"),
    ("renders / 1,000 views", "renders_per_1000_views"),
    ("image conversions / 1,000 views", "image_conversions_per_1000_views"),
    ("share of origin answers that are 304", "origin_304_share"),
    ("share of viewer requests answered without the origin", "served_without_origin"),
    ("stale pages after the redeploy (run)", ("after_redeploy", "stale_pages")),
    ("stale stylesheets after the redeploy (run)", ("after_redeploy", "stale_stylesheets")),
    ("viewer responses that are 5xx (run)", "viewer_responses_5xx"),
    ("broken images: 200, not an image (run)", "broken_images"),
    ("images in a format the client did not name (run)", "unadvertised_image_formats"),
]


def _value(figures: dict[str, Any], key: Any) -> Any:
    return figures[key[0]][key[1]] if isinstance(key, tuple) else figures[key]


def markdown(results: dict[str, Any]) -> str:
    names = list(results["toolkits"])
    views = results["meta"]["page_views"]
    header = f"| {views:,} page views | " + " | ".join(names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for label, key in ROWS:
        values = [_value(results["toolkits"][name], key) for name in names]
        lines.append(f"| {label} | " + " | ".join(f"{v:,}" for v in values) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    views = int(os.environ.get("CDN_SIM_VIEWS", "3000"))
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
    builders = {"ours": bench.build_ours, "ours, raw Accept": bench.build_ours}
    if bench.load_old() is not None:
        builders["0.6.2"] = bench.build_old
    else:
        print("chalice-http-toolkit 0.6.2 is not installed: no 0.6.2 column", file=sys.stderr)
    toolkits = {}
    for name, build in builders.items():
        _, function = VARIANTS[name]
        toolkits[name] = simulate(
            build, template, code if function else None, views, containers, seed
        )
    results = {
        "meta": {
            "what": __doc__.splitlines()[0],
            "variants": {name: VARIANTS[name][0] for name in builders},
            "page_views": views,
            "containers": containers,
            "seed": seed,
            "browser_mix": "Chrome 55%, Safari 20%, Firefox 15%, curl 10%; 20% new visitors",
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
