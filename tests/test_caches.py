"""Per-container caches behind the fast paths: they must never change an answer.

Template ETags are memoised under the marshalled keyword arguments, rendered
pages are kept under their ETag, ``static()`` URLs are memoised when deployed,
and gzip bodies use a window sized to the body. Each test checks that the
cached answer is the uncached one, and that the cache is actually used.
"""

from __future__ import annotations

import gzip
import random
import zlib

import pytest
from chalice.test import Client
from markupsafe import Markup

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager, evaluate_preconditions

from conftest import build_app
from test_templates import counting


def etag_pair(cm: ContentManager, kwargs: dict) -> tuple[str | None, str | None]:
    """(memoised ETag, ETag from a fresh container): they must agree."""
    fresh = ContentManager(cm.templates_dir, cm.static_dir, auto_reload=cm.auto_reload)
    fresh.set_static_handler_prefix(cm.static_prefix)
    return cm.template_etag("index.html", kwargs), fresh.template_etag("index.html", kwargs)


@pytest.fixture
def deployed(site):
    return build_app(*site, auto_reload=False)


# -- the template ETag memo ------------------------------------------------------


def test_memoised_etag_equals_a_fresh_containers(deployed):
    _, cm, _ = deployed
    kwargs = {"title": "t", "items": [{"a": 1}, (2, 3.5), None, True, "x"]}  # bytes: not memoised
    first, fresh = etag_pair(cm, kwargs)
    assert first == fresh and first is not None
    assert cm.template_etag("index.html", kwargs) == first  # a memo hit
    assert len(cm._pages._template_etags) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ([1, 2], (1, 2)),  # list and tuple render differently
        ([1], [True]),  # 1 and True are equal in Python, not in a page
        ([1.0], [1]),
        (["<b>"], [Markup("<b>")]),  # escaped and unescaped
        ([{"1": "x"}], [{1: "x"}]),
        ([{"a": 1, "b": 2}], [{"b": 2, "a": 1}]),  # iteration order shows in a page
        (["a"], [b"a"]),
    ],
)
def test_memo_never_conflates_values_that_render_differently(deployed, one, other):
    _, cm, _ = deployed
    first = cm.template_etag("index.html", {"title": "t", "items": one})
    second = cm.template_etag("index.html", {"title": "t", "items": other})
    assert first != second
    # and both are what a container without the memo computes
    assert etag_pair(cm, {"title": "t", "items": one})[1] == first
    assert etag_pair(cm, {"title": "t", "items": other})[1] == second


def test_keyword_order_and_set_order_do_not_change_the_etag(deployed):
    _, cm, _ = deployed
    words = [f"w{index}" for index in range(50)]
    forward, backward = set(), set()
    for word in words:
        forward.add(word)
    for word in reversed(words):
        backward.add(word)
    a = cm.template_etag("index.html", {"title": "t", "items": [forward]})
    b = cm.template_etag("index.html", {"items": [backward], "title": "t"})
    assert a == b


def test_arguments_the_memo_cannot_key_still_get_a_canonical_etag(deployed):
    import decimal

    _, cm, _ = deployed
    kwargs = {"title": "t", "items": [decimal.Decimal("1.10")]}
    first, fresh = etag_pair(cm, kwargs)
    assert first == fresh is not None
    assert len(cm._pages._template_etags) == 0  # nothing memoised: the memo key refuses Decimal


def test_memo_is_bounded_by_bytes(site):
    _, cm, _ = build_app(*site, auto_reload=False, memo_cache_bytes=20_000)
    for index in range(200):
        cm.template_etag("index.html", {"title": str(index), "items": []})
    assert 0 < len(cm._pages._template_etags) < 200
    assert cm._pages._template_etags.size <= 20_000
    big = {"title": "t", "items": ["x" * (toolkit._MEMO_MAX_KEY + 1)]}
    assert cm.template_etag("index.html", big) == etag_pair(cm, big)[1]
    assert all(len(key[2]) <= toolkit._MEMO_MAX_KEY for key in cm._pages._template_etags)


def test_no_memo_while_auto_reloading(site):
    templates, static = site
    _, cm, _ = build_app(templates, static, auto_reload=True)
    before = cm.template_etag("index.html", {"title": "t", "items": []})
    (templates / "index.html").write_text((templates / "index.html").read_text() + "<!-- -->")
    assert cm.template_etag("index.html", {"title": "t", "items": []}) != before
    assert len(cm._pages._template_etags) == 0


# -- the page cache --------------------------------------------------------------


def test_a_page_is_rendered_once_per_etag(deployed):
    app, cm, cf = deployed

    @app.route("/big", methods=["GET"])
    def big():
        return cf.template("index.html", title="big", items=[f"item {i} " * 10 for i in range(40)])

    renders = counting(cm)
    with Client(app) as client:
        first = client.http.get("/big")
        second = client.http.get("/big")
        zipped = client.http.get("/big", headers={"Accept-Encoding": "gzip"})
        other = client.http.get("/page/other")
    assert len(renders) == 2  # "/big" once, "/page/other" once
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert first.body == second.body and first.headers["ETag"] == second.headers["ETag"]
    assert gzip.decompress(zipped.body) == first.body
    assert zipped.headers["ETag"] == first.headers["ETag"][:-1] + '-gz"'
    assert b"other" in other.body and other.body != first.body
    assert cm.pages.hits == 2 and len(cm.pages) == 2


SECRET = "test-caches-secret-key-0123456789abcdef"


def test_a_kept_page_is_anybodys_answer_and_never_a_personal_one(site):
    """Regression for the kept page's offer (made once, then read by every request for it).

    Visitors who did not touch who is asking share it (whole, HEAD and 304); a
    request that read a session its cookie carried (before or after cf.template) gets
    the page privately, and does not make the next anonymous one private.
    """
    app, cm, cf = build_app(*site, auto_reload=False, secret_key=SECRET)

    @app.route("/sign-in", methods=["GET"])
    def sign_in():
        cm.session["user"] = "ann"
        return cm.html("<p>hi</p>")

    @app.route("/late", methods=["GET"])
    def late():
        response = cf.template("index.html", title="Home <&>", items=["a", "b"])
        cm.session.get("user")  # who is asking, read after the answer was made
        return response

    renders = counting(cm)
    with Client(app) as client:
        first = client.http.get("/")
        etag = first.headers["ETag"]
        again = client.http.get("/")
        head = client.http.head("/")
        not_modified = client.http.get("/", headers={"If-None-Match": etag})
        cookies = client.http.get("/sign-in").headers["Set-Cookie"]
        mine = {"Cookie": "; ".join(c.split(";")[0] for c in cookies), "If-None-Match": etag}
        personal = client.http.get("/personal", headers=mine)
        late_personal = client.http.get("/late", headers=mine)
        late_anyone = client.http.get("/late", headers={"If-None-Match": etag})
        after = client.http.get("/", headers={"If-None-Match": etag})
    assert len(renders) == 2 and len(cm.pages) == 1  # the first, and /personal's own
    assert again.body == first.body and again.headers["ETag"] == etag
    assert head.status_code == 200 and head.body == b"" and head.headers["ETag"] == etag
    assert not_modified.status_code == 304 and after.status_code == 304
    assert late_anyone.status_code == 304
    for answer in (personal, late_personal):
        assert answer.status_code == 200 and answer.body == first.body
        assert answer.headers["Cache-Control"] == "private, no-store"
        assert "ETag" not in answer.headers
    assert after.headers["ETag"] == etag and "private" not in after.headers["Cache-Control"]


def test_a_page_too_large_to_keep_is_rendered_each_time_and_still_gzipped(site):
    app, cm, cf = build_app(*site, auto_reload=False, page_cache_bytes=3000)

    @app.route("/big", methods=["GET"])
    def big():
        return cf.template("index.html", title="big", items=[f"item {i} " * 10 for i in range(40)])

    renders = counting(cm)
    with Client(app) as client:
        plain = client.http.get("/big")
        zipped = client.http.get("/big", headers={"Accept-Encoding": "gzip"})
    assert len(renders) == 2 and len(cm.pages) == 0
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plain.body


def test_an_evicted_page_is_freed_at_once_not_by_the_cycle_collector(deployed):
    """A kept page's offer must not refer back to the page: its bytes go with the entry."""
    import gc

    app, cm, _ = deployed
    with Client(app) as client:
        assert client.http.get("/").status_code == 200
    gc.collect()
    gc.disable()
    try:
        assert len(cm.pages) == 1
        cm.pages.clear()
        kept = [o for o in gc.get_objects() if type(o) in (toolkit._Page, toolkit._PageBody)]
    finally:
        gc.enable()
    assert kept == []


def test_a_remembered_page_renders_from_a_copy_of_its_arguments(deployed):
    """Regression for the offer memoised with a page's ETag (made once, read by every request).

    It renders from the memo key, so a list a view passed and changed afterwards never
    makes the page kept under the old ETag; a 304 needs no render at all.
    """
    app, cm, cf = deployed
    lists = [["a", "b"], ["a", "b"]]  # equal, and alike to marshal: one memo entry

    @app.route("/list/{n}", methods=["GET"])
    def listed(n):
        return cf.template("index.html", title="list", items=lists[int(n)])

    renders = counting(cm)
    with Client(app) as client:
        first = client.http.get("/list/0")
        etag = first.headers["ETag"]
        lists[0].append("c")  # the list the first page was made from changes afterwards
        cm.pages.clear()  # and the page is evicted
        not_modified = client.http.get("/list/1", headers={"If-None-Match": etag})
        rendered_before = len(renders)
        other = client.http.get("/list/1")
        changed = client.http.get("/list/0")
    assert len(cm._pages._template_etags) == 2  # /list/1 found /list/0's entry
    assert not_modified.status_code == 304 and rendered_before == 1
    assert other.headers["ETag"] == etag and other.body == first.body
    assert b"<p>c</p>" not in other.body
    assert changed.headers["ETag"] != etag and b"<p>c</p>" in changed.body


def test_page_cache_follows_template_edits_in_development(site):
    templates, static = site
    app, _, _ = build_app(templates, static, auto_reload=True)
    with Client(app) as client:
        before = client.http.get("/").body
        (templates / "index.html").write_text(
            (templates / "index.html").read_text().replace("<h1>", "<h1 class=edited>")
        )
        after = client.http.get("/").body
    assert b"edited" not in before and b"class=edited" in after


def test_page_cache_can_be_turned_off_and_is_bounded(site):
    app, cm, _ = build_app(*site, auto_reload=False, page_cache_bytes=0)
    renders = counting(cm)
    with Client(app) as client:
        client.http.get("/")
        client.http.get("/")
    assert len(renders) == 2 and len(cm.pages) == 0

    app, cm, _ = build_app(*site, auto_reload=False, page_cache_bytes=4000)
    with Client(app) as client:
        for index in range(20):
            assert client.http.get(f"/page/p{index}").status_code == 200
    assert 0 < len(cm.pages) < 20 and cm.pages.size <= 4000


def test_pages_with_no_predictable_etag_are_not_cached(deployed):
    app, cm, _ = deployed
    with Client(app) as client:
        assert client.http.get("/dynamic?n=footer.html").status_code == 200
    assert len(cm.pages) == 0


# -- static() URLs ---------------------------------------------------------------


def test_static_urls_are_memoised_when_deployed_and_bounded(site):
    _, cm, _ = build_app(*site, auto_reload=False, memo_cache_bytes=5_000)
    url = cm.static_url("css/site.css")
    assert cm._statics._static_urls[("css/site.css", None)] == url
    for index in range(100):
        assert cm.static_url(f"missing-{index}.css") == f"/static/missing-{index}.css"
    assert 0 < len(cm._statics._static_urls) < 100 and cm._statics._static_urls.size <= 5_000
    cm.set_static_handler_prefix("/assets")
    assert cm.static_url("css/site.css") == url.replace("/static/", "/assets/", 1)


def test_static_urls_follow_edits_in_development(site):
    templates, static = site
    _, cm, _ = build_app(templates, static, auto_reload=True)
    before = cm.static_url("css/site.css")
    (static / "css" / "site.css").write_text("body { color: red; }")
    assert cm.static_url("css/site.css") != before


# -- gzip with a window sized to the body ---------------------------------------


@pytest.mark.parametrize(
    "size", [1023, 1024, 1025, 4095, 4096, 4097, 32767, 32768, 32769, 200_000, 1_500_000]
)
def test_sized_gzip_window_round_trips(size):
    rng = random.Random(size)
    words = [f"word{index}" for index in range(300)]
    text = " ".join(rng.choice(words) for _ in range(size // 4 + 1)).encode()[:size]
    compressed = toolkit._gzip_if_smaller(text)
    if size < toolkit.COMPRESS_MIN_SIZE:
        assert compressed is None
        return
    assert compressed is not None and gzip.decompress(compressed) == text
    # no worse than zlib's defaults by more than a few per cent
    default = zlib.compressobj(6, zlib.DEFLATED, 31)
    reference = default.compress(text) + default.flush()
    assert len(compressed) <= len(reference) * 1.03 + 16


def test_incompressible_body_is_sent_as_is():
    data = random.Random(1).randbytes(5000)
    assert toolkit._gzip_if_smaller(data) is None


# -- preconditions against both representations at once -----------------------


def test_if_match_naming_the_gzip_representation_passes(site_app):
    app, _, _ = site_app
    path = "/static/css/site.css"
    with Client(app) as client:
        zipped = client.http.get(path, headers={"Accept-Encoding": "gzip"})
        gz_etag = zipped.headers["ETag"]
        assert zipped.headers["Content-Encoding"] == "gzip" and gz_etag.endswith('-gz"')
        match_gz = client.http.get(path, headers={"If-Match": gz_etag})
        match_other = client.http.get(path, headers={"If-Match": '"other"'})
        inm_gz = client.http.get(path, headers={"If-None-Match": gz_etag})
    assert match_gz.status_code == 200
    assert match_other.status_code == 412
    assert inm_gz.status_code == 304 and inm_gz.headers["ETag"] == gz_etag


def test_evaluate_preconditions_public_signature_unchanged():
    headers = {"if-none-match": '"a"'}
    assert evaluate_preconditions("GET", headers, '"a"') == 304
    assert evaluate_preconditions("GET", headers, None) is None
    assert evaluate_preconditions("GET", {"if-match": "*"}, None) == 412
    assert evaluate_preconditions("GET", {"if-none-match": "*"}, '"a"') == 304


# -- the If-None-Match memo (a field and a representation's ETags -> the one named) ------


def test_the_if_none_match_memo_follows_the_representations_etags():
    field = {"if-none-match": '"v1-gz"'}
    named = toolkit._evaluate_preconditions("GET", field, ('"v1"', '"v1-gz"'), None)
    changed = toolkit._evaluate_preconditions("GET", field, ('"v2"', '"v2-gz"'), None)
    identity_only = toolkit._evaluate_preconditions("GET", field, ('"v1"',), None)
    unsafe = toolkit._evaluate_preconditions("PUT", field, ('"v1"', '"v1-gz"'), None)
    assert named == (304, '"v1-gz"')
    assert changed == (None, None) and identity_only == (None, None)  # never the old answer
    assert unsafe == (412, '"v1-gz"')
    star = {"if-none-match": "*"}
    assert toolkit._evaluate_preconditions("GET", star, ('"v2"', '"v2-gz"'), None) == (304, '"v2"')
    assert toolkit._evaluate_preconditions("GET", star, (), None) == (None, None)


def test_the_if_none_match_memo_is_bounded_and_long_fields_skip_it():
    memo = toolkit._short_none_match
    memo.cache_clear()
    for index in range(600):
        toolkit._evaluate_preconditions("GET", {"if-none-match": f'"{index}"'}, ('"1"',), None)
    assert memo.cache_info().currsize == memo.cache_info().maxsize == 512
    memo.cache_clear()
    long_field = {"if-none-match": ", ".join(f'"{index}"' for index in range(200))}
    assert toolkit._evaluate_preconditions("GET", long_field, ('"150"',), None) == (304, '"150"')
    assert memo.cache_info().currsize == 0


def test_a_revalidation_the_memo_answered_is_never_another_visitors(site):
    app, cm, cf = build_app(*site, auto_reload=False)

    @app.route("/mine", methods=["GET"])
    def mine():
        cm.cookies()  # reads who is asking
        return cf.template("index.html", title="Home <&>", items=["a", "b"])

    with Client(app) as client:
        first = client.http.get("/", headers={"Accept-Encoding": "gzip"})
        condition = {"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]}
        shared = [client.http.get("/", headers=condition) for _ in range(2)]
        personal = client.http.get("/mine", headers={**condition, "Cookie": "user=1"})
    assert [response.status_code for response in shared] == [304, 304]
    assert personal.status_code == 200 and personal.body
    assert personal.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in personal.headers


def test_the_execute_api_host_memo_agrees_with_the_pattern_and_is_bounded():
    memo = toolkit._is_short_execute_api_host
    memo.cache_clear()
    hosts = [f"abc{index}.execute-api.eu-west-1.amazonaws.com" for index in range(100)]
    hosts += ["www.example.com", "ABC.EXECUTE-API.us-east-1.amazonaws.com:443", "x.execute-api."]
    for host in hosts * 2:
        assert toolkit._is_execute_api_host(host) is toolkit._matches_execute_api(host)
    assert memo.cache_info().currsize == memo.cache_info().maxsize == 64
    memo.cache_clear()
    long_host = "a" * 300 + ".execute-api.eu-west-1.amazonaws.com"
    assert toolkit._is_execute_api_host(long_host) is True
    assert memo.cache_info().currsize == 0


def _not_modified(etag: str, **options):
    offer = toolkit.Offer("text/html; charset=utf-8", lambda: "<p>x</p>", etag)
    return toolkit.answer_request("GET", {"if-none-match": etag}, offer, **options)


def test_the_validation_headers_memo_holds_no_etag_and_follows_every_option():
    toolkit._validation_headers.cache_clear()
    fixed = {"X-Frame-Options": "DENY"}
    first = _not_modified('"a"', cache_control="no-cache", fixed_headers=fixed)
    second = _not_modified('"b"', cache_control="no-cache", fixed_headers=fixed)
    fixed["X-Frame-Options"] = "SAMEORIGIN"  # a mapping changed in place: its new value
    changed = _not_modified('"b"', cache_control="no-cache", fixed_headers=fixed)
    other = _not_modified('"b"', cache_control="max-age=60", vary=("Accept",))
    assert first.status == second.status == changed.status == other.status == 304
    assert first.headers["ETag"] == '"a"' and second.headers["ETag"] == '"b"'
    assert second.headers["X-Frame-Options"] == "DENY"
    assert changed.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert other.headers["Cache-Control"] == "max-age=60" and "X-Frame-Options" not in other.headers
    assert other.headers["Vary"] == "Accept, Accept-Encoding"
    first.headers["Set-Cookie"] = "a=1"  # a view adding to its answer: never to the memo
    again = _not_modified(
        '"c"', cache_control="no-cache", fixed_headers={"X-Frame-Options": "DENY"}
    )
    assert "Set-Cookie" not in again.headers and again.headers["ETag"] == '"c"'


def test_the_validation_headers_memo_is_bounded_and_skips_the_callers_headers():
    memo = toolkit._validation_headers
    memo.cache_clear()
    for age in range(300):
        _not_modified('"a"', cache_control=f"max-age={age}")
    assert memo.cache_info().currsize == memo.cache_info().maxsize == 256
    memo.cache_clear()
    own = _not_modified('"a"', headers={"Expires": "0", "X-Mine": "1"})
    assert own.headers["Expires"] == "0" and "X-Mine" not in own.headers
    assert memo.cache_info().currsize == 0
    listed = _not_modified('"a"', vary=["Accept"], fixed_headers={"Link": ["<a>", "<b>"]})
    assert listed.status == 304 and listed.headers["Link"] == ["<a>", "<b>"]
    assert listed.headers["Vary"] == "Accept, Accept-Encoding"
    assert memo.cache_info().currsize == 0


# -- threads (chalice local serves each request on its own thread) -------------


def test_image_cache_is_consistent_under_threads():
    import sys
    import threading

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    cache = toolkit.ImageCache(max_bytes=2_000)
    errors: list[Exception] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(20_000):
                key = rng.randrange(60)
                if rng.random() < 0.5:
                    cache.put(key, b"x" * rng.randrange(1, 200))
                else:
                    cache.get(key)
        except (KeyError, RuntimeError) as error:  # what a racing OrderedDict raises
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert cache.size == sum(cache._costs.values()) <= cache.max_bytes
    assert set(cache._costs) == set(cache._entries)


@pytest.mark.parametrize("option", ["page_cache_bytes", "image_cache_bytes"])
@pytest.mark.parametrize("value", [-1, 1.5, "16MB", None, True])
def test_cache_sizes_are_checked(site, option, value):
    with pytest.raises(ValueError, match="cache size"):
        build_app(*site, **{option: value})


def test_a_template_whose_arguments_never_repeat_stops_paying_for_their_digest(deployed):
    """New arguments every request: after the trials, render-and-hash (no digest, no cache)."""
    app, cm, cf = deployed

    @app.route("/fresh/{n}", methods=["GET"])
    def fresh(n):
        return cf.template("index.html", title=n, items=[f"{n}-{i}" for i in range(5)])

    with Client(app) as client:
        answers = [client.http.get(f"/fresh/{n}") for n in range(300)]
        last = answers[-1]
        again = client.http.get("/fresh/299", headers={"If-None-Match": last.headers["ETag"]})
    assert again.status_code == 304  # the output's ETag still validates
    # Only the trials (32) and the occasional retry (one in 64) went into the page cache.
    assert len(cm.pages) <= 32 + 300 // 64 + 1
    assert all(answer.status_code == 200 and "ETag" in answer.headers for answer in answers)
    assert all(f"<h1>{n}</h1>".encode() in answers[n].body for n in (0, 150, 299))


def test_arguments_that_came_before_keep_their_etag_while_the_template_renders_and_hashes(
    deployed,
):
    """Regression: a page revalidated after its template's fresh pages turned the digest off
    was rendered again and sent whole (200, another ETag) for over a thousand requests."""
    app, cm, cf = deployed

    @app.route("/fresh/{n}", methods=["GET"])
    def fresh(n):
        return cf.template("index.html", title=n, items=[f"{n}-{i}" for i in range(5)])

    @app.route("/home", methods=["GET"])
    def home():
        return cf.template("index.html", title="home", items=["a"])

    renders = counting(cm)  # (a helper changed: before any request, or the memo is forgotten)
    with Client(app) as client:
        first = client.http.get("/home")
        etag = first.headers["ETag"]
        for n in range(300):
            client.http.get(f"/fresh/{n}")
        renders.clear()
        revalidated = [client.http.get("/home", headers={"If-None-Match": etag}) for _ in range(50)]
        whole = client.http.get("/home")
        fresh = client.http.get("/fresh/new")
    assert {answer.status_code for answer in revalidated} == {304}
    assert whole.status_code == 200 and whole.body == first.body
    assert whole.headers["ETag"] == etag
    assert renders == ["css/site.css"]  # only /fresh/new was rendered
    assert fresh.status_code == 200 and b"<h1>new</h1>" in fresh.body


def test_a_template_whose_arguments_repeat_keeps_its_page_cache(deployed):
    app, cm, cf = deployed

    @app.route("/few/{n}", methods=["GET"])
    def few(n):
        return cf.template("index.html", title=str(int(n) % 3), items=[])

    renders = counting(cm)
    with Client(app) as client:
        for n in range(200):
            client.http.get(f"/few/{n}")
    assert len(renders) == 3  # one render per distinct page, ever


def test_a_template_whose_arguments_stop_repeating_turns_to_render_and_hash(deployed):
    """Regression: the digest's payoff counted every request since start, so after a few
    thousand repeated pages, fresh arguments kept being digested and cached for tens of
    thousands of requests; the decision now follows the recent ones (both ways)."""
    app, cm, cf = deployed

    @app.route("/page/{n}", methods=["GET"])
    def page(n):
        return cf.template("index.html", title=n, items=[])

    with Client(app) as client:
        for n in range(2000):
            client.http.get(f"/page/{n % 3}")  # repeated: the digest spares renders
        cached_before = len(cm.pages)
        renders = counting(cm)
        for n in range(1000, 1600):
            client.http.get(f"/page/{n}")  # fresh from now on
        digested_fresh = len(cm.pages) - cached_before
        for n in range(1000, 1600):  # the fresh ones come again: the digest pays once more
            client.http.get(f"/page/{n % 3}")
        renders.clear()
        again = [client.http.get(f"/page/{n % 3}") for n in range(30)]
    assert cached_before == 3
    assert digested_fresh <= 160 + 600 // 64 + 1  # not all 600
    assert renders == [] and {answer.status_code for answer in again} == {200}
