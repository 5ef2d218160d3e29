"""`cli.py cloudfront --origin function-url`: CloudFront in front of a Function URL.

The template lints clean, names the Function URL as a custom HTTPS origin and adds the
origin secret header that ``lambda_handler`` checks; through the CloudFront model,
pages are served and revalidated, while a request that bypasses CloudFront is a 403.
"""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest
from frontdoor_events import deliver_v2, v2_event
from test_cloudfront import cfn_lint

import chalice_http_toolkit as toolkit
import cli

from apigw import Delivered as OriginReply
from apigw import lambda_context
from cdn_model import CloudFrontModel, SimClock

SECRET = "0123456789abcdef-origin-secret"


def distribution(template: dict) -> dict:
    return template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]


def test_function_url_origin_shape():
    template = cli.cloudfront_template(origin="function-url")
    origin, static_origin = distribution(template)["Origins"]  # pages, static files
    assert static_origin["OriginCustomHeaders"] == origin["OriginCustomHeaders"]
    assert static_origin["DomainName"] == origin["DomainName"]
    assert origin["DomainName"] == {"Ref": "FunctionUrlDomain"}
    assert "OriginPath" not in origin  # a Function URL has no stage in its path
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["OriginCustomHeaders"] == [
        {"HeaderName": "X-Origin-Verify", "HeaderValue": {"Ref": "OriginSecret"}}
    ]
    assert cli.ORIGIN_SECRET_HEADER == toolkit.ORIGIN_SECRET_HEADER
    parameters = template["Parameters"]
    assert parameters["OriginSecret"]["NoEcho"] is True
    assert parameters["OriginSecret"]["MinLength"] == 16
    assert not {"RestApiId", "ApiRegion", "Stage"} & set(parameters)
    assert "Conditions" not in template
    # Host is never forwarded: a Function URL answers only to its own host name.
    policy = template["Resources"]["PageOriginRequestPolicy"]["Properties"]
    assert "Host" not in policy["OriginRequestPolicyConfig"]["HeadersConfig"]["Headers"]


def test_rest_api_origin_is_unchanged_by_default():
    assert cli.cloudfront_template() == cli.cloudfront_template(origin="rest-api")
    for origin in distribution(cli.cloudfront_template())["Origins"]:
        assert "OriginCustomHeaders" not in origin


def test_unknown_origin_is_a_value_error():
    with pytest.raises(ValueError, match="function-url"):
        cli.cloudfront_template(origin="s3")


def test_function_url_template_passes_cfn_lint(tmp_path):
    path = tmp_path / "function-url.json"
    assert cli.main(["cloudfront", "--origin", "function-url", "-o", str(path)]) == 0
    done = cfn_lint(path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_cloudfront_origin_option(run):
    done = run("cloudfront", "--origin", "function-url")
    assert done.code == 0
    assert json.loads(done.stdout)["Parameters"]["FunctionUrlDomain"]
    bad = run("cloudfront", "--origin", "s3")
    assert bad.code == 2
    assert "invalid choice" in bad.stderr


class FunctionUrlOrigin:
    """The origin as CloudFront reaches it: the template's custom headers, a 2.0 event."""

    def __init__(self, app, template: dict, clock: SimClock) -> None:
        self.handler = toolkit.lambda_handler(app, origin_secret=SECRET)
        origin = distribution(template)["Origins"][0]
        parameters = {"OriginSecret": SECRET}
        self.custom = {
            header["HeaderName"].lower(): parameters[header["HeaderValue"]["Ref"]]
            for header in origin["OriginCustomHeaders"]
        }
        self.clock = clock
        self.statuses: list[int] = []

    def __call__(self, url: str, headers: dict[str, str]) -> OriginReply:
        event = v2_event("GET", url, {**headers, **self.custom})
        got = deliver_v2(self.handler(event, lambda_context()))
        self.statuses.append(got.status)
        out = dict(got.headers)
        out["content-length"] = str(len(got.body))
        out["date"] = formatdate(self.clock(), usegmt=True)
        return OriginReply(got.status, out, got.body)


def test_pages_through_cloudfront_to_a_function_url(site_app):
    app, _cm, _cf = site_app
    template = cli.cloudfront_template(origin="function-url")
    clock = SimClock()
    origin = FunctionUrlOrigin(app, template, clock)
    cdn = CloudFrontModel(template, origin, clock)
    viewer = {"accept": "text/html", "accept-encoding": "gzip, br"}
    first = cdn.request("/", viewer)
    clock.now += 60
    again = cdn.request("/", viewer)
    css = cdn.request("/static/css/site.css", {"accept": "text/css"})
    assert (first.status, first.source) == (200, "Miss")
    assert (again.status, again.source) == (200, "StaleHit")  # 304 in the background
    assert b"Home" in again.content
    assert css.status == 200
    assert origin.statuses == [200, 304, 200]


def test_a_request_that_bypasses_cloudfront_is_refused(site_app):
    app, _cm, _cf = site_app
    handler = toolkit.lambda_handler(app, origin_secret=SECRET)
    got = deliver_v2(handler(v2_event("GET", "/", {"accept": "text/html"}), lambda_context()))
    assert got.status == 403
    assert b"Home" not in got.body
