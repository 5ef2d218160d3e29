"""Benchmark: peak memory and time of one image conversion, each in a fresh process.

``make bench`` runs this after ``bench/run.py``. The test pictures are made with
Pillow and cached in a temporary directory: camera-like JPEGs of 12 and 24 MP
(blurred shapes, fine texture and sensor grain, quality 92: about the bytes a phone
writes) and screenshot-like PNGs of 5 and 36 MP (flat colours, anti-aliased text,
gradients). Two tables, one fresh Python process per row:

* **conversions**: for every picture and target format (AVIF, WebP, JPEG, PNG) the
  child builds a ``ContentManager`` over a static folder holding the picture and
  converts it at full size through ``StaticImages.render`` (the path a static image
  request takes): peak RSS, seconds, output bytes and pixel size, or "not served".
* **browsers**: for every picture and browser (Chrome, Safari 17 and 16, Firefox
  and curl, with their real ``Accept`` headers) the child answers one request through
  Chalice's test client: status, format, pixel size and bytes served, peak RSS.

Peak RSS is ``VmHWM`` (``ru_maxrss`` would include the RSS of the process that
started the child, which Linux carries over a fork); the baseline is the child's
RSS before the conversion (Python, Chalice, Pillow). ``--module PATH`` measures
another copy of the module (e.g. an older commit's); ``--json FILE`` writes the
rows. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGES = (
    ("12 MP camera JPEG", "camera12.jpg", (4032, 3024), "JPEG"),
    ("24 MP camera JPEG", "camera24.jpg", (6000, 4000), "JPEG"),
    ("5 MP screenshot PNG", "screen5.png", (2880, 1800), "PNG"),
    ("36 MP screenshot PNG", "screen36.png", (7200, 5000), "PNG"),
)
TARGETS = ("AVIF", "WEBP", "JPEG", "PNG")
#: The ``Accept`` header each client sends for an ``<img>`` (curl: its default).
BROWSERS = {
    "Chrome": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "Safari": "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    "Safari 16": "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
    "Firefox": "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    "curl": "*/*",
}

_PRELUDE = r"""
import importlib.util, json, os, resource, sys, time
spec = importlib.util.spec_from_file_location("cht", sys.argv[1])
cht = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cht)
import chalice  # the runtime's own footprint: Python, Chalice, Pillow
from PIL import Image
Image.preinit()
def status_mb(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def pixels(body):
    import io
    with Image.open(io.BytesIO(body)) as image:
        return image.format, image.size
static_dir, name, what = sys.argv[2], sys.argv[3], sys.argv[4]
source_size = os.path.getsize(os.path.join(static_dir, name))
"""

CONVERSION_CHILD = (
    _PRELUDE
    + r"""
cm = cht.ContentManager(static_dir, static_dir, auto_reload=False)
static_file = cm.static_files.get(name)
baseline = status_mb("VmRSS")
started = time.perf_counter()
variant = cm.images.variant(static_file, what, None)
body = cm.images.render(static_file, variant)
seconds = time.perf_counter() - started
print(json.dumps({
    "baseline_mb": round(baseline, 1),
    "peak_mb": round(status_mb("VmHWM"), 1),
    "seconds": round(seconds, 2),
    "bytes": None if body is None else len(body),
    "size": None if body is None else pixels(body)[1],
    "source_bytes": source_size,
}))
"""
)

BROWSER_CHILD = (
    _PRELUDE
    + r"""
from chalice import Chalice
from chalice.test import Client
app = Chalice(app_name="images")
cm = cht.ContentManager(static_dir, static_dir, app, auto_reload=False)
cm.register_static_routes()
baseline = status_mb("VmRSS")
started = time.perf_counter()
with Client(app) as client:
    response = client.http.get("/static/" + name, headers={"Accept": what})
seconds = time.perf_counter() - started
served = pixels(response.body) if response.status_code == 200 else (None, None)
print(json.dumps({
    "status": response.status_code,
    "format": served[0],
    "size": served[1],
    "bytes": len(response.body),
    "baseline_mb": round(baseline, 1),
    "peak_mb": round(status_mb("VmHWM"), 1),
    "seconds": round(seconds, 2),
    "source_bytes": source_size,
}))
"""
)


def camera_photo(size: tuple[int, int], seed: int = 0) -> Any:
    """A camera-like RGB picture: blurred shapes, fine texture and sensor grain."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = size
    small = (max(8, width // 8), max(8, height // 8))
    base = Image.merge(
        "RGB",
        [
            Image.radial_gradient("L").resize(small),
            Image.linear_gradient("L").resize(small).rotate(90),
            Image.linear_gradient("L").resize(small),
        ],
    )
    draw = ImageDraw.Draw(base)
    rng = random.Random(seed)
    for _ in range(80):
        x, y = rng.randrange(small[0]), rng.randrange(small[1])
        radius = rng.randrange(2, max(3, small[0] // 6))
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(2)).resize(size, Image.Resampling.BICUBIC)
    texture = Image.effect_noise((max(1, width // 3), max(1, height // 3)), 40)
    texture = texture.resize(size, Image.Resampling.BICUBIC)
    detail = Image.blend(base, Image.merge("RGB", [texture] * 3), 0.18)
    grain = Image.merge("RGB", [Image.effect_noise(size, 12) for _ in range(3)])
    return Image.blend(detail, grain, 0.12)


def screenshot(size: tuple[int, int], seed: int = 0) -> Any:
    """A screenshot-like RGB picture: a title bar, lines of anti-aliased text, gradients."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    image = Image.new("RGB", size, (246, 247, 249))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    rng = random.Random(seed)
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "images",
        "lambda",
        "memory",
        "budget",
    ]
    draw.rectangle((0, 0, width, 60), fill=(32, 40, 56))
    draw.text((30, 18), "Dashboard  Settings  Reports  Help", font=font, fill=(230, 230, 240))
    top = 90
    while top < height - 30:
        if rng.random() < 0.06 and width > 500:
            left = rng.randrange(40, width // 2)
            box = (left, top, min(width, left + rng.randrange(200, width // 2)), top + 160)
            ramp = Image.linear_gradient("L").resize((box[2] - box[0], box[3] - box[1]))
            colour = [rng.randrange(256) for _ in range(3)]
            bands = [ramp.point(lambda value, c=c: c * value // 255) for c in colour]
            image.paste(Image.merge("RGB", bands), box[:2])
            top += 180
            continue
        line = " ".join(rng.choice(words) for _ in range(max(1, width // 60)))
        draw.text((40, top), line, font=font, fill=(40 + rng.randrange(40),) * 3)
        top += 22
    return image


def make_images(directory: Path) -> None:
    """Write the test pictures once (kept between runs in the cache directory)."""
    for _, name, size, pillow_format in IMAGES:
        path = directory / name
        if path.exists():
            continue
        if pillow_format == "JPEG":
            camera_photo(size).save(path, "JPEG", quality=92)
        else:
            screenshot(size).save(path, pillow_format)


def _child(code: str, module: str, directory: Path, name: str, what: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", code, module, str(directory), name, what],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(module: str, directory: Path, name: str, target: str) -> dict:
    """One full-size conversion of ``name`` to ``target`` in a fresh process."""
    return _child(CONVERSION_CHILD, module, directory, name, target)


def serve(module: str, directory: Path, name: str, accept: str) -> dict:
    """One request for ``name`` with ``accept`` in a fresh process: what was served."""
    return _child(BROWSER_CHILD, module, directory, name, accept)


def _size(size: list[int] | None) -> str:
    return "-" if not size else f"{size[0]}x{size[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default=str(ROOT / "chalice_http_toolkit.py"))
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--images", default=os.path.join(tempfile.gettempdir(), "cht-bench-images"))
    parser.add_argument("--skip-conversions", action="store_true", help="browsers table only")
    args = parser.parse_args(argv)
    directory = Path(args.images)
    directory.mkdir(parents=True, exist_ok=True)
    make_images(directory)
    rows: list[dict] = []
    if not args.skip_conversions:
        print(
            f"{'image':<21} {'target':<6} {'peak MB':>8} {'base MB':>8} {'s':>6} "
            f"{'served':>22} {'saved':>6}"
        )
        for label, name, _, _ in IMAGES:
            for target in TARGETS:
                row = {"table": "conversions", "image": label, "target": target}
                row.update(measure(args.module, directory, name, target))
                rows.append(row)
                if "error" in row:
                    print(f"{label:<21} {target:<6} failed: {row['error']}")
                    continue
                served, saved = "not served", "-"
                if row["bytes"] is not None:
                    served = f"{_size(row['size'])}, {row['bytes']} B"
                    saved = f"{100 * (1 - row['bytes'] / row['source_bytes']):.0f}%"
                print(
                    f"{label:<21} {target:<6} {row['peak_mb']:>8} {row['baseline_mb']:>8} "
                    f"{row['seconds']:>6} {served:>22} {saved:>6}"
                )
    print(f"\n{'image':<21} {'client':<9} {'served':>26} {'saved':>7} {'peak MB':>8} {'s':>6}")
    for label, name, _, _ in IMAGES:
        for browser, accept in BROWSERS.items():
            row = {"table": "browsers", "image": label, "browser": browser}
            row.update(serve(args.module, directory, name, accept))
            rows.append(row)
            if "error" in row:
                print(f"{label:<21} {browser:<9} failed: {row['error']}")
                continue
            if row["status"] != 200:
                served = f"{row['status']} (too large?)"
                saved = "-"
            else:
                served = f"{row['format']} {_size(row['size'])}, {row['bytes']} B"
                saved = f"{100 * (1 - row['bytes'] / row['source_bytes']):.0f}%"
            print(
                f"{label:<21} {browser:<9} {served:>26} {saved:>7} {row['peak_mb']:>8} "
                f"{row['seconds']:>6}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
