"""Issue 21: the same picture in every format; the lightest accepted format that is smaller.

A URL without a width gives every client the original's pixel dimensions; the
formats a client accepts are tried in its order (q-values), skipping one that is
over its encoder's memory budget, fails, or is not smaller; then the original.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client
from images_memory import camera_photo
from PIL import Image

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager

# The Accept headers these clients send for an <img> (curl: its default).
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_16 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
CURL = "*/*"
WEBP_OVER_AVIF = "image/webp;q=1, image/avif;q=0.9, */*;q=0.5"


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def grey_16_bit() -> bytes:
    """A 320x240 16-bit grey PNG: a left-to-right ramp over the whole 0..65535 range."""
    ramp = Image.linear_gradient("L").rotate(90).resize((320, 240)).convert("I")
    return encoded(ramp.point(lambda value: value * 257).convert("I;16"), "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "lime", "blue")]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


PICTURES = {
    # 6 MP: over AVIF's encoder budget (4 MP), within WebP's.
    "photo6.jpg": lambda: encoded(camera_photo((3000, 2000)), "JPEG", quality=92),
    "photo.jpg": lambda: encoded(camera_photo((400, 300)), "JPEG", quality=80),
    # Issue 21's icon: its AVIF (about 320 bytes) is larger than it, its WebP smaller.
    "flat.png": lambda: encoded(Image.new("RGB", (64, 48), (30, 110, 200)), "PNG"),
    "anim.gif": animated_gif,
    "cmyk.jpg": lambda: encoded(camera_photo((400, 300)).convert("CMYK"), "JPEG", quality=90),
    "grey16.png": grey_16_bit,
}


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory) -> Path:
    static = tmp_path_factory.mktemp("fallback")
    for name, make in PICTURES.items():
        (static / name).write_bytes(make())
    return static


def build(static: Path, **options) -> tuple[Chalice, ContentManager]:
    app = Chalice(app_name="fallback")
    options.setdefault("auto_reload", False)
    cm = ContentManager(str(static), str(static), app, **options)
    cm.register_static_routes()
    return app, cm


def get(app: Chalice, path: str, accept: str, **headers: str):
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    with Client(app) as client:
        return client.http.get(path, headers={"Accept": accept, **headers})


def served(response) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(response.body)) as image:
        return image.format, image.size


# -- the bad-input table of issue 21 -------------------------------------------------

BAD_INPUT = [
    # A PNG whose AVIF is larger and WebP smaller: the WebP, for every client naming it.
    ("flat.png", CHROME, "WEBP", (64, 48)),
    ("flat.png", SAFARI, "WEBP", (64, 48)),
    ("flat.png", FIREFOX, "WEBP", (64, 48)),
    ("flat.png", CURL, "PNG", (64, 48)),
    # An animated GIF is never converted: every frame, as it is.
    ("anim.gif", CHROME, "GIF", (32, 32)),
    ("anim.gif", CURL, "GIF", (32, 32)),
    # A CMYK JPEG: RGB AVIF or WebP; the original for curl.
    ("cmyk.jpg", CHROME, "AVIF", (400, 300)),
    ("cmyk.jpg", SAFARI_16, "WEBP", (400, 300)),
    ("cmyk.jpg", CURL, "JPEG", (400, 300)),
    # A 16-bit PNG: 8-bit AVIF or WebP with its tones (see below); the original for curl.
    ("grey16.png", CHROME, "AVIF", (320, 240)),
    ("grey16.png", SAFARI_16, "WEBP", (320, 240)),
    ("grey16.png", CURL, "PNG", (320, 240)),
    # q-values that put WebP over AVIF.
    ("photo.jpg", WEBP_OVER_AVIF, "WEBP", (400, 300)),
    ("photo.jpg", "image/avif;q=0.5, image/webp;q=0.8, */*;q=0.1", "WEBP", (400, 300)),
    # A picture over AVIF's budget at full size: the next format, never a smaller picture.
    ("photo6.jpg", CHROME, "WEBP", (3000, 2000)),
    ("photo6.jpg", SAFARI, "WEBP", (3000, 2000)),
    ("photo6.jpg", FIREFOX, "WEBP", (3000, 2000)),
    ("photo6.jpg", CURL, "JPEG", (3000, 2000)),
]


@pytest.mark.parametrize(("name", "accept", "expected_format", "expected_size"), BAD_INPUT)
def test_bad_input_table(static_dir, name, accept, expected_format, expected_size):
    app, _ = build(static_dir)
    response = get(app, f"/static/{name}", accept)
    assert response.status_code == 200
    assert served(response) == (expected_format, expected_size)
    assert response.headers["Content-Type"] == f"image/{expected_format.lower()}"
    if name.endswith(".gif"):
        assert Image.open(io.BytesIO(response.body)).n_frames == 3
        assert "Vary" not in response.headers
    else:
        assert response.headers["Vary"] == "Accept"
        assert len(response.body) <= (static_dir / name).stat().st_size


@pytest.mark.parametrize("accept", [CHROME, SAFARI_16])
def test_a_16_bit_png_keeps_its_tones(static_dir, accept):
    """Pillow's plain conversion clips 16-bit grey to white: the ramp must survive."""
    app, _ = build(static_dir)
    image = Image.open(io.BytesIO(get(app, "/static/grey16.png", accept).body)).convert("L")
    row = [image.getpixel((x, 120)) for x in (10, 160, 310)]
    assert row[0] < 30 and 100 < row[1] < 156 and row[2] > 225, row


def test_a_16_bit_png_keeps_its_tones_at_a_srcset_width(static_dir):
    app, cm = build(static_dir, image_widths=[160])
    image = Image.open(io.BytesIO(get(app, cm.static_url("grey16.png", width=160), CURL).body))
    assert image.size == (160, 120)
    assert 100 < image.convert("L").getpixel((80, 60)) < 156


def test_webp_not_smaller_gives_the_next_format_in_q_order(static_dir):
    """WebP preferred, but not smaller than the original: AVIF, the client's next format."""
    app, cm = build(static_dir, image_quality={"WEBP": 100})
    response = get(app, "/static/photo.jpg", WEBP_OVER_AVIF)
    assert served(response) == ("AVIF", (400, 300))
    assert len(response.body) < (static_dir / "photo.jpg").stat().st_size
    assert cm.images.encodes == 2
    get(app, "/static/photo.jpg", WEBP_OVER_AVIF)
    assert cm.images.encodes == 2  # both outcomes remembered
    assert served(get(app, "/static/photo.jpg", SAFARI_16)) == ("JPEG", (400, 300))


def test_only_smaller_encoding_over_the_lambda_limit(tmp_path, caplog):
    """A 7 MB noisy 12 MP JPEG: AVIF over budget, WebP smaller but over Lambda's limit.

    Nothing that keeps the picture fits a Lambda response, the original included:
    every client gets the clear 500 that points at S3 (before: a 1825x1369 AVIF).
    """
    size = (4000, 3000)
    gradient = Image.linear_gradient("L").resize(size)
    channels = [Image.blend(gradient, Image.effect_noise(size, s), 0.5) for s in (40, 60, 80)]
    Image.merge("RGB", channels).save(tmp_path / "noisy.jpg", "JPEG", quality=90)
    assert (tmp_path / "noisy.jpg").stat().st_size > toolkit.LAMBDA_RESPONSE_LIMIT
    app, cm = build(tmp_path)
    responses = [get(app, "/static/noisy.jpg", accept) for accept in (CHROME, CHROME, CURL)]
    assert [r.status_code for r in responses] == [500] * 3
    assert all(b"too large" in r.body for r in responses)
    assert cm.images.encodes == 1  # the WebP, once; AVIF refused from the header
    assert any("too large for a Lambda response" in r.getMessage() for r in caplog.records)


# -- validators: a 304 names what would be served --------------------------------------


def etag_of(app: Chalice, name: str, accept: str) -> str:
    return get(app, f"/static/{name}", accept).headers["ETag"]


def test_a_304_names_the_representation_that_would_be_served(static_dir):
    """On a container that never converted the icon, Chrome revalidating its WebP.

    AVIF comes first in Chrome's order and is not known yet: it is tried (and
    refused, not smaller) before the WebP's validator may answer 304. The WebP
    itself is not encoded for a 304. Holding the original's validator, Chrome
    gets the WebP (200), not a 304 for a PNG it would no longer be sent.
    """
    app, _ = build(static_dir)
    webp = etag_of(app, "flat.png", CHROME)
    original = etag_of(app, "flat.png", CURL)
    assert webp != original
    for held, status, encodes in ((webp, 304, 1), (original, 200, 2)):
        fresh_app, fresh = build(static_dir)
        response = get(fresh_app, "/static/flat.png", CHROME, If_None_Match=held)
        assert response.status_code == status, held
        assert response.headers["ETag"] == webp
        assert response.headers["Vary"] == "Accept"
        assert fresh.images.encodes == encodes


def test_a_format_over_budget_is_decided_without_encoding_and_never_304(static_dir):
    app, cm = build(static_dir)
    avif = cm.images.variant(cm.static_files.get("photo6.jpg"), "AVIF", None).etag
    response = get(app, "/static/photo6.jpg", CHROME, If_None_Match=avif)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert cm.images.encodes == 1  # the WebP; AVIF's refusal came from the header
    again = get(app, "/static/photo6.jpg", CHROME, If_None_Match=response.headers["ETag"])
    assert again.status_code == 304
    assert cm.images.encodes == 1


# -- outcomes are remembered per content hash and target ----------------------------


def test_refusals_outlive_evicted_bodies(static_dir, monkeypatch):
    """With no room for bodies, a refused format is still not tried again."""
    calls = []
    encode = toolkit._encode_image

    def counting(*args, **kwargs):
        calls.append(args[1])
        return encode(*args, **kwargs)

    monkeypatch.setattr(toolkit, "_encode_image", counting)
    app, _ = build(static_dir, image_cache_bytes=0)
    bodies = {get(app, "/static/flat.png", CHROME).body for _ in range(3)}
    assert len(bodies) == 1
    assert calls == ["AVIF", "WEBP", "WEBP", "WEBP"]


def test_a_changed_file_is_a_new_outcome(tmp_path):
    """Outcomes are keyed by content hash: new bytes under the same name are tried again."""
    (tmp_path / "icon.png").write_bytes(PICTURES["flat.png"]())
    app, cm = build(tmp_path, auto_reload=True)
    assert served(get(app, "/static/icon.png", CHROME))[0] == "WEBP"
    noise = random.Random(5).randbytes(128 * 96 * 3)
    (tmp_path / "icon.png").write_bytes(
        encoded(Image.frombytes("RGB", (128, 96), noise), "PNG")  # AVIF is smaller now
    )
    assert served(get(app, "/static/icon.png", CHROME)) == ("AVIF", (128, 96))
    assert cm.images.encodes == 3


# -- the order formats are tried in ---------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "source", "expected"),
    [
        (CHROME, "JPEG", ("AVIF", "WEBP", "JPEG")),
        (FIREFOX, "WEBP", ("AVIF", "WEBP")),  # the source's own format ends the list
        (SAFARI, "PNG", ("AVIF", "WEBP", "PNG")),  # a tie at q=1 goes to AVIF
        (SAFARI_16, "JPEG", ("WEBP", "JPEG")),
        (CURL, "JPEG", ("JPEG",)),
        (None, "PNG", ("PNG",)),
        ("", "PNG", ("PNG",)),
        (WEBP_OVER_AVIF, "JPEG", ("WEBP", "AVIF", "JPEG")),
        ("image/avif;q=0, image/webp", "JPEG", ("WEBP",)),  # JPEG not acceptable, none named
        ("image/avif, image/webp, image/jpeg;q=0", "JPEG", ("AVIF", "WEBP")),
        ("image/png", "JPEG", ("PNG",)),
        ("image/jpeg;q=0.5, image/png;q=0.9", "WEBP", ("PNG", "JPEG")),
        ("image/webp;q=abc, */*", "JPEG", ("JPEG",)),  # a malformed q drops the element
        ("image/avif", "AVIF", ("AVIF",)),
        ("text/html", "PNG", ()),  # nothing acceptable: the original, as a last resort
    ],
)
def test_image_format_preferences_table(accept, source, expected):
    assert toolkit.image_format_preferences(accept, source) == expected
    first = expected[0] if expected and expected[0] != source else None
    assert toolkit.negotiate_image_format(accept, source) == first


@pytest.mark.parametrize(
    ("accept", "width", "expected"),
    [
        (CHROME, None, ("AVIF", "WEBP")),  # then the original
        (CHROME, 640, ("AVIF", "WEBP", "JPEG")),  # then the original, larger but as named
        (CURL, None, ()),
        (CURL, 640, ("JPEG",)),
        ("image/png", 640, ("PNG", "JPEG")),
    ],
)
def test_candidates_at_full_size_and_at_a_width(accept, width, expected):
    images = toolkit.StaticImages()
    assert images.candidates(accept, "JPEG", width) == expected
