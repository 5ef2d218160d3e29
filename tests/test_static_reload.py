"""``auto_reload`` (every ``chalice local``): bounded rescans, one snapshot per response."""

from __future__ import annotations

import gzip
import os
import sys
import threading
from pathlib import Path

import pytest
from chalice import Chalice

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager, StaticIndex

from apigw import invoke


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
