"""The benchmark harness (bench/run.py) runs end to end; no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_run", None)


def test_harness_runs_with_a_tiny_iteration_count(bench, tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    results = bench.run(
        iterations=3,
        budget=0.2,
        import_runs=1,
        cold_runs=1,
        first_conversions=1,
        output=output,
    )

    assert json.loads(output.read_text()) == json.loads(json.dumps(results))
    rows = {row["row"]: row for row in results["rows"]}
    assert list(rows) == bench.ROW_ORDER
    measured = [name for name in bench.ROW_ORDER if name != "image repeat (WebP)"]
    if results["meta"]["image_negotiation"]:
        measured.append("image repeat (WebP)")
    for name in measured:
        assert rows[name]["ours_us"] > 0, name
    assert set(results["import"]) >= {"ours", "ours, compiling", "target", "target_met"}
    assert "ours" in results["cold_start"]
    assert set(results["peak_rss_mib"]) >= {"bare", "ours"}
    table = bench.markdown(results)
    assert table.startswith("| path | ours µs |")
    assert "| template 304 |" in table


def test_every_row_request_is_answered_as_the_row_says(bench, tmp_path: Path) -> None:
    templates, static = bench.write_site(tmp_path / "site", first_conversions=1)
    app = bench.build_ours(templates, static, (tmp_path / "site" / "asset.png").read_bytes())

    requests = bench._requests(app, old=False)  # checks status and Content-Type per row

    statuses = {name: fn()["statusCode"] for name, fn in requests.items() if fn is not None}
    assert statuses["template 304"] == statuses["static 304"] == statuses["asset 304"] == 304
    assert statuses["template 200"] == statuses["static 200, nested"] == 200


def test_images_memory_bench_runs_on_small_images(tmp_path: Path, monkeypatch) -> None:
    """bench/images_memory.py: a fresh process per conversion and per browser request."""
    spec = importlib.util.spec_from_file_location(
        "bench_images_memory", BENCH.parent / "images_memory.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "IMAGES", (("small JPEG", "small.jpg", (320, 240), "JPEG"),))
    output = tmp_path / "rows.json"
    assert module.main(["--images", str(tmp_path / "images"), "--json", str(output)]) == 0
    rows = json.loads(output.read_text())
    conversions = [row for row in rows if row["table"] == "conversions"]
    browsers = [row for row in rows if row["table"] == "browsers"]
    assert [row["target"] for row in conversions] == list(module.TARGETS)
    assert [row["browser"] for row in browsers] == list(module.BROWSERS)
    assert all(row["peak_mb"] >= row["baseline_mb"] > 0 for row in rows), rows
    # A camera photo at full size: every browser gets its 320x240 pixels, in some format.
    assert all(row["status"] == 200 and row["size"] == [320, 240] for row in browsers), browsers


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH.parent / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_peers", None)


def test_peers_bench_runs_where_the_peers_are_installed(peers, tmp_path: Path) -> None:
    """bench/peers.py in .venv-bench (make bench): every row answered by every variant."""
    for name in ("flask", "whitenoise", "apig_wsgi", "starlette", "mangum"):
        pytest.importorskip(name)
    output = tmp_path / "peers.json"
    results = peers.run(iterations=3, budget=0.2, rie_runs=0, output=output)

    assert json.loads(output.read_text())["rows"].keys() == set(peers.ROWS)
    for name in peers.ROWS:
        assert results["rows"][name]["ours"] > 0, name
        assert results["rows"][name]["flask"] > 0, name
        assert results["rows"][name]["starlette"] > 0, name
    table = peers.markdown(results)
    assert "| static 304 via Function URL |" in table
    assert f"| {peers.OVER_REST} | " in table


def test_the_cold_start_task_of_ours_ships_the_prepared_templates(peers, tmp_path: Path) -> None:
    site = tmp_path / "site"
    peers.write_site(site)
    task = peers.task_root("ours", site, tmp_path / "tasks")
    unprepared = peers.task_root(peers.UNPREPARED, site, tmp_path / "tasks")

    prepared = json.loads((task / "chalice_http_toolkit.prepared.json").read_text())
    assert "catalog.html" in prepared["templates"]["templates"]["entries"]
    assert (task / "chalice_http_toolkit.prepared.json.bytecode").is_file()
    assert not (unprepared / "chalice_http_toolkit.prepared.json").exists()
    assert "catalog_args(next(COUNT))" in (task / "handler.py").read_text()


def test_the_previous_revision_bench_runs_side_by_side(tmp_path: Path) -> None:
    """bench/previous.py loads HEAD's module beside the working tree's and prints every row."""
    import os
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "previous.py"), "HEAD"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BENCH_PREVIOUS_ITERATIONS": "10"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["row", "bare", "HEAD", "now"]
    assert [line.split("  ")[0] for line in lines[1:]] == [
        "template 304",
        "cached page",
        "cached page, gzip",
        "static 304",
        "static 200",
        "asset 304",
        "JSON reading the session",
        "new arguments every request",
    ]


def test_the_bare_jinja2_cold_start_task_renders_the_catalogue(peers, tmp_path: Path) -> None:
    """The Jinja2 floor row: a bare Chalice app rendering the same page with plain Jinja2."""
    site = tmp_path / "site"
    peers.write_site(site)
    task = peers.task_root(peers.BARE_JINJA, site, tmp_path / "tasks")
    event = {
        "resource": "/fresh",
        "path": "/fresh",
        "httpMethod": "GET",
        "headers": {"Accept": "text/html"},
        "multiValueHeaders": {"Accept": ["text/html"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": "/fresh", "httpMethod": "GET", "stage": "api"},
        "body": None,
        "isBase64Encoded": False,
    }
    script = (
        "import json, sys; sys.path.insert(0, '.'); import handler; "
        "print(json.dumps(handler.handler(json.loads(sys.argv[1]), None)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(event)],
        cwd=task,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["statusCode"] == 200
    assert "SKU-0-19" in answer["body"] and "&lt;canvas&gt;" in answer["body"]
