"""Dollars per million page views behind CloudFront, per front door, ours vs 0.6.2.

``make cost`` reads ``bench/cdn_results.json`` (``make cdn-sim``): the origin calls,
their measured durations and the bytes CloudFront sends, per 1,000 page views of the
simulated site, for this toolkit and for chalice-http-toolkit 0.6.2. It prices them
with AWS's list prices below (pay-as-you-go, no free tier, one month's volume well
inside the first pricing tier) for each front door: API Gateway REST, an HTTP API, a
Lambda Function URL. A report, not a test.

Assumptions (also in README.md, section "Front doors"):
- One page view is what the simulation's browsers fetch for the page (HTML, CSS, JS,
  images) with their own caches; CloudFront answers what it can, the rest is an
  origin call (mostly a 304 revalidation of the page, in the background when pages are
  answered at the edge). The simulation injects origin faults: a call that fails before
  the function runs (the Lambda down, throttled) is billed by the front door, not by
  Lambda.
- Lambda duration: each measured invocation scaled from this machine's full core to
  the scaffold's 256 MB function (Lambda allocates CPU in proportion to memory, one
  vCPU at 1,769 MB), rounded up to whole milliseconds as Lambda bills it. The INIT
  phase of the few cold starts is not included.
- Data from AWS origins to CloudFront is free; the viewer side pays CloudFront's
  transfer out: the bodies measured plus :data:`RESPONSE_HEADER_BYTES` per response.
- An HTTP API meters requests in 512 KB increments; every response here is smaller.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "cdn_results.json"

#: Where and when the prices below were read (AWS's public pricing pages, as published).
PRICES_REGION = "us-east-1"
PRICES_DATE = "2026-12-01"

#: API Gateway REST API requests, first 333 million a month, $ per million.
REST_API_PER_MILLION = 3.50
#: API Gateway HTTP API requests, first 300 million a month, $ per million.
HTTP_API_PER_MILLION = 1.00
#: Lambda Function URLs: no charge beyond the function's requests and duration.
FUNCTION_URL_PER_MILLION = 0.00
#: Lambda requests, $ per million.
LAMBDA_REQUESTS_PER_MILLION = 0.20
#: Lambda duration on x86_64, $ per GB-second (first 6 billion GB-seconds a month).
LAMBDA_GB_SECOND_X86 = 0.0000166667
#: Lambda bills duration in whole milliseconds, rounded up.
LAMBDA_BILLING_MS = 1
#: The scaffold's function memory (``lambda_memory_size`` in .chalice/config.json).
LAMBDA_MEMORY_MB = 256
#: The memory at which a Lambda function has one full vCPU.
LAMBDA_FULL_VCPU_MB = 1769
#: CloudFront HTTPS requests, United States, Mexico and Canada: $0.0100 per 10,000.
CLOUDFRONT_HTTPS_PER_MILLION = 1.00
#: CloudFront Functions invocations (the Accept function runs on every viewer request).
CLOUDFRONT_FUNCTION_PER_MILLION = 0.10
#: CloudFront data transfer out to the internet, United States, first 10 TB a month, $ per GB.
CLOUDFRONT_TRANSFER_PER_GB = 0.085
#: Response header bytes per viewer response (status line, caching and type headers).
RESPONSE_HEADER_BYTES = 500
#: An Application Load Balancer: $ per hour and per LCU-hour, a fixed cost, not per request.
ALB_PER_HOUR = 0.0225
ALB_PER_LCU_HOUR = 0.008

FRONT_DOORS = {
    "REST API": REST_API_PER_MILLION,
    "HTTP API": HTTP_API_PER_MILLION,
    "Function URL": FUNCTION_URL_PER_MILLION,
}
TOOLKITS = ("ours, no-cache", "ours", "ours, fresh 60 s", "0.6.2")
VIEWS = 1_000_000


def billed_ms(histogram: dict[str, int], speed_ratio: float) -> int:
    """Billed milliseconds of the invocations in ``histogram`` (bucket upper bound µs → count).

    Each bucket's upper bound, times ``speed_ratio`` (how much slower the function's CPU
    is), rounded up to :data:`LAMBDA_BILLING_MS`.
    """
    total = 0
    for bound, count in histogram.items():
        ms = int(bound) * speed_ratio / 1000
        total += count * max(
            LAMBDA_BILLING_MS, math.ceil(ms / LAMBDA_BILLING_MS) * LAMBDA_BILLING_MS
        )
    return total


def costs(figures: dict[str, Any]) -> dict[str, Any]:
    """Dollars per million page views for one toolkit's simulation figures, per front door."""
    if "origin_duration_histogram_us" not in figures:
        raise KeyError("origin_duration_histogram_us")
    scale = VIEWS / 1000
    origin_calls = figures["origin_invocations_per_1000_views"] * scale
    front_door_calls = figures.get("origin_requests_per_1000_views", 0) * scale or origin_calls
    viewer_requests = figures["viewer_requests_to_cloudfront"] / figures["page_views"] * VIEWS
    histogram = figures["origin_duration_histogram_us"]
    measured_calls = sum(histogram.values())
    speed_ratio = LAMBDA_FULL_VCPU_MB / LAMBDA_MEMORY_MB
    ms_per_call = billed_ms(histogram, speed_ratio) / max(1, measured_calls)
    gb_seconds = origin_calls * ms_per_call / 1000 * LAMBDA_MEMORY_MB / 1024
    viewer_gb = (
        figures["viewer_body_bytes_per_1000_views"] * scale
        + viewer_requests * RESPONSE_HEADER_BYTES
    ) / 1024**3
    lambda_requests = origin_calls * LAMBDA_REQUESTS_PER_MILLION / 1e6
    lambda_duration = gb_seconds * LAMBDA_GB_SECOND_X86
    cloudfront = (
        viewer_requests * (CLOUDFRONT_HTTPS_PER_MILLION + CLOUDFRONT_FUNCTION_PER_MILLION) / 1e6
        + viewer_gb * CLOUDFRONT_TRANSFER_PER_GB
    )
    doors = {}
    for door, price in FRONT_DOORS.items():
        front_door = front_door_calls * price / 1e6
        doors[door] = {
            "front_door": round(front_door, 4),
            "lambda": round(lambda_requests + lambda_duration, 4),
            "cloudfront": round(cloudfront, 4),
            "total": round(front_door + lambda_requests + lambda_duration + cloudfront, 4),
        }
    return {
        "origin_calls": round(origin_calls),
        "viewer_requests": round(viewer_requests),
        "billed_ms_per_origin_call": round(ms_per_call, 3),
        "viewer_gb": round(viewer_gb, 3),
        "lambda_requests": round(lambda_requests, 4),
        "lambda_duration": round(lambda_duration, 4),
        "doors": doors,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"| $ per 1M page views ({PRICES_REGION}, list prices of {PRICES_DATE}) "
        "| front door | Lambda | CloudFront | total |",
        "|---|---:|---:|---:|---:|",
    ]
    for toolkit, figures in report["toolkits"].items():
        for door, cost in figures["doors"].items():
            lines.append(
                f"| {toolkit}, {door} | {cost['front_door']:.2f} | {cost['lambda']:.2f} "
                f"| {cost['cloudfront']:.2f} | {cost['total']:.2f} |"
            )
    lines.append("")
    lines.append("| per 1M page views | origin calls | billed ms per call | viewer GB |")
    lines.append("|---|---:|---:|---:|")
    for toolkit, figures in report["toolkits"].items():
        lines.append(
            f"| {toolkit} | {figures['origin_calls']:,} | {figures['billed_ms_per_origin_call']}"
            f" | {figures['viewer_gb']} |"
        )
    return "\n".join(lines)


def report(results: dict[str, Any]) -> dict[str, Any]:
    toolkits = {}
    for name in TOOLKITS:
        if name in results["toolkits"]:
            toolkits[name] = costs(results["toolkits"][name])
    return {
        "prices": {"region": PRICES_REGION, "date": PRICES_DATE},
        "page_views_simulated": results["meta"]["page_views"],
        "toolkits": toolkits,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="cdn_sim.py's output")
    parser.add_argument("-j", "--json", action="store_true", help="print JSON instead")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        priced = report(results)
    except FileNotFoundError:
        print(f"cost: {args.results} does not exist; run make cdn-sim first", file=sys.stderr)
        return 1
    except KeyError as error:
        print(
            f"cost: {args.results} has no {error}; it predates the cost report: "
            "run make cdn-sim again",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(priced, indent=2) if args.json else markdown(priced))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
