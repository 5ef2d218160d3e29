"""The CDN simulation report (bench/cdn_sim.py) runs end to end on a little traffic."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

CDN_SIM = Path(__file__).resolve().parent.parent / "bench" / "cdn_sim.py"


def test_cdn_sim_runs_and_writes_its_results(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CDN_SIM_VIEWS", "60")
    monkeypatch.setenv("CDN_SIM_CONTAINERS", "2")
    monkeypatch.setenv("STAGE", "unchanged")  # cdn_sim sets STAGE for 0.6.2; restored after
    spec = importlib.util.spec_from_file_location("cdn_sim", CDN_SIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "cdn_results.json"

    assert module.main(["--output", str(output)]) == 0

    results = json.loads(output.read_text())
    assert results["meta"]["page_views"] == 60
    assert [f["kind"] for f in results["meta"]["faults"]] == [
        "down",
        "throttle",
        "bad-deploy",
        "timeout",
    ]
    today, ours = results["toolkits"]["ours, no-cache"], results["toolkits"]["ours"]
    for figures in (today, ours):
        assert figures["origin_invocations_per_1000_views"] > 0
        assert figures["after_redeploy"]["page_views_seen"] > 0
        assert figures["broken_images"] == figures["unadvertised_image_formats"] == 0
        assert set(figures["faults"]) == {f["name"] for f in results["meta"]["faults"]}
    assert today["after_redeploy"]["stale_pages"] == 0  # no-cache: never behind
    assert today["page_views_waited_for_origin"] == 1.0
    assert "ours, raw Accept" in results["toolkits"]
    assert capsys.readouterr().out.startswith(
        "| 60 page views | ours, no-cache | ours | ours, fresh 60 s | ours, raw Accept |"
    )
    for name in ("bench_run", "toolkit_cli"):
        sys.modules.pop(name, None)
