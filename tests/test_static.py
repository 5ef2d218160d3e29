"""Static files through Chalice's own machinery: types, nesting, validators, ranges, traversal.

Last sections: auto_reload (every chalice local), and the gzip forms prepare_deployment
made at build time.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import itertools
import json
import logging
import os
import random
import re
import shutil
import sys
import threading
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.test import Client
from frontdoor_events import v2_event

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import IMMUTABLE_CACHE_CONTROL, ContentManager, StaticIndex

from apigw import invoke
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


@pytest.mark.parametrize("auto_reload", [False, True])
def test_a_fingerprinted_name_is_immutable_only_for_the_bytes_it_names(tmp_path, auto_reload):
    """Regression for the memo of fingerprinted names (files fixed: a dict read per request).

    A name is remembered only once found current, one per file: made-up hashes are
    not; a file read again with other bytes is not served immutable under its old name.
    """
    from conftest import write_site

    templates, static = write_site(tmp_path / "site")
    app, cm, _ = build_app(templates, static, auto_reload=auto_reload)
    index = cm.static_files
    old_url = cm.static_url("css/site.css")
    with Client(app) as client:
        made_up = [client.http.get(f"/static/css/site.{n:012x}.css") for n in range(1000)]
        assert client.http.get(old_url).headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
        assert client.http.get(old_url).headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
        assert len(index._fingerprinted) == (0 if auto_reload else 1)
        (static / "css" / "site.css").write_text("body { color: green; }\n")
        index.bodies.clear()  # the bytes read again (an eviction, or auto_reload's stat)
        stale = client.http.get(old_url)
        new_url = cm.static_url("css/site.css") if auto_reload else None
    assert {r.headers["Cache-Control"] for r in made_up} == {"no-cache"}
    assert len(index._fingerprinted) <= len(index.files)
    assert stale.status_code == 200 and stale.body == b"body { color: green; }\n"
    assert stale.headers["Cache-Control"] == "no-cache"
    assert stale.headers["ETag"] == f'"{toolkit._digest(stale.body)}"'
    assert old_url not in {f"/static/{name}" for name in index._fingerprinted}
    if new_url is not None:
        assert new_url != old_url
        with Client(app) as client:
            fresh = client.http.get(new_url)
        assert fresh.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
        assert fresh.body == b"body { color: green; }\n"


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


# == auto_reload ===========================================================================
# ``auto_reload`` (every ``chalice local``): bounded rescans, one snapshot per response.


@pytest.fixture
def walks(monkeypatch) -> list[str]:
    """Every directory walk the toolkit starts (``os.walk`` calls)."""
    calls: list[str] = []
    real_walk = os.walk

    def counting_walk(top, *args, **kwargs):
        calls.append(str(top))
        return real_walk(top, *args, **kwargs)

    monkeypatch.setattr(os, "walk", counting_walk)
    return calls


def reloading_app(root: Path) -> tuple[Chalice, ContentManager]:
    (root / "templates").mkdir(exist_ok=True)
    app = Chalice(app_name="reload")
    cm = ContentManager(str(root / "templates"), str(root / "static"), app, auto_reload=True)
    cm.register_static_routes(max_depth=3)
    return app, cm


def test_a_symlinked_directory_never_makes_a_request_rescan_the_tree(tmp_path, walks):
    """``/static/etc/passwd`` through a link to a directory outside: 404, and no walk.

    Before, every such request walked the whole tree (82 ms vs 0.08 ms for a
    missing name): an existence oracle for files outside and a CPU amplifier.
    """
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    static = tmp_path / "static"
    static.mkdir()
    (static / "site.css").write_text("body {}\n")
    (static / "etc").symlink_to(outside, target_is_directory=True)
    app, _cm = reloading_app(tmp_path)
    walks.clear()
    statuses = [invoke(app, "GET", "/static/etc/passwd").status for _ in range(20)]
    missing = [invoke(app, "GET", "/static/etc/shadow").status for _ in range(5)]
    assert statuses == [404] * 20 and missing == [404] * 5
    assert walks == []


def test_a_new_file_is_found_by_stat_not_by_a_walk(tmp_path, walks):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    app, _cm = reloading_app(tmp_path)
    walks.clear()
    (static / "css" / "new.css").write_text("p {}\n")
    (static / "css" / ".hidden").write_text("secret\n")
    assert invoke(app, "GET", "/static/css/new.css").body == b"p {}\n"
    assert invoke(app, "GET", "/static/css/.hidden").status == 404
    (static / "css" / "new.css").unlink()
    assert invoke(app, "GET", "/static/css/new.css").status == 404
    assert walks == []


def test_a_dynamic_static_argument_does_not_rehash_the_folder_per_request(tmp_path, walks):
    """A template whose ``static()`` argument is a variable: unchanged files are not read again.

    Before, every ETag computation walked the tree and re-read and re-hashed
    every static file (94 ms for 50 MB).
    """
    static = tmp_path / "static"
    static.mkdir()
    for number in range(10):
        (static / f"file{number}.js").write_bytes(b"x" * 50_000 + bytes([number]))
    _app, cm = reloading_app(tmp_path)
    (tmp_path / "templates" / "dyn.html").write_text("{{ static(path) }}")
    cm.static_files.rescan_interval = 3600  # this test must not depend on the clock
    first = cm.template_etag("dyn.html", {"path": "file1.js"})
    hashed: list[int] = []
    real_digest = toolkit._digest

    def counting_digest(*parts):
        hashed.append(sum(len(part) for part in parts))
        return real_digest(*parts)

    toolkit._digest = counting_digest
    walks.clear()
    try:
        etags = [cm.template_etag("dyn.html", {"path": "file1.js"}) for _ in range(20)]
        (static / "file3.js").write_bytes(b"changed")
        changed = cm.template_etag("dyn.html", {"path": "file1.js"})
    finally:
        toolkit._digest = real_digest
    assert etags == [first] * 20
    assert changed != first
    assert walks == []
    assert max(hashed) < 50_000  # only the changed file (7 bytes) was read again
    assert sum(hashed) < 100_000


def test_rescans_for_the_folder_digest_are_bounded_by_the_interval(tmp_path, walks):
    static = tmp_path / "static"
    static.mkdir()
    (static / "a.css").write_text("a {}\n")
    index = StaticIndex(str(static), auto_reload=True)
    index.rescan_interval = 3600
    walks.clear()
    for _ in range(10):
        index.digest()
    assert walks == []
    index.rescan_interval = 0
    (static / "b.css").write_text("b {}\n")
    index.digest()
    assert len(walks) == 1 and "b.css" in index.files


def check_consistent(status: int, headers: dict[str, str], body: bytes) -> str | None:
    """Why a response's body and ETag belong to different versions, or ``None``."""
    if status != 200:
        return f"status {status}"
    etag = headers["ETag"]
    if headers.get("Content-Encoding") == "gzip":
        plain = gzip.decompress(body)
        expected = f'"{toolkit._digest(plain)}-gz"'
    else:
        expected = f'"{toolkit._digest(body)}"'
    return None if etag == expected else f"ETag {etag} for a body hashing to {expected}"


def test_body_and_etag_come_from_one_version_while_the_file_changes(tmp_path):
    """Readers racing a writer: every response's ETag (and -gz ETag) names its own body.

    Before, 1,702 of 13,216 responses carried another version's ETag, and the old
    gzip body kept being served under the new ``-gz`` ETag.
    """
    static = tmp_path / "static"
    static.mkdir()
    path = static / "site.css"
    versions = [(b"a { color: red }\n" * (300 + n)) for n in range(7)]
    path.write_bytes(versions[0])
    app, _cm = reloading_app(tmp_path)
    done = threading.Event()
    problems: list[str] = []

    def writer() -> None:
        number = 0
        while not done.is_set():
            number += 1
            path.write_bytes(versions[number % len(versions)])  # in place, as an editor may

    def reader(encoding: str) -> None:
        for _ in range(300):
            response = invoke(
                app, "GET", "/static/site.css", {"Accept-Encoding": encoding, "Accept": "*/*"}
            )
            problem = check_consistent(response.status, response.headers, response.body)
            if problem:
                problems.append(problem)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(encoding,))
        for encoding in ("gzip", "identity", "gzip", "identity")
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, as a busy `chalice local` does
    try:
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join()
    finally:
        done.set()
        threads[0].join()
        sys.setswitchinterval(interval)
    assert problems == []


def test_after_a_change_the_gzip_body_is_the_new_version(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    path = static / "site.css"
    path.write_bytes(b"a { color: red }\n" * 300)
    app, _cm = reloading_app(tmp_path)
    first = invoke(app, "GET", "/static/site.css", {"Accept-Encoding": "gzip"})
    path.write_bytes(b"b { color: blue }\n" * 400)
    second = invoke(app, "GET", "/static/site.css", {"Accept-Encoding": "gzip"})
    assert gzip.decompress(first.body) == b"a { color: red }\n" * 300
    assert gzip.decompress(second.body) == b"b { color: blue }\n" * 400
    assert check_consistent(second.status, second.headers, second.body) is None


@pytest.mark.parametrize("auto_reload", [True, False])
def test_a_versions_kept_offer_serves_that_version_only_and_goes_with_it(tmp_path, auto_reload):
    """Regression for the offer kept on a static version (made once, read by every request).

    A replaced file is served whole with its own ETag, identity and gzip; an evicted
    version's bytes are freed at once (its offer refers to no snapshot: no cycle).
    """
    import gc

    static = tmp_path / "static"
    static.mkdir()
    path = static / "site.css"
    path.write_bytes(b"a { color: red }\n" * 300)
    (tmp_path / "templates").mkdir()
    app = Chalice(app_name="kept")
    cm = ContentManager(str(tmp_path / "templates"), str(static), app, auto_reload=auto_reload)
    cm.register_static_routes()
    first = [invoke(app, "GET", "/static/site.css", {"Accept-Encoding": e}) for e in ("", "gzip")]
    path.write_bytes(b"b { color: blue }\n" * 400)
    cm.static_files.bodies.clear()  # (files fixed: the bytes are read again after an eviction)
    second = [invoke(app, "GET", "/static/site.css", {"Accept-Encoding": e}) for e in ("", "gzip")]
    assert first[0].body == gzip.decompress(first[1].body) == b"a { color: red }\n" * 300
    assert second[0].body == gzip.decompress(second[1].body) == b"b { color: blue }\n" * 400
    for response in first + second:
        assert check_consistent(response.status, response.headers, response.body) is None
    gc.collect()
    gc.disable()
    try:
        cm.static_files.bodies.clear()
        kept = [
            o
            for o in gc.get_objects()
            if type(o) in (toolkit._StaticSnapshot, toolkit._VersionBytes)
        ]
    finally:
        gc.enable()
    assert kept == []


def test_an_edit_while_compressing_leaves_no_old_gzip_under_the_new_etag(tmp_path, monkeypatch):
    """The file changes while one request gzips it and another request sees the change.

    Before, the first request stored its (old) gzip body on the file after the
    second had loaded the new version: every later gzip response carried the new
    ``-gz`` ETag over the old body.
    """
    static = tmp_path / "static"
    static.mkdir()
    path = static / "site.css"
    old, new = b"a { color: red }\n" * 300, b"b { color: blue }\n" * 400
    path.write_bytes(old)
    app, _ = reloading_app(tmp_path)
    real_gzip = toolkit._gzip
    edited: list[bool] = []

    def gzip_during_an_edit(data: bytes) -> bytes:
        if not edited:
            edited.append(True)
            path.write_bytes(new)
            assert invoke(app, "GET", "/static/site.css").body == new
        return real_gzip(data)

    monkeypatch.setattr(toolkit, "_gzip", gzip_during_an_edit)
    during = invoke(app, "GET", "/static/site.css", {"Accept-Encoding": "gzip"})
    after = invoke(app, "GET", "/static/site.css", {"Accept-Encoding": "gzip"})
    assert check_consistent(during.status, during.headers, during.body) is None
    assert check_consistent(after.status, after.headers, after.body) is None
    assert gzip.decompress(after.body) == new


# == prepared gzip forms ===================================================================
# prepare_deployment(static_dir=...) writes each static file's gzip form at build time; a
# container sends it only for exactly the bytes it was made of. A project's copy of the
# module reads the files prepare wrote beside it (as on Lambda: chalicelib/).

_COPIES = itertools.count()


def stylesheet(rules: int, seed: int = 0) -> bytes:
    """A CSS file of ``rules`` varied rules: level 9 compresses it smaller than level 6."""
    generator = random.Random(seed)
    names = ["color", "margin", "padding", "display", "border", "font-size", "line-height"]
    return "".join(
        f".c{i} > .x{generator.randrange(999)} {{ {generator.choice(names)}: "
        f"{generator.randrange(99)}px; background: #{generator.randrange(16**6):06x}; }}\n"
        for i in range(rules)
    ).encode()


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A project's ``chalicelib``: its copy of the module, a template, static files."""
    lib = tmp_path / "chalicelib"
    (lib / "templates").mkdir(parents=True)
    (lib / "templates" / "index.html").write_text("<p>{{ x }}</p>")
    (lib / "static" / "css").mkdir(parents=True)
    (lib / "static" / "css" / "site.css").write_bytes(stylesheet(600))
    (lib / "static" / "app.js").write_bytes(stylesheet(300, seed=1))
    shutil.copy2(Path(toolkit.__file__), lib / "chalice_http_toolkit.py")
    return lib


def project_module(lib: Path):
    """The project's copy of the module as a fresh container imports it."""
    name = f"cht_gzip_{next(_COPIES)}"
    spec = importlib.util.spec_from_file_location(name, lib / "chalice_http_toolkit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def prepare_static(lib: Path) -> dict:
    """Run prepare as a build does; the prepared file's static entries."""
    module = project_module(lib)
    module.prepare_deployment(str(lib / "templates"), static_dir=str(lib / "static"))
    return json.loads((lib / module.PREPARED_FILE).read_text())["static"]["static"]


def prepared_form(lib: Path, relpath: str) -> Path:
    digest = json.loads((lib / "chalice_http_toolkit.prepared.json").read_text())["static"][
        "static"
    ][relpath]["digest"]
    return lib / "chalice_http_toolkit.prepared.json.gzip" / f"{digest}.gz"


def container(lib: Path, **options) -> Chalice:
    """A fresh container: the project's module, a manager with its static routes."""
    module = project_module(lib)
    app = Chalice(app_name="prepared")
    cm = module.ContentManager(str(lib / "templates"), str(lib / "static"), app, **options)
    cm.register_static_routes()
    return app


def container_get(lib: Path, path: str):
    """A fresh container's answer to a gzip-accepting GET of ``path``."""
    return invoke(container(lib), "GET", path, {"Accept-Encoding": "gzip"})


def stamp_1980(root: Path) -> None:
    """As Chalice's zip does: every file dated 1980-01-01, so mtimes tell nothing."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (315532800, 315532800))


def test_a_prepared_gzip_form_is_sent_byte_for_byte(lib):
    unprepared = container_get(lib, "/static/css/site.css")
    entries = prepare_static(lib)

    prepared = container_get(lib, "/static/css/site.css")

    source = (lib / "static" / "css" / "site.css").read_bytes()
    assert set(entries) == {"css/site.css", "app.js"}
    assert prepared.status == 200 and prepared.headers["Content-Encoding"] == "gzip"
    assert prepared.body == prepared_form(lib, "css/site.css").read_bytes()
    assert gzip.decompress(prepared.body) == source
    assert len(prepared.body) < len(unprepared.body)  # level 9, not the container's 6
    assert prepared.headers["ETag"] == unprepared.headers["ETag"]


def test_the_function_url_door_sends_the_prepared_form(lib):
    """``lambda_handler`` answers static files before Chalice: with the prepared form too."""
    prepare_static(lib)
    module = project_module(lib)
    app = Chalice(app_name="prepared")
    cm = module.ContentManager(str(lib / "templates"), str(lib / "static"), app)
    cm.register_static_routes()
    event = v2_event("GET", "/static/css/site.css", {"accept-encoding": "gzip"})

    result = module.lambda_handler(app)(event, None)

    assert result["statusCode"] == 200 and result["isBase64Encoded"]
    assert base64.b64decode(result["body"]) == prepared_form(lib, "css/site.css").read_bytes()


def test_a_file_not_held_in_memory_gets_its_prepared_form(lib):
    prepare_static(lib)
    app = container(lib, static_cache_bytes=1024)  # the stylesheet is over a quarter of it
    first = invoke(app, "GET", "/static/css/site.css", {"Accept-Encoding": "gzip"})
    again = invoke(app, "GET", "/static/css/site.css", {"Accept-Encoding": "gzip"})  # not held
    assert first.body == again.body == prepared_form(lib, "css/site.css").read_bytes()


def test_a_file_edited_after_prepare_gets_a_gzip_of_its_new_bytes(lib, caplog):
    """Regression: the same size and a 1980 mtime, as a redeploy leaves it, but other bytes."""
    prepare_static(lib)
    css = lib / "static" / "css" / "site.css"
    old = css.read_bytes()
    new = old.replace(b"color", b"COLOR")
    assert len(new) == len(old) and new != old
    css.write_bytes(new)
    stamp_1980(lib)

    with caplog.at_level(logging.INFO, logger="chalice_http_toolkit"):
        answer = container_get(lib, "/static/css/site.css")

    assert gzip.decompress(answer.body) == new
    assert answer.body != prepared_form(lib, "css/site.css").read_bytes()
    assert answer.headers["ETag"] == toolkit._gzip_etag(f'"{toolkit._digest(new)}"')
    assert "static: css/site.css changed since prepare; compressed now" in caplog.messages


@pytest.mark.parametrize(
    "damage",
    ["missing", "truncated", "same size, other bytes", "empty", "recorded huge", "no manifest"],
)
def test_a_damaged_prepared_form_falls_back_to_compressing(lib, damage, caplog):
    prepare_static(lib)
    form = prepared_form(lib, "css/site.css")
    written = form.read_bytes()
    if damage == "missing":
        form.unlink()
    elif damage == "truncated":
        form.write_bytes(written[:-9])
    elif damage == "same size, other bytes":
        form.write_bytes(gzip.compress(b"x" * 10).ljust(len(written), b"\0"))
    elif damage == "empty":
        form.write_bytes(b"")
    elif damage == "recorded huge":  # never a read of that many bytes
        manifest = json.loads((lib / "chalice_http_toolkit.prepared.json").read_text())
        manifest["static"]["static"]["css/site.css"]["gzip"] = 10**15
        (lib / "chalice_http_toolkit.prepared.json").write_text(json.dumps(manifest))
    else:
        (lib / "chalice_http_toolkit.prepared.json").unlink()

    with caplog.at_level(logging.DEBUG, logger="chalice_http_toolkit"):
        answer = container_get(lib, "/static/css/site.css")

    source = (lib / "static" / "css" / "site.css").read_bytes()
    assert answer.status == 200 and answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(answer.body) == source
    assert answer.body != written
    assert any("compressed now" in m or "no prepared gzip" in m for m in caplog.messages)


def test_a_hostile_manifest_cannot_serve_another_file_or_read_outside(lib, tmp_path):
    prepare_static(lib)
    manifest_path = lib / "chalice_http_toolkit.prepared.json"
    manifest = json.loads(manifest_path.read_text())
    entries = manifest["static"]["static"]
    css, js = entries["css/site.css"], entries["app.js"]
    outside = tmp_path / "secret.gz"
    outside.write_bytes(gzip.compress(b"secret"))
    # The stylesheet's digest now names the script's gzip form, under the script's size ...
    form = prepared_form(lib, "css/site.css")
    form.write_bytes(prepared_form(lib, "app.js").read_bytes())
    entries["css/site.css"] = {"digest": css["digest"], "gzip": js["gzip"]}
    # ... and entries name files outside the build directory every way a path can.
    size = outside.stat().st_size
    entries["a"] = {"digest": "../../secret", "gzip": size}
    entries["b"] = {"digest": str(outside.with_suffix("")), "gzip": size}
    manifest["static"]["../.."] = {"c": {"digest": "/" + "0" * 32, "gzip": size}}
    manifest["static"]["x"] = {"../secret.gz": {"digest": True, "gzip": "1"}}
    manifest_path.write_text(json.dumps(manifest))

    answer = container_get(lib, "/static/css/site.css")

    assert gzip.decompress(answer.body) == (lib / "static" / "css" / "site.css").read_bytes()
    module = project_module(lib)
    sizes, _ = module._prepared_gzip_entries(str(manifest_path))
    assert set(sizes) == {css["digest"], js["digest"]}


def test_prepare_writes_only_forms_worth_sending(lib):
    static = lib / "static"
    (static / "small.css").write_bytes(b"a { color: red }\n")  # under COMPRESS_MIN_SIZE
    (static / "noise.txt").write_bytes(random.Random(2).randbytes(8000))  # not smaller
    (static / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 5000)  # not compressible
    # Compressible, but its gzip form is more than a Lambda response carries.
    (static / "big.txt").write_text(random.Random(3).randbytes(5_000_000).hex())
    (static / ".hidden.css").write_bytes(stylesheet(100))  # the index does not serve it

    entries = prepare_static(lib)

    assert set(entries) == {"css/site.css", "app.js"}
    written = sorted(p.name for p in (lib / "chalice_http_toolkit.prepared.json.gzip").iterdir())
    assert written == sorted(f"{entry['digest']}.gz" for entry in entries.values())


def test_prepare_again_removes_the_forms_of_edited_files_only(lib):
    entries = prepare_static(lib)
    build = lib / "chalice_http_toolkit.prepared.json.gzip"
    (build / "README").write_text("mine")
    (lib / "static" / "app.js").write_bytes(stylesheet(300, seed=9))

    again = prepare_static(lib)

    assert again["css/site.css"] == entries["css/site.css"]
    assert again["app.js"] != entries["app.js"]
    names = {p.name for p in build.iterdir()}
    assert names == {"README", *(f"{entry['digest']}.gz" for entry in again.values())}
    (lib / "static" / "app.js").unlink()
    (lib / "static" / "css" / "site.css").unlink()
    (build / "README").unlink()
    assert prepare_static(lib) == {} and not build.exists()
