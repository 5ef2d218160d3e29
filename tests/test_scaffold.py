"""The project `cli.py setup` writes works as it stands: through `chalice.test.Client`,
under `chalice local` on 127.0.0.1, and packaged by `chalice package` without network.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Callable, NamedTuple

import pytest
from chalice import Chalice
from chalice.app import ScheduledEventConfig
from chalice.test import Client
from PIL import Image

import chalice_http_toolkit as toolkit

from apigw import invoke
from conftest import ROOT
from fake_klayers import FakeKlayers, layer_arn
from localserver import free_port, offline_env, stop, wait_until_serving

if not (ROOT / "chalice_http_toolkit.py").is_file():
    pytest.skip("chalice_http_toolkit.py is not in the checkout yet", allow_module_level=True)

CHALICE = Path(sys.executable).parent / "chalice"
LAYERS = [
    layer_arn("p3.12", "us-east-1", "jinja2", 7),
    layer_arn("p3.12", "us-east-1", "Pillow", 9),
]


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


Fetch = Callable[..., Reply]


def scaffold(root: Path, *extra: str, missing_layers_ok: bool = False) -> Path:
    """Run `cli.py setup` as a user would, against the fake Klayers API.

    ``missing_layers_ok``: the only output on stderr may be that Klayers lacks a layer
    for the chosen Python (p3.13 has none).
    """
    project = root / "site"
    args = ["setup", "-n", "scaffold", "-p", str(project), "-r", "us-east-1", "--python", "3.12"]
    server = FakeKlayers().start()
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), *args, *extra],
            env=offline_env(KLAYERS_API_URL=server.url, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done
    if missing_layers_ok:
        assert all(w.startswith("setup: Klayers has no ") for w in done.stderr.splitlines()), done
    else:
        assert done.stderr == "", done
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return scaffold(tmp_path_factory.mktemp("scaffold"))


# ---------------------------------------------------------------------------
# Two ways to serve it: the test client in-process and `chalice local`
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_module(project) -> Iterator[ModuleType]:
    """The scaffolded ``app.py`` imported in-process (as ``chalice.test.Client`` needs)."""
    sys.path.insert(0, str(project))
    try:
        import app

        yield app
    finally:
        sys.path.remove(str(project))
        for name in [n for n in sys.modules if n == "app" or n.split(".")[0] == "chalicelib"]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def project_app(app_module) -> Chalice:
    return app_module.app


@pytest.fixture(scope="module")
def client_fetch(project_app) -> Iterator[Fetch]:
    with Client(project_app) as client:

        def fetch(path: str, headers: dict[str, str] | None = None, method: str = "GET"):
            reply = client.http.request(method, path, headers=headers or {})
            return Reply(reply.status_code, lower(reply.headers), reply.body)

        yield fetch


@pytest.fixture(scope="module")
def local_fetch(project) -> Iterator[Fetch]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = project.parent / "chalice-local.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(CHALICE), "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=offline_env(no_proxy="127.0.0.1", NO_PROXY="127.0.0.1"),
        )
        try:
            wait_until_serving(base + "/", process, log_path)

            def fetch(path: str, headers: dict[str, str] | None = None, method: str = "GET"):
                return fetch_url(base + path, headers or {}, method)

            yield fetch
        finally:
            stop(process)


def fetch_url(url: str, headers: dict[str, str], method: str) -> Reply:
    request = urllib.request.Request(url, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return Reply(response.status, lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, lower(error.headers), error.read())


def lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@pytest.fixture(params=["client", "local"])
def fetch(request) -> Fetch:
    return request.getfixturevalue(f"{request.param}_fetch")


def urls_in(page: bytes) -> dict[str, str]:
    """The content-hashed CSS and image URLs the index page links to."""
    text = page.decode()
    css = re.search(r'<link rel="stylesheet" href="([^"]+)"', text)
    img = re.search(r'<img src="([^"]+)"', text)
    assert css and img, text
    return {"css": css[1], "img": img[1]}


# ---------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------


def test_index(fetch):
    reply = fetch("/", {"Accept": "text/html"})
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<h1>scaffold</h1>" in reply.body
    assert b"<title>scaffold</title>" in reply.body
    assert reply.headers["etag"].startswith('"')
    urls = urls_in(reply.body)
    assert re.fullmatch(r"/static/css/site\.[0-9a-f]{8,}\.css", urls["css"])
    assert re.fullmatch(r"/static/img/hero\.[0-9a-f]{8,}\.png", urls["img"])


def test_head_index(fetch):
    reply = fetch("/", method="HEAD")
    assert (reply.status, reply.body) == (200, b"")
    assert "etag" in reply.headers


def test_nested_static(fetch, project):
    css = (project / "chalicelib" / "static" / "css" / "site.css").read_bytes()
    reply = fetch("/static/css/site.css")
    assert (reply.status, reply.body) == (200, css)
    assert reply.headers["content-type"] == "text/css; charset=utf-8"

    hashed = fetch(urls_in(fetch("/").body)["css"])
    assert (hashed.status, hashed.body) == (200, css)
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("accept", "content_type", "signature"),
    [
        ("image/webp,image/png,*/*;q=0.8", "image/webp", b"RIFF"),
        ("image/png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", None, None),
    ],
)
def test_image_is_negotiated(fetch, accept, content_type, signature):
    reply = fetch(urls_in(fetch("/").body)["img"], {"Accept": accept})
    assert reply.status == 200
    assert "accept" in reply.headers["vary"].lower()
    assert reply.headers["content-type"].startswith("image/")
    if content_type:
        assert reply.headers["content-type"] == content_type
        assert reply.body.startswith(signature)


def test_favicon_is_linked_so_browsers_skip_favicon_ico(fetch):
    icon = re.search(r'<link rel="icon" href="([^"]+)"', fetch("/").body.decode())
    assert icon and re.fullmatch(r"/static/favicon\.[0-9a-f]{8,}\.svg", icon[1])
    reply = fetch(icon[1], {"Accept": "image/avif,image/webp,image/svg+xml,*/*;q=0.8"})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("image/svg+xml")
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert reply.body.startswith(b"<svg ")


def test_hero_image_offers_resized_variants(fetch):
    page = fetch("/").body.decode()
    srcset = re.search(r'srcset="([^"]+)"', page)
    assert srcset, page
    candidates = dict(reversed(item.split()) for item in srcset[1].split(", "))
    assert list(candidates) == ["320w", "640w", "960w"]
    assert candidates["960w"] == urls_in(page.encode())["img"]
    assert re.fullmatch(r"/static/img/hero\.[0-9a-f]{8,}\.w640\.png", candidates["640w"])

    reply = fetch(candidates["640w"], {"Accept": "image/png"})
    assert (reply.status, reply.headers["content-type"]) == (200, "image/png")
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    with Image.open(io.BytesIO(reply.body)) as image:
        assert image.size == (640, 320)


@pytest.mark.parametrize("path", ["/nope", "/no/such/page", "/static/css/missing.css"])
def test_unknown_path_gets_the_404_page(fetch, path):
    reply = fetch(path, {"Accept": "text/html"})
    assert reply.status == 404
    if not path.startswith("/static/"):
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        assert b"<h1>Page not found</h1>" in reply.body


@pytest.mark.parametrize("which", ["page", "static"])
def test_revalidation_gives_304(fetch, which):
    path = "/" if which == "page" else "/static/css/site.css"
    first = fetch(path)
    etag = first.headers["etag"]
    again = fetch(path, {"If-None-Match": etag})
    assert (again.status, again.body) == (304, b"")
    assert again.headers["etag"] == etag
    changed = fetch(path, {"If-None-Match": '"something-else"'})
    assert changed.status == 200


def test_keep_warm_is_scheduled(app_module):
    schedules = [
        source
        for source in app_module.app.event_sources
        if isinstance(source, ScheduledEventConfig)
    ]
    assert [source.name for source in schedules] == ["keep_warm"]
    # Lambda runs the schedule's handler as app.keep_warm: app.py must bind that name.
    assert schedules[0].handler_string == "app.keep_warm"
    assert callable(app_module.keep_warm)


def test_warm_up_event_primes_the_api_handler(app_module, client_fetch):
    from chalicelib.chalice_http_toolkit import keep_warm_event

    reply = app_module.app(keep_warm_event(), None)
    assert reply["statusCode"] == 200
    body = json.loads(reply["body"])
    assert body["warm"] is True
    assert set(body["prime_ms"]) >= {"templates", "static"}


# ---------------------------------------------------------------------------
# chalice package
# ---------------------------------------------------------------------------


def package(project: Path, out: Path, *options: str, **env: str) -> dict:
    done = subprocess.run(
        [str(CHALICE), "package", "--stage", "prod", *options, str(out)],
        cwd=project,
        env=offline_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "sam.json").read_text())


def functions(template: dict) -> dict[str, dict]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_chalice_package_has_layers_and_schedule(project, tmp_path):
    out = tmp_path / "out"
    template = package(project, out)
    lambdas = functions(template)
    assert "APIHandler" in lambdas
    for properties in lambdas.values():
        assert properties["Layers"] == LAYERS
        assert properties["MemorySize"] == 256
        assert properties["Timeout"] == 30
        assert properties["Architectures"] == ["x86_64"]
    scheduled = {
        name: event
        for name, properties in lambdas.items()
        for event in properties.get("Events", {}).values()
        if event["Type"] == "Schedule"
    }
    assert len(scheduled) == 1
    [(keep_warm, event)] = scheduled.items()
    assert event["Properties"]["Schedule"] == "rate(5 minutes)"

    # The schedule's role may invoke the API handler (Chalice's generator would not allow it).
    role = lambdas[keep_warm]["Role"]["Fn::GetAtt"][0]
    [policy] = template["Resources"][role]["Properties"]["Policies"]
    assert {
        "Sid": "KeepWarmInvokesTheApiHandler",
        "Effect": "Allow",
        "Action": "lambda:InvokeFunction",
        "Resource": "arn:*:lambda:*:*:function:scaffold-prod",
    } in policy["PolicyDocument"]["Statement"]

    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = set(archive.namelist())
        module = archive.read("chalicelib/chalice_http_toolkit.py")
    assert module == (ROOT / "chalice_http_toolkit.py").read_bytes()
    assert {
        "app.py",
        "chalicelib/templates/base.html",
        "chalicelib/templates/index.html",
        "chalicelib/templates/404.html",
        "chalicelib/static/css/site.css",
        "chalicelib/static/favicon.svg",
        "chalicelib/static/img/hero.png",
    } <= names
    # jinja2 and Pillow come from the layers, not from the package.
    assert not [name for name in names if name.startswith(("jinja2/", "PIL/"))]
    assert "cloudfront.json" not in names  # deployed by CloudFormation, not in the Lambda


def test_chalice_package_merge_template_points_keep_warm_at_the_api_handler(project, tmp_path):
    """Under CloudFormation the names are generated: a Ref and a GetAtt carry them."""
    out = tmp_path / "out"
    template = package(project, out, "--merge-template", ".chalice/package-merge.json")
    resources = template["Resources"]
    assert all("Type" in resource for resource in resources.values()), "merged into nothing"
    lambdas = functions(template)
    [keep_warm] = [
        name
        for name, properties in lambdas.items()
        if any(event["Type"] == "Schedule" for event in properties.get("Events", {}).values())
    ]
    variables = lambdas[keep_warm]["Environment"]["Variables"]
    assert variables["CHALICE_HTTP_TOOLKIT_API_FUNCTION"] == {"Ref": "APIHandler"}
    policy = resources["KeepWarmInvokesTheApiHandler"]
    assert policy["Type"] == "AWS::IAM::Policy"
    role = lambdas[keep_warm]["Role"]["Fn::GetAtt"][0]
    assert policy["Properties"]["Roles"] == [{"Ref": role}]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}
    assert statement["Action"] == "lambda:InvokeFunction"
    # The name the keep-warm reads is the one the module looks for.
    assert toolkit.KEEP_WARM_FUNCTION_ENV == "CHALICE_HTTP_TOOLKIT_API_FUNCTION"


def test_cloudfront_template_fits_the_project(project, app_module):
    """The template's stage and static behaviour match what the scaffolded app serves."""
    template = json.loads((project / "cloudfront.json").read_text())
    config = json.loads((project / ".chalice" / "config.json").read_text())
    stage = config["stages"]["prod"]["api_gateway_stage"]
    assert template["Parameters"]["Stage"]["Default"] == stage
    distribution = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    [static] = distribution["CacheBehaviors"]
    prefix = "/" + static["PathPattern"].removesuffix("*")
    urls = urls_in(invoke(app_module.app, "GET", "/", {"Accept": "text/html"}).body)
    assert urls["css"].startswith(prefix) and urls["img"].startswith(prefix)


def installed_wheel(distribution: str, directory: Path) -> Path:
    """Rebuild the pure-Python wheel of an installed distribution (pip needs no network)."""
    from importlib.metadata import distribution as find

    dist = find(distribution)
    wheel = directory / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if (
                path.is_file()
                and "__pycache__" not in file.parts
                and not file.name.endswith(".pyc")
            ):
                archive.write(path, file.as_posix())
    return wheel


def test_chalice_package_with_magic_ships_libmagic(tmp_path):
    project = scaffold(tmp_path, "-e", "magic")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    installed_wheel("python-magic", wheels)
    out = tmp_path / "out"
    package(project, out, PIP_FIND_LINKS=str(wheels))
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = set(archive.namelist())
        library = archive.read("chalicelib/libs/x86_64/libmagic.so.1")
    assert library == (ROOT / "bin_magic" / "x86_64" / "libmagic.so.1").read_bytes()
    assert {"chalicelib/libs/aarch64/libmagic.so.1", "chalicelib/libs/magic.mgc"} <= names
    assert "magic/__init__.py" in names  # python-magic, from requirements.txt


def test_the_packaged_module_loads_from_its_pyc_on_lambda(tmp_path):
    """Unzipped as Lambda does (1980 mtimes, nothing written), the .pyc is used, not compiled."""
    running = "{}.{}".format(*sys.version_info[:2])
    project = scaffold(tmp_path, "--python", running, missing_layers_ok=True)
    # Offline, and not the point here: no dependencies (p3.13 has no layers to replace them).
    (project / "requirements.txt").write_text("")
    out = tmp_path / "out"
    package(project, out)
    task = tmp_path / "task"
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        pyc = f"chalicelib/__pycache__/chalice_http_toolkit.{sys.implementation.cache_tag}.pyc"
        assert pyc in archive.namelist()
        archive.extractall(task)
    for path in task.rglob("*"):
        os.utime(path, (315532800, 315532800))  # 1980-01-01, as Chalice's zip stamps them
    env = offline_env(PYTHONDONTWRITEBYTECODE="1")  # /var/task is read-only
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-v", "-c", "import chalicelib.chalice_http_toolkit"],
        cwd=task,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stderr
    assert f"{task / pyc} matches {task / 'chalicelib' / 'chalice_http_toolkit.py'}" in log
    assert "bytecode is stale for 'chalicelib.chalice_http_toolkit'" not in log
