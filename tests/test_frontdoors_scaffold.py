"""The scaffolded project behind a Function URL: `app.handler` and the merge template.

`chalice package --merge-template .chalice/package-merge-function-url.json` on a
project `cli.py setup` wrote: the API handler becomes `app.handler`, gets a public
Function URL with both permissions it needs, the origin secret from a parameter, and
keeps what the keep-warm needs; the merged template lints clean. The scaffolded
`app.handler` serves Function URL events and refuses them without the secret.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from frontdoor_events import deliver_v2, v2_event
from test_cloudfront import cfn_lint
from test_scaffold import functions, package, scaffold

import cli

from apigw import lambda_context
from sites import imported_project

SECRET = "scaffold-origin-secret-0123456789"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return scaffold(tmp_path_factory.mktemp("frontdoors-scaffold"))


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
    monkeypatch.setenv("CHALICE_HTTP_TOOLKIT_ORIGIN_SECRET", SECRET)
    with imported_project(project) as app:
        yield app


def test_the_scaffolded_handler_serves_function_url_events(scaffold_app):
    def get(path: str, **headers: str):
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        event = v2_event("GET", path, {"accept": "text/html", **named})
        return deliver_v2(scaffold_app.handler(event, lambda_context()))

    page = get("/", x_origin_verify=SECRET)
    missing = get("/no/such/page", x_origin_verify=SECRET)
    bypass = get("/")
    assert (page.status, missing.status, bypass.status) == (200, 404, 403)
    assert b"<html" in page.body.lower()
    assert page.headers["etag"]
    again = get("/", x_origin_verify=SECRET, if_none_match=page.headers["etag"])
    assert again.status == 304
