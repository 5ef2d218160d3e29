"""Keep-warm: the schedule invokes the API handler function, whose container primes itself.

The warm-up event goes through the real Lambda entry point, ``app(event, context)``;
the schedule's ``lambda.invoke`` calls go to a real botocore client with a Stubber.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import botocore.session
import pytest
from botocore.stub import Stubber
from chalice import Chalice
from chalice.app import ScheduledEventConfig
from chalice.local import LambdaContext
from chalice.test import Client

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import (
    KEEP_WARM_FUNCTION_ENV,
    ContentManager,
    is_keep_warm_event,
    keep_warm_event,
    register_keep_warm,
)

from apigw import make_event
from sites import TEMPLATES, build_app, write_site

STEPS = ["libmagic", "pillow", "templates", "static"]


class Site:
    """The shared site's app with a keep-warm schedule, called as the Lambda runtime does.

    ``views`` counts the requests that reached a route, by resource path.
    """

    def __init__(self, root: Path, warm: dict | None = None, **options) -> None:
        warm = warm or {}
        self.app, self.cm, _ = build_app(*write_site(root), keep_warm=warm, **options)
        self.keep_warm = self.app.handler_map[warm.get("name", "keep_warm")]
        self.views: Counter[str] = Counter()

        def count(request, get_response):
            if request is not None:  # Chalice passes None for an event it cannot route
                self.views[request.context["resourcePath"]] += 1
            return get_response(request)

        self.app.register_middleware(count, "http")

    def __call__(self, event: dict) -> dict:
        # What the Lambda runtime does: the payload arrives as JSON.
        event = json.loads(json.dumps(event))
        return self.app(event, LambdaContext("site-dev", memory_size=256))


@pytest.fixture
def site(tmp_path) -> Site:
    return Site(tmp_path / "site")


def primed_state(cm: ContentManager) -> dict:
    return {
        "compiled": sorted(key[1] for key in cm.env.cache) if cm._pages._env else [],
        "deps": sorted(cm._pages._template_deps),
        "read": sorted(f.relpath for f in cm.static_files.files.values() if f._body is not None),
    }


# ---------------------------------------------------------------------------
# The warm-up event in the API handler
# ---------------------------------------------------------------------------


def test_warm_up_event_primes_and_answers_before_routing(site):
    assert primed_state(site.cm) == {"compiled": [], "deps": [], "read": []}
    response = site(keep_warm_event())
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["warm"] is True
    assert list(body["prime_ms"]) == STEPS
    assert site.views == Counter()  # no route ran, not even the catch-all 404 routes
    state = primed_state(site.cm)
    assert state["compiled"] == sorted(TEMPLATES)
    assert state["deps"] == sorted(TEMPLATES)
    assert state["read"] == sorted(site.cm.static_files.files)
    assert all(deps.files for deps in site.cm._pages._template_deps.values())


def test_priming_logs_every_step_at_info(site, caplog):
    with caplog.at_level(logging.INFO, logger="chalice_http_toolkit"):
        site(keep_warm_event())
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    for step in STEPS:
        assert any(line.startswith(f"prime: {step}: ") and " ms" in line for line in lines), lines
    assert f"prime: templates: {len(TEMPLATES)} in" in " ".join(lines)


def test_a_broken_template_is_logged_and_the_rest_primed(site, caplog):
    Path(site.cm.templates_dir, "broken.html").write_text("{% if %}")
    Path(site.cm.templates_dir, ".hidden.html").write_text("{% if %}")
    with caplog.at_level(logging.WARNING, logger="chalice_http_toolkit"):
        assert site(keep_warm_event())["statusCode"] == 200
    assert any("broken.html" in r.getMessage() for r in caplog.records)
    assert not any(".hidden.html" in r.getMessage() for r in caplog.records)
    assert primed_state(site.cm)["compiled"] == sorted(TEMPLATES)


def sqs_event() -> dict:
    return {
        "Records": [
            {
                "messageId": "1",
                "body": "hello",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
            }
        ]
    }


def scheduled_event() -> dict:
    return {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"}


def marker_without_gateway_shape() -> dict:
    return {"chalice_http_toolkit_keep_warm": True}


def sentinel_path_without_marker() -> dict:
    event = keep_warm_event()
    del event["chalice_http_toolkit_keep_warm"]
    return event


def marker_with_false() -> dict:
    return {**keep_warm_event(), "chalice_http_toolkit_keep_warm": "yes"}


@pytest.mark.parametrize(
    "make",
    [
        sqs_event,
        scheduled_event,
        marker_without_gateway_shape,
        sentinel_path_without_marker,
        marker_with_false,
    ],
)
def test_other_events_are_not_swallowed(tmp_path, site, make):
    bare = Chalice(app_name="bare")
    expected = bare(make(), LambdaContext("bare-dev", memory_size=256))
    response = site(make())
    assert response["statusCode"] == expected["statusCode"] != 200
    assert json.loads(response["body"]) == json.loads(expected["body"])
    assert primed_state(site.cm) == {"compiled": [], "deps": [], "read": []}
    assert not is_keep_warm_event(make())


def test_a_real_request_carrying_the_marker_is_routed_normally(site):
    event = make_event(site.app, "GET", "/")
    event["chalice_http_toolkit_keep_warm"] = True
    response = site(event)
    assert response["statusCode"] == 200
    assert site.views["/"] == 1
    assert "<h1>Home &lt;&amp;&gt;</h1>" in response["body"]
    assert not is_keep_warm_event(event)


def test_warm_up_event_is_recognised_after_a_json_round_trip():
    event = keep_warm_event()
    assert is_keep_warm_event(event)
    assert is_keep_warm_event(json.loads(json.dumps(event)))
    assert keep_warm_event() is not event  # a fresh dict each time: nobody can mutate ours


# ---------------------------------------------------------------------------
# After priming, a request does no compilation work
# ---------------------------------------------------------------------------


def count_compiles(env) -> list[str]:
    """Names of the templates ``env`` compiles from now on (its real compile, counted)."""
    compiled: list[str] = []
    original_compile = env.compile

    def counting_compile(source, name=None, filename=None, raw=False, defer_init=False):
        compiled.append(name)
        return original_compile(source, name, filename, raw, defer_init)

    env.compile = counting_compile
    return compiled


@pytest.mark.parametrize("auto_reload", [False, True], ids=["deployed", "local"])
def test_first_request_after_priming_compiles_nothing(tmp_path, auto_reload):
    site = Site(tmp_path / "site", auto_reload=auto_reload)
    site(keep_warm_event())
    env = site.cm.env
    compiled = count_compiles(env)
    templates_before = {key: env.cache[key] for key in env.cache}
    deps_before = dict(site.cm._pages._template_deps)
    bodies_before = {f.relpath: f._body for f in site.cm.static_files.files.values()}

    for path in ("/", "/static/css/site.css", "/nowhere"):
        response = site(make_event(site.app, "GET", path))
        assert response["statusCode"] in (200, 404)
    assert site.views["/"] == 1

    assert compiled == []
    assert {key: env.cache[key] for key in env.cache} == templates_before
    assert all(site.cm._pages._template_deps[name] is deps_before[name] for name in deps_before)
    assert {f.relpath: f._body for f in site.cm.static_files.files.values()} == bodies_before


def test_without_priming_the_first_request_compiles(tmp_path):
    """The counterpart of the test above: the spy does see compilation when there is some."""
    site = Site(tmp_path / "site", auto_reload=False)
    env = site.cm.env
    compiled = count_compiles(env)
    site(make_event(site.app, "GET", "/"))
    assert "index.html" in compiled


# ---------------------------------------------------------------------------
# The schedule: registration and the lambda.invoke calls
# ---------------------------------------------------------------------------


def schedules(app: Chalice) -> list[ScheduledEventConfig]:
    return [s for s in app.event_sources if isinstance(s, ScheduledEventConfig)]


def test_schedule_is_registered_with_its_rate_and_a_handler_app_py_can_bind(site, tmp_path):
    (schedule,) = schedules(site.app)
    assert schedule.name == "keep_warm"
    assert schedule.schedule_expression.to_string() == "rate(5 minutes)"
    assert schedule.handler_string == "app.keep_warm"  # Lambda resolves app.<this>
    assert site.app.handler_map["keep_warm"] is site.keep_warm

    other = Site(tmp_path / "other", warm={"rate_minutes": 1, "name": "warmer"})
    (schedule,) = schedules(other.app)
    assert (schedule.name, schedule.handler_string) == ("warmer", "app.warmer")
    assert schedule.schedule_expression.to_string() == "rate(1 minute)"


@pytest.mark.parametrize(
    "options",
    [
        {"rate_minutes": 0},
        {"rate_minutes": 2.5},
        {"invocations": 0},
        {"invocations": True},
        {"name": "keep-warm"},
        {"name": ""},
    ],
)
def test_bad_options_are_refused(site, options):
    app = Chalice(app_name="x")
    with pytest.raises(ValueError):
        register_keep_warm(app, site.cm, **options)
    assert schedules(app) == []


@pytest.fixture
def lambda_client(monkeypatch):
    """A real botocore lambda client behind a Stubber: no network, no credentials needed."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv(KEEP_WARM_FUNCTION_ENV, raising=False)
    client = botocore.session.get_session().create_client("lambda")
    assert client.meta.region_name == "eu-west-1"
    monkeypatch.setattr(toolkit, "_lambda_client", lambda: client)
    with Stubber(client) as stubber:
        yield stubber


def expect_invoke(stubber: Stubber, function_name: str, times: int) -> None:
    payload = json.dumps(keep_warm_event()).encode()
    for _ in range(times):
        stubber.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": function_name, "InvocationType": "Event", "Payload": payload},
        )


def run_schedule(site: Site) -> dict:
    with Client(site.app) as client:
        event = client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        )
        return client.lambda_.invoke("keep_warm", event).payload


def test_schedule_invokes_the_api_handler_derived_from_its_own_name(
    site, lambda_client, monkeypatch
):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "site-prod-keep_warm")
    expect_invoke(lambda_client, "site-prod", 1)
    assert run_schedule(site) == {"function": "site-prod", "invoked": 1}
    lambda_client.assert_no_pending_responses()
    assert site.views == Counter()  # the schedule itself primes nothing and routes nothing
    assert primed_state(site.cm)["compiled"] == []


def test_schedule_invokes_n_times_the_configured_function(tmp_path, lambda_client, monkeypatch):
    site = Site(tmp_path / "site", warm={"invocations": 3})
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "site-prod-keep_warm")
    monkeypatch.setenv(KEEP_WARM_FUNCTION_ENV, "site-ApiHandler-1A2B3C")
    expect_invoke(lambda_client, "site-ApiHandler-1A2B3C", 3)
    assert run_schedule(site) == {"function": "site-ApiHandler-1A2B3C", "invoked": 3}
    lambda_client.assert_no_pending_responses()


def test_explicit_function_name_wins(tmp_path, lambda_client, monkeypatch):
    site = Site(tmp_path / "site", warm={"function_name": "explicit-fn"})
    monkeypatch.setenv(KEEP_WARM_FUNCTION_ENV, "from-env")
    expect_invoke(lambda_client, "explicit-fn", 1)
    assert run_schedule(site)["function"] == "explicit-fn"
    lambda_client.assert_no_pending_responses()


def test_access_denied_is_logged_and_stops(tmp_path, lambda_client, monkeypatch, caplog):
    site = Site(tmp_path / "site", warm={"invocations": 3})
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "site-prod-keep_warm")
    lambda_client.add_client_error("invoke", "AccessDeniedException", http_status_code=403)
    with caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        assert run_schedule(site) == {"function": "site-prod", "invoked": 0}
    lambda_client.assert_no_pending_responses()  # one attempt, not three
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "cannot invoke site-prod" in message and "lambda:InvokeFunction" in message


def test_no_derivable_name_is_logged_and_invokes_nothing(site, lambda_client, monkeypatch, caplog):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mystack-KeepWarm-1X2Y3Z")
    with caplog.at_level(logging.ERROR, logger="chalice_http_toolkit"):
        assert run_schedule(site) == {"function": None, "invoked": 0}
    assert KEEP_WARM_FUNCTION_ENV in " ".join(r.getMessage() for r in caplog.records)


def test_the_schedule_payload_is_what_the_api_handler_recognises(site, lambda_client, monkeypatch):
    """End to end: what the schedule sends primes the API handler."""
    sent: list[bytes] = []
    lambda_client.client.meta.events.register(
        "provide-client-params.lambda.Invoke", lambda params, **_: sent.append(params["Payload"])
    )
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "site-dev-keep_warm")
    expect_invoke(lambda_client, "site-dev", 1)
    run_schedule(site)
    (payload,) = sent
    response = site(json.loads(payload))
    assert response["statusCode"] == 200
    assert primed_state(site.cm)["compiled"] == sorted(TEMPLATES)


# ---------------------------------------------------------------------------
# How the schedule learns the API handler's name
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_name", "function_name", "environ", "expected"),
    [
        ("keep_warm", None, {"AWS_LAMBDA_FUNCTION_NAME": "site-dev-keep_warm"}, "site-dev"),
        ("keep_warm", None, {"AWS_LAMBDA_FUNCTION_NAME": "my-app-prod-keep_warm"}, "my-app-prod"),
        ("warmer", None, {"AWS_LAMBDA_FUNCTION_NAME": "site-dev-warmer"}, "site-dev"),
        ("warmer", None, {"AWS_LAMBDA_FUNCTION_NAME": "site-dev-keep_warm"}, None),
        ("keep_warm", None, {"AWS_LAMBDA_FUNCTION_NAME": "-keep_warm"}, None),
        ("keep_warm", None, {"AWS_LAMBDA_FUNCTION_NAME": "stack-KeepWarm-ABC123"}, None),
        ("keep_warm", None, {}, None),
        (
            "keep_warm",
            None,
            {KEEP_WARM_FUNCTION_ENV: "api-fn", "AWS_LAMBDA_FUNCTION_NAME": "site-dev-keep_warm"},
            "api-fn",
        ),
        ("keep_warm", None, {KEEP_WARM_FUNCTION_ENV: ""}, None),
        ("keep_warm", "explicit", {KEEP_WARM_FUNCTION_ENV: "api-fn"}, "explicit"),
        (
            "keep_warm",
            "arn:aws:lambda:eu-west-1:123456789012:function:site-dev",
            {},
            "arn:aws:lambda:eu-west-1:123456789012:function:site-dev",
        ),
    ],
)
def test_api_function_name(schedule_name, function_name, environ, expected):
    assert toolkit._api_function_name(schedule_name, function_name, environ) == expected


def test_derivation_matches_chalices_deployer_naming(tmp_path):
    """Chalice's app graph names the API handler ``{app}-{stage}``, a schedule ``…-{name}``."""
    from chalice.config import Config
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    site = Site(tmp_path / "site")
    config = Config.create(
        chalice_stage="prod", app_name="my-site", project_dir=str(tmp_path), chalice_app=site.app
    )
    pending = [ApplicationGraphBuilder().build(config, "prod")]
    functions = {}
    while pending:
        resource = pending.pop()
        if isinstance(resource, models.LambdaFunction):
            functions[resource.resource_name] = resource.function_name
        pending.extend(resource.dependencies())
    assert functions["api_handler"] == "my-site-prod"
    derived = toolkit._api_function_name(
        "keep_warm", None, {"AWS_LAMBDA_FUNCTION_NAME": functions["keep_warm"]}
    )
    assert derived == functions["api_handler"]
