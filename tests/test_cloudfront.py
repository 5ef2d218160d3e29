"""`cli.py cloudfront`: the distribution template, cfn-lint, and its CloudFront Function
executed by node against real browser Accept headers, checked against the module's
``normalise_image_accept``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cli
from chalice_http_toolkit import (
    IMAGE_ACCEPT_ANY,
    IMAGE_ACCEPT_AVIF,
    IMAGE_ACCEPT_WEBP,
    IMAGE_FORMATS,
    MEDIA_TYPES,
    WRITABLE_IMAGE_FORMATS,
    normalise_image_accept,
)

from cloudfront_function import ViewerRequestFunction, run_batch
from conftest import CliResult

AVIF, WEBP, ANY = IMAGE_ACCEPT_AVIF, IMAGE_ACCEPT_WEBP, IMAGE_ACCEPT_ANY
CFN_LINT = Path(sys.executable).parent / "cfn-lint"

if "AVIF" not in WRITABLE_IMAGE_FORMATS:
    pytest.skip("this Pillow cannot write AVIF; the tables assume it can", allow_module_level=True)


Result = CliResult


def resources_of(template: dict, kind: str) -> dict[str, dict]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def function_code(template: dict) -> str:
    [function] = resources_of(template, "AWS::CloudFront::Function").values()
    return function["FunctionCode"]


# ---------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------


def test_template_shape():
    template = cli.cloudfront_template()
    [function] = resources_of(template, "AWS::CloudFront::Function").values()
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["AutoPublish"] is True
    assert len(function["FunctionCode"].encode()) < 10 * 1024  # CloudFront Functions' limit

    [distribution] = resources_of(template, "AWS::CloudFront::Distribution").values()
    config = distribution["DistributionConfig"]
    origin, static_origin = config["Origins"]
    assert (origin["Id"], static_origin["Id"]) == ("chalice-api", "chalice-api-static")
    assert static_origin["DomainName"] == origin["DomainName"]
    assert origin["OriginPath"] == {"Fn::Sub": "/${Stage}"}
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert template["Parameters"]["Stage"]["Default"] == "api"
    domain = json.dumps(origin["DomainName"])
    assert "${RestApiId}.execute-api.${AWS::Region}" in domain
    assert "${RestApiId}.execute-api.${ApiRegion}" in domain

    default = config["DefaultCacheBehavior"]
    [static] = config["CacheBehaviors"]
    assert static["PathPattern"] == "static/*"
    for behaviour in (default, static):
        assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
        assert behaviour["Compress"] is True
        assert behaviour["FunctionAssociations"] == [
            {
                "EventType": "viewer-request",
                "FunctionARN": {"Fn::GetAtt": ["AcceptFunction", "FunctionARN"]},
            }
        ]
    assert default["CachePolicyId"] == {"Ref": "PageCachePolicy"}
    assert static["CachePolicyId"] == {"Ref": "StaticCachePolicy"}
    assert default["CachedMethods"] == static["CachedMethods"] == ["GET", "HEAD"]
    assert "POST" in default["AllowedMethods"] and "POST" not in static["AllowedMethods"]

    policies = resources_of(template, "AWS::CloudFront::CachePolicy")
    pages = policies["PageCachePolicy"]["CachePolicyConfig"]
    statics = policies["StaticCachePolicy"]["CachePolicyConfig"]
    for policy in (pages, statics):
        key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
        assert key["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["Accept"]}
        assert key["EnableAcceptEncodingGzip"] is key["EnableAcceptEncodingBrotli"] is True
        assert policy["MinTTL"] == 0
        assert policy["MaxTTL"] == 31536000  # the toolkit's immutable max-age
    assert pages["DefaultTTL"] == 0  # no Cache-Control from an app route: not reused
    # A visitor who carries the session cookie has a key of their own.
    assert pages["ParametersInCacheKeyAndForwardedToOrigin"]["CookiesConfig"] == {
        "CookieBehavior": "whitelist",
        "Cookies": ["session"],
    }
    cookies = statics["ParametersInCacheKeyAndForwardedToOrigin"]["CookiesConfig"]
    assert cookies == {"CookieBehavior": "none"}
    key = "ParametersInCacheKeyAndForwardedToOrigin"
    assert pages[key]["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert statics[key]["QueryStringsConfig"] == {"QueryStringBehavior": "none"}

    [request_policy] = resources_of(template, "AWS::CloudFront::OriginRequestPolicy").values()
    forwarded = request_policy["OriginRequestPolicyConfig"]["HeadersConfig"]["Headers"]
    assert default["OriginRequestPolicyId"] == {"Ref": "PageOriginRequestPolicy"}
    # API Gateway answers 403 to a Host that is not its own.
    assert "host" not in [name.lower() for name in forwarded]
    for policy in (pages, statics):
        assert "host" not in [name.lower() for name in policy[key]["HeadersConfig"]["Headers"]]
    assert template["Outputs"]["DistributionDomainName"]["Value"] == {
        "Fn::GetAtt": ["Distribution", "DomainName"]
    }


def test_every_behaviour_adds_the_security_headers():
    """HSTS, Referrer-Policy, nosniff and frame-ancestors at the edge; the origin's own win."""
    template = cli.cloudfront_template()
    [policy] = resources_of(template, "AWS::CloudFront::ResponseHeadersPolicy").values()
    headers = policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"]["FrameOption"] == "SAMEORIGIN"
    assert headers["ContentSecurityPolicy"]["ContentSecurityPolicy"] == "frame-ancestors 'self'"
    overridden = [name for name, header in headers.items() if header["Override"]]
    assert overridden == ["ContentTypeOptions"]
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    for behaviour in (config["DefaultCacheBehavior"], *config["CacheBehaviors"]):
        assert behaviour["ResponseHeadersPolicyId"] == {"Ref": "SecurityHeadersPolicy"}


def test_template_options():
    template = cli.cloudfront_template(
        stage="prod", static_prefix="/assets/v1/", price_class="PriceClass_All", avif=False
    )
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    assert config["CacheBehaviors"][0]["PathPattern"] == "assets/v1/*"
    assert template["Parameters"]["Stage"]["Default"] == "prod"
    assert template["Parameters"]["PriceClass"]["Default"] == "PriceClass_All"
    assert "var AVIF_COUNTS = false;" in function_code(template)
    assert "var AVIF_COUNTS = true;" in cli.cloudfront_function_code()


def cfn_lint(*paths: Path, ignore: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")  # offline
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    ignored = [f"--ignore-checks={check}" for check in ignore]
    return subprocess.run(
        [str(CFN_LINT), *ignored, "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_templates_pass_cfn_lint(tmp_path):
    variants = {
        "default": [],
        "options": ["--stage", "v2-prod_1", "--static-prefix", "/assets/v1", "--no-avif"],
        "everywhere": ["--price-class", "PriceClass_All"],
    }
    paths = []
    for name, options in variants.items():
        path = tmp_path / f"{name}.json"
        assert cli.main(["cloudfront", "-o", str(path), *options]) == 0
        paths.append(path)
    done = cfn_lint(*paths)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_cfn_lint_catches_a_broken_template(tmp_path):
    """The lint above can fail: a wrong runtime and a missing origin are errors."""
    template = cli.cloudfront_template()
    function = template["Resources"]["AcceptFunction"]["Properties"]
    function["FunctionConfig"]["Runtime"] = "cloudfront-js-9.0"
    config = template["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
    del config["Origins"][0]["DomainName"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(template))
    done = cfn_lint(path)
    assert done.returncode != 0
    assert "cloudfront-js-9.0" in done.stdout
    assert "DomainName" in done.stdout


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def test_cloudfront_prints_the_template(run):
    result = run("cloudfront")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == cli.cloudfront_json()
    assert json.loads(result.stdout)["Parameters"]["Stage"]["Default"] == "api"


def test_cloudfront_writes_a_file_and_refuses_to_overwrite(run, tmp_path):
    target = tmp_path / "cloudfront.json"
    result = run("cloudfront", "-o", str(target), "--stage", "prod")
    assert (result.code, result.stderr, result.stdout) == (0, "", f"Wrote {target}\n")
    assert target.read_text() == cli.cloudfront_json(stage="prod")

    target.write_text("mine")
    result = run("cloudfront", "-o", str(target))
    assert (result.code, result.stdout) == (cli.EXIT_EXISTS, "")
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_text() == "mine"

    result = run("cloudfront", "-o", str(target), "--force")
    assert (result.code, result.stderr) == (0, "")
    assert target.read_text() == cli.cloudfront_json()


def test_cloudfront_output_is_a_directory(run, tmp_path):
    result = run("cloudfront", "-o", str(tmp_path))
    assert (result.code, result.stdout) == (cli.EXIT_SETUP_FAILED, "")
    assert "is a directory" in result.stderr


def test_cloudfront_cannot_write(run, tmp_path):
    target = tmp_path / "cloudfront.json"
    target.symlink_to(tmp_path / "gone" / "cloudfront.json")  # dangling
    result = run("cloudfront", "-o", str(target), "--force")
    assert (result.code, result.stdout) == (cli.EXIT_SETUP_FAILED, "")
    assert result.stderr.startswith("cloudfront: cannot write")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("parent", ["missing", "missing/deeper", "a-file"])
def test_cloudfront_into_a_missing_directory_is_an_error(run, tmp_path, parent):
    """Regression: `-o /nonexistent/dir/cf.json` silently created the directories."""
    (tmp_path / "a-file").write_text("")
    target = tmp_path / parent / "cf.json"
    result = run("cloudfront", "-o", str(target))
    assert (result.code, result.stdout) == (cli.EXIT_SETUP_FAILED, "")
    assert result.stderr == (
        f"cloudfront: {target.parent} is not a directory, nothing was written; create it first\n"
    )
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("stage", ["my-stage", "v2-prod_1", "A" * 128, "-", "_"])
def test_cloudfront_stage_may_have_hyphens(run, stage):
    """Regression: API Gateway stage names allow [A-Za-z0-9_-]; --stage refused hyphens."""
    result = run("cloudfront", "--stage", stage)
    assert (result.code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["Parameters"]["Stage"]["Default"] == stage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "my stage"], "--stage must be"),
        (["--stage", ""], "--stage must be"),
        (["--stage", "v1/x"], "--stage must be"),
        (["--stage", "A" * 129], "--stage must be"),
        (["--stage", "dev.1"], "--stage must be"),
        (["--static-prefix", "static"], "--static-prefix must be a URL path"),
        (["--static-prefix", "/"], "--static-prefix must be a URL path"),
        (["--static-prefix", "/st atic"], "--static-prefix must be a URL path"),
        (["--static-prefix", "/a//b"], "--static-prefix must be a URL path"),
        (["--static-prefix", "/static/*"], "--static-prefix must be a URL path"),
        (["--price-class", "PriceClass_50"], "invalid choice: 'PriceClass_50'"),
        (["-o", ""], "-o/--output must be a file name"),
        (["--region", "us-east-1"], "unrecognized arguments"),
    ],
)
def test_cloudfront_usage_errors(run, args, message):
    result = run("cloudfront", *args)
    assert (result.code, result.stdout) == (cli.EXIT_USAGE, "")
    assert result.stderr.startswith("usage: cli.py")
    assert message in result.stderr


def test_cloudfront_help(run):
    result = run("cloudfront", "--help")
    assert result.code == 0
    assert "--static-prefix" in result.stdout and "--no-avif" in result.stdout
    assert "4  setup, cloudfront: files already exist" in result.stdout


# ---------------------------------------------------------------------------
# The CloudFront Function under node
# ---------------------------------------------------------------------------

CHROME_IMAGE = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX_IMAGE = "image/avif,image/webp,*/*"
SAFARI_IMAGE = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
CHROME_PAGE = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX_PAGE = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CSS = "text/css,*/*;q=0.1"

#: Accept headers of image requests and the cache-key value the rule gives (no header: None).
IMAGE_ACCEPTS = [
    ("chrome", CHROME_IMAGE, AVIF),
    ("firefox", FIREFOX_IMAGE, AVIF),
    ("safari", SAFARI_IMAGE, WEBP),
    ("curl", "*/*", ANY),
    ("none", None, ANY),
    ("empty", "", ANY),
    ("old-safari", "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5", ANY),
    ("image-star", "image/*", ANY),
    ("webp-higher", "image/webp;q=0.9, image/avif;q=0.5", WEBP),
    ("tie-goes-to-avif", "image/webp;q=0.5,image/avif;q=0.5", AVIF),
    ("avif-q0", "image/avif;q=0,image/webp", WEBP),
    ("both-q0", "image/avif;q=0, image/webp;q=0.0, */*", ANY),
    ("tiny-q", "image/avif;q=0.001", AVIF),
    ("negative-zero", "image/webp;q=-0", ANY),
    ("uppercase", "IMAGE/AVIF;Q=0.4,Image/WebP;q=0.3", AVIF),
    ("spaces", "  image/webp ;  q=0.8 , image/avif\t;\tq = 0.7 ", WEBP),
    ("first-occurrence", "image/avif;q=0.1,image/webp;q=0.5,image/avif;q=1", WEBP),
    ("other-params", "image/webp;level=1;q=0.4,image/avif;q=0.3", WEBP),
    ("malformed-q-drops", "image/avif;q=high,image/webp;q=0.2", WEBP),
    ("q-over-1-drops", "image/avif;q=1.5,image/webp;q=0.2", WEBP),
    ("q-without-value", "image/webp;q", ANY),
    ("empty-elements", ",,image/webp,,;", WEBP),
    ("python-float", "image/webp;q=.5,image/avif;q=5e-2", WEBP),
    ("underscore-digits", "image/avif;q=0.0_1,image/webp;q=1_0", AVIF),
    ("nan", "image/avif;q=nan,image/webp;q=inf", ANY),
    ("jpeg-only", "image/jpeg", ANY),
]


@pytest.fixture(scope="module")
def code() -> str:
    return function_code(cli.cloudfront_template())


def image_headers(accept: str | None) -> dict:
    return {} if accept is None else {"accept": accept}


def test_module_and_function_agree_on_the_table(code):
    results = run_batch(
        code, [("/static/img/hero.png", image_headers(a)) for _, a, _ in IMAGE_ACCEPTS]
    )
    table = [(name, expected) for name, _, expected in IMAGE_ACCEPTS]
    assert [(name, r["accept"]) for (name, _), r in zip(table, results)] == table
    assert [(name, normalise_image_accept(accept)) for name, accept, _ in IMAGE_ACCEPTS] == table


@pytest.mark.parametrize(
    ("uri", "accept", "expected"),
    [
        ("/", CHROME_PAGE, ANY),  # a page: one cache entry for every browser
        ("/", FIREFOX_PAGE, ANY),
        ("/", None, ANY),
        ("/static/css/site.3f2a9c1b7d4e.css", CSS, ANY),
        ("/static/js/app.js", "*/*", ANY),
        ("/static/img/hero.3f2a9c1b7d4e.png", CHROME_PAGE, AVIF),  # image opened directly
        ("/static/img/hero.3f2a9c1b7d4e.png", FIREFOX_PAGE, ANY),
        ("/static/img/photo.JPG", SAFARI_IMAGE, WEBP),
        ("/static/img/photo.jpeg", FIREFOX_IMAGE, AVIF),
        ("/static/img/photo.webp", "*/*", ANY),
        ("/photos/42", CHROME_IMAGE, AVIF),  # no extension: an image Accept says it
        ("/photos/42", SAFARI_IMAGE, WEBP),
        ("/photos/42", " Image/webp;q=0.9", WEBP),
        ("/photos/42", "*/*", ANY),
        ("/static/img.png/", CHROME_PAGE, ANY),  # a directory, not an image
        ("/static/png", CHROME_PAGE, ANY),
    ],
)
def test_function_by_request(code, uri, accept, expected):
    [result] = run_batch(code, [(uri, image_headers(accept))])
    assert result == {"accept": expected}


def test_function_keeps_other_headers_and_joins_repeated_accept(code):
    headers = {"accept": ["image/png", "image/webp;q=0.5"], "x-other": "kept"}
    [result] = run_batch(code, [("/a.png", headers)])
    assert result == {"accept": WEBP, "x-other": "kept"}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (CHROME_IMAGE, WEBP),
        (FIREFOX_IMAGE, WEBP),
        (SAFARI_IMAGE, WEBP),
        ("image/avif", ANY),
        ("image/avif;q=1,image/webp;q=0.5", WEBP),
        ("*/*", ANY),
    ],
)
def test_function_without_avif(accept, expected):
    """--no-avif: the origin cannot write AVIF, so AVIF never counts (two values)."""
    no_avif = function_code(cli.cloudfront_template(avif=False))
    [result] = run_batch(no_avif, [("/a.png", {"accept": accept})])
    assert result == {"accept": expected}


def test_function_image_extensions_are_the_modules():
    """The function treats as images exactly the extensions the module negotiates."""
    negotiated = {ext for ext, media_type in MEDIA_TYPES.items() if media_type in IMAGE_FORMATS}
    assert set(cli.IMAGE_EXTENSIONS) == negotiated


def test_long_lived_function_process(code):
    with ViewerRequestFunction(code) as function:
        assert function("/a.png", {"Accept": CHROME_IMAGE}) == {"accept": AVIF}
        assert function("/a.png", {"Accept": SAFARI_IMAGE}) == {"accept": WEBP}
        assert function("/", {"Accept": CHROME_PAGE}) == {"accept": ANY}


#: Pieces browsers and odd clients put in Accept, including Python-float corner cases.
_TYPES = st.sampled_from(
    ["image/avif", "image/webp", "IMAGE/AVIF", "Image/Webp", "image/*", "*/*", "image/png",
     "image/jpeg", "image/jpg", "text/html", "image/avif+x", "", " ", "image/webp "]
)  # fmt: skip
_QS = st.sampled_from(
    ["1", "0", "0.5", "0.9", ".5", "1.", "1.0", "0.000", "-0", "+0.5", "1e-1", "5E-1", "1_0",
     "0.0_1", "0_.5", "1__0", "", "abc", "nan", "inf", "-inf", "2", "0.5 ", " 0.25", "1e400",
     "1e-400", "0x1"]
)  # fmt: skip
_PARAM = st.one_of(
    st.builds(lambda name, q: f"{name}={q}", st.sampled_from(["q", "Q", " q ", "level"]), _QS),
    st.sampled_from(["q", "", "q=", "=0.5"]),
)
_ELEMENT = st.builds(
    lambda token, params, pad: pad + token + "".join(";" + p for p in params) + pad,
    _TYPES,
    st.lists(_PARAM, max_size=3),
    st.sampled_from(["", " ", "\t", "  "]),
)
_ACCEPT = st.one_of(st.builds(",".join, st.lists(_ELEMENT, max_size=6)), st.text(max_size=40))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ACCEPT, min_size=40, max_size=40))
def test_module_and_function_agree_on_generated_headers(code, accepts):
    results = run_batch(code, [("/i.png", {"accept": accept}) for accept in accepts])
    for accept, result in zip(accepts, results):
        assert result["accept"] == normalise_image_accept(accept), accept


def test_node_is_there():
    """The function tests need node; `make system-deps` installs it where it is missing."""
    assert shutil.which("node") or shutil.which("nodejs")


# ---------------------------------------------------------------------------
# Pages answered at the edge (issue 26): origin time-outs, error caching, the key
# ---------------------------------------------------------------------------


def test_a_hanging_origin_holds_a_page_viewer_at_most_ten_seconds():
    """GET/HEAD: CloudFront retries a read timeout up to the connection attempts."""
    config = cli.cloudfront_template()["Resources"]["Distribution"]["Properties"]
    origins = {o["Id"]: o for o in config["DistributionConfig"]["Origins"]}
    pages, static = origins["chalice-api"], origins["chalice-api-static"]
    page_wait = pages["ConnectionAttempts"] * pages["CustomOriginConfig"]["OriginReadTimeout"]
    assert page_wait == 10
    assert pages["ConnectionAttempts"] * pages["ConnectionTimeout"] <= 10
    # Image conversions keep CloudFront's defaults (30 s, 3 attempts); keep-alive 60 s.
    assert static["CustomOriginConfig"]["OriginReadTimeout"] == 30
    assert static["ConnectionAttempts"] == 3
    for origin in (pages, static):
        assert origin["CustomOriginConfig"]["OriginKeepaliveTimeout"] == 60
    behaviours = config["DistributionConfig"]
    assert behaviours["DefaultCacheBehavior"]["TargetOriginId"] == "chalice-api"
    assert behaviours["CacheBehaviors"][0]["TargetOriginId"] == "chalice-api-static"


def test_no_error_code_that_cloudfront_caches_is_cached():
    config = cli.cloudfront_template()["Resources"]["Distribution"]["Properties"]
    errors = config["DistributionConfig"]["CustomErrorResponses"]
    assert {e["ErrorCode"]: e["ErrorCachingMinTTL"] for e in errors} == dict.fromkeys(
        (400, 403, 404, 405, 414, 500, 501, 502, 503, 504), 0
    )


def test_the_session_cookie_name_is_in_the_page_key(run):
    done = run("cloudfront", "--session-cookie", "sid")
    assert done.code == 0
    resources = json.loads(done.stdout)["Resources"]
    key = resources["PageCachePolicy"]["Properties"]["CachePolicyConfig"]
    cookies = key["ParametersInCacheKeyAndForwardedToOrigin"]["CookiesConfig"]
    assert cookies == {"CookieBehavior": "whitelist", "Cookies": ["sid"]}
    bad = run("cloudfront", "--session-cookie", "a b")
    assert bad.code == 2 and "--session-cookie must be a cookie name" in bad.stderr
