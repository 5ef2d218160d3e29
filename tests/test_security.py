"""Other people's bytes: sniffed types, autoescape by extension, nosniff, security headers.

And the one gzip rule (a compressible type and at least ``COMPRESS_MIN_SIZE``
bytes, only when smaller) for pages, static files and assets alike.
"""

from __future__ import annotations

import pytest
from chalice import Chalice
from chalice.test import Client

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import DEFAULT_SECURITY_HEADERS, CloudFront, ContentManager

from conftest import build_app

HTML_UPLOAD = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG_UPLOAD = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
XHTML_UPLOAD = (
    b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script>'
    b"</html>"
)
TEXTY_UPLOAD = b"hello <script>alert(1)</script>"


@pytest.fixture(params=["libmagic", "signature table"])
def sniffing(request, monkeypatch):
    """Sniff with the system's libmagic, and without any."""
    if request.param == "signature table":
        monkeypatch.setattr(toolkit, "_magic_state", ("/nonexistent", None))
    elif toolkit.load_libmagic() is None:
        pytest.skip("no libmagic on this machine")
    return request.param


@pytest.fixture
def uploads(site):
    app, cm, cf = build_app(*site, auto_reload=False)
    store = {"html": HTML_UPLOAD, "svg": SVG_UPLOAD, "xhtml": XHTML_UPLOAD, "text": TEXTY_UPLOAD}

    @app.route("/cm/{name}", methods=["GET"])
    def by_cm(name):
        return cm.asset(store[name])

    @app.route("/cf/{name}", methods=["GET"])
    def by_cf(name):
        return cf.asset(lambda: store[name], lambda: f"{name}-v1")

    @app.route("/stated/{name}", methods=["GET"])
    def stated(name):
        return cf.asset(lambda: store[name], lambda: "v1", content_type="image/svg+xml")

    return app


@pytest.mark.parametrize("name", ["html", "svg", "xhtml", "text"])
@pytest.mark.parametrize("via", ["cm", "cf"])
def test_sniffed_bytes_are_never_served_as_an_active_type(uploads, sniffing, via, name):
    with Client(uploads) as client:
        response = client.http.get(f"/{via}/{name}")
    content_type = response.headers["Content-Type"]
    assert not toolkit._is_active_type(content_type), content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = {"html": HTML_UPLOAD, "svg": SVG_UPLOAD, "xhtml": XHTML_UPLOAD, "text": TEXTY_UPLOAD}
    if toolkit._is_active_type(toolkit.sniff_content_type(body[name])):
        assert content_type == "application/octet-stream"
        assert response.headers["Content-Disposition"] == "attachment"


def test_html_and_svg_uploads_become_attachments(uploads, sniffing):
    with Client(uploads) as client:
        for name in ("html", "svg") if sniffing == "libmagic" else ("svg",):
            response = client.http.get(f"/cm/{name}")
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert response.headers["Content-Disposition"] == "attachment"


def test_a_type_the_caller_states_is_served_as_stated(uploads):
    with Client(uploads) as client:
        response = client.http.get("/stated/svg")
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert "Content-Disposition" not in response.headers
    assert response.body == SVG_UPLOAD


def test_a_static_file_whose_bytes_disagree_with_its_name_is_never_an_active_type(site):
    templates, static = site
    (static / "img").mkdir()
    (static / "img" / "x.png").write_bytes(SVG_UPLOAD)
    (static / "drawing").write_bytes(SVG_UPLOAD)
    app, _, _ = build_app(templates, static, auto_reload=False)
    with Client(app) as client:
        lying = client.http.get("/static/img/x.png", headers={"Accept": "image/webp,*/*"})
        nameless = client.http.get("/static/drawing")
    assert lying.status_code == 200 and lying.headers["Content-Type"] == "image/png"
    assert nameless.headers["Content-Type"] == "application/octet-stream"
    for response in (lying, nameless):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- autoescape and Content-Type follow the template's extension -------------------

ESCAPED_TYPES = {
    "page.html": "text/html; charset=utf-8",
    "page.htm": "text/html; charset=utf-8",
    "page.j2": "text/html; charset=utf-8",
    "page.jinja": "text/html; charset=utf-8",
    "page.jinja2": "text/html; charset=utf-8",
    "page.html.j2": "text/html; charset=utf-8",
    "page.tmpl": "text/html; charset=utf-8",
    "page": "text/html; charset=utf-8",
    "page.xhtml": "application/xhtml+xml; charset=utf-8",
    "feed.xml": "application/xml; charset=utf-8",
    "icon.svg": "image/svg+xml; charset=utf-8",
    "odd.weird": "text/html; charset=utf-8",
}
UNESCAPED_TYPES = {
    "note.txt": "text/plain; charset=utf-8",
    "note.txt.j2": "text/plain; charset=utf-8",
    "data.json": "application/json; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "site.css": "text/css; charset=utf-8",
    "doc.md": "text/markdown; charset=utf-8",
}


@pytest.fixture
def typed_site(tmp_path):
    templates = tmp_path / "templates"
    static = tmp_path / "static"
    templates.mkdir()
    static.mkdir()
    for name in [*ESCAPED_TYPES, *UNESCAPED_TYPES]:
        (templates / name).write_text("{{ value }}")
    app = Chalice(app_name="typed")
    cm = ContentManager(str(templates), str(static), app)
    cf = CloudFront(cm, app)

    @app.route("/t/{name}", methods=["GET"])
    def page(name):
        return cf.template(name, value="<script>x</script>")

    return app


@pytest.mark.parametrize("name", sorted(ESCAPED_TYPES))
def test_markup_templates_are_autoescaped_and_typed_by_extension(typed_site, name):
    with Client(typed_site) as client:
        response = client.http.get(f"/t/{name}")
    assert response.body == b"&lt;script&gt;x&lt;/script&gt;"
    assert response.headers["Content-Type"] == ESCAPED_TYPES[name]


@pytest.mark.parametrize("name", sorted(UNESCAPED_TYPES))
def test_text_templates_are_not_escaped_and_not_served_as_html(typed_site, name):
    with Client(typed_site) as client:
        response = client.http.get(f"/t/{name}")
    assert response.body == b"<script>x</script>"
    assert response.headers["Content-Type"] == UNESCAPED_TYPES[name]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- nosniff on every toolkit response, security headers one option away ------------


def _every_kind_of_response(client):
    css = client.http.get("/static/css/site.css")
    page = client.http.get("/")
    yield "template", page
    yield "template 304", client.http.get("/", headers={"If-None-Match": page.headers["ETag"]})
    yield "static", css
    yield (
        "static 304",
        client.http.get("/static/css/site.css", headers={"If-None-Match": css.headers["ETag"]}),
    )
    yield "static 404", client.http.get("/static/nope.css")
    yield "static 412", client.http.get("/static/css/site.css", headers={"If-Match": '"x"'})
    yield "range", client.http.get("/static/data.bin", headers={"Range": "bytes=0-3"})
    yield "416", client.http.get("/static/data.bin", headers={"Range": "bytes=9999-"})
    yield "html", client.http.get("/feed")
    yield "json", client.http.get("/api/data")
    yield "asset", client.http.get("/asset")
    yield "redirect", client.http.get("/old")
    yield "404 page", client.http.get("/a/b")


def test_nosniff_on_every_toolkit_response(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        for kind, response in _every_kind_of_response(client):
            assert response.headers.get("X-Content-Type-Options") == "nosniff", kind
            assert "Strict-Transport-Security" not in response.headers, kind


def test_nosniff_on_the_too_large_answer(site):
    templates, static = site
    (static / "big.bin").write_bytes(b"\x00" * (toolkit.LAMBDA_RESPONSE_LIMIT + 1))
    app, _, _ = build_app(templates, static)
    with Client(app) as client:
        response = client.http.get("/static/big.bin")
    assert response.status_code == 500
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_security_headers_true_adds_the_defaults_everywhere(site):
    app, _, _ = build_app(*site, security_headers=True)
    assert "frame-ancestors" in DEFAULT_SECURITY_HEADERS["Content-Security-Policy"]
    assert DEFAULT_SECURITY_HEADERS["Strict-Transport-Security"].startswith("max-age=")
    with Client(app) as client:
        for kind, response in _every_kind_of_response(client):
            for name, value in DEFAULT_SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (kind, name)


def test_security_headers_may_be_a_mapping(site):
    app, _, _ = build_app(*site, security_headers={"Referrer-Policy": "no-referrer"})
    with Client(app) as client:
        response = client.http.get("/")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Content-Security-Policy" not in response.headers


@pytest.mark.parametrize("value", ["yes", 1, ["Referrer-Policy"]])
def test_security_headers_are_checked(site, value):
    with pytest.raises(ValueError, match="security_headers"):
        build_app(*site, security_headers=value)


# -- one gzip rule ------------------------------------------------------------------


def test_small_static_files_are_not_gzipped_large_ones_are(site):
    templates, static = site
    (static / "small.css").write_text("a { color: red; }\n" * 17)  # 306 bytes
    (static / "small.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg">' + " " * 180 + "</svg>"
    )
    app, _, _ = build_app(templates, static)
    gz = {"Accept-Encoding": "gzip"}
    with Client(app) as client:
        small_css = client.http.get("/static/small.css", headers=gz)
        small_svg = client.http.get("/static/small.svg", headers=gz)
        large_css = client.http.get("/static/css/site.css", headers=gz)
    assert "Content-Encoding" not in small_css.headers
    assert "Content-Encoding" not in small_svg.headers
    assert large_css.headers["Content-Encoding"] == "gzip"
    for response in (small_css, small_svg, large_css):
        assert response.headers["Vary"] == "Accept-Encoding"  # the rule may apply to the type


def test_small_pages_and_assets_follow_the_same_rule(site):
    app, cm, cf = build_app(*site)

    @app.route("/small", methods=["GET"])
    def small():
        return cf.template("note.txt", text="short")

    @app.route("/text-asset", methods=["GET"])
    def text_asset():
        return cm.asset(b"x" * 5000, content_type="text/plain")

    gz = {"Accept-Encoding": "gzip"}
    with Client(app) as client:
        assert "Content-Encoding" not in client.http.get("/small", headers=gz).headers
        assert client.http.get("/text-asset", headers=gz).headers["Content-Encoding"] == "gzip"
