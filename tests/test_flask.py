"""Flask code carries over (issue 24): abort() and the site's error pages, the 500 page, a
missing form field's 400, HEAD for every GET route, url_for's refusals, ``g``, and
not-found routes that API Gateway accepts beside any app's routes.

Each test here failed on the module before issue 24 (see the closing note), except those
that pin what must not change (JSON clients keep Chalice's JSON errors, debug tracebacks).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import textwrap

import pytest
from chalice import (
    BadRequestError,
    Blueprint,
    Chalice,
    ChaliceViewError,
    NotFoundError,
    Response,
)
from chalice.test import Client
from frontdoor_events import alb_event, deliver_alb, deliver_v2, v2_event
from test_cloudfront import cfn_lint

from chalice_http_toolkit import (
    FORM_CONTENT_TYPES,
    FORM_PAGE_CONTENT_TYPES,
    CloudFront,
    ContentManager,
    FormData,
    HTTPError,
    MissingFieldError,
    Offer,
    abort,
    lambda_handler,
)

from apigw import lambda_context
from conftest import ROOT
from localserver import CHALICE, run

#: What a browser sends when it opens a page.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
URLENCODED = {**BROWSER, "Content-Type": "application/x-www-form-urlencoded"}
SECRET_TEXT = "db password is hunter2"


def make_site(tmp_path, templates=None, **options):
    """A Chalice app and its manager over ``templates`` (name → text)."""
    root = tmp_path / "templates"
    root.mkdir(exist_ok=True)
    for name, text in (templates or {}).items():
        (root / name).write_text(text)
    app = Chalice(app_name="flask-parity")
    options.setdefault("secret_key", "flask-parity-tests-secret-key-0123456789")
    options.setdefault("csrf", False)
    cm = ContentManager(str(root), str(tmp_path), app, **options)
    return app, cm


def page_routes(app, cm):
    @app.route("/post/{post_id}")
    def post(post_id):
        if post_id != "1":
            abort(404, f"No post <{post_id}>.")
        return cm.html("<p>post 1</p>")

    @app.route("/admin")
    def admin():
        abort(403)

    @app.route("/boom")
    def boom():
        raise RuntimeError(SECRET_TEXT)

    @app.route("/api/item")
    def api_item():
        raise NotFoundError("no such item")

    @app.route("/api/broken")
    def api_broken():
        raise ChaliceViewError(SECRET_TEXT)


# -- abort() and the site's error pages --------------------------------------------


def test_abort_answers_with_the_sites_status_template(tmp_path):
    app, cm = make_site(
        tmp_path,
        {"404.html": "<h1>{{ title }}</h1><p>{{ description }}</p><i>{{ status_code }}</i>"},
        security_headers=True,
    )
    page_routes(app, cm)
    with Client(app) as client:
        got = client.http.get("/post/7", headers=BROWSER)
    assert got.status_code == 404
    assert got.body == b"<h1>404 Not Found</h1><p>No post &lt;7&gt;.</p><i>404</i>"
    assert got.headers["Content-Type"] == "text/html; charset=utf-8"
    assert got.headers["Cache-Control"] == "private, no-store"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["X-Frame-Options"] == "SAMEORIGIN"  # the manager's fixed headers
    assert "ETag" not in got.headers


def test_abort_without_a_template_is_a_plain_page(tmp_path):
    app, cm = make_site(tmp_path)
    page_routes(app, cm)
    with Client(app) as client:
        got = client.http.get("/admin", headers=BROWSER)
        missing = client.http.get("/post/<script>", headers=BROWSER)
    assert got.status_code == 403
    assert got.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<title>403 Forbidden</title>" in got.body and b"<h1>403 Forbidden</h1>" in got.body
    assert got.headers["Cache-Control"] == "private, no-store"
    assert b"&lt;script&gt;" in missing.body and b"<script>" not in missing.body


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"]
)
def test_abort_for_a_json_client_is_chalices_json_error(tmp_path, accept):
    app, cm = make_site(tmp_path, {"404.html": "<h1>page</h1>"})
    page_routes(app, cm)
    headers = {} if accept is None else {"Accept": accept}
    with Client(app) as client:
        got = client.http.get("/post/9", headers=headers)
        raised = client.http.get("/api/item", headers=headers)
    assert got.status_code == 404
    assert json.loads(got.body) == {"Code": "NotFoundError", "Message": "No post <9>."}
    # ... exactly what raising Chalice's own NotFoundError gives.
    assert json.loads(raised.body) == {"Code": "NotFoundError", "Message": "no such item"}


@pytest.mark.parametrize("status", [200, 204, 302, 304, 399, 600, 0, -404, "404", 404.0, True])
def test_abort_with_a_status_that_is_no_error_is_a_value_error(status):
    with pytest.raises(ValueError, match="error status"):
        abort(status)


def test_abort_raises_an_http_error_chalice_lets_through():
    with pytest.raises(HTTPError) as raised:
        abort(418, "short and stout")
    assert (raised.value.status_code, raised.value.description) == (418, "short and stout")


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (BROWSER["Accept"], True),
        ("text/html", True),
        ("application/xhtml+xml", True),
        ("text/html, application/json", True),
        ("application/json;q=0.9, text/html", True),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=bogus", False),
        ("", False),
        (None, False),
        (",,;;", False),
    ],
)
def test_a_page_is_for_a_request_that_names_html_at_least_as_high_as_json(accept, page):
    from chalice_http_toolkit import _wants_page

    assert _wants_page(accept) is page


# -- an exception in a page route ------------------------------------------------


def test_an_exception_in_a_page_route_is_the_500_page_logged_never_its_text(tmp_path, caplog):
    app, cm = make_site(tmp_path, {"500.html": "<h1>Sorry: {{ title }}</h1>{{ description }}"})
    page_routes(app, cm)
    with caplog.at_level(logging.ERROR), Client(app) as client:
        got = client.http.get("/boom", headers=BROWSER)
    assert got.status_code == 500
    assert got.body == b"<h1>Sorry: 500 Internal Server Error</h1>None"
    assert SECRET_TEXT.encode() not in got.body
    assert got.headers["Cache-Control"] == "private, no-store"
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is RuntimeError and SECRET_TEXT in str(record.exc_info[1])


def test_a_chalice_view_error_of_5xx_never_shows_its_message_on_the_page(tmp_path):
    app, cm = make_site(tmp_path)
    page_routes(app, cm)
    with Client(app) as client:
        got = client.http.get("/api/broken", headers=BROWSER)
    assert got.status_code == 500 and SECRET_TEXT.encode() not in got.body
    assert got.headers["Cache-Control"] == "private, no-store"


def test_an_exception_in_a_json_route_keeps_chalices_json_500(tmp_path):
    app, cm = make_site(tmp_path, {"500.html": "<h1>Sorry</h1>"})
    page_routes(app, cm)
    with Client(app) as client:
        got = client.http.get("/boom", headers={"Accept": "application/json"})
    assert got.status_code == 500
    assert json.loads(got.body) == {
        "Code": "InternalServerError",
        "Message": "An internal server error occurred.",
    }


def test_a_debug_app_keeps_chalices_traceback(tmp_path):
    app, cm = make_site(tmp_path, {"500.html": "<h1>Sorry</h1>"})
    app.debug = True
    page_routes(app, cm)
    with Client(app) as client:
        got = client.http.get("/boom", headers=BROWSER)
    assert got.status_code == 500
    assert b"Traceback" in got.body and SECRET_TEXT.encode() in got.body


@pytest.mark.parametrize(
    "template",
    [
        "{{ 1 // 0 }}",  # raises while rendering
        "{% if %}",  # a syntax error
        "{% include 'nowhere.html' %}",  # a missing include
        "{{ explode() }}",  # a global that aborts: no loop
    ],
)
def test_an_error_template_that_fails_is_the_plain_page_logged(tmp_path, caplog, template):
    app, cm = make_site(tmp_path, {"404.html": template, "500.html": template})
    cm.env.globals["explode"] = lambda: abort(500)
    page_routes(app, cm)
    with caplog.at_level(logging.ERROR), Client(app) as client:
        missing = client.http.get("/post/2", headers=BROWSER)
        broken = client.http.get("/boom", headers=BROWSER)
    assert missing.status_code == 404 and b"<h1>404 Not Found</h1>" in missing.body
    assert broken.status_code == 500 and b"<h1>500 Internal Server Error</h1>" in broken.body
    logged = [r.getMessage() for r in caplog.records if r.name == "chalice_http_toolkit"]
    assert any("404.html failed to render" in message for message in logged)
    assert any("500.html failed to render" in message for message in logged)


def test_chalices_own_errors_are_pages_for_a_browser(tmp_path):
    app, cm = make_site(tmp_path, {"405.html": "<h1>{{ title }}</h1>{{ description }}"})
    page_routes(app, cm)

    @app.route("/form", methods=["POST"], content_types=FORM_CONTENT_TYPES)
    def form():
        return cm.html("ok")

    @app.route("/bad")
    def bad():
        raise BadRequestError("the date is not a date")

    with Client(app) as client:
        wrong_method = client.http.post("/post/1", headers=BROWSER)
        wrong_type = client.http.post("/form", headers={**BROWSER, "Content-Type": "text/plain"})
        bad_request = client.http.get("/bad", headers=BROWSER)
        not_found = client.http.get("/api/item", headers=BROWSER)
    assert wrong_method.status_code == 405
    assert wrong_method.body == b"<h1>405 Method Not Allowed</h1>Unsupported method: POST"
    assert wrong_method.headers["Allow"] == "GET, HEAD"
    assert wrong_type.status_code == 415 and b"415 Unsupported Media Type" in wrong_type.body
    assert bad_request.status_code == 400 and b"the date is not a date" in bad_request.body
    assert not_found.status_code == 404 and b"no such item" in not_found.body
    for got in (wrong_method, wrong_type, bad_request, not_found):
        assert got.headers["Content-Type"] == "text/html; charset=utf-8"
        assert got.headers["Cache-Control"] == "private, no-store"


def test_a_route_that_returns_its_own_error_body_is_left_alone(tmp_path):
    app, _ = make_site(tmp_path)

    @app.route("/custom")
    def custom():
        return Response(body={"Code": "Custom", "Message": "x", "More": 1}, status_code=409)

    with Client(app) as client:
        got = client.http.get("/custom", headers=BROWSER)
    assert got.status_code == 409 and json.loads(got.body)["More"] == 1


# -- a missing form field is the client's error -------------------------------------


def test_a_missing_form_field_is_a_400_page(tmp_path):
    app, cm = make_site(tmp_path)

    @app.route("/save", methods=["POST"], content_types=FORM_CONTENT_TYPES)
    def save():
        return cm.html(f"<p>{cm.form()['title']}</p>")

    @app.route("/upload", methods=["POST"], content_types=FORM_CONTENT_TYPES)
    def upload():
        return cm.html(f"<p>{cm.form().files['photo'].filename}</p>")

    with Client(app) as client:
        sent = client.http.post("/save", headers=URLENCODED, body=b"title=Hello")
        missing = client.http.post("/save", headers=URLENCODED, body=b"body=x")
        no_file = client.http.post("/upload", headers=URLENCODED, body=b"photo=x")
    assert (sent.status_code, sent.body) == (200, b"<p>Hello</p>")
    assert missing.status_code == 400
    assert missing.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"The form has no field &#x27;title&#x27;." in missing.body
    assert no_file.status_code == 400 and b"no file &#x27;photo&#x27;" in no_file.body


def test_a_missing_field_is_still_a_key_error_for_get_and_in():
    form = FormData([("a", "1")], [])
    assert form["a"] == "1" and form.get("b") is None and "b" not in form and "a" in form
    with pytest.raises(KeyError):
        form["b"]
    with pytest.raises(MissingFieldError) as raised:
        form.files["photo"]
    assert raised.value.status_code == 400 and str(raised.value) == "The form has no file 'photo'."


# -- HEAD for every GET route ------------------------------------------------------


def head_routes(app, cm):
    cf = CloudFront(cm, app)

    @app.route("/json")
    def as_json():
        return {"hello": "world"}

    @app.route("/text")
    def as_text():
        return Response(body="plain", headers={"Content-Type": "text/plain", "X-Mine": "1"})

    @app.route("/page")
    def page():
        return cf.template("page.html", name="x")


def test_every_get_route_answers_head_with_the_gets_headers_and_no_body(tmp_path):
    app = Chalice(app_name="head")

    @app.route("/before")  # registered before the manager exists
    def before():
        return {"before": True}

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "page.html").write_text("<p>{{ name }}</p>" * 200)
    cm = ContentManager(str(templates), str(tmp_path), app)
    head_routes(app, cm)
    blueprint = Blueprint(__name__)

    @blueprint.route("/inside")
    def inside():
        return {"blueprint": True}

    app.register_blueprint(blueprint, url_prefix="/bp")
    paths = ["/before", "/json", "/text", "/page", "/bp/inside"]
    for path in paths:
        assert app.routes[path]["HEAD"].view_name == app.routes[path]["GET"].view_name
    with Client(app) as client:
        for path in paths:
            for accept_encoding in ({}, {"Accept-Encoding": "gzip"}):
                get = client.http.get(path, headers=accept_encoding)
                head = client.http.request("HEAD", path, headers=accept_encoding)
                assert (head.status_code, head.body) == (200, b""), path
                assert head.headers == get.headers, path
                assert get.body, path


def test_head_for_a_manager_made_on_a_blueprint(tmp_path):
    """A Blueprint has no routes of its own: its app's GET routes get HEAD when registered."""
    app = Chalice(app_name="bp-head")
    blueprint = Blueprint(__name__)
    cm = ContentManager(str(tmp_path), str(tmp_path), blueprint)

    @blueprint.route("/page")
    def page():
        return cm.html("<p>page</p>")

    app.register_blueprint(blueprint, url_prefix="/bp")
    assert set(app.routes["/bp/page"]) == {"GET", "HEAD"}
    with Client(app) as client:
        head = client.http.request("HEAD", "/bp/page")
    assert (head.status_code, head.body) == (200, b"")


def test_head_through_lambda_handler(tmp_path):
    app, cm = make_site(tmp_path, {"page.html": "<p>{{ name }}</p>"})
    head_routes(app, cm)
    handler = lambda_handler(app)
    for path in ("/json", "/text", "/page"):
        get = deliver_v2(handler(v2_event("GET", path), lambda_context()))
        head = deliver_v2(handler(v2_event("HEAD", path), lambda_context()))
        assert (head.status, head.body, head.headers) == (200, b"", get.headers)
        assert get.body


def test_head_builds_no_large_body(tmp_path):
    app, cm = make_site(tmp_path)
    built = []

    def video() -> bytes:
        built.append(1)
        return b"\0" * (7 * 1024 * 1024)  # over Lambda's limit: a GET is a 500

    @app.route("/video")
    def stream():
        return cm.answer(Offer("video/mp4", video, etag='"v1"'))

    with Client(app) as client:
        head = client.http.request("HEAD", "/video", headers={"Accept-Encoding": "gzip"})
        assert (head.status_code, head.body, built) == (200, b"", [])
        assert head.headers["Content-Type"] == "video/mp4" and head.headers["ETag"] == '"v1"'
        assert client.http.get("/video").status_code == 500 and built == [1]


def test_a_routes_own_head_replaces_the_added_one(tmp_path):
    app, _ = make_site(tmp_path)

    @app.route("/thing")
    def thing():
        return {"thing": 1}

    @app.route("/thing", methods=["HEAD"])
    def thing_head():
        return Response(body="", headers={"X-Head": "own"})

    @app.route("/both", methods=["GET", "HEAD"])
    def both():
        return {"both": 1}

    assert app.routes["/thing"]["HEAD"].view_name == "thing_head"
    with Client(app) as client:
        assert client.http.request("HEAD", "/thing").headers["X-Head"] == "own"
        assert client.http.request("HEAD", "/both").status_code == 200


def test_head_on_an_aborted_page_has_the_pages_headers_and_no_body(tmp_path):
    app, cm = make_site(tmp_path, {"404.html": "<h1>gone</h1>"})
    page_routes(app, cm)
    with Client(app) as client:
        get = client.http.get("/post/5", headers=BROWSER)
        head = client.http.request("HEAD", "/post/5", headers=BROWSER)
    assert (head.status_code, head.body) == (404, b"")
    assert head.headers == get.headers


# -- url_for -------------------------------------------------------------------------


def test_url_for_raises_naming_the_view_two_blueprints_share(tmp_path):
    app, cm = make_site(tmp_path)
    for prefix in ("/blog", "/shop"):
        blueprint = Blueprint(__name__)

        @blueprint.route("/")
        def index():
            return {"ok": True}

        app.register_blueprint(blueprint, url_prefix=prefix)
    with pytest.raises(ValueError, match=r"2 views share the name 'index' \(/blog, /shop\)"):
        cm.url_for("index")


def test_url_for_keeps_blueprints_with_a_name_prefix_apart(tmp_path):
    app, cm = make_site(tmp_path)
    for prefix in ("blog", "shop"):
        blueprint = Blueprint(__name__)

        @blueprint.route("/")
        def index():
            return {"ok": True}

        app.register_blueprint(blueprint, name_prefix=f"{prefix}.", url_prefix=f"/{prefix}")
    assert cm.url_for("blog.index") == "/blog"
    assert cm.url_for("shop.index") == "/shop"


def test_url_for_one_view_on_two_paths_gives_the_first(tmp_path):
    app, cm = make_site(tmp_path)

    @app.route("/about")
    @app.route("/about-us")
    def about():
        return {"ok": True}

    assert cm.url_for("about") in ("/about", "/about-us")
    assert cm.url_for("about") == next(path for path in app.routes if path.startswith("/about"))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"slug": "a b"}, "/post/a%20b"),
        ({"slug": "a/b"}, "/post/a%2Fb"),
        ({"slug": "x?y#z%"}, "/post/x%3Fy%23z%25"),
        ({"slug": "é"}, "/post/%C3%A9"),
        ({"slug": "..."}, "/post/..."),
        ({"slug": "a\\b"}, "/post/a%5Cb"),
        ({"slug": 7, "page": 2}, "/post/7?page=2"),  # extra params form the query, as in Flask
        ({"slug": "x", "q": ["a", "b"], "skip": None}, "/post/x?q=a&q=b"),
    ],
)
def test_url_for_percent_encodes_path_values(tmp_path, params, expected):
    app, cm = make_site(tmp_path)

    @app.route("/post/{slug}")
    def post(slug):
        return {"slug": slug}

    assert cm.url_for("post", **params) == expected


@pytest.mark.parametrize(
    ("view", "params"),
    [
        ("post", {"slug": ".."}),
        ("post", {"slug": "."}),
        ("post", {"slug": ""}),
        ("pair", {"a": "", "b": "evil.com"}),  # would be //evil.com: another host
        ("files", {"path": "/evil.com/x"}),
        ("files", {"path": "a/../../b"}),
        ("files", {"path": "a//b"}),
        ("files", {"path": "./a"}),
    ],
)
def test_url_for_refuses_values_that_would_leave_the_path(tmp_path, view, params):
    app, cm = make_site(tmp_path)

    @app.route("/post/{slug}")
    def post(slug):
        return {}

    @app.route("/{a}/{b}")
    def pair(a, b):
        return {}

    @app.route("/files/{path+}")
    def files(path):
        return {}

    with pytest.raises(ValueError, match="would leave the path"):
        cm.url_for(view, **params)


def test_url_for_greedy_values_keep_their_slashes(tmp_path):
    app, cm = make_site(tmp_path)

    @app.route("/files/{path+}")
    def files(path):
        return {}

    assert cm.url_for("files", path="a b/c.txt") == "/files/a%20b/c.txt"


def test_url_for_missing_params_and_unknown_views(tmp_path):
    app, cm = make_site(tmp_path)

    @app.route("/{a}/{b}")
    def pair(a, b):
        return {}

    with pytest.raises(ValueError, match="needs a value for 'b'"):
        cm.url_for("pair", a="x")
    with pytest.raises(ValueError, match="no route has the view name 'nope'"):
        cm.url_for("nope")


# -- g ---------------------------------------------------------------------------------


def test_g_is_filled_by_a_middleware_read_by_views_and_templates_and_reset(tmp_path):
    app, cm = make_site(tmp_path, {"who.html": "<p>{{ g.user }}|{{ g.get('none', '-') }}</p>"})
    cf = CloudFront(cm, app)

    @app.middleware("http")
    def load_user(event, get_response):
        user = event.query_params.get("user") if event.query_params else None
        if user:
            cm.g.user = user
        return get_response(event)

    @app.route("/who")
    def who():
        return {"user": cm.g.get("user"), "has": "user" in cm.g, "names": list(cm.g)}

    @app.route("/page")
    def page():
        return cf.template("who.html")

    with Client(app) as client:
        first = json.loads(client.http.get("/who?user=ann").body)
        second = json.loads(client.http.get("/who").body)
        rendered = client.http.get("/page?user=bob")
        again = client.http.get("/page?user=cy")  # rendered again: g is this request's
    assert first == {"user": "ann", "has": True, "names": ["user"]}
    assert second == {"user": None, "has": False, "names": []}
    assert (rendered.body, again.body) == (b"<p>bob|-</p>", b"<p>cy|-</p>")


def test_g_behaves_like_flasks(tmp_path):
    app, cm = make_site(tmp_path)
    seen = {}

    @app.route("/")
    def index():
        g = cm.g
        assert g.setdefault("a", 1) == 1 and g.setdefault("a", 2) == 1
        assert g.pop("a") == 1 and g.pop("a", None) is None
        with pytest.raises(KeyError):
            g.pop("a")
        with pytest.raises(AttributeError):
            g.missing  # noqa: B018
        seen["same"] = cm.g is g
        return {}

    with pytest.raises(RuntimeError, match="needs a request"):
        cm.g  # noqa: B018
    with Client(app) as client:
        client.http.get("/")
    assert seen == {"same": True}


# -- not-found routes that API Gateway accepts ---------------------------------------------


def variable_siblings(paths):
    """Parents with more than one variable child name: what API Gateway refuses."""
    children: dict[str, set[str]] = {}
    for path in paths:
        parts = path.strip("/").split("/") if path.strip("/") else []
        for index, part in enumerate(parts):
            if part.startswith("{"):
                parent = "/" + "/".join(parts[:index])
                children.setdefault(parent, set()).add(part)
    return {parent: names for parent, names in children.items() if len(names) > 1}


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([], ["/{n0}", "/{n0}/{n1}", "/{n0}/{n1}/{proxy+}"]),
        (["/", "/about"], ["/{n0}", "/{n0}/{n1}", "/{n0}/{n1}/{proxy+}"]),
        (["/{id}/update"], ["/{id}", "/{id}/{n1}", "/{id}/{n1}/{proxy+}"]),
        (["/{id}", "/{id}/update"], ["/{id}/{n1}", "/{id}/{n1}/{proxy+}"]),
        (["/{a}/{b}/{c}"], ["/{a}", "/{a}/{b}", "/{a}/{b}/{c}/{proxy+}"]),
        (["/{n1}/x"], ["/{n1}", "/{n1}/{n1_}", "/{n1}/{n1_}/{proxy+}"]),
        (["/{proxy}/x"], ["/{proxy}", "/{proxy}/{n1}", "/{proxy}/{n1}/{proxy_+}"]),
        (["/{id}/{rest+}"], ["/{id}"]),
        (["/{proxy+}"], []),
        (["/files/{path+}", "/post/{slug}"], ["/{n0}", "/{n0}/{n1}", "/{n0}/{n1}/{proxy+}"]),
    ],
)
def test_not_found_paths_reuse_the_apps_variable_names(routes, expected):
    from chalice_http_toolkit import _not_found_paths

    paths = _not_found_paths(routes, 2)
    assert paths == expected
    assert variable_siblings([*routes, *paths]) == {}


def flaskr_like_app(tmp_path):
    app, cm = make_site(tmp_path, {"404.html": "<h1>Page not found</h1>"})

    @app.route("/")
    def index():
        return cm.html("<p>index</p>")

    @app.route("/{id}/update", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
    def update(id):
        return cm.html(f"<p>update {id}</p>")

    @app.route("/post/{slug}")
    def post(slug):
        return cm.html(f"<p>post {slug}</p>")

    @app.route("/files/{path+}")
    def files():  # Chalice passes no greedy parameter to the view
        return cm.html(f"<p>file {app.current_request.uri_params['path']}</p>")

    cm.register_not_found_routes("404.html")
    return app, cm


def test_an_app_with_id_update_keeps_its_routes_and_gets_the_404_page(tmp_path):
    app, _ = flaskr_like_app(tmp_path)
    assert variable_siblings(app.routes) == {}
    with Client(app) as client:
        assert client.http.get("/7/update").body == b"<p>update 7</p>"
        assert client.http.get("/post/hello").body == b"<p>post hello</p>"
        # As deployed, the app's greedy route beats the not-found routes under its prefix,
        # however deep the path (Chalice's local router alone tries /{id}/{n1}/... first).
        for path in ("a", "a/b/c.txt", "a/b/c/d/e.txt"):
            assert client.http.get(f"/files/{path}").body == f"<p>file {path}</p>".encode()
        for path in ("/nope", "/7/nope", "/a/b/c/d/e/f/g"):
            got = client.http.get(path, headers=BROWSER)
            assert (got.status_code, got.body) == (404, b"<h1>Page not found</h1>"), path


@pytest.mark.parametrize("door", ["function-url", "alb"])
def test_unknown_urls_through_lambda_handler_need_no_routes(tmp_path, door):
    app, cm = make_site(tmp_path, {"404.html": "<h1>Page not found</h1>"})

    @app.route("/")
    def index():
        return cm.html("<p>index</p>")

    handler = lambda_handler(app)
    for path in ("/nope", "/a/b/c/d/e/f/g/h"):
        if door == "alb":
            got = deliver_alb(handler(alb_event("GET", path, BROWSER), None), False)
        else:
            got = deliver_v2(handler(v2_event("GET", path, BROWSER), lambda_context()))
        assert (got.status, got.body) == (404, b"<h1>Page not found</h1>"), path
        assert got.headers["cache-control"] == "private, no-store"
    json_client = deliver_v2(handler(v2_event("GET", "/nope"), lambda_context()))
    assert json_client.status == 404 and json.loads(json_client.body)["Code"] == "NotFoundError"
    assert "/_chalice_http_toolkit/not-found" not in app.routes


#: A project with the routes that made API Gateway refuse the old not-found routes.
PACKAGED_APP = """
    import os

    from chalice import Chalice

    from chalicelib.chalice_http_toolkit import FORM_PAGE_CONTENT_TYPES, ContentManager

    app = Chalice(app_name="flaskr-routes")
    HERE = os.path.dirname(os.path.abspath(__file__))
    cm = ContentManager(os.path.join(HERE, "chalicelib", "templates"), HERE, app)


    @app.route("/")
    def index():
        return cm.html("<p>index</p>")


    @app.route("/{id}/update", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
    def update(id):
        return cm.html("<p>update</p>")


    @app.route("/post/{slug}")
    def post(slug):
        return cm.html("<p>post</p>")


    @app.route("/files/{proxy+}")
    def files():
        return cm.html("<p>file</p>")


    cm.register_not_found_routes("404.html")
"""


@pytest.fixture(scope="module")
def packaged_routes(tmp_path_factory):
    """`chalice package` of :data:`PACKAGED_APP`: its SAM template and where it is."""
    project = tmp_path_factory.mktemp("flaskr-routes") / "project"
    (project / "chalicelib" / "templates").mkdir(parents=True)
    (project / ".chalice").mkdir()
    (project / "app.py").write_text(textwrap.dedent(PACKAGED_APP))
    (project / "requirements.txt").write_text("")
    (project / "chalicelib" / "__init__.py").write_text("")
    shutil.copy(ROOT / "chalice_http_toolkit.py", project / "chalicelib")
    (project / "chalicelib" / "templates" / "404.html").write_text("<h1>Page not found</h1>")
    config = {"version": "2.0", "app_name": "flaskr-routes", "stages": {"dev": {}}}
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    out = project.parent / "out"
    done = run([CHALICE, "package", "--stage", "dev", out], cwd=project, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "sam.json").read_text()), out


def test_chalice_package_has_no_two_variable_parts_under_one_parent(packaged_routes):
    template, _ = packaged_routes
    [api] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    paths = api["Properties"]["DefinitionBody"]["paths"]
    assert {"/{id}/update", "/post/{slug}", "/files/{proxy+}", "/{id}", "/{id}/{n1}"} <= set(paths)
    assert variable_siblings(paths) == {}
    for path, methods in paths.items():  # and every GET has its HEAD
        assert ("get" in methods) == ("head" in methods), path


def test_chalice_package_output_passes_cfn_lint(packaged_routes):
    """Clean but for W2531 (a deprecated runtime) under Python 3.10, as the scaffold's."""
    _, out = packaged_routes
    ignore = ("W2531",) if sys.version_info < (3, 11) else ()
    done = cfn_lint(out / "sam.json", ignore=ignore)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# -- GET and POST in one view --------------------------------------------------------------


def test_a_form_route_with_get_is_415_unless_it_accepts_json_too(tmp_path):
    """Chalice checks a route's content_types for every method and takes a request
    without a Content-Type (every GET) as application/json."""
    app, cm = make_site(tmp_path)

    @app.route("/only-forms", methods=["GET", "POST"], content_types=FORM_CONTENT_TYPES)
    def only_forms():
        return cm.html("form")

    @app.route("/edit", methods=["GET", "POST"], content_types=FORM_PAGE_CONTENT_TYPES)
    def edit():
        if app.current_request.method == "POST":
            return cm.html(f"saved {cm.form()['title']}")
        return cm.html("<form method=post>")

    with Client(app) as client:
        assert client.http.get("/only-forms").status_code == 415
        assert client.http.get("/edit").body == b"<form method=post>"
        saved = client.http.post("/edit", headers=URLENCODED, body=b"title=T")
        assert saved.body == b"saved T"
        as_json = client.http.post(
            "/edit", headers={**BROWSER, "Content-Type": "application/json"}, body=b"{}"
        )
        assert as_json.status_code == 400  # not a form: no field 'title'
