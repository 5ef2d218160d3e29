"""Memory on a 256 MB Lambda: image conversions, static bodies and priming (issue 12).

Last section: caches are bounded by the memory Python holds (a fresh interpreter's RSS).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client
from images_memory import camera_photo
from PIL import Image

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager

ROOT = Path(__file__).resolve().parent.parent
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
MB = 1024 * 1024


def noisy_jpeg(path: Path, size: tuple[int, int]) -> None:
    """A photo-sized JPEG with noise in it, so the encoders work as hard as on a real photo."""
    gradient = Image.linear_gradient("L").resize(size)
    channels = [Image.blend(gradient, Image.effect_noise(size, s), 0.5) for s in (40, 60, 80)]
    Image.merge("RGB", channels).save(path, "JPEG", quality=90)


def static_app(static: Path, **options) -> tuple[Chalice, ContentManager]:
    templates = static.parent / f"{static.name}-templates"
    templates.mkdir(exist_ok=True)
    app = Chalice(app_name="memory")
    cm = ContentManager(str(templates), str(static), app, auto_reload=False, **options)
    cm.register_static_routes()
    return app, cm


# -- one conversion under a memory limit ---------------------------------------

LIMITED_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from chalice import Chalice
from chalice.test import Client
from chalice_http_toolkit import ContentManager
app = Chalice(app_name="memory")
cm = ContentManager(sys.argv[1], sys.argv[1], app, auto_reload=False)
cm.register_static_routes()
with Client(app) as client:
    response = client.http.get("/static/photo.jpg", headers={"Accept": sys.argv[3]})
from PIL import Image
with Image.open(io.BytesIO(response.body)) as image:
    size = list(image.size)
print(json.dumps({"status": response.status_code, "type": response.headers.get("Content-Type"),
                  "bytes": len(response.body), "size": size}))
""".replace("import json,", "import io, json,")


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory) -> Path:
    static = tmp_path_factory.mktemp("phone")
    camera_photo((4032, 3024)).save(static / "photo.jpg", "JPEG", quality=92)  # a phone's 12 MP
    return static


@pytest.mark.parametrize(("accept", "expected"), [(CHROME, "image/webp"), (SAFARI, "image/webp")])
def test_a_12_mp_photo_keeps_its_size_within_256_mb(phone_photo, accept, expected):
    """Chrome and Safari get a 12 MP JPEG as a 4032x3024 WebP, in a process limited to 256 MiB.

    Issue 21: Chrome got a 1825x1369 AVIF, Safari a 4 MP WebP. AVIF cannot encode
    12 MP within the budget (about 26 bytes a pixel), so Chrome's next format,
    WebP, is tried, at full size. ``RLIMIT_AS`` bounds address space, which
    overcounts what Lambda bills against the function's memory (resident
    pages): shared libraries mapped but never touched, thread stacks, malloc
    arenas. So 256 MiB of address space is a stricter budget than a 256 MB
    function, and passing it leaves room for the runtime.
    """
    completed = subprocess.run(
        [sys.executable, "-c", LIMITED_CHILD, str(phone_photo), str(256 * MB), accept],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["type"] == expected
    assert result["size"] == [4032, 3024]
    assert 0 < result["bytes"] < (phone_photo / "photo.jpg").stat().st_size


def test_a_full_size_variant_is_never_shrunk_to_fit_the_budget():
    """Over its encoder's budget, a format is refused (another may do), never downscaled."""
    data = io.BytesIO()
    Image.linear_gradient("L").resize((2400, 1800)).save(data, "JPEG")  # 4.3 MP
    with pytest.raises(toolkit._FormatRefused, match="AVIF are over its memory budget"):
        toolkit._encode_image(data.getvalue(), "AVIF", None, toolkit.DEFAULT_IMAGE_QUALITY)
    webp = toolkit._encode_image(data.getvalue(), "WEBP", None, toolkit.DEFAULT_IMAGE_QUALITY)
    assert Image.open(io.BytesIO(webp)).size == (2400, 1800)


def test_a_srcset_width_is_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    """A width variant of a 12 MP JPEG decodes at 1/2 scale and comes out exactly that wide."""
    noisy_jpeg(tmp_path / "photo.jpg", (4000, 3000))
    decoded_sizes = []
    real_load = Image.Image.load

    def recording_load(image):
        decoded_sizes.append(image.size)
        return real_load(image)

    monkeypatch.setattr(Image.Image, "load", recording_load)
    data = (tmp_path / "photo.jpg").read_bytes()
    body = toolkit._encode_image(data, "AVIF", 1920, toolkit.DEFAULT_IMAGE_QUALITY)
    monkeypatch.undo()
    out = Image.open(io.BytesIO(body))
    assert out.size == (1920, 1440)
    assert (2000, 1500) in decoded_sizes and (4000, 3000) not in decoded_sizes


def test_an_image_over_the_decode_budget_is_served_as_it_is(tmp_path, caplog, monkeypatch):
    """A non-JPEG whose pixels would not fit the decode budget is left alone (and remembered).

    It is never decoded, not even to read its EXIF orientation (``getexif()`` on
    a PNG decodes it all). At full size every format is over its encoder's budget
    (decided from the header); a srcset width fails on the decode budget once.
    """
    # 30 MP at 16 bits a sample: 120 MB decoded, and not a PNG the strip decoder reads.
    Image.new("I;16", (6000, 5000), 1000).save(tmp_path / "big.png")
    app, cm = static_app(tmp_path)
    decoded_sizes = []
    real_load = Image.Image.load

    def recording_load(image):
        decoded_sizes.append(image.size)
        return real_load(image)

    monkeypatch.setattr(Image.Image, "load", recording_load)
    with caplog.at_level(logging.INFO, logger="chalice_http_toolkit"), Client(app) as client:
        responses = [
            client.http.get(path, headers={"Accept": CHROME})
            for path in ["/static/big.png", "/static/big.w1920.png"] * 3
        ]
        srcset = cm.srcset("big.png")
    monkeypatch.undo()
    assert (6000, 5000) not in decoded_sizes
    assert "w640" in srcset
    assert all(r.status_code == 200 for r in responses)
    assert all(r.headers["Content-Type"] == "image/png" for r in responses)
    assert all(len(r.body) == (tmp_path / "big.png").stat().st_size for r in responses)
    assert cm.images.encodes == 1  # the width's decode, refused once for every format
    assert any("over the budget" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("mode", "size", "factor"),
    [("RGB", (301, 203), 2), ("RGBA", (640, 479), 3), ("L", (100, 77), 4), ("LA", (57, 91), 5)],
)
def test_a_png_decoded_in_strips_equals_a_whole_decode_reduced(mode, size, factor, monkeypatch):
    monkeypatch.setattr(toolkit, "_STRIP_BYTES", 1000)  # many strips, some not a whole box tall
    gradient = Image.linear_gradient("L").resize(size)
    bands = [Image.blend(gradient, Image.effect_noise(size, 30), 0.5) for _ in mode]
    source = io.BytesIO()
    Image.merge(mode, bands).save(source, "PNG")
    stripped = toolkit._decode_png_reduced(source.getvalue(), factor)
    whole = Image.open(io.BytesIO(source.getvalue())).reduce(factor)
    assert stripped.mode == whole.mode and stripped.size == whole.size
    assert stripped.tobytes() == whole.tobytes()


@pytest.mark.parametrize(
    "options", [{"transparency": (1, 2, 3)}, {"bits": 4}, {"interlace": 1}], ids=str
)
def test_pngs_the_strip_decoder_does_not_read_are_left_to_pillow(options):
    image = Image.new("RGB", (64, 64), (1, 2, 3))
    if "bits" in options:
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    source = io.BytesIO()
    image.save(source, "PNG", **{k: v for k, v in options.items() if k != "interlace"})
    data = bytearray(source.getvalue())
    if "interlace" in options:  # Pillow does not write Adam7: set the flag (and the CRC)
        data[28] = 1
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    assert toolkit._decode_png_reduced(bytes(data), 2) is None


def test_a_large_png_converts_without_being_decoded_whole(tmp_path, monkeypatch):
    """A 20 MP PNG (80 MB decoded) gives a srcset width via the strip decoder.

    At full size it is over every encoder's budget: it is served as it is, never decoded.
    """
    Image.linear_gradient("L").resize((5000, 4000)).convert("RGB").save(tmp_path / "big.png")
    app, _ = static_app(tmp_path)
    decoded_sizes = []
    real_load = Image.Image.load

    def recording_load(image):
        decoded_sizes.append(image.size)
        return real_load(image)

    monkeypatch.setattr(Image.Image, "load", recording_load)
    with Client(app) as client:
        response = client.http.get("/static/big.w1920.png", headers={"Accept": CHROME})
        whole = client.http.get("/static/big.png", headers={"Accept": CHROME})
    monkeypatch.undo()
    assert response.status_code == 200, response.body[:500]
    assert response.headers["Content-Type"] == "image/avif"
    assert Image.open(io.BytesIO(response.body)).size == (1920, 1536)
    assert whole.headers["Content-Type"] == "image/png"
    assert whole.body == (tmp_path / "big.png").read_bytes()
    assert (5000, 4000) not in decoded_sizes
    assert max(w * h for w, h in decoded_sizes) <= 5000 * 4000 // 4  # strips, and the output


# -- failures are remembered; a variant must be smaller -------------------------


def test_a_conversion_out_of_memory_is_remembered_and_the_original_served(tmp_path, monkeypatch):
    noisy_jpeg(tmp_path / "photo.jpg", (400, 300))
    calls = []

    def out_of_memory(*args, **kwargs):
        calls.append(args[1])
        raise MemoryError

    monkeypatch.setattr(toolkit, "_encode_image", out_of_memory)
    app, _ = static_app(tmp_path)
    original = (tmp_path / "photo.jpg").read_bytes()
    with Client(app) as client:
        responses = [
            client.http.get("/static/photo.jpg", headers={"Accept": CHROME}) for _ in range(5)
        ]
    assert [r.status_code for r in responses] == [200] * 5
    assert all(r.body == original for r in responses)
    assert calls == ["AVIF", "WEBP"]  # each accepted format tried once, not on every request


def test_a_variant_too_large_for_lambda_is_not_served(tmp_path, monkeypatch):
    noisy_jpeg(tmp_path / "photo.jpg", (400, 300))
    monkeypatch.setattr(toolkit, "_encode_image", lambda *args, **kwargs: b"\0" * (7 * MB))
    app, cm = static_app(tmp_path)
    with Client(app) as client:
        responses = [
            client.http.get("/static/photo.jpg", headers={"Accept": CHROME}) for _ in range(3)
        ]
    assert [r.status_code for r in responses] == [200] * 3
    assert all(r.headers["Content-Type"] == "image/jpeg" for r in responses)
    assert cm.images.encodes == 2  # AVIF, then WebP: each once


@pytest.mark.parametrize("accept", [CHROME, SAFARI, "image/jpeg"])
def test_no_variant_of_the_demo_hero_is_larger_than_the_png(tmp_path, accept):
    """The scaffold's hero.png: its AVIF, WebP and resized PNGs were all larger than it."""
    original = (ROOT / "scaffold" / "chalicelib" / "static" / "img" / "hero.png").read_bytes()
    (tmp_path / "hero.png").write_bytes(original)
    app, cm = static_app(tmp_path)
    paths = ["/static/hero.png"] + [
        "/static/" + cm.static_url("hero.png", width=w).rpartition("/")[2]
        for w in cm.images.widths
        if w < 960
    ]
    with Client(app) as client:
        for path in paths:
            response = client.http.get(path, headers={"Accept": accept})
            assert response.status_code == 200, path
            if accept == "image/jpeg":  # a format the client asked for instead: kept
                continue
            assert len(response.body) <= len(original), (path, response.headers["Content-Type"])


# -- static bodies: a byte budget ------------------------------------------------


def held_bytes(cm: ContentManager) -> int:
    return sum(len(f._body or b"") for f in cm.static_files.files.values())


def test_prime_keeps_static_bodies_within_the_budget(tmp_path):
    """Priming a 48 MB static folder hashes every file but holds at most the budget."""
    rng = random.Random(1)
    for number in range(24):
        (tmp_path / f"blob{number}.bin").write_bytes(rng.randbytes(2 * MB))
    (tmp_path / "site.css").write_bytes(b"body { color: red }\n" * 5000)
    app, cm = static_app(tmp_path)
    cm.prime()
    assert held_bytes(cm) <= toolkit.DEFAULT_STATIC_CACHE_BYTES
    assert cm.static_files.bodies.size <= toolkit.DEFAULT_STATIC_CACHE_BYTES
    assert all(f._version is not None for f in cm.static_files.files.values())  # all hashed
    with Client(app) as client:  # evicted files are still served, read again from disk
        response = client.http.get("/static/blob0.bin")
    assert response.status_code == 200 and response.body == (tmp_path / "blob0.bin").read_bytes()


def test_a_file_too_large_to_serve_is_not_kept_after_its_500(tmp_path):
    (tmp_path / "video.bin").write_bytes(random.Random(2).randbytes(10 * MB))
    app, cm = static_app(tmp_path)
    with Client(app) as client:
        response = client.http.get("/static/video.bin")
    assert response.status_code == 500
    assert held_bytes(cm) == 0


def test_large_files_are_served_with_their_own_etag_and_gzip(tmp_path):
    """A file over a quarter of the budget is read per request, never held, still validated."""
    text = b"".join(b"line %d of a large stylesheet\n" % n for n in range(200_000))  # 6 MB
    (tmp_path / "big.css").write_bytes(text)
    app, cm = static_app(tmp_path, static_cache_bytes=4 * MB)
    with Client(app) as client:
        plain = client.http.get("/static/big.css", headers={"Accept-Encoding": "identity"})
        zipped = client.http.get("/static/big.css", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 500  # over Lambda's 6 MB payload limit
    assert zipped.status_code == 200
    assert gzip.decompress(zipped.body) == text
    assert zipped.headers["ETag"] == f'"{toolkit._digest(text)}-gz"'
    assert held_bytes(cm) == 0


def test_rss_after_prime_stays_near_the_budget(tmp_path):
    """In a fresh process: priming 96 MB of static files leaves RSS well below 96 MB more."""
    rng = random.Random(3)
    for number in range(48):
        (tmp_path / f"blob{number}.bin").write_bytes(rng.randbytes(2 * MB))
    child = (
        "import resource, sys\n"
        "from chalice_http_toolkit import ContentManager\n"
        "def rss():\n"
        "    with open('/proc/self/status') as f:\n"
        "        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS')) // 1024\n"
        "cm = ContentManager(sys.argv[1] + '-none', sys.argv[1], auto_reload=False)\n"
        "before = rss()\n"
        "cm.prime()\n"
        "print(rss() - before)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    grown_mb = int(completed.stdout.strip().splitlines()[-1])
    assert grown_mb <= toolkit.DEFAULT_STATIC_CACHE_BYTES // MB + 16, grown_mb


# -- a very large static text file with gzip: read into memory once -------------------

LARGE_FILE_CHILD = r"""
import json, sys
from chalice import Chalice
from chalice.test import Client
from chalice_http_toolkit import ContentManager
def status_mb(field):
    with open("/proc/self/status") as handle:
        return next(int(l.split()[1]) / 1024 for l in handle if l.startswith(field + ":"))
app = Chalice(app_name="memory")
cm = ContentManager(sys.argv[1] + "-none", sys.argv[1], app, auto_reload=False)
cm.register_static_routes()
with Client(app) as client:
    client.http.get("/static/small.txt", headers={"Accept-Encoding": "gzip"})  # warm up
    before = status_mb("VmHWM")
    response = client.http.get("/static/" + sys.argv[2], headers={"Accept-Encoding": "gzip"})
print(json.dumps({"status": response.status_code, "grown_mb": status_mb("VmHWM") - before,
                  "encoding": response.headers.get("Content-Encoding")}))
"""


def large_text_peak(static: Path, name: str) -> dict:
    (static / "small.txt").write_bytes(b"hello\n" * 1000)
    completed = subprocess.run(
        [sys.executable, "-c", LARGE_FILE_CHILD, str(static), name],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_very_large_text_file_is_read_into_memory_once(tmp_path):
    """Issue 21: a 108 MiB text file asked for with gzip peaked at 240 MB (read twice).

    The gzip form is compressed from the file as it is read and given up once it
    could not fit a Lambda response: the request grows the process by about the
    file's size (the body the answer holds), not twice that.
    """
    rng = random.Random(4)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"lambda", b"request", b"served"]
    with open(tmp_path / "server.txt", "wb") as handle:
        for number in range(48):
            handle.write(
                b"".join(
                    b"%d %s %s %d\n" % (number, rng.choice(words), rng.choice(words), line)
                    for line in range(64_000)
                )
            )
    size_mb = (tmp_path / "server.txt").stat().st_size / MB
    result = large_text_peak(tmp_path, "server.txt")
    assert result["status"] == 500  # too large for Lambda, compressed or not
    assert result["grown_mb"] < 1.3 * size_mb, (result, size_mb)


def test_a_large_file_whose_gzip_fits_is_sent_compressed_within_budget(tmp_path):
    (tmp_path / "data.csv").write_bytes(b"2026-12-07,ok,0.0,0.0,0.0\n" * 1_600_000)  # 40 MiB
    size_mb = (tmp_path / "data.csv").stat().st_size / MB
    result = large_text_peak(tmp_path, "data.csv")
    assert result["status"] == 200 and result["encoding"] == "gzip"
    assert result["grown_mb"] < 1.3 * size_mb, (result, size_mb)


# == Caches bounded by memory ==============================================================
# Caches are bounded by the memory Python holds, not by characters or entry counts.
#
# The attack: a million distinct tiny pages grew RSS by 308 MB under a
# "16 MiB" page cache. Here a scaled equivalent runs in a fresh interpreter and
# its resident set is read from ``/proc/self/statm``.


PAGES = 60_000
PAGE_CACHE = 4 * 1024 * 1024
MEMO_CACHE = 2 * 1024 * 1024
#: What else may grow: allocator pools and fragmentation, Jinja2's and Chalice's
#: first-use structures after the warm-up. Stated, not tuned to pass.
SLACK = 8 * 1024 * 1024

SCRIPT = """
import json, os, sys, tempfile
sys.path.insert(0, {root!r})
import chalice_http_toolkit as toolkit

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

root = tempfile.mkdtemp()
os.makedirs(os.path.join(root, "t")); os.makedirs(os.path.join(root, "s"))
with open(os.path.join(root, "t", "tiny.html"), "w") as f:
    f.write("<p>{{{{ n }}}} 😀</p>")
options = dict(auto_reload=False, page_cache_bytes={page_cache})
if "memo_cache_bytes" in toolkit.ContentManager.__init__.__code__.co_varnames:
    options["memo_cache_bytes"] = {memo_cache}
cm = toolkit.ContentManager(os.path.join(root, "t"), os.path.join(root, "s"), **options)
cf = toolkit.CloudFront(cm)
for n in range(2000):  # warm-up: Jinja2 compiled, first allocations made
    cf.template("tiny.html", n=-n)
before = rss()
for n in range({pages}):
    response = cf.template("tiny.html", n=n)
assert response.status_code == 200
print(json.dumps({{"growth": rss() - before, "pages": len(cm.pages), "size": cm.pages.size}}))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
def test_a_flood_of_distinct_tiny_pages_stays_within_the_configured_bound():
    script = SCRIPT.format(
        root=str(ROOT), page_cache=PAGE_CACHE, memo_cache=MEMO_CACHE, pages=PAGES
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(done.stdout)
    assert result["size"] <= PAGE_CACHE
    assert 0 < result["pages"] < PAGES  # the cache was used, and it evicted
    assert result["growth"] <= PAGE_CACHE + MEMO_CACHE + SLACK, result


def test_cost_of_an_entry_covers_what_python_holds():
    import sys as system

    from chalice_http_toolkit import BoundedCache

    cache = BoundedCache(10**6)
    key, value = ("page", "x" * 10), "😀" * 100  # four bytes a character in a str
    cache.put(key, value)
    held = system.getsizeof(value) + system.getsizeof(key) + system.getsizeof("page")
    assert cache.size >= held + system.getsizeof("x" * 10)
    assert cache.size >= 4 * 100  # not counted in characters


def test_a_zero_byte_cache_stores_nothing_and_sizes_are_checked():
    from chalice_http_toolkit import BoundedCache

    cache = BoundedCache(0)
    cache.put("k", b"v")
    assert len(cache) == 0
    for bad in (-1, 1.5, "1MB", None, True):
        with pytest.raises(ValueError, match="cache size"):
            BoundedCache(bad)  # type: ignore[arg-type]
