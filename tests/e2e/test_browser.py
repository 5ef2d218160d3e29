"""The scaffolded demo site as a visitor sees it: Debian's Chromium, headless, via Playwright.

Run by `make e2e` (which installs Chromium and Playwright); in a plain `pytest`
run these skip where Chromium is missing, except in CI.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from chalice_http_toolkit import IMAGE_FORMATS, negotiate_image_format

from .browsing import Exchange, Hit, Site, Tab, network_table

pytestmark = pytest.mark.e2e

OpenTab = Callable[..., Tab]

#: The sun in the scaffold's hero image, and how far a lossy encoding may move it.
SUN = (255, 205, 80)
SUN_TOLERANCE = 16
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {pillow: media_type for media_type, pillow in IMAGE_FORMATS.items()}
FINGERPRINTED = re.compile(r"/static/.+\.[0-9a-f]{8,}(\.w[0-9]+)?\.[a-z0-9]+")

PAGE_STYLE = """() => {
    const style = (selector) => getComputedStyle(document.querySelector(selector));
    const sheet = document.styleSheets[0];
    return {
        sheet: sheet.href,
        rules: sheet.cssRules.length,
        color: style('body').color,
        background: style('body').backgroundColor,
        mainMaxWidth: style('main').maxWidth,
    };
}"""
IMAGES = """() => [...document.images].map((image) => ({
    src: image.currentSrc,
    complete: image.complete,
    naturalWidth: image.naturalWidth,
}))"""


def visit(tab: Tab, site: Site, path: str = "/") -> int:
    """Open ``path`` and wait until the network is idle; the document's status."""
    response = tab.page.goto(site.base_url + path, wait_until="networkidle")
    assert response is not None
    return response.status


def decoded(tab: Tab, url: str) -> Image.Image:
    """The image ``url`` as Chromium received it, decoded by Pillow."""
    image = Image.open(io.BytesIO(tab.response_for(url).body()))
    image.load()
    return image


def assert_site_css_applied(tab: Tab, site: Site) -> None:
    """The nested stylesheet (static/css/site.css) loaded and styles the page."""
    style = tab.page.evaluate(PAGE_STYLE)
    assert re.fullmatch(
        rf"{re.escape(site.base_url)}/static/css/site\.[0-9a-f]{{8,}}\.css", style["sheet"]
    )
    assert style["rules"] >= 4
    assert style["color"] == "rgb(29, 42, 51)"  # body { color: #1d2a33 }
    assert style["background"] == "rgb(246, 248, 249)"  # body { background: #f6f8f9 }
    assert style["mainMaxWidth"] == "640px"  # main { max-width: 40rem }


def has_sun(screenshot: Path) -> bool:
    """Whether the screenshot shows the hero image's sun (so the image was painted)."""
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
    colours = rgb.getcolors(rgb.width * rgb.height) or []
    return any(
        all(abs(channel - want) <= SUN_TOLERANCE for channel, want in zip(colour, SUN))
        for _, colour in colours
    )


def test_home_page_renders_with_its_stylesheet(open_tab: OpenTab, site: Site, artifacts: Path):
    tab = open_tab()
    assert visit(tab, site) == 200
    assert tab.page.title() == site.name
    assert tab.page.locator("h1").inner_text() == site.name
    assert tab.page.locator("footer").inner_text().startswith("Served by Chalice")
    assert_site_css_applied(tab, site)
    assert tab.page.evaluate(IMAGES)[0]["complete"]

    screenshot = artifacts / "home.png"
    tab.page.screenshot(path=str(screenshot), full_page=True)
    assert has_sun(screenshot), f"no hero image in {screenshot}"
    assert tab.console_errors == []


def test_images_decode_in_the_format_accept_negotiates(open_tab: OpenTab, site: Site):
    tab = open_tab()
    visit(tab, site)
    images = tab.page.evaluate(IMAGES)
    exchanges = {exchange.url: exchange for exchange in tab.network.take()}
    assert images
    for image in images:
        assert image["complete"] and image["naturalWidth"] > 0, image
        exchange = exchanges[image["src"]]
        # The scaffold's images are PNGs; what Chromium's Accept asks them to become:
        target = negotiate_image_format(exchange.sent_headers["accept"], "PNG")
        expected = MEDIA_TYPES[target]
        assert expected in {"image/avif", "image/webp"}, exchange.sent_headers["accept"]
        assert exchange.content_type == expected
        assert "accept" in exchange.headers["vary"].lower()
        assert decoded(tab, image["src"]).format == target
    assert tab.console_errors == []


@pytest.mark.parametrize(
    ("viewport", "scale", "width"),
    [
        ({"width": 1280, "height": 800}, 1, 640),  # sizes: 38rem = 608 CSS px
        ({"width": 320, "height": 640}, 1, 320),  # sizes: 100vw - 2rem = 288 CSS px
        ({"width": 1280, "height": 800}, 2, 960),  # 1216 device px: only the original is enough
    ],
    ids=["desktop", "phone", "desktop-2x"],
)
def test_responsive_image_picks_a_sized_variant(
    open_tab: OpenTab, site: Site, viewport: dict[str, int], scale: int, width: int
):
    tab = open_tab(viewport=viewport, device_scale_factor=scale)
    visit(tab, site)
    [image] = tab.page.evaluate(IMAGES)
    suffix = r"\.png" if width == 960 else rf"\.w{width}\.png"
    assert re.fullmatch(
        rf"{re.escape(site.base_url)}/static/img/hero\.[0-9a-f]{{8,}}{suffix}", image["src"]
    )
    assert image["naturalWidth"] > 0
    assert decoded(tab, image["src"]).size == (width, width // 2)
    requested = [exchange.url for exchange in tab.network.take() if "/img/" in exchange.url]
    assert requested == [image["src"]]  # one candidate downloaded, not every width


def test_image_opened_directly_is_shown(open_tab: OpenTab, site: Site):
    """A navigation's Accept starts with text/html (what API Gateway decides binary by)."""
    tab = open_tab()
    visit(tab, site)
    url = tab.page.evaluate("document.images[0].src")  # the original, 960 px wide
    tab.network.take()
    assert visit(tab, site, url.removeprefix(site.base_url)) == 200
    document, *others = tab.network.take()
    accept = document.sent_headers["accept"]
    assert accept.startswith("text/html")
    target = negotiate_image_format(accept, "PNG")
    assert document.content_type == MEDIA_TYPES[target]
    assert tab.page.evaluate("document.images[0].naturalWidth") == 960
    # An image document has no <link rel="icon">, so Chromium asks for /favicon.ico: the 404 page.
    assert [(other.url, other.status) for other in others] == [
        (site.base_url + "/favicon.ico", 404)
    ]
    assert tab.console_errors == [
        "Failed to load resource: the server responded with a status of 404 (Not Found) "
        f"({site.base_url}/favicon.ico)"
    ]


def test_unknown_link_shows_the_404_page(open_tab: OpenTab, site: Site, artifacts: Path):
    tab = open_tab()
    visit(tab, site)
    tab.page.evaluate(
        """() => {
            const link = document.createElement('a');
            link.href = '/no/such/page';
            link.id = 'unknown';
            link.textContent = 'a link to nowhere';
            document.querySelector('main').append(link);
        }"""
    )
    with tab.page.expect_navigation() as navigation:
        tab.page.click("#unknown")
    response = navigation.value
    assert response is not None
    assert response.status == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert tab.page.url == site.base_url + "/no/such/page"
    assert tab.page.title() == "Page not found"
    assert tab.page.locator("h1").inner_text() == "Page not found"
    assert_site_css_applied(tab, site)
    tab.page.screenshot(path=str(artifacts / "not-found.png"), full_page=True)
    # Chromium reports a document's 404 status on the console; nothing else may be there.
    assert tab.console_errors == [
        "Failed to load resource: the server responded with a status of 404 (Not Found) "
        f"({site.base_url}/no/such/page)"
    ]

    with tab.page.expect_navigation() as navigation:
        tab.page.click("text=Go to the home page")
    assert navigation.value is not None and navigation.value.status == 200
    assert tab.page.locator("h1").inner_text() == site.name


def _static(exchanges: list[Exchange]) -> list[Exchange]:
    return [exchange for exchange in exchanges if "/static/" in exchange.url]


def test_reload_revalidates_the_page_and_keeps_immutable_files(
    open_tab: OpenTab, site: Site, report: Callable[[str, str], None]
):
    tab = open_tab()
    offset = site.log_offset()
    visit(tab, site)
    first, first_hits = tab.network.take(), site.hits_since(offset)
    offset = site.log_offset()
    response = tab.page.reload(wait_until="networkidle")
    reload, reload_hits = tab.network.take(), site.hits_since(offset)
    report(
        "network-log.txt",
        "\n\n".join(
            [
                network_table("First load", first, site.base_url),
                network_table("Reload (page.reload())", reload, site.base_url),
                "Server access log of the reload: "
                + ", ".join(f"{hit.method} {hit.path} {hit.status}" for hit in reload_hits),
            ]
        ),
    )
    for exchange in first + reload:
        assert exchange.url.startswith(site.base_url + "/"), exchange  # loopback only

    # First load: the page and its static files (stylesheet, favicon, image) from the server.
    assert first[0].resource_type == "Document"
    static = _static(first)
    assert {exchange.resource_type for exchange in static} >= {"Stylesheet", "Image"}
    assert any(exchange.url.endswith(".svg") for exchange in static)  # the favicon
    for exchange in first:
        assert (exchange.status, exchange.sent, exchange.from_cache) == (200, True, False), exchange
    for exchange in static:
        assert FINGERPRINTED.fullmatch(exchange.url.removeprefix(site.base_url)), exchange
        assert exchange.headers["cache-control"] == IMMUTABLE, exchange
    assert sorted(hit.path for hit in first_hits) == sorted(
        exchange.url.removeprefix(site.base_url) for exchange in first
    )

    # Reload: the document is revalidated (If-None-Match, 304); immutable files never leave.
    [document] = [exchange for exchange in reload if exchange.resource_type == "Document"]
    assert document.sent_headers["if-none-match"] == first[0].headers["etag"]
    assert document.status == 304
    assert response is not None and response.status == 200  # the cached page, as shown
    reused = {exchange.url for exchange in _static(reload)}
    assert {exchange.url for exchange in static if exchange.resource_type != "Other"} <= reused
    for exchange in _static(reload):
        assert (exchange.sent, exchange.from_cache) == (False, True), exchange
    assert reload_hits == [Hit("GET", "/", 304)]
    assert tab.page.locator("h1").inner_text() == site.name
    assert tab.page.evaluate(IMAGES)[0]["naturalWidth"] > 0
    assert tab.console_errors == []


def test_browser_reaches_loopback_only(open_tab: OpenTab):
    from playwright.sync_api import Error as PlaywrightError

    tab = open_tab()
    with pytest.raises(PlaywrightError, match=r"net::ERR_"):
        tab.page.goto("http://e2e-outside.invalid/")


def test_edited_stylesheet_shows_on_reload(open_tab: OpenTab, site: Site):
    """The page's ETag covers the files it links: a new stylesheet is a 200 with its new URL."""
    tab = open_tab()
    visit(tab, site)
    old_sheet = tab.page.evaluate(PAGE_STYLE)["sheet"]
    css = site.project / "chalicelib" / "static" / "css" / "site.css"
    original = css.read_text()
    css.write_text(original.replace("color: #1d2a33;", "color: #7a1f1f;", 1))
    try:
        offset = site.log_offset()
        tab.page.reload(wait_until="networkidle")
        hits = site.hits_since(offset)
        style = tab.page.evaluate(PAGE_STYLE)
    finally:
        css.write_text(original)
    assert style["color"] == "rgb(122, 31, 31)"
    assert style["sheet"] != old_sheet
    assert hits == [
        Hit("GET", "/", 200),
        Hit("GET", style["sheet"].removeprefix(site.base_url), 200),
    ]
