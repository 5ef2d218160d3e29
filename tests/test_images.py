"""Images: Accept negotiation, conversions with validators per variant, bad input, widths.

Last section: the lightest accepted format that is smaller (issue 21).
"""

from __future__ import annotations

import io
import logging
import random
import re
import struct
import zlib
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client
from hypothesis import given
from hypothesis import strategies as st
from images_memory import camera_photo
from PIL import Image, ImageCms, ImageDraw

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import (
    IMAGE_ACCEPT_ANY,
    IMAGE_ACCEPT_AVIF,
    IMAGE_ACCEPT_WEBP,
    IMMUTABLE_CACHE_CONTROL,
    CloudFront,
    ContentManager,
    negotiate_image_format,
    normalise_image_accept,
)

from apigw import invoke

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,*/*"
SAFARI = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
CURL = "*/*"
NAVIGATION = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PHOTO_SIZE = (1000, 750)


# -- fixture images, made with Pillow ---------------------------------------


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photo() -> Image.Image:
    image = Image.linear_gradient("L").resize(PHOTO_SIZE).convert("RGB")
    ImageDraw.Draw(image).ellipse((200, 150, 700, 600), fill=(200, 30, 40))
    return image


def transparent_logo() -> Image.Image:
    """Left half fully transparent, right half opaque (slightly noisy) red.

    Large and noisy enough that AVIF, WebP and JPEG variants are smaller than the
    PNG: a variant that is not smaller is never served (the original is).
    """
    image = Image.new("RGBA", (256, 128), (0, 0, 0, 0))
    grey = Image.new("L", (128, 128), 20)
    noise = random.Random(12).randbytes(128 * 128)  # the same bytes on every call
    red = Image.frombytes("L", (128, 128), noise).point(lambda value: 200 + value // 10)
    image.paste(Image.merge("RGBA", (red, grey, grey, Image.new("L", (128, 128), 255))), (128, 0))
    return image


def rotated_jpeg() -> bytes:
    """Stored 200x100 (red left, blue right) with EXIF Orientation 6: shown 100x200, red on top."""
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 99, 99), fill=(255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6
    return encoded(image, "JPEG", quality=95, exif=exif.tobytes())


def animated(fmt: str, **options) -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "lime", "blue")]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_images() -> dict[str, bytes]:
    jpeg = encoded(photo(), "JPEG", quality=90)
    return {
        "img/photo.jpg": jpeg,
        "img/logo.png": encoded(transparent_logo(), "PNG"),
        # High quality, so that the converted forms are smaller (else the original is served).
        "img/pic.webp": encoded(photo().resize((400, 300)), "WEBP", quality=95),
        "img/pic.avif": encoded(photo().resize((400, 300)), "AVIF", quality=95),
        "img/rotated.jpg": rotated_jpeg(),
        "img/icc.jpg": encoded(photo().resize((120, 90)), "JPEG", icc_profile=SRGB),
        "img/cmyk.jpg": encoded(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"),
        "img/anim.gif": animated("GIF"),
        "img/anim.webp": animated("WEBP", lossless=True),
        "img/anim.png": animated("PNG"),
        "img/icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>',
        "img/truncated.jpg": jpeg[: len(jpeg) // 2],
        "img/garbage.png": b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20,
        "img/text.jpg": b"hello, I am not an image\n",
        "img/bomb.png": png_declaring(20000, 20000),
        "img/warning-bomb.png": png_declaring(10000, 10000),
        "img/large.png": png_declaring(7000, 7000),
        "img/lying.jpg": encoded(transparent_logo(), "PNG"),
        "img/gif-named.png": animated("GIF"),
        "css/site.css": b"body { color: red; }\n",
    }


@pytest.fixture(scope="module")
def site_dirs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("images")
    static = root / "static"
    for relpath, data in make_images().items():
        path = static / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    templates = root / "templates"
    templates.mkdir()
    (templates / "hero.html").write_text(
        "<img src=\"{{ static('img/photo.jpg', width=640) }}\" "
        "srcset=\"{{ srcset('img/photo.jpg') }}\">"
    )
    (templates / "dynamic.html").write_text('<img srcset="{{ srcset(path) }}">')
    return templates, static


def build(site_dirs, **options):
    templates, static = site_dirs
    app = Chalice(app_name="images")
    cm = ContentManager(str(templates), str(static), app, **options)
    cf = CloudFront(cm, app)
    cm.register_static_routes()

    @app.route("/hero", methods=["GET"])
    def hero():
        return cf.template("hero.html")

    @app.route("/cf-photo", methods=["GET"])
    def cf_photo():
        return cf.static("img/photo.jpg")

    return app, cm


@pytest.fixture
def image_app(site_dirs):
    return build(site_dirs)


def get(app, path, accept=None, **headers):
    if accept is not None:
        headers["Accept"] = accept
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    with Client(app) as client:
        return client.http.get(path, headers=headers)


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


# -- negotiate_image_format: the pure rule -----------------------------------


@pytest.mark.parametrize(
    ("accept", "source", "expected"),
    [
        (CHROME, "JPEG", "AVIF"),
        (CHROME, "PNG", "AVIF"),
        (CHROME, "AVIF", None),
        (FIREFOX, "JPEG", "AVIF"),
        (SAFARI, "JPEG", "WEBP"),
        (SAFARI, "PNG", "WEBP"),
        (SAFARI, "WEBP", None),
        (SAFARI, "AVIF", "WEBP"),
        (CURL, "JPEG", None),
        (None, "JPEG", None),
        ("", "PNG", None),
        (NAVIGATION, "JPEG", None),
        ("image/*", "JPEG", None),  # image/* does not prove WebP/AVIF support
        ("image/webp;q=0.9, image/avif;q=0.5", "JPEG", "WEBP"),
        ("image/webp ; q=0.5 , image/avif ; q=0.5", "JPEG", "AVIF"),  # tie goes to AVIF
        ("image/avif;q=0, image/webp", "JPEG", "WEBP"),
        ("image/avif;q=0, image/webp;q=0, */*", "JPEG", None),
        ("IMAGE/WEBP", "PNG", "WEBP"),
        ("image/webp;q=abc, */*", "JPEG", None),  # a malformed q drops the element
        ("image/webp;q=2, */*", "JPEG", None),
        ("image/webp;q=0.001", "JPEG", "WEBP"),
        ("image/webp, image/webp;q=0", "JPEG", "WEBP"),  # the first occurrence counts
        ("image/png", "JPEG", "PNG"),
        ("image/png", "PNG", None),
        ("image/jpeg;q=0, */*", "JPEG", None),  # nothing else named: the original anyway
        ("image/jpeg;q=0, image/png;q=0.2, */*", "JPEG", "PNG"),
        ("image/jpg", "PNG", "JPEG"),
        ("image/png;q=0.5, image/jpeg;q=0.5", "WEBP", "JPEG"),
        ("image/png;q=0.9, image/jpeg;q=0.5", "AVIF", "PNG"),
        ("text/html", "PNG", None),
        ("image/*;q=0, image/png", "JPEG", "PNG"),
        ("image/*;q=0, image/jpeg", "JPEG", None),  # the exact type beats image/*
    ],
)
def test_negotiate_image_format_table(accept, source, expected):
    assert negotiate_image_format(accept, source) == expected


def test_avif_is_offered_only_when_pillow_writes_it(monkeypatch):
    monkeypatch.setattr(toolkit, "_writable_formats", ("WEBP", "JPEG", "PNG"))
    assert negotiate_image_format(CHROME, "JPEG") == "WEBP"
    assert negotiate_image_format("image/avif, */*", "JPEG") is None
    assert normalise_image_accept(CHROME) == IMAGE_ACCEPT_WEBP


def test_writable_formats_constant_matches_pillow_features():
    from PIL import features

    expected = ["AVIF"] if features.check("avif") else []
    writable = toolkit.WRITABLE_IMAGE_FORMATS
    assert writable == (*expected, "WEBP", "JPEG", "PNG")
    assert "WRITABLE_IMAGE_FORMATS" in toolkit.__all__
    with pytest.raises(AttributeError):
        toolkit.NO_SUCH_CONSTANT  # noqa: B018


@pytest.mark.parametrize(
    ("accept", "normalised"),
    [
        (CHROME, IMAGE_ACCEPT_AVIF),
        (FIREFOX, IMAGE_ACCEPT_AVIF),
        (SAFARI, IMAGE_ACCEPT_WEBP),
        (CURL, IMAGE_ACCEPT_ANY),
        (None, IMAGE_ACCEPT_ANY),
        (NAVIGATION, IMAGE_ACCEPT_ANY),
        ("image/avif;q=0.4, image/webp;q=0.6", IMAGE_ACCEPT_WEBP),
        ("image/avif;q=0, image/webp;q=0", IMAGE_ACCEPT_ANY),
    ],
)
def test_normalise_image_accept_table(accept, normalised):
    assert normalise_image_accept(accept) == normalised


MEDIA_RANGES = [
    "image/avif",
    "image/webp",
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/gif",
    "image/apng",
    "image/svg+xml",
    "image/*",
    "*/*",
    "text/html",
    "video/*",
    "IMAGE/WEBP",
]
QUALITIES = [None, "0", "0.0", "0.001", "0.1", "0.5", "0.8", "1", "1.0", "abc", "1.5"]
SOURCE_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
}

accept_elements = st.tuples(
    st.sampled_from(MEDIA_RANGES), st.sampled_from(QUALITIES), st.sampled_from(["", " ", "  "])
).map(lambda e: e[0] + (f"{e[2]};{e[2]}q={e[1]}" if e[1] is not None else ""))
accept_headers = st.one_of(
    st.none(), st.lists(accept_elements, max_size=8).map(lambda items: " ,".join(items))
)


def oracle_weights(accept: str | None) -> dict[str, float]:
    """An independent reading of Accept for the properties below."""
    weights: dict[str, float] = {}
    for element in (accept or "").split(","):
        media_range, _, params = element.partition(";")
        media_range = media_range.strip().lower()
        if media_range == "image/jpg":
            media_range = "image/jpeg"
        quality = 1.0
        if params:
            try:
                quality = float(params.split("=", 1)[1])
            except ValueError:
                continue
            if not 0 <= quality <= 1:
                continue
        if media_range:
            weights.setdefault(media_range, quality)
    return weights


def oracle_acceptable(accept: str | None, media_type: str) -> bool:
    weights = oracle_weights(accept)
    if not weights:
        return True
    for media_range in (media_type, "image/*", "*/*"):
        if media_range in weights:
            return weights[media_range] > 0
    return False


@given(accept_headers)
def test_normalised_accept_negotiates_like_the_original(accept):
    normalised = normalise_image_accept(accept)
    assert normalised in (IMAGE_ACCEPT_AVIF, IMAGE_ACCEPT_WEBP, IMAGE_ACCEPT_ANY)
    assert normalise_image_accept(normalised) == normalised
    for source, media_type in SOURCE_TYPES.items():
        if oracle_acceptable(accept, media_type):
            assert negotiate_image_format(normalised, source) == negotiate_image_format(
                accept, source
            ), (accept, source)


@given(accept_headers, st.sampled_from(sorted(SOURCE_TYPES)))
def test_never_a_format_the_client_did_not_name(accept, source):
    chosen = negotiate_image_format(accept, source)
    if chosen is not None:
        assert chosen != source
        assert oracle_weights(accept).get(SOURCE_TYPES[chosen], 0) > 0


# -- negotiation through the app: formats, validators, Vary, 304 --------------


@pytest.mark.parametrize(
    ("accept", "jpeg_becomes", "png_becomes"),
    [
        (CHROME, "AVIF", "AVIF"),
        (FIREFOX, "AVIF", "AVIF"),
        (SAFARI, "WEBP", "WEBP"),
        (CURL, "JPEG", "PNG"),
        (None, "JPEG", "PNG"),
        (NAVIGATION, "JPEG", "PNG"),
        ("image/webp;q=0.9, image/avif;q=0.5, */*;q=0.1", "WEBP", "WEBP"),
        ("image/avif ; q=0 , image/webp ; q=0 , */*", "JPEG", "PNG"),
        ("image/png", "PNG", "PNG"),
        ("image/jpeg", "JPEG", "JPEG"),
    ],
)
def test_browsers_get_the_format_they_can_decode(image_app, accept, jpeg_becomes, png_becomes):
    app, _ = image_app
    for path, expected in (
        ("/static/img/photo.jpg", jpeg_becomes),
        ("/static/img/logo.png", png_becomes),
    ):
        response = get(app, path, accept)
        assert response.status_code == 200
        image = decode(response.body)
        assert image.format == expected, (path, accept)
        assert response.headers["Content-Type"] == f"image/{expected.lower()}"
        assert "Accept" in [f.strip() for f in response.headers["Vary"].split(",")]
        assert image.size == Image.open(io.BytesIO(make_images()[path[8:]])).size


def test_original_served_byte_for_byte_when_not_converted(image_app, site_dirs):
    app, _ = image_app
    original = (site_dirs[1] / "img" / "photo.jpg").read_bytes()
    response = get(app, "/static/img/photo.jpg", CURL)
    assert response.body == original
    assert response.headers["ETag"] == f'"{toolkit._digest(original)}"'
    assert response.headers["Vary"] == "Accept"


def test_webp_and_avif_sources(image_app):
    app, _ = image_app
    assert decode(get(app, "/static/img/pic.webp", CHROME).body).format == "AVIF"
    assert decode(get(app, "/static/img/pic.webp", SAFARI).body).format == "WEBP"
    assert decode(get(app, "/static/img/pic.avif", SAFARI).body).format == "WEBP"
    assert decode(get(app, "/static/img/pic.avif", CHROME).body).format == "AVIF"
    assert decode(get(app, "/static/img/pic.avif", "image/jpeg, image/png;q=0.5").body).format == (
        "JPEG"
    )


def test_every_variant_has_its_own_etag_and_304(image_app):
    app, _ = image_app
    etags = {}
    for name, accept in (("chrome", CHROME), ("safari", SAFARI), ("curl", CURL)):
        etags[name] = get(app, "/static/img/photo.jpg", accept).headers["ETag"]
    assert len(set(etags.values())) == 3
    assert all(re.fullmatch(r'"[0-9a-z-]+"', etag) for etag in etags.values())
    for name, accept in (("chrome", CHROME), ("safari", SAFARI), ("curl", CURL)):
        again = get(app, "/static/img/photo.jpg", accept, If_None_Match=etags[name])
        assert again.status_code == 304, name
        assert again.body == b""
        assert again.headers["ETag"] == etags[name]
        assert again.headers["Vary"] == "Accept"
        # The same validator sent with another Accept names another representation.
        other = CURL if name != "curl" else CHROME
        assert get(app, "/static/img/photo.jpg", other, If_None_Match=etags[name]).status_code == (
            200
        )


def test_304_for_a_variant_does_not_encode(site_dirs):
    app, cm = build(site_dirs)
    etag = get(app, "/static/img/photo.jpg", SAFARI).headers["ETag"]
    fresh_app, fresh = build(site_dirs)  # a new container that never converted the photo
    response = get(fresh_app, "/static/img/photo.jpg", SAFARI, If_None_Match=etag)
    assert response.status_code == 304
    assert response.headers["Vary"] == "Accept"
    assert fresh.images.encodes == 0
    assert cm.images.encodes == 1


def test_repeat_request_is_a_cache_hit_without_encoding(site_dirs, monkeypatch):
    calls = []
    encode = toolkit._encode_image

    def counting(*args, **kwargs):
        calls.append(args[1])
        return encode(*args, **kwargs)

    monkeypatch.setattr(toolkit, "_encode_image", counting)
    app, cm = build(site_dirs)
    bodies = {get(app, "/static/img/photo.jpg", CHROME).body for _ in range(5)}
    assert len(bodies) == 1
    assert calls == ["AVIF"]
    assert cm.images.encodes == 1
    assert cm.images.cache.hits == 4
    get(app, "/static/img/photo.jpg", SAFARI)
    assert calls == ["AVIF", "WEBP"]
    assert len(cm.images.cache) == 2
    cache = cm.images.cache  # bounded by what Python holds: the bodies and more
    assert cache.size == sum(cache._costs.values()) > sum(len(b) for b in cache._entries.values())


def test_cache_is_bounded_by_bytes(site_dirs):
    app, _ = build(site_dirs)
    avif_size = len(get(app, "/static/img/photo.jpg", CHROME).body)
    bound = avif_size + 1000  # the body, its key and the entry's overhead
    small_app, small = build(site_dirs, image_cache_bytes=bound)
    get(small_app, "/static/img/photo.jpg", CHROME)
    get(small_app, "/static/img/photo.jpg", SAFARI)  # evicts the AVIF
    assert small.images.cache.size <= bound
    assert len(small.images.cache) == 1
    get(small_app, "/static/img/photo.jpg", CHROME)
    assert small.images.encodes == 3
    off_app, off = build(site_dirs, image_cache_bytes=0)
    get(off_app, "/static/img/photo.jpg", CHROME)
    get(off_app, "/static/img/photo.jpg", CHROME)
    assert off.images.encodes == 2 and len(off.images.cache) == 0


def test_quality_is_configurable_and_part_of_the_etag(site_dirs):
    app, _ = build(site_dirs)
    low_app, _ = build(site_dirs, image_quality={"jpeg": 20, "WEBP": 20})
    default = get(app, "/static/img/photo.jpg", "image/webp")
    low = get(low_app, "/static/img/photo.jpg", "image/webp")
    assert len(low.body) < len(default.body)
    assert low.headers["ETag"] != default.headers["ETag"]
    for bad in ({"GIF": 50}, {"JPEG": 0}, {"JPEG": 101}, {"WEBP": "high"}, {"AVIF": True}):
        with pytest.raises(ValueError):
            build(site_dirs, image_quality=bad)


def test_head_and_range_on_a_converted_image(image_app):
    app, _ = image_app
    full = get(app, "/static/img/photo.jpg", CHROME)
    with Client(app) as client:
        head = client.http.head("/static/img/photo.jpg", headers={"Accept": CHROME})
    assert head.status_code == 200 and head.body == b""
    assert head.headers["ETag"] == full.headers["ETag"]
    assert head.headers["Content-Type"] == "image/avif"
    part = get(app, "/static/img/photo.jpg", CHROME, Range="bytes=0-11")
    assert part.status_code == 206
    assert part.body == full.body[:12]
    assert part.headers["Content-Range"] == f"bytes 0-11/{len(full.body)}"


def test_cloudfront_static_negotiates_too(image_app):
    app, _ = image_app
    response = get(app, "/cf-photo", SAFARI)
    assert decode(response.body).format == "WEBP"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Vary"] == "Accept"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [(CHROME, "AVIF"), (FIREFOX, "AVIF"), (SAFARI, "WEBP"), (CURL, "JPEG"), (None, "JPEG")],
)
def test_through_the_lambda_handler_and_api_gateway(image_app, accept, expected):
    app, _ = image_app
    headers = {"Accept": accept} if accept is not None else {}
    delivered = invoke(app, "GET", "/static/img/photo.jpg", headers)
    assert delivered.status == 200
    assert decode(delivered.body).format == expected
    assert delivered.headers["Vary"] == "Accept"


# -- what passes through ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "frames"),
    [
        ("/static/img/anim.gif", "image/gif", 3),
        ("/static/img/icon.svg", "image/svg+xml; charset=utf-8", None),
        ("/static/img/gif-named.png", "image/gif", 3),  # content, not name, decides
    ],
)
def test_gif_and_svg_pass_through_without_vary_accept(image_app, path, content_type, frames):
    app, cm = image_app
    original = make_images()[path[8:]]
    response = get(app, path, CHROME)
    assert response.status_code == 200
    assert response.body == original
    assert response.headers["Content-Type"] == content_type
    assert "Accept" not in [f.strip() for f in response.headers.get("Vary", "").split(",")]
    if frames:
        assert decode(response.body).n_frames == frames
    assert cm.images.encodes == 0


@pytest.mark.parametrize("path", ["/static/img/anim.webp", "/static/img/anim.png"])
def test_animated_images_are_left_alone(image_app, path, caplog):
    app, cm = image_app
    original = make_images()[path[8:]]
    with caplog.at_level(logging.INFO, logger="chalice_http_toolkit"):
        first = get(app, path, CHROME)
        second = get(app, path, CHROME)
    for response in (first, second):
        assert response.body == original
        assert decode(response.body).n_frames == 3
        assert response.headers["Vary"] == "Accept"
        assert response.headers["ETag"] == f'"{toolkit._digest(original)}"'
    assert cm.images.encodes == 1  # the decision is cached too
    assert any("animated" in record.getMessage() for record in caplog.records)


# -- correctness of conversions ------------------------------------------------


def test_alpha_is_flattened_onto_white_for_jpeg(image_app):
    app, _ = image_app
    image = decode(get(app, "/static/img/logo.png", "image/jpeg").body)
    assert image.format == "JPEG" and image.mode == "RGB"
    left = image.getpixel((32, 64))
    right = image.getpixel((224, 64))
    assert all(channel > 245 for channel in left), left  # transparent became white, not black
    assert right[0] > 200 and right[1] < 60 and right[2] < 60, right


@pytest.mark.parametrize(("accept", "expected"), [(CHROME, "AVIF"), (SAFARI, "WEBP")])
def test_alpha_survives_webp_and_avif(image_app, accept, expected):
    app, _ = image_app
    image = decode(get(app, "/static/img/logo.png", accept).body)
    assert image.format == expected
    assert image.mode == "RGBA"
    assert image.getpixel((32, 64))[3] < 10
    assert image.getpixel((224, 64))[3] > 245


@pytest.mark.parametrize("accept", [CHROME, SAFARI, "image/png"])
def test_exif_orientation_is_applied(image_app, accept):
    app, _ = image_app
    image = decode(get(app, "/static/img/rotated.jpg", accept).body)
    assert image.size == (100, 200)
    top, bottom = image.convert("RGB").getpixel((50, 20)), image.convert("RGB").getpixel((50, 180))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert image.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize(("accept", "expected"), [(CHROME, "AVIF"), (SAFARI, "WEBP")])
def test_icc_profile_is_kept(image_app, accept, expected):
    app, _ = image_app
    image = decode(get(app, "/static/img/icc.jpg", accept).body)
    assert image.format == expected
    assert image.info.get("icc_profile") == SRGB


def test_cmyk_becomes_rgb(image_app):
    app, _ = image_app
    image = decode(get(app, "/static/img/cmyk.jpg", SAFARI).body)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((32, 32))
    assert red > 200 and green < 60 and blue < 60


# -- bad input: a log line and a clear outcome ---------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.jpg", "corrupt"),
        ("garbage.png", "not a readable image"),
        ("text.jpg", "not a readable image"),
        ("bomb.png", "decompression bomb"),
        ("warning-bomb.png", "decompression bomb"),  # Pillow only warns at this size
        ("large.png", "exceed the limit"),
    ],
)
@pytest.mark.parametrize("accept", [CHROME, SAFARI, "the other classic format"])
def test_bad_images_are_served_as_they_are_with_a_log_line(
    image_app, caplog, name, message, accept
):
    app, cm = image_app
    if accept == "the other classic format":
        accept = "image/png" if name.endswith(".jpg") else "image/jpeg"
    original = make_images()[f"img/{name}"]
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        response = get(app, f"/static/img/{name}", accept)
        again = get(app, f"/static/img/{name}", accept)
    for served in (response, again):
        assert served.status_code == 200
        assert served.body == original
        assert served.headers["ETag"] == f'"{toolkit._digest(original)}"'
        assert b"Traceback" not in served.body
    assert cm.images.encodes == 1  # the refusal is remembered: no retry per request
    logged = [r.getMessage() for r in caplog.records if r.name == "chalice_http_toolkit"]
    assert any(name in line and message in line for line in logged), logged


def test_bad_images_through_the_lambda_handler(image_app):
    app, _ = image_app
    for name in ("bomb.png", "truncated.jpg", "garbage.png"):
        delivered = invoke(app, "GET", f"/static/img/{name}", {"Accept": CHROME})
        assert delivered.status == 200
        assert delivered.body == make_images()[f"img/{name}"]


def test_pixel_limit_is_configurable(site_dirs, caplog):
    app, _ = build(site_dirs, image_max_pixels=1000)
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        response = get(app, "/static/img/photo.jpg", CHROME)
    assert response.headers["Content-Type"] == "image/jpeg"
    assert any("exceed the limit of 1000" in r.getMessage() for r in caplog.records)


def test_a_file_whose_extension_lies(image_app, caplog):
    app, _ = image_app
    original = make_images()["img/lying.jpg"]
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        as_is = get(app, "/static/img/lying.jpg", CURL)
        converted = get(app, "/static/img/lying.jpg", SAFARI)
        flattened = get(app, "/static/img/lying.jpg", "image/jpeg")
    assert as_is.body == original
    assert as_is.headers["Content-Type"] == "image/png"  # what it is, not what it is called
    assert decode(converted.body).format == "WEBP"
    assert decode(converted.body).mode == "RGBA"
    assert decode(flattened.body).format == "JPEG"
    assert any(
        "lying.jpg" in r.getMessage() and "image/png" in r.getMessage() for r in caplog.records
    )


# -- responsive widths -----------------------------------------------------------


def fingerprint(cm, relpath):
    return cm.static_files.get(relpath).fingerprint


def test_static_url_with_width(image_app):
    _, cm = image_app
    hash_ = fingerprint(cm, "img/photo.jpg")
    assert cm.static_url("img/photo.jpg", width=640) == f"/static/img/photo.{hash_}.w640.jpg"
    assert cm.static_url("/img/photo.jpg") == f"/static/img/photo.{hash_}.jpg"
    with pytest.raises(ValueError, match="image_widths"):
        cm.static_url("img/photo.jpg", width=700)
    with pytest.raises(ValueError, match="not a raster image"):
        cm.static_url("img/anim.gif", width=640)
    with pytest.raises(ValueError, match="not a raster image"):
        cm.static_url("css/site.css", width=640)


@pytest.mark.parametrize(
    ("accept", "expected"), [(CHROME, "AVIF"), (SAFARI, "WEBP"), (CURL, "JPEG")]
)
@pytest.mark.parametrize("width", [320, 640, 960])
def test_resized_variants(image_app, accept, expected, width):
    app, cm = image_app
    response = get(app, cm.static_url("img/photo.jpg", width=width), accept)
    assert response.status_code == 200
    image = decode(response.body)
    assert image.format == expected
    assert image.size == (width, round(PHOTO_SIZE[1] * width / PHOTO_SIZE[0]))
    assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
    assert response.headers["Vary"] == "Accept"
    again = get(
        app,
        cm.static_url("img/photo.jpg", width=width),
        accept,
        If_None_Match=response.headers["ETag"],
    )
    assert again.status_code == 304


def test_width_etags_differ_from_full_size_and_each_other(image_app):
    app, cm = image_app
    etags = {
        get(app, cm.static_url("img/photo.jpg", width=width), SAFARI).headers["ETag"]
        for width in (320, 640)
    }
    etags.add(get(app, "/static/img/photo.jpg", SAFARI).headers["ETag"])
    etags.add(get(app, cm.static_url("img/photo.jpg", width=320), CURL).headers["ETag"])
    assert len(etags) == 4


def test_never_upscale(image_app):
    app, cm = image_app
    original = make_images()["img/photo.jpg"]
    as_is = get(app, cm.static_url("img/photo.jpg", width=1920), CURL)
    assert as_is.body == original
    assert as_is.headers["ETag"] == f'"{toolkit._digest(original)}"'
    converted = decode(get(app, cm.static_url("img/photo.jpg", width=1280), CHROME).body)
    assert converted.format == "AVIF" and converted.size == PHOTO_SIZE


def test_width_respects_exif_orientation(image_app):
    app, cm = image_app
    image = decode(get(app, cm.static_url("img/rotated.jpg", width=320), CURL).body)
    assert image.size == (100, 200)  # 100 px wide as shown: no upscale, but rotated
    assert cm.srcset("img/rotated.jpg") == f"{cm.static_url('img/rotated.jpg')} 100w"


@pytest.mark.parametrize(
    "path",
    [
        "/static/img/photo.w700.jpg",  # not an allowed width
        "/static/img/photo.w0.jpg",
        "/static/img/photo.w-1.jpg",
        "/static/img/photo.w640.png",  # no such file
        "/static/img/anim.w640.gif",  # not a raster image
        "/static/img/icon.w640.svg",
        "/static/css/site.w640.css",
        "/static/img/gif-named.w640.png",  # a GIF inside
        "/static/img/photo.w64000.jpg",
    ],
)
def test_widths_outside_the_allowed_set_are_404(image_app, path):
    app, cm = image_app
    hashed = re.sub(
        r"/(\w[\w-]*)\.w", lambda m: f"/{m[1]}.{fingerprint(cm, 'img/photo.jpg')}.w", path
    )
    for candidate in (path, hashed):
        response = get(app, candidate, CHROME)
        assert response.status_code == 404, candidate
    assert cm.images.encodes == 0


def test_plain_width_url_works_but_is_not_immutable(image_app):
    app, _ = image_app
    response = get(app, "/static/img/photo.w320.jpg", SAFARI)
    assert decode(response.body).size[0] == 320
    assert response.headers.get("Cache-Control") == "no-cache"


def test_custom_widths(site_dirs):
    app, cm = build(site_dirs, image_widths=[500, 200])
    assert cm.images.widths == (200, 500)
    assert decode(get(app, "/static/img/photo.w500.jpg", CURL).body).size[0] == 500
    assert get(app, "/static/img/photo.w320.jpg", CURL).status_code == 404
    for bad in ([0], [-5], [1.5], ["640"], [True]):
        with pytest.raises(ValueError):
            build(site_dirs, image_widths=bad)


def test_srcset(image_app):
    _, cm = image_app
    url = cm.static_url
    assert cm.srcset("img/photo.jpg") == ", ".join(
        [
            f"{url('img/photo.jpg', width=320)} 320w",
            f"{url('img/photo.jpg', width=640)} 640w",
            f"{url('img/photo.jpg', width=960)} 960w",
            f"{url('img/photo.jpg')} 1000w",
        ]
    )
    assert cm.srcset("img/anim.gif") == url("img/anim.gif")


def test_srcset_of_a_bomb_is_its_plain_url(image_app, caplog):
    _, cm = image_app
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        assert cm.srcset("img/bomb.png") == cm.static_url("img/bomb.png")
    assert any("bomb.png" in r.getMessage() for r in caplog.records)


def test_templates_use_static_width_and_srcset(image_app):
    app, cm = image_app
    response = get(app, "/hero")
    assert response.status_code == 200
    body = response.body.decode()
    assert f'src="{cm.static_url("img/photo.jpg", width=640)}"' in body
    assert f'srcset="{cm.srcset("img/photo.jpg")}"' in body
    assert get(app, "/hero", If_None_Match=response.headers["ETag"]).status_code == 304


def test_template_etag_covers_width_and_srcset_calls(tmp_path):
    static = tmp_path / "static" / "img"
    static.mkdir(parents=True)
    (static / "photo.jpg").write_bytes(make_images()["img/photo.jpg"])
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "hero.html").write_text(
        "{{ static('img/photo.jpg', width=640) }} {{ srcset('img/photo.jpg') }}"
    )
    (templates / "dynamic.html").write_text("{{ srcset(path) }}")
    cm = ContentManager(str(templates), str(tmp_path / "static"))
    assert cm.template_dependencies("hero.html").static_refs == {"img/photo.jpg"}
    assert cm.template_dependencies("dynamic.html").static_refs is None
    before = cm.template_etag("hero.html", {})
    (static / "photo.jpg").write_bytes(encoded(photo().resize((500, 375)), "JPEG"))
    after = cm.template_etag("hero.html", {})
    assert before is not None and after is not None and before != after
    other_widths = ContentManager(str(templates), str(tmp_path / "static"), image_widths=(400,))
    assert other_widths.template_etag("hero.html", {}) != after


# -- convert_by_accepts: the 0.6.2 meaning ------------------------------------------


@pytest.mark.parametrize(
    ("accepts", "default", "expected"),
    [
        ("image/png,image/webp", "WEBP", "PNG"),
        ("image/jpg", "WEBP", "JPEG"),
        ("image/jpeg", None, "JPEG"),
        ("text/html,image/webp", "PNG", "WEBP"),
        ("image/avif, image/png", "WEBP", "PNG"),  # AVIF is not in 0.6.2's list
        ("image/webp;q=0, image/png", "WEBP", "PNG"),
        ("text/html", "WEBP", "WEBP"),
        ("text/html", "png", "PNG"),
        ("", "JPEG", "JPEG"),
        ("image/*", "GIF", "GIF"),
    ],
)
def test_convert_by_accepts(image_app, accepts, default, expected):
    _, cm = image_app
    source = make_images()["img/logo.png"]
    assert decode(cm.convert_by_accepts(source, accepts, default=default)).format == expected


def test_convert_by_accepts_default_none_without_match_raises(image_app):
    _, cm = image_app
    with pytest.raises(ValueError, match="no supported image type"):
        cm.convert_by_accepts(make_images()["img/logo.png"], "text/html", default=None)
    with pytest.raises(ValueError, match="cannot write"):
        cm.convert_by_accepts(make_images()["img/logo.png"], "text/html", default="NOPE")


@pytest.mark.parametrize("name", ["text.jpg", "garbage.png", "bomb.png", "truncated.jpg"])
def test_convert_by_accepts_returns_unreadable_images_unchanged(image_app, caplog, name):
    _, cm = image_app
    data = make_images()[f"img/{name}"]
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        assert cm.convert_by_accepts(data, "image/webp") == data
    assert any("convert_by_accepts" in r.getMessage() for r in caplog.records)


# == Format fallback =======================================================================
# Issue 21: the same picture in every format; the lightest accepted format that is smaller.
#
# A URL without a width gives every client the original's pixel dimensions; the
# formats a client accepts are tried in its order (q-values), skipping one that is
# over its encoder's memory budget, fails, or is not smaller; then the original.

# The Accept headers these clients send for an <img> (curl: its default).
SAFARI_17 = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_16 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
FIREFOX_IMG = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
WEBP_OVER_AVIF = "image/webp;q=1, image/avif;q=0.9, */*;q=0.5"


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


def fallback_app(static: Path, **options) -> tuple[Chalice, ContentManager]:
    app = Chalice(app_name="fallback")
    options.setdefault("auto_reload", False)
    cm = ContentManager(str(static), str(static), app, **options)
    cm.register_static_routes()
    return app, cm


def fetch(app: Chalice, path: str, accept: str, **headers: str):
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
    ("flat.png", SAFARI_17, "WEBP", (64, 48)),
    ("flat.png", FIREFOX_IMG, "WEBP", (64, 48)),
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
    ("photo6.jpg", SAFARI_17, "WEBP", (3000, 2000)),
    ("photo6.jpg", FIREFOX_IMG, "WEBP", (3000, 2000)),
    ("photo6.jpg", CURL, "JPEG", (3000, 2000)),
]


@pytest.mark.parametrize(("name", "accept", "expected_format", "expected_size"), BAD_INPUT)
def test_bad_input_table(static_dir, name, accept, expected_format, expected_size):
    app, _ = fallback_app(static_dir)
    response = fetch(app, f"/static/{name}", accept)
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
    app, _ = fallback_app(static_dir)
    image = Image.open(io.BytesIO(fetch(app, "/static/grey16.png", accept).body)).convert("L")
    row = [image.getpixel((x, 120)) for x in (10, 160, 310)]
    assert row[0] < 30 and 100 < row[1] < 156 and row[2] > 225, row


def test_a_16_bit_png_keeps_its_tones_at_a_srcset_width(static_dir):
    app, cm = fallback_app(static_dir, image_widths=[160])
    image = Image.open(io.BytesIO(fetch(app, cm.static_url("grey16.png", width=160), CURL).body))
    assert image.size == (160, 120)
    assert 100 < image.convert("L").getpixel((80, 60)) < 156


def test_webp_not_smaller_gives_the_next_format_in_q_order(static_dir):
    """WebP preferred, but not smaller than the original: AVIF, the client's next format."""
    app, cm = fallback_app(static_dir, image_quality={"WEBP": 100})
    response = fetch(app, "/static/photo.jpg", WEBP_OVER_AVIF)
    assert served(response) == ("AVIF", (400, 300))
    assert len(response.body) < (static_dir / "photo.jpg").stat().st_size
    assert cm.images.encodes == 2
    fetch(app, "/static/photo.jpg", WEBP_OVER_AVIF)
    assert cm.images.encodes == 2  # both outcomes remembered
    assert served(fetch(app, "/static/photo.jpg", SAFARI_16)) == ("JPEG", (400, 300))


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
    app, cm = fallback_app(tmp_path)
    responses = [fetch(app, "/static/noisy.jpg", accept) for accept in (CHROME, CHROME, CURL)]
    assert [r.status_code for r in responses] == [500] * 3
    assert all(b"too large" in r.body for r in responses)
    assert cm.images.encodes == 1  # the WebP, once; AVIF refused from the header
    assert any("too large for a Lambda response" in r.getMessage() for r in caplog.records)


# -- validators: a 304 names what would be served --------------------------------------


def etag_of(app: Chalice, name: str, accept: str) -> str:
    return fetch(app, f"/static/{name}", accept).headers["ETag"]


def test_a_304_names_the_representation_that_would_be_served(static_dir):
    """On a container that never converted the icon, Chrome revalidating its WebP.

    AVIF comes first in Chrome's order and is not known yet: it is tried (and
    refused, not smaller) before the WebP's validator may answer 304. The WebP
    itself is not encoded for a 304. Holding the original's validator, Chrome
    gets the WebP (200), not a 304 for a PNG it would no longer be sent.
    """
    app, _ = fallback_app(static_dir)
    webp = etag_of(app, "flat.png", CHROME)
    original = etag_of(app, "flat.png", CURL)
    assert webp != original
    for held, status, encodes in ((webp, 304, 1), (original, 200, 2)):
        fresh_app, fresh = fallback_app(static_dir)
        response = fetch(fresh_app, "/static/flat.png", CHROME, If_None_Match=held)
        assert response.status_code == status, held
        assert response.headers["ETag"] == webp
        assert response.headers["Vary"] == "Accept"
        assert fresh.images.encodes == encodes


def test_a_format_over_budget_is_decided_without_encoding_and_never_304(static_dir):
    app, cm = fallback_app(static_dir)
    avif = cm.images.variant(cm.static_files.get("photo6.jpg"), "AVIF", None).etag
    response = fetch(app, "/static/photo6.jpg", CHROME, If_None_Match=avif)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/webp"
    assert cm.images.encodes == 1  # the WebP; AVIF's refusal came from the header
    again = fetch(app, "/static/photo6.jpg", CHROME, If_None_Match=response.headers["ETag"])
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
    app, _ = fallback_app(static_dir, image_cache_bytes=0)
    bodies = {fetch(app, "/static/flat.png", CHROME).body for _ in range(3)}
    assert len(bodies) == 1
    assert calls == ["AVIF", "WEBP", "WEBP", "WEBP"]


def test_a_changed_file_is_a_new_outcome(tmp_path):
    """Outcomes are keyed by content hash: new bytes under the same name are tried again."""
    (tmp_path / "icon.png").write_bytes(PICTURES["flat.png"]())
    app, cm = fallback_app(tmp_path, auto_reload=True)
    assert served(fetch(app, "/static/icon.png", CHROME))[0] == "WEBP"
    noise = random.Random(5).randbytes(128 * 96 * 3)
    (tmp_path / "icon.png").write_bytes(
        encoded(Image.frombytes("RGB", (128, 96), noise), "PNG")  # AVIF is smaller now
    )
    assert served(fetch(app, "/static/icon.png", CHROME)) == ("AVIF", (128, 96))
    assert cm.images.encodes == 3


# -- the order formats are tried in ---------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "source", "expected"),
    [
        (CHROME, "JPEG", ("AVIF", "WEBP", "JPEG")),
        (FIREFOX_IMG, "WEBP", ("AVIF", "WEBP")),  # the source's own format ends the list
        (SAFARI_17, "PNG", ("AVIF", "WEBP", "PNG")),  # a tie at q=1 goes to AVIF
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
