"""Static files through Chalice's own machinery: types, nesting, validators, ranges, traversal."""

from __future__ import annotations

import gzip
import os
import re

import pytest
from chalice.test import Client

from chalice_http_toolkit import IMMUTABLE_CACHE_CONTROL

from conftest import CSS, build_app


def test_nested_static_paths_work_through_the_test_client(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        css = client.http.get("/static/css/site.css")
        deep = client.http.get("/static/js/vendor/lib.mjs")
        flat = client.http.get("/static/robots.txt")
    assert css.status_code == 200 and css.body == CSS.encode()
    assert deep.status_code == 200 and deep.body.startswith(b"export const x")
    assert flat.status_code == 200 and flat.body == b"User-agent: *\n"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/css/site.css", "text/css; charset=utf-8"),
        ("/static/js/app.js", "text/javascript; charset=utf-8"),
        ("/static/js/vendor/lib.mjs", "text/javascript; charset=utf-8"),
        ("/static/robots.txt", "text/plain; charset=utf-8"),
        ("/static/data.bin", "application/octet-stream"),
        ("/static/noext", "application/pdf"),  # nothing in the name: sniffed
    ],
)
def test_static_content_types(site_app, path, content_type):
    app, _, _ = site_app
    with Client(app) as client:
        response = client.http.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type


def test_etag_is_content_hash_and_304_carries_caching_headers(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        first = client.http.get("/static/css/site.css")
        etag = first.headers["ETag"]
        again = client.http.get("/static/css/site.css", headers={"If-None-Match": etag})
        weak = client.http.get("/static/css/site.css", headers={"If-None-Match": f"W/{etag}"})
        head = client.http.head("/static/css/site.css", headers={"If-None-Match": etag})
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    for response in (again, weak, head):
        assert response.status_code == 304
        assert response.body == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == "no-cache"
        assert "Accept-Encoding" in response.headers["Vary"]
        assert "Content-Type" not in response.headers


def test_file_changed_by_redeploy_with_1980_mtime_is_resent(tmp_path):
    """Chalice's zip stamps every file 1980-01-01: the validator must be the content."""
    from conftest import write_site

    templates, static = write_site(tmp_path / "v1")
    stamp = 315532800
    css = static / "css" / "site.css"
    os.utime(css, (stamp, stamp))
    app, _, _ = build_app(templates, static, auto_reload=False)
    with Client(app) as client:
        old = client.http.get("/static/css/site.css")
    css.write_text("body { color: blue; }\n")
    os.utime(css, (stamp, stamp))
    redeployed, _, _ = build_app(templates, static, auto_reload=False)  # a new container
    with Client(redeployed) as client:
        new = client.http.get(
            "/static/css/site.css",
            headers={
                "If-None-Match": old.headers["ETag"],
                "If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 GMT",
            },
        )
    assert new.status_code == 200
    assert new.body == b"body { color: blue; }\n"
    assert new.headers["ETag"] != old.headers["ETag"]


def test_static_url_is_fingerprinted_and_immutable(site_app):
    app, cm, _ = site_app
    url = cm.static_url("css/site.css")
    assert re.fullmatch(r"/static/css/site\.[0-9a-f]{12}\.css", url)
    with Client(app) as client:
        hashed = client.http.get(url)
        plain = client.http.get("/static/css/site.css")
        stale = client.http.get("/static/css/site.000000000000.css")
    assert hashed.status_code == 200 and hashed.body == plain.body
    assert hashed.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
    assert plain.headers["Cache-Control"] == "no-cache"
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"


def test_static_url_for_file_without_extension(site_app):
    app, cm, _ = site_app
    url = cm.static_url("noext")
    assert re.fullmatch(r"/static/noext\.[0-9a-f]{12}", url)
    with Client(app) as client:
        assert client.http.get(url).headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL


TRAVERSAL = [
    "/static/../templates/index.html",
    "/static/css/../../templates/index.html",
    "/static/%2e%2e/templates/index.html",
    "/static/%2E%2E/%2E%2E/etc/passwd",
    "/static/%252e%252e/templates/index.html",
    "/static/css/%2e%2e%2fsite.css",
    "/static/..%5ctemplates%5cindex.html",
    "/static/%2fetc%2fpasswd",
    "/static/css/site.css%00.txt",
    "/static/.hidden",
    "/static/css/./site.css",
    "/static/outside.txt",
    "/static/linkdir/secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSAL)
def test_traversal_corpus_is_404(tmp_path, path):
    from conftest import write_site

    templates, static = write_site(tmp_path / "site")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    (static / ".hidden").write_text("TOP SECRET")
    (static / "outside.txt").symlink_to(secret)
    (static / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    app, cm, _ = build_app(templates, static)
    with Client(app) as client:
        response = client.http.get(path)
    assert response.status_code in (403, 404)
    assert b"TOP SECRET" not in response.body
    assert b"{%" not in response.body
    # The same through the public method, with the raw and the decoded name.
    direct = cm.static(path.removeprefix("/static/"))
    assert direct.status_code == 404


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "..\\..\\x", "css/\x00site.css", "", "/", "css//site.css"]
)
def test_static_method_rejects_bad_names(site_app, name):
    _, cm, _ = site_app
    assert cm.static(name).status_code == 404


def test_symlink_inside_static_dir_is_served(tmp_path):
    from conftest import write_site

    templates, static = write_site(tmp_path / "site")
    (static / "alias.css").symlink_to(static / "css" / "site.css")
    app, _, _ = build_app(templates, static)
    with Client(app) as client:
        assert client.http.get("/static/alias.css").body == CSS.encode()


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "body"),
    [
        ("bytes=0-0", 206, "bytes 0-0/1024", bytes([0])),
        ("bytes=0-9", 206, "bytes 0-9/1024", bytes(range(10))),
        ("bytes=1020-", 206, "bytes 1020-1023/1024", bytes([252, 253, 254, 255])),
        ("bytes=-2", 206, "bytes 1022-1023/1024", bytes([254, 255])),
        ("bytes=1024-", 416, "bytes */1024", b""),
        ("bytes=5-1", 200, None, None),
        ("bytes=0-1,5-6", 200, None, None),
    ],
)
def test_single_range_requests(site_app, range_header, status, content_range, body):
    app, _, _ = site_app
    with Client(app) as client:
        response = client.http.get("/static/data.bin", headers={"Range": range_header})
    assert response.status_code == status
    assert response.headers.get("Content-Range") == content_range
    if body is not None:
        assert response.body == body
    if status == 200:
        assert response.body == bytes(range(256)) * 4
        assert response.headers["Accept-Ranges"] == "bytes"


def test_if_range_and_preconditions_come_before_range(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        etag = client.http.get("/static/data.bin").headers["ETag"]
        matching = client.http.get(
            "/static/data.bin", headers={"Range": "bytes=0-1", "If-Range": etag}
        )
        stale = client.http.get(
            "/static/data.bin", headers={"Range": "bytes=0-1", "If-Range": '"old"'}
        )
        not_modified = client.http.get(
            "/static/data.bin", headers={"Range": "bytes=0-1", "If-None-Match": etag}
        )
        head = client.http.head("/static/data.bin", headers={"Range": "bytes=0-1"})
    assert matching.status_code == 206 and matching.body == b"\x00\x01"
    assert stale.status_code == 200 and len(stale.body) == 1024
    assert not_modified.status_code == 304
    assert head.status_code == 200 and head.body == b""


def test_gzip_when_accepted_with_its_own_etag(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        plain = client.http.get("/static/css/site.css")
        zipped = client.http.get("/static/css/site.css", headers={"Accept-Encoding": "gzip, br"})
        refused = client.http.get(
            "/static/css/site.css", headers={"Accept-Encoding": "gzip;q=0, br"}
        )
        revalidated = client.http.get(
            "/static/css/site.css",
            headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]},
        )
        ranged = client.http.get(
            "/static/css/site.css", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-3"}
        )
        small = client.http.get("/static/robots.txt", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert "Content-Encoding" not in refused.headers and refused.body == plain.body
    assert revalidated.status_code == 304 and "Content-Encoding" not in revalidated.headers
    assert ranged.status_code == 206 and "Content-Encoding" not in ranged.headers
    assert ranged.body == plain.body[:4]
    assert "Content-Encoding" not in small.headers  # under ~1 KB: not worth it


def test_binary_types_are_not_compressed(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        response = client.http.get("/static/data.bin", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    assert "Vary" not in response.headers


def test_head_on_static_routes_has_get_headers(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        get = client.http.get("/static/css/site.css")
        head = client.http.head("/static/css/site.css")
    assert head.status_code == 200 and head.body == b""
    assert head.headers == get.headers


def test_edited_static_file_changes_locally_without_restart(site):
    templates, static = site
    app, cm, _ = build_app(templates, static, auto_reload=True)
    with Client(app) as client:
        before = client.http.get("/static/css/site.css")
        url_before = cm.static_url("css/site.css")
        (static / "css" / "site.css").write_text("p { margin: 0 }\n" * 3)
        after = client.http.get("/static/css/site.css")
        (static / "new.txt").write_text("new file")
        added = client.http.get("/static/new.txt")
    assert after.body == b"p { margin: 0 }\n" * 3
    assert after.headers["ETag"] != before.headers["ETag"]
    assert cm.static_url("css/site.css") != url_before
    assert added.status_code == 200 and added.body == b"new file"


def test_unknown_static_file_is_404(site_app):
    app, _, _ = site_app
    with Client(app) as client:
        response = client.http.get("/static/css/nope.css")
    assert response.status_code == 404


def test_register_static_routes_depth_follows_the_tree(site_app):
    app, _, _ = site_app
    paths = sorted(path for path in app.routes if path.startswith("/static"))
    assert paths == ["/static/{p0}", "/static/{p0}/{p1}", "/static/{p0}/{p1}/{p2}"]
    assert set(app.routes["/static/{p0}/{p1}"]) == {"GET", "HEAD"}
