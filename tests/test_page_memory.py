"""Caches are bounded by the memory Python holds, not by characters or entry counts.

The issue's attack: a million distinct tiny pages grew RSS by 308 MB under a
"16 MiB" page cache. Here a scaled equivalent runs in a fresh interpreter and
its resident set is read from ``/proc/self/statm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
