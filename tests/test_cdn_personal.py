"""Personal pages behind the CloudFront model: no visitor ever sees another's page (issue 15)."""

from __future__ import annotations

import random

import pytest
from chalice import Chalice

import cli
from chalice_http_toolkit import CloudFront, ContentManager

from apigw import lambda_context, make_event
from cdn_model import CloudFrontModel, LambdaOrigin, SimClock
from cloudfront_function import ViewerRequestFunction

TEMPLATES = {
    "hello.html": "<h1>Hello {{ name }}</h1>",
    "inbox.html": "{% for m in get_flashed_messages() %}<p>{{ m }}</p>{% endfor %}<p>inbox</p>",
    "public.html": "<h1>Public {{ n }}</h1>",
}
NAMES = ["alice", "bob", "carol"]


def make_app(root):
    def build():
        app = Chalice(app_name="personal")
        cm = ContentManager(
            str(root), str(root), app, secret_key="cdn-test-key-0123456789abcdefghijk"
        )
        cf = CloudFront(cm, app)

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
    for name, text in TEMPLATES.items():
        (tmp_path / name).write_text(text)
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
            assert reply.source == "Pass" and reply.headers["cache-control"] == "private, no-store"
        if path == "/inbox" and who is not None and f"welcome {who}" in body:
            flashed[who] = True  # (the cookie is not updated: the flash shows each time)
    # Nothing personal was ever stored at the edge; the public page was.
    stored = [stored.body for stored in cdn.cache.values()]
    assert stored and all(name.encode() not in body for body in stored for name in NAMES)
    assert any(key[0] == "/public" for key in cdn.cache)
    assert all(flashed.values())
    # The origin saw only the toolkit's cookie, never the others.
    assert cdn.behaviour_for("/hello").forwarded_cookies == ("session",)


def test_the_function_passes_the_viewer_host_and_drops_a_forged_one(viewer_function):
    out = viewer_function("/", {"host": "www.example.com", "x-forwarded-host": "evil.test"})
    assert out["x-forwarded-host"] == "www.example.com"
    assert "x-forwarded-host" not in viewer_function("/", {"x-forwarded-host": "evil.test"})


def test_pages_forward_what_csrf_needs_and_key_on_no_cookie():
    template = cli.cloudfront_template(session_cookie="sid")
    resources = template["Resources"]
    policy = resources["PageOriginRequestPolicy"]["Properties"]["OriginRequestPolicyConfig"]
    assert {"Origin", "Sec-Fetch-Site", "X-Forwarded-Host", "X-CSRF-Token"} <= set(
        policy["HeadersConfig"]["Headers"]
    )
    assert policy["CookiesConfig"] == {"CookieBehavior": "whitelist", "Cookies": ["sid"]}
    key = resources["PageCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert key["ParametersInCacheKeyAndForwardedToOrigin"]["CookiesConfig"] == {
        "CookieBehavior": "none"
    }
    default = resources["Distribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert set(default["AllowedMethods"]) >= {"POST", "PUT", "PATCH", "DELETE"}
