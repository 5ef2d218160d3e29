"""Pages answered at the edge under origin faults (issue 26), through the CDN simulation.

``bench/cdn_sim.py``'s site and traffic behind the CloudFront model with the template's
CloudFront Function, the Lambda down, throttled, a bad deploy and time-outs injected: the
figures the issue sets as targets, for today's ``no-cache`` pages and the edge defaults.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

CDN_SIM = Path(__file__).resolve().parent.parent / "bench" / "cdn_sim.py"
VIEWS = 3000


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("cdn_sim_faults", CDN_SIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in ("bench_run", "toolkit_cli"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def runs(sim):
    template = sim.cli.cloudfront_template()
    [code] = [
        r["Properties"]["FunctionCode"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudFront::Function"
    ]
    return {
        name: sim.simulate(sim.VARIANTS[name][1], template, code, VIEWS, 3, 2025)
        for name in ("ours, no-cache", "ours")
    }


def test_every_fault_happens_to_pages_the_edge_holds(runs):
    for figures in runs.values():
        for fault, seen in figures["faults"].items():
            assert seen["page_views_held_at_edge"] > 50, fault


def test_held_pages_never_get_a_5xx_during_a_fault(runs):
    """CloudFront serves an expired page it holds on a 5xx or a time-out: both defaults."""
    for figures in runs.values():
        for fault, seen in figures["faults"].items():
            assert seen["viewer_5xx_per_1000_held"] <= 1, fault


def test_at_the_edge_nobody_waits_for_the_origin_of_a_held_page(runs):
    today, edge = runs["ours, no-cache"], runs["ours"]
    assert today["page_views_waited_for_origin"] == 1.0
    assert edge["page_views_waited_for_origin"] <= 0.05
    assert edge["page_views_waited_for_cold_start"] <= 0.001
    for fault, seen in edge["faults"].items():
        assert seen["max_wait_seconds_held"] == 0, fault
    hang = next(seen for fault, seen in today["faults"].items() if "time-outs" in fault)
    # no-cache: each view of a held page waits for the page origin's time-out, no longer.
    assert hang["max_wait_seconds_held"] == hang["origin_timeout_seconds"] == 10


def test_the_edge_is_one_view_behind_after_a_content_change(runs):
    today, edge = runs["ours, no-cache"], runs["ours"]
    assert today["after_redeploy"]["stale_pages"] == 0
    behind = edge["after_redeploy"]
    assert 0 < behind["stale_pages"] < 0.05 * behind["page_views_seen"]
    assert behind["stale_pages_max_per_url"] <= 3  # one per cache key of the URL
