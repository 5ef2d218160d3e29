"""Pages are never wrong: one regression test per defect of "One response pipeline".

Each test serves a real site through Chalice's test client (real Jinja2, real
API Gateway events where the gateway matters) and pins a wrong answer the
toolkit used to give: a cached page or a 304 for content another request
made, a body built although a 304 was due, a decision read back from a header
the toolkit wrote.
"""

from __future__ import annotations

import array
import dataclasses
import datetime
import enum
import gzip
import io
import os
import zoneinfo
from collections import defaultdict
from pathlib import Path

import pytest
from chalice.test import Client

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import ContentManager, stable_digest

from conftest import build_app

CLOCK = "{{ when.strftime('%H:%M %Z') }}"


@pytest.fixture
def deployed(site):
    """A container as on Lambda: memos on, files fixed."""
    templates, static = site
    (templates / "clock.html").write_text(CLOCK)
    (templates / "value.html").write_text("{{ v }}|{{ v.label }}|{{ v['missing'] }}")
    (templates / "tree.html").write_text(
        "<ul>{% for node in node.children %}{% include 'node.html' %}{% endfor %}</ul>"
    )
    (templates / "node.html").write_text(
        "<li>{{ node.name }}{% if node.children %}{% include 'tree.html' %}{% endif %}</li>"
    )
    (templates / "lucky.html").write_text("{{ numbers | random }}")
    (templates / "big.html").write_text("{{ n > 0 }}")
    app, cm, cf = build_app(templates, static, auto_reload=False)
    return app, cm, cf


def serve(app, cf, template: str, **kwargs):
    """GET a fresh route that renders ``template`` with ``kwargs``."""
    name = f"r{len(app.routes)}"

    @app.route(f"/{name}", methods=["GET", "HEAD"])
    def view():
        return cf.template(template, **kwargs)

    with Client(app) as client:
        return client.http.get(f"/{name}")


# -- template ETags name their output ------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("Europe/Paris", "Africa/Lagos", "12:00 WAT"),  # both +01:00 in January
        ("Europe/London", "UTC", "11:00 UTC"),  # both +00:00 in January
    ],
)
def test_datetimes_in_zones_with_the_same_offset_get_their_own_page(
    deployed, first, second, expected
):
    app, _, cf = deployed
    moment = datetime.datetime(2025, 1, 15, 11, 0, tzinfo=datetime.timezone.utc)
    one = serve(app, cf, "clock.html", when=moment.astimezone(zoneinfo.ZoneInfo(first)))
    other = serve(app, cf, "clock.html", when=moment.astimezone(zoneinfo.ZoneInfo(second)))
    assert other.body.decode() == expected
    assert one.headers["ETag"] != other.headers["ETag"]


def test_fixed_offsets_with_other_names_get_their_own_page(deployed):
    app, _, cf = deployed
    cet = datetime.timezone(datetime.timedelta(hours=1), "CET")
    wat = datetime.timezone(datetime.timedelta(hours=1), "WAT")
    serve(app, cf, "clock.html", when=datetime.datetime(2025, 1, 15, 12, tzinfo=cet))
    assert serve(
        app, cf, "clock.html", when=datetime.datetime(2025, 1, 15, 12, tzinfo=wat)
    ).body == (b"12:00 WAT")


class Shifty(datetime.tzinfo):
    """A tzinfo of the application's: its rendering is its own code's."""

    def __init__(self, name: str) -> None:
        self.name = name

    def utcoffset(self, moment):
        return datetime.timedelta(hours=1)

    def tzname(self, moment):
        return self.name

    def dst(self, moment):
        return datetime.timedelta(0)


def test_an_unknown_tzinfo_falls_back_to_rendering(deployed):
    app, cm, cf = deployed
    first = datetime.datetime(2025, 1, 15, 12, tzinfo=Shifty("AAA"))
    assert cm.template_etag("clock.html", {"when": first}) is None
    serve(app, cf, "clock.html", when=first)
    second = serve(
        app, cf, "clock.html", when=datetime.datetime(2025, 1, 15, 12, tzinfo=Shifty("BBB"))
    )
    assert second.body == b"12:00 BBB"


def test_templates_that_include_each_other_get_their_own_etag(deployed):
    app, _, cf = deployed
    node = {"name": "root", "children": [{"name": "leaf", "children": []}]}
    tree = serve(app, cf, "tree.html", node=node)
    leaf = serve(app, cf, "node.html", node=node)
    assert tree.body.startswith(b"<ul>") and leaf.body.startswith(b"<li>root")
    assert tree.headers["ETag"] != leaf.headers["ETag"]


@pytest.mark.parametrize(
    "other", [bytearray(b"abc"), array.array("B", b"abc"), memoryview(b"abc")], ids=type
)
def test_buffers_after_bytes_get_their_own_page(deployed, other):
    from markupsafe import escape

    app, _, cf = deployed
    assert b"<p>b&#39;abc&#39;</p>" in serve(app, cf, "index.html", title="t", items=[b"abc"]).body
    page = serve(app, cf, "index.html", title="t", items=[other])
    assert f"<p>{escape(str(other))}</p>".encode() in page.body  # not the bytes page


@dataclasses.dataclass
class Price:
    cents: int
    currency: dataclasses.InitVar[str]

    def __post_init__(self, currency: str) -> None:
        self.label = {"EUR": "€", "USD": "$"}[currency]


class Place(os.PathLike):
    def __init__(self, path: str, label: str) -> None:
        self.path, self.label = path, label

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.label


class Theme(enum.Enum):
    DARK = 1

    def __str__(self) -> str:
        return type(self).shown


def _defaultdicts():
    return defaultdict(lambda: "first"), defaultdict(lambda: "second")


def _enums():
    Theme.shown = "first"  # type: ignore[attr-defined]
    yield Theme.DARK
    Theme.shown = "second"  # type: ignore[attr-defined]
    yield Theme.DARK


def _subclasses():
    class Loud(str):
        def __str__(self) -> str:
            return "first"

    class Quiet(str):
        def __str__(self) -> str:
            return "second"

    return Loud("x"), Quiet("x")


CASES = {
    "dataclass with an InitVar-derived attribute": lambda: (Price(100, "EUR"), Price(100, "USD")),
    "PathLike whose str is its own": lambda: (Place("/a", "first"), Place("/a", "second")),
    "defaultdict's factory": _defaultdicts,
    "Enum with a custom __str__": _enums,
    "str subclasses": _subclasses,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_that_render_through_their_own_code_fall_back_to_rendering(deployed, case):
    app, _, cf = deployed
    values = iter(CASES[case]())
    first = serve(app, cf, "value.html", v=next(values))
    second = serve(app, cf, "value.html", v=next(values))
    assert first.status_code == second.status_code == 200
    assert first.body != second.body
    assert first.headers["ETag"] != second.headers["ETag"]


def test_an_int_too_long_to_print_falls_back_instead_of_raising(deployed):
    app, cm, cf = deployed
    huge = 10**5000
    assert stable_digest(huge) is None
    assert cm.template_etag("big.html", {"n": huge}) is None
    response = serve(app, cf, "big.html", n=huge)
    assert response.status_code == 200 and response.body == b"True"


def test_the_random_filter_is_rendered_every_time(deployed):
    app, cm, cf = deployed

    @app.route("/lucky", methods=["GET"])
    def lucky():
        return cf.template("lucky.html", numbers=list(range(1000)))

    with Client(app) as client:
        bodies = {client.http.get("/lucky").body for _ in range(10)}
        first = client.http.get("/lucky")
        again = client.http.get("/lucky", headers={"If-None-Match": first.headers["ETag"]})
    assert len(bodies) > 1
    assert again.status_code in (200, 304)  # a 304 only for the very same output
    if again.status_code == 200:
        assert again.headers["ETag"] != first.headers["ETag"] or again.body == first.body
    assert cm.template_etag("lucky.html", {"numbers": [1, 2]}) is None
    assert len(cm.pages) == 0  # the page cache holds pre-render ETags only


def test_the_page_cache_holds_only_pages_whose_etag_was_known_before_rendering(deployed):
    app, cm, cf = deployed
    serve(app, cf, "value.html", v=Place("/a", "x"))  # no canonical form
    serve(app, cf, "lucky.html", numbers=[1, 2, 3])  # volatile
    with Client(app) as client:
        client.http.get("/dynamic?n=footer.html")  # dynamic include
    assert len(cm.pages) == 0
    serve(app, cf, "index.html", title="t", items=[])
    assert len(cm.pages) == 1


# -- assets ---------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"x" * 64


def test_asset_types_are_remembered_per_resource_not_per_version_string(site):
    app, _, cf = build_app(*site, auto_reload=False)

    @app.route("/png", methods=["GET"])
    def png():
        return cf.asset(lambda: PNG, lambda: "v1")

    @app.route("/pdf", methods=["GET"])
    def pdf():
        return cf.asset(lambda: PDF, lambda: "v1")

    with Client(app) as client:
        assert client.http.get("/png").headers["Content-Type"] == "image/png"
        assert client.http.get("/pdf").headers["Content-Type"] == "application/pdf"


BMP = b"BM" + b"\x00" * 4000  # a compressible type by its signature


@pytest.mark.parametrize("container", ["same", "fresh"])
def test_cf_asset_does_not_build_the_body_when_the_gzip_etag_matches(site, container):
    calls = []

    def make_app():
        app, _, cf = build_app(*site, auto_reload=False)

        @app.route("/bmp", methods=["GET"])
        def bmp():
            return cf.asset(lambda: calls.append(1) or BMP, lambda: "v7")

        return app

    app = make_app()
    with Client(app) as client:
        zipped = client.http.get("/bmp", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["ETag"].endswith('-gz"')
    assert gzip.decompress(zipped.body) == BMP and calls == [1]
    if container == "fresh":
        app = make_app()
    with Client(app) as client:
        again = client.http.get(
            "/bmp", headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]}
        )
        identity = client.http.get("/bmp", headers={"If-None-Match": f'"{toolkit._digest(b"v7")}"'})
    assert again.status_code == 304 and again.headers["ETag"] == zipped.headers["ETag"]
    assert identity.status_code == 304
    assert calls == [1]  # get_asset() ran for the first response only


# -- preconditions --------------------------------------------------------------


@pytest.mark.parametrize("field", ["foo *bar", '"nope"*', "**", '"a", *'])
def test_a_star_inside_a_list_is_not_the_wildcard(site_app, field):
    app, _, _ = site_app
    with Client(app) as client:
        none_match = client.http.get("/static/css/site.css", headers={"If-None-Match": field})
        match = client.http.get("/static/css/site.css", headers={"If-Match": field})
        star = client.http.get("/static/css/site.css", headers={"If-None-Match": "*"})
    assert none_match.status_code == 200
    assert match.status_code == 412
    assert star.status_code == 304


def test_head_on_a_static_file_over_the_lambda_limit_is_not_a_500(site):
    templates, static = site
    (static / "big.bin").write_bytes(os.urandom(7 * 1024 * 1024))
    app, _, _ = build_app(templates, static, auto_reload=False)
    with Client(app) as client:
        head = client.http.request("HEAD", "/static/big.bin")
        get = client.http.get("/static/big.bin")
    assert head.status_code == 200 and head.body == b""
    assert head.headers["ETag"] and head.headers["Content-Type"] == "application/octet-stream"
    assert get.status_code == 500  # the body itself is over the limit


# -- decisions from inputs, not from headers written on the way ---------------


def test_compress_false_is_honoured_when_a_route_sets_vary_accept_encoding(site):
    app, cm, _ = build_app(*site, compress=False)

    @app.route("/varied", methods=["GET"])
    def varied():
        return cm.html("<p>hello</p>" * 500, headers={"Vary": "Accept-Encoding"})

    with Client(app) as client:
        response = client.http.get("/varied", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    assert response.body == b"<p>hello</p>" * 500


def test_a_last_modified_the_caller_states_is_a_validator_in_any_case(site):
    app, _, cf = build_app(*site)
    stamp = 1_700_000_000

    @app.route("/dated", methods=["GET"])
    def dated():
        lowered = {"last-modified": toolkit.http_date(stamp)}
        return cf.template("index.html", headers=lowered, title="d", items=[])

    with Client(app) as client:
        response = client.http.get(
            "/dated", headers={"If-Modified-Since": toolkit.http_date(stamp)}
        )
    assert response.status_code == 304


def test_vary_is_the_same_on_a_304_and_its_200(tmp_path):
    from PIL import Image

    templates, static = tmp_path / "t", tmp_path / "s"
    templates.mkdir()
    (static / "img").mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    (static / "img" / "red.jpg").write_bytes(buffer.getvalue())
    from chalice import Chalice

    app = Chalice(app_name="vary")
    cm = toolkit.ContentManager(str(templates), str(static), app, image_cache_bytes=0)

    @app.route("/red", methods=["GET"])
    def red():
        return cm.static("img/red.jpg", headers={"Vary": "Cookie"})

    accept = {"Accept": "image/webp,*/*"}
    with Client(app) as client:
        full = client.http.get("/red", headers=accept)
        again = client.http.get("/red", headers={**accept, "If-None-Match": full.headers["ETag"]})
    assert full.headers["Content-Type"] == "image/webp"
    assert again.status_code == 304
    assert again.headers["Vary"] == full.headers["Vary"] == "Accept, Cookie"


# -- memo keys ----------------------------------------------------------------


@pytest.mark.parametrize(
    "first", [b"abc", bytearray(b"abc"), array.array("B", b"abc"), memoryview(b"abc")], ids=type
)
def test_a_memoised_etag_never_answers_for_another_buffer_type(deployed, first):
    # marshal writes every buffer as bytes: the memo must never hand one's ETag to another
    _, cm, _ = deployed
    fresh = ContentManager(cm.templates_dir, cm.static_dir, auto_reload=False)
    fresh.set_static_handler_prefix(cm.static_prefix)
    values = [b"abc", bytearray(b"abc"), array.array("B", b"abc"), memoryview(b"abc")]
    for value in [first, *values, first, *reversed(values)]:
        kwargs = {"title": "t", "items": [value]}
        got = cm.template_etag("index.html", kwargs)
        if type(value) is bytes:
            assert got in (None, fresh.template_etag("index.html", kwargs))
        else:
            assert got is None  # no canonical form: rendered and hashed
    cm.template_etag("index.html", {"title": "t", "items": ["abc"]})
    assert len(cm._pages._template_etags) >= 1  # plain values are memoised


@pytest.mark.parametrize(
    ("one", "other"),
    [(1, True), ([1], (1,)), (1, 1.0), ({"1": 1}, {1: 1}), ({"a": 1, "b": 2}, {"b": 2, "a": 1})],
)
def test_memo_keys_never_conflate_types(one, other):
    assert toolkit._memo_key(one) != toolkit._memo_key(other)


def test_memo_keys_refuse_what_runs_application_code():
    from markupsafe import Markup

    for value in (Place("/a", "x"), [Theme.DARK], Path("/tmp"), Markup("<b>"), Shifty("A")):
        assert toolkit._memo_key(value) is None
    moment = datetime.datetime(2025, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    assert toolkit._memo_key(moment) is None


# -- the registries forms and others extend -------------------------------------


def test_a_helper_of_the_site_is_rendered_every_time_and_private_only_when_it_reads(site):
    """Replaces the registry of personal names: what a helper reads decides, not its name."""
    templates, static = site
    (templates / "mine.html").write_text("{% include 'token.html' %}")
    (templates / "token.html").write_text("<input value='{{ csrf_token() }}'>")
    app, cm, cf = build_app(templates, static, auto_reload=False, secret_key="k" * 32)
    tokens = iter(["a", "b"])
    cm.env.globals["csrf_token"] = lambda: next(tokens)  # the site's own: reads nobody

    @app.route("/mine", methods=["GET"])
    def mine():
        return cf.template("mine.html")

    @app.route("/theirs", methods=["GET"])
    def theirs():
        cm.env.globals["csrf_token"] = cm.csrf_token  # the toolkit's: reads the session
        return cf.template("mine.html")

    with Client(app) as client:
        first = client.http.get("/mine")
        second = client.http.get("/mine", headers={"If-None-Match": first.headers["ETag"]})
        personal = client.http.get("/theirs", headers={"If-None-Match": first.headers["ETag"]})
    assert first.body == b"<input value='a'>" and second.body == b"<input value='b'>"
    assert second.status_code == 200 and first.headers["ETag"] != second.headers["ETag"]
    assert len(cm.pages) == 0 and cm.template_etag("mine.html", {}) is None
    assert personal.status_code == 200
    assert personal.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in personal.headers


def test_a_template_naming_a_volatile_global_is_rendered_every_time(site, monkeypatch):
    templates, static = site
    (templates / "now.html").write_text("{{ now() }}")
    monkeypatch.setattr(toolkit, "_VOLATILE_TEMPLATE_NAMES", {"random", "lipsum", "now"})
    app, cm, cf = build_app(templates, static, auto_reload=False)
    ticks = iter(range(100))
    cm.env.globals["now"] = lambda: next(ticks)
    assert serve(app, cf, "now.html").body == b"0"
    assert serve(app, cf, "now.html").body == b"1"
    assert len(cm.pages) == 0


def test_a_set_and_a_frozenset_get_their_own_etag(deployed):
    # found by the Hypothesis test: both were encoded "S0{}"
    _, cm, _ = deployed
    assert stable_digest(set()) != stable_digest(frozenset())
    assert stable_digest({1}) != stable_digest(frozenset({1}))
    one = cm.template_etag("value.html", {"v": set()})
    other = cm.template_etag("value.html", {"v": frozenset()})
    assert one != other


def test_a_buffer_without_an_etag_does_not_take_the_etag_of_equal_bytes(tmp_path):
    """Regression (found by the ETag property test in CI): marshal writes a bytearray as bytes
    (and bytes held only by the arguments without a back-reference flag), so the ``None``
    memoised for a bytearray answered for equal bytes afterwards: the page lost its ETag
    depending on which came first."""
    (tmp_path / "probe.html").write_text("{{ v }}")
    cm = ContentManager(str(tmp_path), str(tmp_path), None, auto_reload=False)
    etag = cm.template_etag("probe.html", {"v": bytes(bytearray(b"abc"))})
    assert etag is not None
    assert cm.template_etag("probe.html", {"v": bytearray(b"abc")}) is None
    assert cm.template_etag("probe.html", {"v": bytes(bytearray(b"abc"))}) == etag
