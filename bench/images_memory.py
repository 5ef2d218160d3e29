"""Benchmark: peak memory and time of one image conversion, each in a fresh process.

``make bench`` runs this after ``bench/run.py``. Three noisy test images are made
with Pillow (a 12 MP and a 24 MP JPEG, a 36 MP PNG: noise makes encoders work
hard) and cached in a temporary directory. For every image and target format
(AVIF, WebP, JPEG, PNG) a new Python process imports the toolkit, builds a
``ContentManager`` over a static folder holding the image and converts it
through ``StaticImages.render`` (the path a static image request takes), then
reports its peak RSS (``VmHWM``: ``ru_maxrss`` would include the RSS of the
process that started it, which Linux carries over a fork), its RSS before the conversion (the
runtime's own footprint) and the seconds the conversion took.

``--module PATH`` measures another copy of the module (e.g. an older commit's);
``--json FILE`` writes the rows. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = (
    ("12 MP JPEG", "jpeg12.jpg", (4000, 3000), "JPEG"),
    ("24 MP JPEG", "jpeg24.jpg", (6000, 4000), "JPEG"),
    ("36 MP PNG", "png36.png", (7200, 5000), "PNG"),
)
TARGETS = ("AVIF", "WEBP", "JPEG", "PNG")

CHILD = r"""
import importlib.util, json, os, resource, sys, time
spec = importlib.util.spec_from_file_location("cht", sys.argv[1])
cht = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cht)
import chalice  # the runtime's own footprint: Python, Chalice, Pillow
from PIL import Image
Image.preinit()
static_dir, name, target = sys.argv[2], sys.argv[3], sys.argv[4]
cm = cht.ContentManager(static_dir, static_dir, auto_reload=False)
static_file = cm.static_files.get(name)
source_size = os.path.getsize(os.path.join(static_dir, name))
def status_mb(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
baseline = status_mb("VmRSS")
started = time.perf_counter()
variant = cm.images.variant(static_file, target, None)
body = cm.images.render(static_file, variant)
seconds = time.perf_counter() - started
print(json.dumps({
    "baseline_mb": round(baseline, 1),
    "peak_mb": round(status_mb("VmHWM"), 1),
    "seconds": round(seconds, 2),
    "bytes": None if body is None else len(body),
    "source_bytes": source_size,
}))
"""


def make_images(directory: Path) -> None:
    """Write the noisy test images once (kept between runs in the cache directory)."""
    from PIL import Image

    for _, name, size, pillow_format in IMAGES:
        path = directory / name
        if path.exists():
            continue
        gradient = Image.linear_gradient("L").resize(size)
        channels = [
            Image.blend(gradient, Image.effect_noise(size, sigma), 0.5) for sigma in (40, 60, 80)
        ]
        image = Image.merge("RGB", channels)
        options = {"quality": 90} if pillow_format == "JPEG" else {"compress_level": 1}
        image.save(path, pillow_format, **options)


def measure(module: str, directory: Path, name: str, target: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, module, str(directory), name, target],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default=str(ROOT / "chalice_http_toolkit.py"))
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--images", default=os.path.join(tempfile.gettempdir(), "cht-bench-images"))
    args = parser.parse_args(argv)
    directory = Path(args.images)
    directory.mkdir(parents=True, exist_ok=True)
    make_images(directory)
    rows = []
    print(f"{'image':<12} {'target':<6} {'peak MB':>8} {'base MB':>8} {'s':>6} {'bytes':>10}")
    for label, name, _, _ in IMAGES:
        for target in TARGETS:
            row = measure(args.module, directory, name, target)
            row = {"image": label, "target": target, **row}
            rows.append(row)
            if "error" in row:
                print(f"{label:<12} {target:<6} failed: {row['error']}")
                continue
            size = "original" if row["bytes"] is None else row["bytes"]
            print(
                f"{label:<12} {target:<6} {row['peak_mb']:>8} {row['baseline_mb']:>8} "
                f"{row['seconds']:>6} {size:>10}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
