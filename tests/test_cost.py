"""`make cost` (bench/cost.py): dollars per million page views per front door."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cost = load("cost")


def figures(calls_per_1000: float = 1000.0, histogram: dict | None = None) -> dict:
    return {
        "page_views": 2000,
        "viewer_requests_to_cloudfront": 4000,
        "origin_invocations_per_1000_views": calls_per_1000,
        "viewer_body_bytes_per_1000_views": 0,
        "origin_duration_histogram_us": histogram or {"100": 10},
    }


@pytest.mark.parametrize(
    ("histogram", "ratio", "expected"),
    [
        ({"100": 10}, 1.0, 10),  # 0.1 ms bills as 1 ms
        ({"100": 10}, 6.91, 10),  # 0.69 ms: still 1 ms
        ({"1000": 3}, 1.0, 3),  # exactly 1 ms
        ({"1025": 2}, 1.0, 4),  # 1.025 ms bills as 2 ms
        ({"2500": 1}, 6.91, 18),  # 17.3 ms bills as 18 ms
        ({}, 6.91, 0),
    ],
)
def test_billed_ms_rounds_each_invocation_up(histogram, ratio, expected):
    assert cost.billed_ms(histogram, ratio) == expected


def test_front_door_prices_per_million_origin_calls():
    priced = cost.costs(figures())
    doors = priced["doors"]
    assert priced["origin_calls"] == 1_000_000
    assert doors["REST API"]["front_door"] == pytest.approx(3.50)
    assert doors["HTTP API"]["front_door"] == pytest.approx(1.00)
    assert doors["Function URL"]["front_door"] == 0
    # Lambda: $0.20 per million requests + 1 ms at 256 MB per call.
    duration = 1_000_000 * 0.001 * 0.25 * cost.LAMBDA_GB_SECOND_X86
    assert doors["Function URL"]["lambda"] == pytest.approx(0.20 + duration, abs=1e-4)
    # CloudFront: 2 viewer requests per view, requests + function, headers transferred.
    transfer = 2_000_000 * cost.RESPONSE_HEADER_BYTES / 1024**3 * cost.CLOUDFRONT_TRANSFER_PER_GB
    assert doors["REST API"]["cloudfront"] == pytest.approx(2 * 1.10 + transfer, abs=1e-4)
    totals = [doors[door]["total"] for door in ("REST API", "HTTP API", "Function URL")]
    assert totals == sorted(totals, reverse=True)


def test_fewer_origin_calls_cost_less():
    assert (
        cost.costs(figures(200.0))["doors"]["HTTP API"]["total"]
        < cost.costs(figures(1000.0))["doors"]["HTTP API"]["total"]
    )


def test_prices_are_named_and_dated():
    assert (cost.PRICES_REGION, cost.PRICES_DATE) == ("us-east-1", "2026-12-01")
    assert cost.FRONT_DOORS == {"REST API": 3.50, "HTTP API": 1.00, "Function URL": 0.0}


def test_cost_from_a_fresh_simulation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CDN_SIM_VIEWS", "40")
    monkeypatch.setenv("CDN_SIM_CONTAINERS", "1")
    monkeypatch.setenv("STAGE", "unchanged")
    output = tmp_path / "cdn_results.json"
    assert load("cdn_sim").main(["--output", str(output)]) == 0
    ours = json.loads(output.read_text())["toolkits"]["ours"]
    assert sum(ours["origin_duration_histogram_us"].values()) > 0
    assert ours["viewer_body_bytes_per_1000_views"] > 0
    capsys.readouterr()
    assert cost.main(["--results", str(output)]) == 0
    table = capsys.readouterr().out
    assert "| ours, Function URL | 0.00 |" in table
    assert cost.main(["--results", str(output), "--json"]) == 0
    priced = json.loads(capsys.readouterr().out)
    assert priced["prices"] == {"region": "us-east-1", "date": "2026-12-01"}
    for name in ("bench_run", "toolkit_cli"):
        sys.modules.pop(name, None)


def test_missing_or_old_results_say_what_to_run(tmp_path, capsys):
    assert cost.main(["--results", str(tmp_path / "none.json")]) == 1
    assert "make cdn-sim" in capsys.readouterr().err
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"meta": {"page_views": 1}, "toolkits": {"ours": {}}}))
    assert cost.main(["--results", str(old)]) == 1
    assert "run make cdn-sim again" in capsys.readouterr().err
