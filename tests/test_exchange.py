"""One exchange per request: who is asking, and every header, decided in one place (issue 20).

Each test is an attack that handed one visitor's page to another, lost static caching or
dropped a header on the toolkit before the exchange; each was seen failing on that code.
"""

from __future__ import annotations

import re

import pytest
from chalice import Chalice, Response
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from chalice_http_toolkit import (
    DEFAULT_SECURITY_HEADERS,
    IMMUTABLE_CACHE_CONTROL,
    CloudFront,
    ContentManager,
)

SECRET = "exchange-tests-secret-key-0123456789abcdef"
URLENCODED = "application/x-www-form-urlencoded"
SAME_ORIGIN = {"Host": "www.example.com", "Sec-Fetch-Site": "same-origin"}

TEMPLATES = {
    "global.html": "<p>Hello {{ current_user() }}</p>",
    "filter.html": "<p>{{ 'Hello' | greet }}</p>",
    "macros.html": "{% macro badge() %}<b>{{ current_user() }}</b>{% endmacro %}",
    "macro.html": "{% from 'macros.html' import badge %}<p>{{ badge() }}</p>",
    "included.html": "<header>{% include 'who.html' %}</header><p>{{ title }}</p>",
    "who.html": "<i>{{ current_user() }}</i>",
    "csrf.html": '<form method="post">{{ csrf_field() }}</form>',
    "theme.html": "<body class='{{ theme() }}'>{{ title }}</body>",
    "site.html": "<h1>{{ site.name }}</h1><p>{{ motto }}</p>",
    "pure.html": "<p>{{ shout(title) }}</p>",
    "plain.html": "<p>{{ title }}</p>",
    "user.html": "<p>{{ g.user or 'guest' }}</p>",
}


def build(tmp_path, **options):
    """An app whose site registers the helpers Flask sites register, the way they do."""
    templates = tmp_path / "templates"
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    templates.mkdir()
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text)
    (static / "css" / "site.css").write_text("body { color: red; }\n" * 100)
    app = Chalice(app_name="exchange")
    options.setdefault("secret_key", SECRET)
    options.setdefault("auto_reload", False)
    cm = ContentManager(str(templates), str(static), app, **options)
    cf = CloudFront(cm, app)
    cm.register_static_routes("/static")

    def current_user() -> str:
        return cm.session.get("user", "guest")

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="csrf_token" value="{}">').format(cm.csrf_token())

    cm.env.globals.update(
        current_user=current_user,
        csrf_field=csrf_field,
        theme=lambda: cm.cookies().get("theme", "light"),
        site={"name": "Acme"},
        motto="fast",
    )
    cm.env.filters["greet"] = lambda text: f"{text}, {current_user()}"

    @app.route("/login/{name}", methods=["GET"])
    def login(name):
        cm.session["user"] = name
        return cm.json({"user": name})

    @app.route("/page/{template}", methods=["GET"])
    def page(template):
        return cf.template(f"{template}.html", title="t")

    @app.route("/page/{template}", methods=["POST"], content_types=[URLENCODED])
    def post(template):
        return cf.template(f"{template}.html", title="t")

    return app, cm, cf


def session_cookie(response, name="session") -> str:
    values = response.headers.get("Set-Cookie") or []
    values = values if isinstance(values, list) else [values]
    for value in values:
        if value.startswith(name + "="):
            return value.split(";")[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {values}")


def login(client, name: str) -> dict[str, str]:
    return {"Cookie": "session=" + session_cookie(client.http.get(f"/login/{name}"))}


def cacheable(response) -> bool:
    """Whether a shared cache may store ``response`` (RFC 9111 §3)."""
    cache_control = response.headers.get("Cache-Control", "")
    return "private" not in cache_control and "no-store" not in cache_control


# -- the site's own globals, filters and macros read who is asking -------------------------

IMPURE = ["global", "filter", "macro", "included"]


@pytest.mark.parametrize("template", IMPURE)
@pytest.mark.parametrize("alice_first", [True, False])
def test_site_helpers_that_read_the_session_never_share_a_page(tmp_path, template, alice_first):
    app, cm, _ = build(tmp_path)
    with Client(app) as client:
        alice = login(client, "alice")
        order = [("alice", alice), ("guest", {})]
        if not alice_first:
            order.reverse()
        for _ in range(2):
            for who, headers in order:
                body = client.http.get(f"/page/{template}", headers=headers).body.decode()
                assert who in body and ({"alice", "guest"} - {who}).pop() not in body
        assert len(cm.pages) == 0  # neither page is kept under an argument ETag


@pytest.mark.parametrize("template", IMPURE)
def test_a_shared_cache_revalidating_the_guest_copy_for_alice_gets_her_page(tmp_path, template):
    app, _, _ = build(tmp_path)
    with Client(app) as client:
        guest = client.http.get(f"/page/{template}")
        assert "guest" in guest.body.decode()
        etag = guest.headers.get("ETag")
        alice = login(client, "alice")
        headers = {**alice, "If-None-Match": etag or '"none"'}
        answer = client.http.get(f"/page/{template}", headers=headers)
        assert answer.status_code == 200 and "alice" in answer.body.decode()
        assert not cacheable(answer) and "ETag" not in answer.headers


def test_every_visitor_gets_their_own_csrf_token_from_a_site_helper(tmp_path):
    app, _, _ = build(tmp_path)
    with Client(app) as client:
        tokens = set()
        for _ in range(3):
            page = client.http.get("/page/csrf")
            assert not cacheable(page)
            token = re.search(r'value="([^"]+)"', page.body.decode()).group(1)
            tokens.add(token)
            cookie = {"Cookie": "session=" + session_cookie(page)}
            posted = client.http.post(
                "/page/csrf",
                headers={"Content-Type": URLENCODED, **SAME_ORIGIN, **cookie},
                body=f"csrf_token={token}",
            )
            assert posted.status_code == 200, posted.body
        assert len(tokens) == 3


def test_a_cookie_reading_global_makes_the_page_personal(tmp_path):
    app, _, _ = build(tmp_path)
    with Client(app) as client:
        light = client.http.get("/page/theme")
        dark = client.http.get(
            "/page/theme",
            headers={"Cookie": "theme=dark", "If-None-Match": light.headers.get("ETag", '"x"')},
        )
        assert dark.status_code == 200 and "dark" in dark.body.decode()
        assert not cacheable(light) and not cacheable(dark)


def test_globals_that_change_after_start_never_leave_an_old_page(tmp_path):
    app, cm, _ = build(tmp_path)
    with Client(app) as client:
        first = client.http.get("/page/site")
        assert "Acme" in first.body.decode() and "ETag" in first.headers
        cm.env.globals["site"]["name"] = "Bolt"  # mutated in place
        second = client.http.get("/page/site", headers={"If-None-Match": first.headers["ETag"]})
        assert second.status_code == 200 and "Bolt" in second.body.decode()
        cm.env.globals["motto"] = "faster"  # reassigned
        third = client.http.get("/page/site", headers={"If-None-Match": second.headers["ETag"]})
        assert third.status_code == 200 and "faster" in third.body.decode()
        same = client.http.get("/page/site", headers={"If-None-Match": third.headers["ETag"]})
        assert same.status_code == 304  # unchanged values still revalidate


def test_a_helper_declared_pure_keeps_the_page_cache(tmp_path):
    from chalice_http_toolkit import pure

    app, cm, _ = build(tmp_path)
    cm.env.globals["shout"] = pure(lambda text: text.upper() + "!")
    with Client(app) as client:
        first = client.http.get("/page/pure")
        assert first.body.decode() == "<p>T!</p>" and len(cm.pages) == 1
        again = client.http.get("/page/pure", headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304
    undeclared = tmp_path / "undeclared"
    app, cm, _ = build(undeclared)
    cm.env.globals["shout"] = lambda text: text.upper() + "!"
    with Client(app) as client:
        assert client.http.get("/page/pure").body.decode() == "<p>T!</p>"
        assert len(cm.pages) == 0  # rendered and hashed: nothing proves the lambda pure


# -- cookies set by hand, in any spelling --------------------------------------------------


@pytest.mark.parametrize("spelling", ["SET-COOKIE", "set-cookie", "Set-cookie"])
def test_a_hand_written_set_cookie_header_is_personal_in_any_spelling(tmp_path, spelling):
    app, _, cf = build(tmp_path)

    @app.route("/hand", methods=["GET"])
    def hand():
        return cf.template("plain.html", title="x", headers={spelling: "promo=1; Path=/"})

    @app.route("/raw", methods=["GET"])
    def raw():
        return Response(body="hi", headers={spelling: "promo=1", "Cache-Control": "public"})

    with Client(app) as client:
        for path in ("/hand", "/raw"):
            answer = client.http.get(path, headers={"If-None-Match": "*"})
            assert answer.status_code == 200
            assert answer.headers["Cache-Control"] == "private, no-store"
            assert "ETag" not in answer.headers


# -- two managers on one app ----------------------------------------------------------------


def test_every_manager_on_an_app_keeps_its_own_settings(tmp_path):
    app, site_cm, _ = build(tmp_path / "site")
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    (mail_dir / "welcome.txt").write_text("Welcome {{ name }}")
    mail = ContentManager(str(mail_dir), str(mail_dir), app, csrf=False)
    second = ContentManager(
        str(mail_dir), str(mail_dir), app, secret_key="x" * 40, session_cookie="prefs"
    )

    @app.route("/prefs", methods=["GET"])
    def prefs():
        second.session["lang"] = "fr"
        return second.json({"mail": mail.render_template("welcome.txt", name="Zoë")})

    @app.route("/prefs", methods=["POST"], content_types=[URLENCODED])
    def save_prefs():
        return second.json(dict(second.form()))

    with Client(app) as client:
        got = client.http.get("/prefs")
        assert got.status_code == 200 and "prefs=" in str(got.headers["Set-Cookie"])
        assert "session=" not in str(got.headers["Set-Cookie"])
        # the second manager's CSRF check is on: a cross-site post is refused
        refused = client.http.post(
            "/prefs",
            headers={"Content-Type": URLENCODED, "Sec-Fetch-Site": "cross-site"},
            body="a=1",
        )
        assert refused.status_code == 403
        cookie = {"Cookie": "prefs=" + session_cookie(got, "prefs")}
        tokenless = client.http.post(
            "/prefs", headers={"Content-Type": URLENCODED, **SAME_ORIGIN, **cookie}, body="a=1"
        )
        assert tokenless.status_code == 403
    assert site_cm.session_cookie == "session"


# -- a middleware that reads the session ---------------------------------------------------


def test_a_session_reading_middleware_keeps_static_files_immutable(tmp_path):
    app, cm, _ = build(tmp_path)
    seen = []

    @app.middleware("http")
    def load_user(event, get_response):
        seen.append(cm.session.get("user"))
        return get_response(event)

    url = cm.static_url("css/site.css")
    with Client(app) as client:
        alice = login(client, "alice")
        for headers in ({}, alice):
            answer = client.http.get(url, headers=headers)
            assert answer.status_code == 200
            assert answer.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
            assert "ETag" in answer.headers
        assert "alice" in seen
        # ... while a page of the site the middleware read for is still hers alone
        page = client.http.get("/page/plain", headers=alice)
        assert page.headers["Cache-Control"] == "private, no-store"


def test_a_request_that_never_touched_who_is_asking_stays_public(tmp_path):
    app, _, _ = build(tmp_path)
    with Client(app) as client:
        alice = login(client, "alice")
        assert not cacheable(client.http.get("/page/global", headers=alice))
        plain = client.http.get("/page/plain", headers=alice)
        assert cacheable(plain) and "ETag" in plain.headers


def test_an_anonymous_request_that_found_the_session_empty_is_public(tmp_path):
    """The edge keys pages on the session cookie (§11): no cookie, no one to tell apart."""
    app, cm, _ = build(tmp_path)

    @app.middleware("http")
    def load_user(event, get_response):
        cm.g.user = cm.session.get("user")
        return get_response(event)

    with Client(app) as client:
        guest = client.http.get("/page/user")
        assert guest.body.decode() == "<p>guest</p>" and cacheable(guest)
        alice = client.http.get("/page/user", headers=login(client, "alice"))
        assert alice.body.decode() == "<p>alice</p>" and not cacheable(alice)
        forged = client.http.get("/page/user", headers={"Cookie": "session=forged"})
        assert not cacheable(forged)  # a cookie was sent (and is deleted): personal


def test_g_is_reset_for_every_request(tmp_path):
    app, cm, _ = build(tmp_path)

    @app.route("/g", methods=["GET"])
    def g_view():
        before = getattr(cm.g, "count", 0)
        cm.g.count = before + 1
        return cm.json({"before": before})

    with Client(app) as client:
        assert [client.http.get("/g").json_body["before"] for _ in range(3)] == [0, 0, 0]


# -- fixed headers on every response the toolkit writes ------------------------------------


def test_every_toolkit_response_carries_the_security_headers(tmp_path):
    app, cm, _ = build(tmp_path, security_headers=True)
    (tmp_path / "templates" / "404.html").write_text("<h1>missing</h1>")

    @app.route("/html", methods=["GET"])
    def html():
        return cm.html("<p>x</p>")

    @app.route("/json", methods=["GET"])
    def json_view():
        return cm.json({"a": 1})

    @app.route("/xml", methods=["GET"])
    def xml():
        return cm.xml("<a/>")

    @app.route("/moved", methods=["GET"])
    def moved():
        return cm.redirect("/html", 302)

    @app.route("/bytes", methods=["GET"])
    def bytes_view():
        return cm.asset(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)

    @app.route("/gone", methods=["GET"])
    def gone():
        return cm.not_found()

    @app.route("/form", methods=["POST"], content_types=[URLENCODED])
    def form():
        return cm.json(dict(cm.form()))

    @app.route("/huge", methods=["GET"])
    def huge():  # the app's own response, over Lambda's limit: the toolkit's 500
        return Response(body="x" * (7 * 1024 * 1024), headers={"Content-Type": "text/plain"})

    cm.register_not_found_routes("404.html")
    with Client(app) as client:
        plain = client.http.get("/page/plain")
        answers = {
            path: client.http.get(path)
            for path in (
                "/html",
                "/json",
                "/xml",
                "/moved",
                "/bytes",
                "/gone",
                "/no/such/url",
                "/huge",
            )
        }
        answers["page"] = plain
        answers["page 304"] = client.http.get(
            "/page/plain", headers={"If-None-Match": plain.headers["ETag"]}
        )
        answers["static"] = client.http.get(cm.static_url("css/site.css"))
        answers["csrf 403"] = client.http.post(
            "/form", headers={"Content-Type": URLENCODED, "Sec-Fetch-Site": "cross-site"}, body=""
        )
        answers["form 400"] = client.http.post(
            "/form",
            headers={"Content-Type": "multipart/form-data", **SAME_ORIGIN},
            body="garbage",
        )
    assert answers["page 304"].status_code == 304
    assert answers["/huge"].status_code == 500
    assert answers["csrf 403"].status_code == 403
    assert answers["form 400"].status_code in (400, 403)
    for what, answer in answers.items():
        for name, value in DEFAULT_SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (what, name)
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", what


# -- a view that turns personal after its answer was made -------------------------------------


def test_a_304_made_before_the_view_read_the_session_is_answered_again_privately(tmp_path):
    app, _, cf = build(tmp_path)
    cm = cf.content_manager

    @app.route("/late", methods=["GET"])
    def late():
        response = cf.template("plain.html", title="t")
        cm.session["seen"] = True  # after the answer: the request is now personal
        return response

    with Client(app) as client:
        etag = client.http.get("/page/plain").headers["ETag"]
        answer = client.http.get("/late", headers={"If-None-Match": etag})
    assert answer.status_code == 200 and answer.body == b"<p>t</p>"
    assert answer.headers["Cache-Control"] == "private, no-store" and "ETag" not in answer.headers
    assert "session=" in str(answer.headers["Set-Cookie"])


# -- generated sites: no body reaches a visitor it was not rendered for ------------------------

PARTS = {
    "text": ("<b>hi</b>", False, False),
    "arg": ("{{ title }}", False, False),
    "include": ("{% include 'inc.html' %}", False, False),
    "include_who": ("{% include 'inc_who.html' %}", True, False),
    "macro_who": ("{% from 'm.html' import badge %}{{ badge() }}", True, False),
    "pure_helper": ("{{ shout(title) }}", False, False),
    "who": ("{{ who() }}", True, False),
    "filter_who": ("{{ 'x' | whois }}", True, False),
    "theme": ("{{ theme() }}", False, True),
    "value_global": ("{{ brand }}", False, False),
}
VISITORS = ("guest", "alice", "bob")


def _oracle(parts: list[str], visitor: str, theme: str) -> str:
    """What the page says for ``visitor``: Jinja alone, no toolkit (independent of the code)."""
    import jinja2

    env = jinja2.Environment(autoescape=True)
    name = "guest" if visitor == "guest" else visitor
    env.globals.update(who=lambda: name, theme=lambda: theme, brand="Acme", shout=str.upper)
    env.filters["whois"] = lambda _: name
    env.loader = jinja2.DictLoader(
        {
            "inc.html": "<i>{{ title }}</i>",
            "inc_who.html": "<i>{{ who() }}</i>",
            "m.html": "{% macro badge() %}[{{ who() }}]{% endmacro %}",
        }
    )
    source = "".join(PARTS[part][0] for part in parts)
    return env.from_string(source).render(title="T")


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.sampled_from(sorted(PARTS)), min_size=1, max_size=4),
    route_reads=st.booleans(),
    middleware_reads=st.booleans(),
    visits=st.lists(st.sampled_from(VISITORS), min_size=2, max_size=8),
)
def test_generated_sites_never_give_a_visitor_another_visitors_page(
    parts, route_reads, middleware_reads, visits
):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "t").mkdir()
        files = {
            "page.html": "".join(PARTS[part][0] for part in parts),
            "inc.html": "<i>{{ title }}</i>",
            "inc_who.html": "<i>{{ who() }}</i>",
            "m.html": "{% macro badge() %}[{{ who() }}]{% endmacro %}",
        }
        for name, text in files.items():
            (root / "t" / name).write_text(text)
        app = Chalice(app_name="generated")
        cm = ContentManager(str(root / "t"), str(root / "t"), app, secret_key=SECRET)
        cf = CloudFront(cm, app)
        from chalice_http_toolkit import pure

        def who() -> str:
            return cm.session.get("user", "guest")

        cm.env.globals.update(
            who=who,
            theme=lambda: cm.cookies().get("theme", "light"),
            brand="Acme",
            shout=pure(str.upper),
        )
        cm.env.filters["whois"] = lambda _: who()

        if middleware_reads:

            @app.middleware("http")
            def load_user(event, get_response):
                cm.g.user = cm.session.get("user")
                return get_response(event)

        @app.route("/login/{name}", methods=["GET"])
        def login(name):
            cm.session["user"] = name
            return cm.json({})

        @app.route("/p", methods=["GET"])
        def page():
            if route_reads:
                cm.session.get("user")
            return cf.template("page.html", title="T")

        shared: dict[str, tuple[bytes, str]] = {}  # a shared cache that revalidates every view
        with Client(app) as client:
            cookies = {
                "guest": {},
                "alice": {"Cookie": f"session={session_cookie(client.http.get('/login/alice'))}"},
                "bob": {
                    "Cookie": f"session={session_cookie(client.http.get('/login/bob'))}; theme=dark"
                },
            }
            for visitor in visits:
                headers = dict(cookies[visitor])
                stored = shared.get("/p")
                if stored is not None:
                    headers["If-None-Match"] = stored[1]
                answer = client.http.get("/p", headers=headers)
                body = stored[0] if answer.status_code == 304 else answer.body
                theme = "dark" if visitor == "bob" else "light"
                assert body.decode() == _oracle(parts, visitor, theme), (visitor, answer.headers)
                reads_session = route_reads or middleware_reads or any(PARTS[p][1] for p in parts)
                reads_cookies = any(PARTS[p][2] for p in parts)
                personal = reads_cookies or (reads_session and visitor != "guest")
                if personal:
                    assert not cacheable(answer) and "ETag" not in answer.headers
                if answer.status_code == 200 and cacheable(answer) and "ETag" in answer.headers:
                    shared["/p"] = (answer.body, answer.headers["ETag"])


def test_a_middleware_registered_before_the_manager_shares_the_request_exchange(tmp_path):
    """The site's middleware runs outside the toolkit's: the exchange it starts is adopted."""
    app = Chalice(app_name="early")
    managers = []

    @app.middleware("http")
    def count_visits(event, get_response):
        session = managers[0].session
        session["visits"] = session.get("visits", 0) + 1
        return get_response(event)

    (tmp_path / "t").mkdir()
    cm = ContentManager(str(tmp_path / "t"), str(tmp_path / "t"), app, secret_key=SECRET)
    managers.append(cm)

    @app.route("/visits", methods=["GET"])
    def visits():
        return cm.json({"visits": cm.session["visits"]})

    with Client(app) as client:
        first = client.http.get("/visits")
        cookie = {"Cookie": "session=" + session_cookie(first)}
        second = client.http.get("/visits", headers=cookie)
    assert first.json_body == {"visits": 1} and second.json_body == {"visits": 2}
    assert second.headers["Cache-Control"] == "private, no-store"
