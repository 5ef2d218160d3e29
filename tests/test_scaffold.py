"""The project `cli.py setup` writes works as it stands: through `chalice.test.Client`,
under `chalice local` on 127.0.0.1, and packaged by `chalice package` without network.

Last section: the same project behind a Function URL (``app.handler`` and the merge
template).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
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
from frontdoor_events import deliver_v2, v2_event
from PIL import Image
from test_cloudfront import cfn_lint

import chalice_http_toolkit as toolkit
import cli

from apigw import invoke, lambda_context
from conftest import ROOT
from fake_klayers import FakeKlayers, layer_arn
from localserver import CHALICE, LOOPBACK, chalice_local, offline_env, run, run_python
from sites import imported_project

if not (ROOT / "chalice_http_toolkit.py").is_file():
    pytest.skip("chalice_http_toolkit.py is not in the checkout yet", allow_module_level=True)

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
        done = run_python(ROOT / "cli.py", *args, *extra, KLAYERS_API_URL=server.url, **LOOPBACK)
    finally:
        server.stop()
    assert done.returncode == 0, done
    if missing_layers_ok:
        # (and, under a Python Lambda deprecates, the warning about that runtime)
        allowed = ("setup: Klayers has no ", "setup: warning: Lambda deprecate")
        assert all(w.startswith(allowed) for w in done.stderr.splitlines()), done
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
    with imported_project(project) as app:
        yield app


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
    with chalice_local(project) as base:

        def fetch(path: str, headers: dict[str, str] | None = None, method: str = "GET"):
            return fetch_url(base + path, headers or {}, method)

        yield fetch


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


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/no/such/page",
        "/static/css/missing.css",
        "/a/b/c/d/e/f",
        "/static/a/b/c/d/e/f/g/h.css",
    ],
)
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


@pytest.mark.skipif(shutil.which("git") is None, reason="no git")
def test_gitignore_keeps_the_checked_hash_pyc(tmp_path):
    """Regression: `__pycache__/` and `*.pyc` ignored the .pyc that spares Lambda compiling."""
    running = "{}.{}".format(*sys.version_info[:2])
    project = scaffold(tmp_path, "--python", running, missing_layers_ok=True)  # p3.13: none
    pyc = f"chalicelib/__pycache__/chalice_http_toolkit.{sys.implementation.cache_tag}.pyc"
    assert (project / pyc).is_file()
    for other in ("chalicelib/__pycache__/other.cpython-312.pyc", "__pycache__/app.pyc"):
        (project / other).parent.mkdir(exist_ok=True)
        (project / other).write_bytes(b"")
    assert run(["git", "init", "-q", project]).returncode == 0
    candidates = [pyc, "chalicelib/__pycache__/other.cpython-312.pyc", "__pycache__/app.pyc"]
    ignored = run(["git", "-C", project, "check-ignore", *candidates])
    assert ignored.stdout.split() == candidates[1:]
    added = run(["git", "-C", project, "add", "--dry-run", "."])
    assert f"add '{pyc}'" in added.stdout.splitlines()


# ---------------------------------------------------------------------------
# chalice package
# ---------------------------------------------------------------------------


def package(project: Path, out: Path, *options: str, **env: str) -> dict:
    wheels = out.parent / "wheels"
    wheels.mkdir(exist_ok=True)
    installed_wheel("multipart", wheels)  # requirements.txt has it (the contact form), offline
    env.setdefault("PIP_FIND_LINKS", str(wheels))
    done = run(
        [CHALICE, "package", "--stage", "prod", *options, out], cwd=project, timeout=300, **env
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
    done = run_python("-v", "-c", "import chalicelib.chalice_http_toolkit", cwd=task, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stderr
    assert f"{task / pyc} matches {task / 'chalicelib' / 'chalice_http_toolkit.py'}" in log
    assert "bytecode is stale for 'chalicelib.chalice_http_toolkit'" not in log


#: The unzipped package, as Lambda imports it (its own ``chalice/app.py``), asked for a
#: stylesheet with gzip by API Gateway: the handler's result as JSON.
PACKAGED_GZIP_REQUEST = """
import json
import app
route = "/static/{p0}/{p1}"
headers = {"Accept": "text/css,*/*;q=0.1", "Accept-Encoding": "gzip"}
event = {
    "resource": route, "path": "/static/css/bundle.css", "httpMethod": "GET",
    "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
    "queryStringParameters": None, "multiValueQueryStringParameters": None,
    "pathParameters": {"p0": "css", "p1": "bundle.css"}, "stageVariables": None,
    "requestContext": {"resourcePath": route, "httpMethod": "GET", "stage": "api"},
    "body": None, "isBase64Encoded": False,
}
print(json.dumps(app.app(event, None)))
"""


def test_the_package_ships_the_prepared_gzip_forms_and_lambda_sends_them(tmp_path):
    """`prepare` writes the gzip forms beside the module; `chalice package` ships them and
    the unzipped package (1980 mtimes, read-only) sends them instead of compressing."""
    running = "{}.{}".format(*sys.version_info[:2])
    project = scaffold(tmp_path, "--python", running, missing_layers_ok=True)
    (project / "requirements.txt").write_text("")  # offline; the dependencies are not the point
    bundle = "".join(
        f".c{i} > a {{ margin: {i % 89}px; color: #{i * 7:06x}; }}\n" for i in range(2000)
    )
    (project / "chalicelib" / "static" / "css" / "bundle.css").write_text(bundle)
    prepared = run_python(ROOT / "cli.py", "prepare", "-p", project)
    assert prepared.returncode == 0, prepared.stderr
    out = tmp_path / "out"
    package(project, out)
    task = tmp_path / "task"
    digest = toolkit._digest(bundle.encode())
    form = f"chalicelib/chalice_http_toolkit.prepared.json.gzip/{digest}.gz"
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        shipped = archive.read(form)
        archive.extractall(task)
    for path in task.rglob("*"):
        os.utime(path, (315532800, 315532800))  # 1980-01-01, as Chalice's zip stamps them
    # /var/task is read-only; the runtime names the function
    env = offline_env(PYTHONDONTWRITEBYTECODE="1", AWS_LAMBDA_FUNCTION_NAME="scaffold-prod")
    env.pop("PYTHONPATH", None)

    done = run_python("-c", PACKAGED_GZIP_REQUEST, cwd=task, env=env)

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["statusCode"] == 200 and result["isBase64Encoded"], result
    assert result["headers"]["Content-Encoding"] == "gzip"
    assert base64.b64decode(result["body"]) == shipped  # the build's form, not one made now
    assert gzip.decompress(shipped) == bundle.encode()
    assert len(shipped) < len(toolkit._gzip(bundle.encode()))


# ---------------------------------------------------------------------------
# -e tasks: a background-task worker on an SQS FIFO queue
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks_project(tmp_path_factory) -> Path:
    return scaffold(tmp_path_factory.mktemp("tasks"), "-e", "tasks")


def test_tasks_scaffold_packages_the_queue_and_its_event_source_mapping(tasks_project, tmp_path):
    out = tmp_path / "out"
    template = package(tasks_project, out, "--merge-template", ".chalice/package-merge.json")
    resources = template["Resources"]
    assert all("Type" in resource for resource in resources.values()), "merged into nothing"
    worker = resources["TaskWorker"]
    assert worker["Properties"]["Handler"] == "app.task_worker"
    assert worker["DependsOn"] == ["TaskQueue"]  # the mapping needs the queue to exist
    [event] = worker["Properties"]["Events"].values()
    assert event == {
        "Type": "SQS",
        "Properties": {
            "Queue": {
                "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}"
                ":scaffold-tasks.fifo"
            },
            "BatchSize": 1,
            "MaximumBatchingWindowInSeconds": 0,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    }
    queue = resources["TaskQueue"]["Properties"]
    assert queue["QueueName"] == "scaffold-tasks.fifo" and queue["FifoQueue"] is True
    assert queue["VisibilityTimeout"] >= 6 * worker["Properties"]["Timeout"]
    assert queue["MaximumMessageSize"] == toolkit.SQS_MESSAGE_LIMIT
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["TaskDeadLetterQueue", "Arn"]
    }
    dead = resources["TaskDeadLetterQueue"]["Properties"]
    assert dead["FifoQueue"] is True  # a FIFO queue's dead-letter queue is FIFO too
    # The API handler may look the queue up and send to it; the worker may receive.
    for function, actions in (
        ("APIHandler", {"sqs:GetQueueUrl", "sqs:SendMessage"}),
        ("TaskWorker", {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}),
    ):
        role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        [policy] = resources[role]["Properties"]["Policies"]
        allowed = {
            action
            for statement in policy["PolicyDocument"]["Statement"]
            if statement["Resource"] == "arn:*:sqs:*:*:scaffold-tasks.fifo"
            for action in statement["Action"]
        }
        assert actions <= allowed, function


def test_tasks_scaffold_queue_resources_pass_cfn_lint(tasks_project, tmp_path):
    merge = json.loads((tasks_project / ".chalice" / "package-merge.json").read_text())
    queues = {name: merge["Resources"][name] for name in ("TaskQueue", "TaskDeadLetterQueue")}
    path = tmp_path / "queues.json"
    path.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": queues}))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    done = run([cfn_lint, "--", path], timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_tasks_scaffold_runs_a_task_locally(tasks_project, caplog, monkeypatch):
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)  # local mode: the handler runs in-process
    sys.path.insert(0, str(tasks_project))
    saved = {n: m for n, m in sys.modules.items() if n == "app" or n.startswith("chalicelib")}
    for name in saved:
        del sys.modules[name]
    try:
        import app as tasks_app

        assert tasks_app.tasks.queue_name == "scaffold-tasks.fifo"
        assert tasks_app.task_worker is tasks_app.app.handler_map["task_worker"]
        tasks_app.app.log.addHandler(caplog.handler)
        with caplog.at_level(logging.INFO, "scaffold"):
            answer = tasks_app.tasks.post("hello from the scaffold")
        tasks_app.app.log.removeHandler(caplog.handler)
    finally:
        sys.path.remove(str(tasks_project))
        for name in [n for n in sys.modules if n == "app" or n.startswith("chalicelib")]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert f"task {answer['MessageId']}: hello from the scaffold" in caplog.text


def test_default_scaffold_has_no_task_queue(project):
    merge = json.loads((project / ".chalice" / "package-merge.json").read_text())
    assert not {"TaskQueue", "TaskDeadLetterQueue", "TaskWorker"} & set(merge["Resources"])
    assert "TaskingControllerFactory" not in (project / "app.py").read_text()
    policy = json.loads((project / ".chalice" / "policy-prod.json").read_text())
    assert not [s for s in policy["Statement"] if "sqs:SendMessage" in s["Action"]]


# The contact page: a form, CSRF, validation errors, a flash after a 303, an upload
# ---------------------------------------------------------------------------


def _contact_post(fetch: Fetch, cookie: str, token: str, fields: dict, files=()) -> Reply:
    from test_forms import multipart_body

    body, content_type = multipart_body([("csrf_token", token), *fields.items()], list(files))
    headers = {"Content-Type": content_type, "Cookie": cookie, "Sec-Fetch-Site": "same-origin"}
    return fetch("/contact", headers, "POST", body)


def test_contact_form(project_app):
    with Client(project_app) as client:

        def fetch(path, headers=None, method="GET", body=b""):
            reply = client.http.request(method, path, headers=headers or {}, body=body)
            return Reply(reply.status_code, lower(reply.headers), reply.body)

        page = fetch("/contact")
        assert page.status == 200 and page.headers["cache-control"] == "private, no-store"
        cookie = page.headers["set-cookie"][0].split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)[1].decode()
        invalid = _contact_post(fetch, cookie, token, {"name": "", "email": "x", "message": ""})
        assert invalid.status == 422
        for words in (b"tell us your name", b"email address", b"write a message"):
            assert words in invalid.body
        data = bytes(range(256)) * 8
        sent = _contact_post(
            fetch,
            cookie,
            token,
            {"name": "Zo\u00eb", "email": "zoe@example.com", "message": "Hello"},
            [("attachment", "notes.bin", "application/octet-stream", data)],
        )
        assert (sent.status, sent.headers["location"]) == (303, "/contact")
        cookie = sent.headers["set-cookie"][0].split(";")[0]
        shown = fetch("/contact", {"Cookie": cookie}).body.decode()
        digest = hashlib.sha256(data).hexdigest()[:16]
        assert "Thank you, Zoë" in shown and f"notes.bin ({len(data)} bytes, {digest})" in shown
        forged = _contact_post(
            fetch, cookie, "forged", {"name": "a", "email": "a@b", "message": "m"}
        )
        assert forged.status == 403


def css_rules(css: str) -> dict[str, dict[str, str]]:
    """``selector -> {property: value}`` of a plain stylesheet (no at-rules, no nesting)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = dict(
            (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
            for part in body.split(";")
            if ":" in part
        )
        for selector in selectors.split(","):
            rules.setdefault(selector.strip(), {}).update(declarations)
    return rules


def test_contact_page_send_button_is_styled():
    """Regression: the contact page's Send button was the browser's unstyled default."""
    contact = (ROOT / "scaffold" / "chalicelib" / "templates" / "contact.html").read_text()
    assert '<button type="submit">Send</button>' in contact
    rules = css_rules(
        (ROOT / "scaffold" / "chalicelib" / "static" / "css" / "site.css").read_text()
    )
    button = rules["button"]
    assert {"background", "color", "padding", "border-radius", "font"} <= set(button)
    assert button["font"] == "inherit"  # the page's font, not the browser's form font
    assert rules["button:hover"]["background"] != button["background"]
    assert "outline" in rules["button:focus-visible"]  # keyboard users see where they are


# == Behind a Function URL =================================================================
# The scaffolded project behind a Function URL: `app.handler` and the merge template.
#
# `chalice package --merge-template .chalice/package-merge-function-url.json` on a
# project `cli.py setup` wrote: the API handler becomes `app.handler`, gets a public
# Function URL with both permissions it needs, the origin secret from a parameter, and
# keeps what the keep-warm needs; the merged template lints clean. The scaffolded
# `app.handler` serves Function URL events and refuses them without the secret.

ORIGIN_SECRET = "scaffold-origin-secret-0123456789"


@pytest.fixture(scope="module")
def packaged(project, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("frontdoors-package") / "out"
    template = package(project, out, "--merge-template", cli.FUNCTION_URL_MERGE_FILENAME)
    return template, out


def test_setup_writes_the_function_url_merge_template(project):
    """The keep-warm's parts (chalice package takes one merge template) plus the URL's."""
    written = json.loads((project / cli.FUNCTION_URL_MERGE_FILENAME).read_text())
    keep_warm = json.loads((project / cli.PACKAGE_MERGE_FILENAME).read_text())
    for name, resource in keep_warm["Resources"].items():
        assert written["Resources"][name] == resource
    assert written["Resources"]["APIHandler"]["Properties"]["Handler"] == "app.handler"
    assert set(written["Parameters"]) == {"OriginSecret"}
    assert "$" not in json.dumps(written).replace("+$", "")  # no placeholder left unrendered


def test_packaged_api_handler_is_lambda_handler_behind_a_function_url(packaged):
    template, _ = packaged
    resources = template["Resources"]
    handler = functions(template)["APIHandler"]
    assert handler["Handler"] == "app.handler"
    variables = handler["Environment"]["Variables"]
    assert variables["CHALICE_HTTP_TOOLKIT_ORIGIN_SECRET"] == {"Ref": "OriginSecret"}
    assert template["Parameters"]["OriginSecret"]["NoEcho"] is True
    url = resources["APIHandlerUrl"]
    assert url["Type"] == "AWS::Lambda::Url"
    assert url["Properties"]["AuthType"] == "NONE"
    assert url["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}
    permissions = {
        resource["Properties"]["Action"]: resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"].get("Principal") == "*"
    }
    assert permissions["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert permissions["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    for permission in permissions.values():
        assert permission["FunctionName"] == {"Ref": "APIHandler"}
    assert template["Outputs"]["FunctionUrlDomain"]["Value"]["Fn::Select"][0] == 2
    # The keep-warm's parts are still there (chalice package takes one merge template).
    assert "KeepWarmInvokesTheApiHandler" in resources
    [keep_warm] = [name for name in functions(template) if name != "APIHandler"]
    warm_variables = functions(template)[keep_warm]["Environment"]["Variables"]
    assert warm_variables["CHALICE_HTTP_TOOLKIT_API_FUNCTION"] == {"Ref": "APIHandler"}


def test_packaged_template_passes_cfn_lint(packaged):
    """Clean but for W2531 (a deprecated runtime) under Python 3.10: chalice package names
    the runtime after the Python that runs it, and Lambda deprecates python3.10 in 2026."""
    _, out = packaged
    old_runtime = sys.version_info < (3, 11)
    done = cfn_lint(out / "sam.json", ignore=("W2531",) if old_runtime else ())
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.fixture
def scaffold_app(project, monkeypatch) -> Iterator[ModuleType]:
    """The scaffolded ``app.py`` imported as Lambda would, with the origin secret set."""
    monkeypatch.setenv("CHALICE_HTTP_TOOLKIT_ORIGIN_SECRET", ORIGIN_SECRET)
    for name in [n for n in sys.modules if n == "app" or n.split(".")[0] == "chalicelib"]:
        monkeypatch.delitem(sys.modules, name)  # app_module's import comes back afterwards
    with imported_project(project) as app:
        yield app


def test_the_scaffolded_handler_serves_function_url_events(scaffold_app):
    def get(path: str, **headers: str):
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        event = v2_event("GET", path, {"accept": "text/html", **named})
        return deliver_v2(scaffold_app.handler(event, lambda_context()))

    page = get("/", x_origin_verify=ORIGIN_SECRET)
    missing = get("/no/such/page", x_origin_verify=ORIGIN_SECRET)
    bypass = get("/")
    assert (page.status, missing.status, bypass.status) == (200, 404, 403)
    assert b"<html" in page.body.lower()
    assert page.headers["etag"]
    again = get("/", x_origin_verify=ORIGIN_SECRET, if_none_match=page.headers["etag"])
    assert again.status == 304
