"""Personal pages behind the CloudFront model: no visitor ever sees another's page (issue 15)."""

from __future__ import annotations

import random

import pytest

import cli

from apigw import lambda_context, make_event
from cdn_model import CloudFrontModel, LambdaOrigin, SimClock
from cloudfront_function import ViewerRequestFunction
from sites import SECRET_KEY, build_app, write_site

TEMPLATES = {
    "hello.html": "<h1>Hello {{ name }}</h1>",
    "inbox.html": "{% for m in get_flashed_messages() %}<p>{{ m }}</p>{% endfor %}<p>inbox</p>",
    "public.html": "<h1>Public {{ n }}</h1>",
    "greet.html": "<h1>Hello {{ g.user or 'stranger' }}</h1>",
}
NAMES = ["alice", "bob", "carol"]


def site_folders(root) -> tuple:
    """The site's folders (tests/sites.py) with these pages' templates added."""
    templates, static = write_site(root / "site")
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    return templates, static


def make_app(root):
    """A factory (one app per Lambda container) of the site's app and these pages."""
    folders = site_folders(root)

    def build():
        app, cm, cf = build_app(*folders, secret_key=SECRET_KEY)

        @app.route("/hello")
        def hello():
            return cf.template("hello.html", name=cm.session.get("name", "stranger"))

        @app.route("/inbox")
        def inbox():
            return cf.template("inbox.html")

        @app.route("/public")
        def public():
            return cf.template("public.html", n=1)

        @app.route("/login/{name}")
        def login(name):
            cm.session["name"] = name
            cm.flash(f"welcome {name}")
            return cm.json({"ok": True})

        return app

    return build


@pytest.fixture(scope="module")
def viewer_function():
    with ViewerRequestFunction(cli.cloudfront_function_code()) as function:
        yield function


def session_cookie(app, name: str) -> str:
    result = app(make_event(app, "GET", f"/login/{name}"), lambda_context())
    [line] = result["multiValueHeaders"]["Set-Cookie"]
    return line.split(";")[0]


def test_no_personal_page_reaches_another_visitor(tmp_path, viewer_function):
    rng = random.Random(15)
    clock = SimClock()
    build = make_app(tmp_path)
    origin = LambdaOrigin(build, containers=2, rng=rng, clock=clock)
    cdn = CloudFrontModel(cli.cloudfront_template(), origin, clock, viewer_function)
    cookies = {name: session_cookie(build(), name) for name in NAMES}
    visitors = [*NAMES, None]  # None: a visitor without a session
    flashed = {name: False for name in NAMES}
    for _ in range(300):
        clock.now += rng.random() * 5
        who = rng.choice(visitors)
        path = rng.choice(["/hello", "/inbox", "/public"])
        headers = {"Accept": "text/html", "Accept-Encoding": "gzip", "Host": "www.example.com"}
        if who is not None:
            headers["Cookie"] = f"{cookies[who]}; tracking=1"
        reply = cdn.request(path, headers)
        body = reply.content.decode()
        assert reply.status == 200, body
        others = [name for name in NAMES if name != who]
        assert not any(name in body for name in others), (who, path, body)
        if path == "/hello":
            assert f"Hello {who or 'stranger'}" in body
            if who is None:  # no session cookie, an empty session: anybody's page
                assert "private" not in reply.headers["cache-control"]
            else:
                assert reply.source == "Pass"
                assert reply.headers["cache-control"] == "private, no-store"
        if path == "/inbox" and who is not None and f"welcome {who}" in body:
            flashed[who] = True  # (the cookie is not updated: the flash shows each time)
    # Nothing personal was ever stored at the edge; the public page was.
    stored = [stored.body for stored in cdn.cache.values()]
    assert stored and all(name.encode() not in body for body in stored for name in NAMES)
    assert any(key[0] == "/public" for key in cdn.cache)
    assert all(flashed.values())
    # The origin saw only the toolkit's cookie, never the others; it is in the page key.
    assert cdn.behaviour_for("/hello").key_cookies == ("session",)
    assert cdn.behaviour_for("/hello").forwarded_cookies == ()


def test_the_function_passes_the_viewer_host_and_drops_a_forged_one(viewer_function):
    out = viewer_function("/", {"host": "www.example.com", "x-forwarded-host": "evil.test"})
    assert out["x-forwarded-host"] == "www.example.com"
    assert "x-forwarded-host" not in viewer_function("/", {"x-forwarded-host": "evil.test"})


def test_pages_forward_what_csrf_needs_and_key_on_the_session_cookie():
    template = cli.cloudfront_template(session_cookie="sid")
    resources = template["Resources"]
    policy = resources["PageOriginRequestPolicy"]["Properties"]["OriginRequestPolicyConfig"]
    assert {"Origin", "Sec-Fetch-Site", "X-Forwarded-Host", "X-CSRF-Token"} <= set(
        policy["HeadersConfig"]["Headers"]
    )
    assert policy["CookiesConfig"] == {"CookieBehavior": "none"}  # the key forwards it
    key = resources["PageCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert key["ParametersInCacheKeyAndForwardedToOrigin"]["CookiesConfig"] == {
        "CookieBehavior": "whitelist",
        "Cookies": ["sid"],
    }
    default = resources["Distribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert set(default["AllowedMethods"]) >= {"POST", "PUT", "PATCH", "DELETE"}


def make_edge_app(root):
    """Logged-in visitors' pages read the session; anonymous visitors' pages do not."""
    folders = site_folders(root)

    def build():
        app, cm, cf = build_app(*folders, secret_key=SECRET_KEY)  # the edge defaults

        @app.route("/home")
        def home():
            if "session=" in (app.current_request.headers.get("cookie") or ""):
                return cf.template("hello.html", name=cm.session.get("name", "stranger"))
            return cf.template("hello.html", name="stranger")

        @app.route("/login/{name}")
        def login(name):
            cm.session["name"] = name
            return cm.json({"ok": True})

        return app

    return build


def make_flask_login_app(root):
    """The Flask-Login way: a middleware loads the user on every request, the page shows ``g``.

    A request without a session cookie only finds the session empty: its page is
    anybody's, so the edge may keep it (the one place the exchange's rule is relaxed:
    the session cookie is in the pages' cache key).
    """

    folders = site_folders(root)

    def build():
        app, cm, cf = build_app(*folders, secret_key=SECRET_KEY)

        @app.middleware("http")
        def load_user(event, get_response):
            cm.g.user = cm.session.get("name")
            return get_response(event)

        @app.route("/home")
        def home():
            return cf.template("greet.html")

        @app.route("/login/{name}")
        def login(name):
            cm.session["name"] = name
            return cm.json({"ok": True})

        return app

    return build


@pytest.mark.parametrize("make", [make_edge_app, make_flask_login_app])
def test_a_logged_in_visitor_never_gets_the_shared_copy(tmp_path, viewer_function, make):
    """Anonymous views fill the edge (answered stale, revalidated in the background);
    logged-in views in between must reach the origin: the session cookie is in the key."""
    rng = random.Random(26)
    clock = SimClock()
    build = make(tmp_path)
    origin = LambdaOrigin(build, containers=2, rng=rng, clock=clock)
    cdn = CloudFrontModel(cli.cloudfront_template(), origin, clock, viewer_function)
    cookies = {name: session_cookie(build(), name) for name in NAMES}
    sources = []
    for _ in range(200):
        clock.now += rng.random() * 5
        who = rng.choice([*NAMES, None, None, None])
        headers = {"Accept": "text/html", "Accept-Encoding": "gzip", "Host": "www.example.com"}
        if who is not None:
            headers["Cookie"] = f"tracking=1; {cookies[who]}"
        reply = cdn.request("/home", headers)
        assert reply.status == 200
        assert f"Hello {who or 'stranger'}" in reply.content.decode(), (who, reply.source)
        if who is None:
            sources.append(reply.source)
        else:
            assert reply.source == "Pass" and reply.headers["cache-control"] == "private, no-store"
    # The anonymous page was answered at the edge, without waiting for the origin.
    assert sources.count("StaleHit") > 0.8 * len(sources)
    stored = [stored.body for stored in cdn.cache.values()]
    assert stored and all(name.encode() not in body for body in stored for name in NAMES)
