"""Background tasks: 0.6.2's TaskingControllerFactory, in-process locally and on SQS.

The SQS side talks to moto's standalone server (a real SQS-API server on 127.0.0.1,
started here on a free port); the Lambda side is Chalice's own handler, invoked with
the SQS event Lambda's poller builds from the messages received. No test reaches AWS.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice import Chalice
from chalice.app import SQSRecord
from chalice.test import Client

import chalice_http_toolkit as toolkit
from chalice_http_toolkit import (
    SQS_MESSAGE_LIMIT,
    TaskBatchError,
    TaskingController,
    TaskingControllerFactory,
    TaskQueueError,
    task_mode,
)

from localserver import offline_env, stop, wait_until_serving

REGION = "eu-west-1"
_AWS_ENV = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    toolkit.TASKS_MODE_ENV,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch, tmp_path):
    """No ambient AWS configuration: local mode unless a test configures an endpoint."""
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def fake_credentials(monkeypatch, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def site_app(tasks: TaskingController, seen: list, *, batch_size: int = 1) -> Chalice:
    """An app whose contact form posts a task, and whose task handler records its records."""
    app = Chalice(app_name="site")

    @app.route("/contact", methods=["POST"])
    def contact():
        answer = tasks.post(
            json.dumps({"to": "owner@example.com", "text": app.current_request.raw_body.decode()}),
            {"kind": "email"},
        )
        return {"queued": answer["MessageId"]}

    @tasks.handler
    def send_email(record: SQSRecord) -> None:
        task = json.loads(record.body)
        if task.get("fail"):
            raise ValueError(f"cannot send {task['fail']}")
        seen.append(record)

    tasks.register_handler(app, batch_size=batch_size)
    return app


# ---------------------------------------------------------------------------
# The API: 0.6.2's names, no AWS at construction, the mode
# ---------------------------------------------------------------------------


def test_factory_keeps_0_6_2_names_and_makes_no_aws_call(monkeypatch):
    # 0.6.2 called SQS (in us-east-2) in its constructor: an unreachable endpoint and no
    # region or credentials must not matter until a post.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    assert isinstance(tasks, TaskingController)
    assert tasks.handler_name == "on_message_site_tasks_fifo"
    for name in ("register_handler", "set_message_handler", "post"):
        assert callable(getattr(tasks, name))
    assert tasks._queue_urls == {}


@pytest.mark.parametrize(
    ("queue_name", "group"),
    [
        ("", "g"),
        ("has space.fifo", "g"),
        ("x" * 81, "g"),
        ("x" * 76 + ".fifo", "g"),
        ("q.fifo.fifo", "g"),
        (None, "g"),
        ("q.fifo", ""),
        ("q.fifo", "é"),
        ("q.fifo", "g" * 129),
        ("q.fifo", 7),
    ],
)
def test_factory_refuses_names_sqs_refuses(queue_name, group):
    with pytest.raises(ValueError, match=r"queue_name|message_group_id"):
        TaskingControllerFactory(queue_name, group)


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "local"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "site-prod-worker"}, "sqs"),
        ({"AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9324"}, "sqs"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "sqs"),
        ({"AWS_ENDPOINT_URL_SQS": ""}, "local"),
        ({"STAGE": "dev"}, "local"),  # 0.6.2's switch means nothing here
        ({"STAGE": "prod"}, "local"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f", toolkit.TASKS_MODE_ENV: "local"}, "local"),
        ({toolkit.TASKS_MODE_ENV: "sqs"}, "sqs"),
    ],
)
def test_task_mode(env, mode):
    assert task_mode(env) == mode


def test_task_mode_refuses_unknown_override():
    with pytest.raises(ValueError, match="CHALICE_HTTP_TOOLKIT_TASKS"):
        task_mode({toolkit.TASKS_MODE_ENV: "dev"})


@pytest.mark.parametrize("batch_size", [0, 11, -1, True, 2.0, "5"])
def test_register_handler_checks_batch_size(batch_size):
    tasks = TaskingControllerFactory("q.fifo", "g")
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        tasks.register_handler(Chalice(app_name="a"), batch_size=batch_size)


def test_register_handler_twice_is_an_error():
    tasks = TaskingControllerFactory("q.fifo", "g")
    app = Chalice(app_name="a")
    tasks.register_handler(app)
    with pytest.raises(RuntimeError, match="twice"):
        tasks.register_handler(app)


def test_set_message_handler_needs_a_callable():
    with pytest.raises(TypeError, match="callable"):
        TaskingControllerFactory("q.fifo", "g").set_message_handler("send_email")


def test_register_handler_binds_the_lambda_handler_in_the_app_module(monkeypatch):
    # Chalice's handler string is "app.<name>": Lambda imports app.py and looks the name up
    # there (0.6.2 set it on the Chalice object, where Lambda never looks).
    module = types.ModuleType("app")
    module.app = app = Chalice(app_name="site")
    monkeypatch.setitem(sys.modules, "app", module)
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    wrapped = tasks.register_handler(app)
    assert module.on_message_site_tasks_fifo is wrapped
    assert app.handler_map["on_message_site_tasks_fifo"] is wrapped
    [source] = app.event_sources
    assert (source.handler_string, source.queue, source.batch_size) == (
        "app.on_message_site_tasks_fifo",
        "site-tasks.fifo",
        1,
    )
    other = TaskingControllerFactory("other.fifo", "site")
    module.worker = object()
    with pytest.raises(RuntimeError, match="already has a 'worker'"):
        other.register_handler(app, name="worker")


# ---------------------------------------------------------------------------
# Local mode: post() runs the real handler with Lambda's record shape
# ---------------------------------------------------------------------------


def test_local_post_runs_the_handler_with_lambdas_record_shape():
    seen: list[SQSRecord] = []
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    site_app(tasks, seen)
    answer = tasks.post(
        '{"to": "a@example.com"}',
        {
            "kind": "email",
            "tries": 3,
            "blob": b"\x00\xff",
            "custom": {"DataType": "String.email", "StringValue": "x"},
        },
        deduplication_id="contact-1",
    )
    [record] = seen
    assert isinstance(record, SQSRecord)
    assert record.body == '{"to": "a@example.com"}'
    raw = record.to_dict()
    assert raw["messageId"] == answer["MessageId"]
    assert raw["md5OfBody"] == hashlib.md5(b'{"to": "a@example.com"}').hexdigest()
    assert answer["MD5OfMessageBody"] == raw["md5OfBody"]
    assert raw["eventSource"] == "aws:sqs"
    assert raw["eventSourceARN"].endswith(":site-tasks.fifo")
    assert raw["attributes"]["MessageGroupId"] == "site"
    assert raw["attributes"]["MessageDeduplicationId"] == "contact-1"
    assert raw["attributes"]["ApproximateReceiveCount"] == "1"
    assert raw["messageAttributes"] == {
        "kind": {
            "stringValue": "email",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "tries": {
            "stringValue": "3",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Number",
        },
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\xff").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
        "custom": {
            "stringValue": "x",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String.email",
        },
    }


def test_contact_form_posts_through_chalice_test_client():
    seen: list[SQSRecord] = []
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    app = site_app(tasks, seen)
    with Client(app) as client:
        response = client.http.post("/contact", body=b"Hello there")
    assert response.status_code == 200
    [record] = seen
    assert json.loads(record.body) == {"to": "owner@example.com", "text": "Hello there"}
    assert response.json_body == {"queued": record.to_dict()["messageId"]}


def test_local_handler_exception_is_logged_and_raised_from_post(caplog):
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    site_app(tasks, [])
    with (
        caplog.at_level(logging.ERROR, "chalice_http_toolkit"),
        pytest.raises(ValueError, match=r"cannot send x@example\.com"),
    ):
        tasks.post(json.dumps({"fail": "x@example.com"}))
    assert "task queue site-tasks.fifo: message" in caplog.text
    assert "ValueError: cannot send x@example.com" in caplog.text  # the traceback is logged


def test_local_post_without_a_registered_handler_is_an_error():
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    tasks.set_message_handler(lambda record: None)
    with pytest.raises(RuntimeError, match=r"'site-tasks.fifo'.*register_handler"):
        tasks.post("hello")


def test_local_post_without_a_message_handler_is_an_error():
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    tasks.register_handler(Chalice(app_name="a"))
    with pytest.raises(RuntimeError, match=r"'site-tasks.fifo'.*no message handler"):
        tasks.post("hello")


def test_set_message_handler_0_6_2_style():
    seen = []
    tasks = TaskingControllerFactory("plain-queue", "unused")
    tasks.register_handler(Chalice(app_name="a"))
    tasks.set_message_handler(lambda record: seen.append(record.body))
    tasks.post("one")
    tasks.post("two")
    assert seen == ["one", "two"]


def test_a_task_may_post_another_task():
    order = []
    tasks = TaskingControllerFactory("chain.fifo", "g")
    tasks.register_handler(Chalice(app_name="a"))

    @tasks.handler
    def step(record):
        order.append(record.body)
        if record.body == "first":
            tasks.post("second")

    tasks.post("first")
    assert order == ["first", "second"]


def test_a_task_that_fails_after_posting_another_raises_its_own_error():
    tasks = TaskingControllerFactory("chain.fifo", "g")
    tasks.register_handler(Chalice(app_name="a"))

    @tasks.handler
    def step(record):
        if record.body == "first":
            tasks.post("second")
            raise LookupError("first failed after posting")

    with pytest.raises(LookupError, match="first failed after posting"):
        tasks.post("first")


# ---------------------------------------------------------------------------
# Bad messages: refused the same way in both modes, before anything is sent
# ---------------------------------------------------------------------------

BAD_MESSAGES = [
    ({"message_body": {"to": "a"}}, TypeError, "must be a str"),
    ({"message_body": b"bytes"}, TypeError, "must be a str"),
    ({"message_body": ""}, ValueError, "empty"),
    ({"message_body": "nul \x00 here"}, ValueError, "a character SQS refuses"),
    ({"message_body": "x" * (SQS_MESSAGE_LIMIT + 1)}, ValueError, "over SQS's 262144"),
    ({"message_body": "é" * (SQS_MESSAGE_LIMIT // 2 + 1)}, ValueError, "over SQS's"),
    (
        {"message_body": "x" * (SQS_MESSAGE_LIMIT - 10), "message_attributes": {"kind": "email"}},
        ValueError,
        "262149 bytes",
    ),
    ({"message_attributes": {"flag": True}}, TypeError, "'flag': a bool"),
    ({"message_attributes": {"list": ["a"]}}, TypeError, "'list': list is not"),
    ({"message_attributes": {"none": None}}, TypeError, "'none': NoneType is not"),
    ({"message_attributes": {"empty": ""}}, TypeError, "non-empty str"),
    ({"message_attributes": {"d": {"StringValue": "x"}}}, ValueError, "DataType"),
    ({"message_attributes": {"d": {"DataType": "Text", "StringValue": "x"}}}, ValueError, "Text"),
    (
        {"message_attributes": {"n": {"DataType": "Number", "StringValue": "ten"}}},
        ValueError,
        "'ten' is not a Number",
    ),
    (
        {"message_attributes": {"b": {"DataType": "Binary", "StringValue": "x"}}},
        TypeError,
        "needs non-empty bytes",
    ),
    ({"message_attributes": {"AWS.trace": "x"}}, ValueError, "AWS./Amazon. prefix"),
    ({"message_attributes": {"a..b": "x"}}, ValueError, "double period"),
    ({"message_attributes": {"with space": "x"}}, ValueError, "1-256 of"),
    ({"message_attributes": {3: "x"}}, TypeError, "name must be a str"),
    ({"message_attributes": {f"a{i}": "x" for i in range(11)}}, ValueError, "SQS allows 10"),
    ({"message_attributes": [("kind", "email")]}, TypeError, "must be a dict"),
    ({"deduplication_id": "é"}, ValueError, "deduplication_id"),
    ({"group_id": ""}, ValueError, "group_id"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_MESSAGES)
@pytest.mark.parametrize("mode", ["local", "sqs"])
def test_bad_messages_are_refused_naming_the_queue(monkeypatch, caplog, mode, kwargs, error, match):
    # In queue mode the endpoint is a closed port: a message that reached it would give
    # TaskQueueError, so the error here proves it was refused before sending.
    fake_credentials(monkeypatch, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(toolkit.TASKS_MODE_ENV, mode)
    seen: list = []
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    site_app(tasks, seen)
    kwargs = {"message_body": "hello", **kwargs}
    with (
        caplog.at_level(logging.ERROR, "chalice_http_toolkit"),
        pytest.raises(error, match=match) as raised,
    ):
        tasks.post(**kwargs)
    assert "'site-tasks.fifo'" in str(raised.value)
    assert f"task not posted: {raised.value}" in caplog.text
    assert seen == []


def test_a_message_at_the_limit_is_accepted():
    seen: list = []
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    tasks.register_handler(Chalice(app_name="a"))
    tasks.set_message_handler(seen.append)
    body = "x" * (SQS_MESSAGE_LIMIT - len("kind") - len("String") - len("email"))
    tasks.post(body, {"kind": "email"})
    assert len(seen) == 1


# ---------------------------------------------------------------------------
# The Lambda side: batches, partial failures, FIFO groups
# ---------------------------------------------------------------------------


def sqs_record(body: str, message_id: str, group: str | None) -> dict:
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "s"}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:site-tasks.fifo",
        "awsRegion": REGION,
    }


def invoke(app: Chalice, name: str, records: list[dict]):
    with Client(app) as client:
        return client.lambda_.invoke(name, {"Records": records}).payload


def test_batch_reports_only_failed_messages_and_the_rest_of_their_group(caplog):
    seen: list[SQSRecord] = []
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    app = site_app(tasks, seen, batch_size=10)
    records = [
        sqs_record('{"n": 1}', "m1", "a"),
        sqs_record('{"fail": "m2"}', "m2", "a"),
        sqs_record('{"n": 3}', "m3", "b"),
        sqs_record('{"n": 4}', "m4", "a"),  # after m2 in group a: not run, comes back after it
        sqs_record('{"n": 5}', "m5", "b"),
    ]
    with caplog.at_level(logging.WARNING, "chalice_http_toolkit"):
        payload = invoke(app, tasks.handler_name, records)
    assert payload == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m4"}]}
    assert [record.to_dict()["messageId"] for record in seen] == ["m1", "m3", "m5"]
    assert "message m2 failed" in caplog.text
    assert "message m4 not run: an earlier message of group a failed" in caplog.text


def test_standard_queue_batch_fails_only_the_failed_message():
    seen: list[SQSRecord] = []
    tasks = TaskingControllerFactory("site-tasks", "unused")
    app = site_app(tasks, seen, batch_size=10)
    records = [sqs_record('{"fail": "m1"}', "m1", None)] + [
        sqs_record(json.dumps({"n": n}), f"m{n}", None) for n in (2, 3)
    ]
    payload = invoke(app, tasks.handler_name, records)
    assert payload == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert len(seen) == 2


def test_batch_without_failures_reports_none():
    seen: list[SQSRecord] = []
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    app = site_app(tasks, seen, batch_size=10)
    records = [sqs_record(json.dumps({"n": n}), f"m{n}", "a") for n in range(3)]
    assert invoke(app, tasks.handler_name, records) == {"batchItemFailures": []}
    assert len(seen) == 3


def test_batch_whose_every_message_failed_raises_so_lambda_retries_it():
    # A raise retries the batch whether or not the mapping has ReportBatchItemFailures
    # (`chalice deploy` does not set it); a batchItemFailures answer without it is ignored.
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    app = site_app(tasks, [])
    with pytest.raises(TaskBatchError, match=r"'site-tasks\.fifo': 1 message") as raised:
        invoke(app, tasks.handler_name, [sqs_record('{"fail": "m1"}', "m1", "a")])
    assert raised.value.message_ids == ["m1"]
    assert isinstance(raised.value.__cause__, ValueError)


# ---------------------------------------------------------------------------
# Queue mode against moto's SQS-API server on 127.0.0.1
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory) -> Iterator[str]:
    """moto's standalone server on a free loopback port, for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def sqs(sqs_server, monkeypatch):
    """A boto3 SQS client on the server, with the environment that puts tasks in queue mode."""
    import boto3

    fake_credentials(monkeypatch, sqs_server)
    return boto3.client("sqs", endpoint_url=sqs_server, region_name=REGION)


def fifo_queue(sqs, prefix: str = "tasks") -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}.fifo"
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    return name, url


def receive_all(sqs, url: str, expected: int) -> list[dict]:
    messages: list[dict] = []
    for _ in range(20):
        answer = sqs.receive_message(
            QueueUrl=url,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
        )
        messages += answer.get("Messages", [])
        if len(messages) >= expected:
            break
    return messages


def lambda_event(messages: list[dict], queue_name: str) -> dict:
    """The SQS event Lambda's poller gives a function for the ``messages`` it received."""
    records = []
    for message in messages:
        attributes = {}
        for name, value in message.get("MessageAttributes", {}).items():
            entry = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
            if "BinaryValue" in value:
                entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            else:
                entry["stringValue"] = value["StringValue"]
            attributes[name] = entry
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": attributes,
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{queue_name}",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def test_post_round_trip_through_the_sqs_server(sqs):
    name, url = fifo_queue(sqs)
    tasks = TaskingControllerFactory(name, "contact")
    answer = tasks.post(
        '{"to": "owner@example.com"}',
        {"kind": "email", "tries": 3, "blob": b"\x00\x01"},
        deduplication_id="form-42",
    )
    [message] = receive_all(sqs, url, 1)
    assert message["MessageId"] == answer["MessageId"]
    assert message["Body"] == '{"to": "owner@example.com"}'
    assert message["Attributes"]["MessageGroupId"] == "contact"
    assert message["Attributes"]["MessageDeduplicationId"] == "form-42"
    assert message["MessageAttributes"] == {
        "kind": {"StringValue": "email", "DataType": "String"},
        "tries": {"StringValue": "3", "DataType": "Number"},
        "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
    }


def test_fifo_order_within_a_group_and_group_override(sqs):
    name, url = fifo_queue(sqs)
    tasks = TaskingControllerFactory(name, "site")
    for n in range(6):
        tasks.post(json.dumps({"n": n}))
    tasks.post("other group", group_id="reports")
    messages = receive_all(sqs, url, 7)
    in_site = [
        json.loads(message["Body"])["n"]
        for message in messages
        if message["Attributes"]["MessageGroupId"] == "site"
    ]
    assert in_site == list(range(6))
    [other] = [m for m in messages if m["Attributes"]["MessageGroupId"] == "reports"]
    assert other["Body"] == "other group"
    dedup_ids = {m["Attributes"]["MessageDeduplicationId"] for m in messages}
    assert len(dedup_ids) == 7  # a fresh deduplication id per post


def test_same_deduplication_id_is_delivered_once(sqs):
    name, url = fifo_queue(sqs)
    tasks = TaskingControllerFactory(name, "site")
    tasks.post("charge order 7", deduplication_id="order-7")
    tasks.post("charge order 7", deduplication_id="order-7")
    assert [m["Body"] for m in receive_all(sqs, url, 2)] == ["charge order 7"]


def test_standard_queue_gets_no_group_or_deduplication_id(sqs):
    name = f"plain-{uuid.uuid4().hex[:12]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    TaskingControllerFactory(name, "unused").post("hello")
    [message] = receive_all(sqs, url, 1)
    assert message["Body"] == "hello"
    assert "MessageGroupId" not in message["Attributes"]


def test_queue_url_is_looked_up_once_per_container(sqs, sqs_server):
    name, _ = fifo_queue(sqs)
    lookups = []
    client = toolkit._sqs_client(REGION, sqs_server)
    client.meta.events.register("before-call.sqs.GetQueueUrl", lambda **kw: lookups.append(1))
    try:
        tasks = TaskingControllerFactory(name, "site")
        for n in range(3):
            tasks.post(f"m{n}")
    finally:
        client.meta.events.unregister("before-call.sqs.GetQueueUrl")
    assert len(lookups) == 1


def test_received_batch_runs_the_handler_and_fails_only_the_bad_message(sqs):
    # Lambda's poller, modelled: receive a batch, invoke the function, delete what it did
    # not report failed; the failed message comes back alone.
    name, url = fifo_queue(sqs)
    seen: list[SQSRecord] = []
    tasks = TaskingControllerFactory(name, "site")
    app = site_app(tasks, seen, batch_size=10)
    tasks.post(json.dumps({"n": 1}), {"kind": "email"})
    tasks.post(json.dumps({"fail": "n2"}), {"kind": "email"})
    tasks.post(json.dumps({"n": 3}), {"kind": "email"}, group_id="other")
    messages = receive_all(sqs, url, 3)
    assert len(messages) == 3
    payload = invoke(app, tasks.handler_name, lambda_event(messages, name)["Records"])
    failed = {item["itemIdentifier"] for item in payload["batchItemFailures"]}
    [bad] = [m for m in messages if "fail" in json.loads(m["Body"])]
    assert failed == {bad["MessageId"]}
    assert sorted(json.loads(record.body)["n"] for record in seen) == [1, 3]
    assert {record.to_dict()["messageAttributes"]["kind"]["stringValue"] for record in seen} == {
        "email"
    }
    for message in messages:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    [again] = receive_all(sqs, url, 1)
    assert again["MessageId"] == bad["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_queue_that_does_not_exist(sqs, caplog):
    tasks = TaskingControllerFactory(f"missing-{uuid.uuid4().hex[:8]}.fifo", "site")
    with (
        caplog.at_level(logging.ERROR, "chalice_http_toolkit"),
        pytest.raises(TaskQueueError, match="no such queue") as raised,
    ):
        tasks.post("hello")
    assert raised.value.cause == "no-such-queue"
    assert tasks.queue_name in str(raised.value)
    assert f"task not posted: {raised.value}" in caplog.text


def test_queue_created_after_a_failed_post_is_found(sqs):
    name = f"later-{uuid.uuid4().hex[:8]}.fifo"
    tasks = TaskingControllerFactory(name, "site")
    with pytest.raises(TaskQueueError):
        tasks.post("too early")
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    tasks.post("in time")
    assert [m["Body"] for m in receive_all(sqs, url, 1)] == ["in time"]


def test_sqs_unreachable(monkeypatch, caplog):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    fake_credentials(monkeypatch, endpoint)
    tasks = TaskingControllerFactory("site-tasks.fifo", "site")
    with (
        caplog.at_level(logging.ERROR, "chalice_http_toolkit"),
        pytest.raises(TaskQueueError, match=f"cannot reach {endpoint}") as raised,
    ):
        tasks.post("hello")
    assert raised.value.cause == "unreachable"
    assert "'site-tasks.fifo'" in str(raised.value)
    assert "task not posted" in caplog.text


def test_no_region_is_a_clear_error(monkeypatch):
    fake_credentials(monkeypatch, f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(TaskQueueError, match="AWS_REGION") as raised:
        TaskingControllerFactory("site-tasks.fifo", "site").post("hello")
    assert raised.value.cause == "no-region"


def test_region_comes_from_aws_region(sqs, sqs_server, monkeypatch):
    # Lambda sets AWS_REGION; moto keeps queues per region, so the queue is found only there.
    import boto3

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    there = boto3.client("sqs", endpoint_url=sqs_server, region_name="ap-southeast-2")
    name, url = fifo_queue(there)
    TaskingControllerFactory(name, "site").post("hello")
    assert [m["Body"] for m in receive_all(there, url, 1)] == ["hello"]


class ThrottlingSQS(http.server.BaseHTTPRequestHandler):
    """Answers every SQS JSON-protocol call as SQS answers when it throttles."""

    requests: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append(self.headers.get("X-Amz-Target", ""))
        body = json.dumps(
            {"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Rate exceeded"}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_throttling_is_retried_then_a_clear_error(monkeypatch, caplog):
    # moto's server does not throttle SQS, so a loopback server answers like SQS does
    # when it throttles; botocore's retries and parsing are the real ones.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ThrottlingSQS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ThrottlingSQS.requests = []
    try:
        fake_credentials(monkeypatch, f"http://127.0.0.1:{server.server_port}")
        tasks = TaskingControllerFactory("site-tasks.fifo", "site")
        with (
            caplog.at_level(logging.ERROR, "chalice_http_toolkit"),
            pytest.raises(TaskQueueError, match="throttled by") as raised,
        ):
            tasks.post("hello")
    finally:
        server.shutdown()
        server.server_close()
    assert raised.value.cause == "throttled"
    assert "'site-tasks.fifo'" in str(raised.value)
    assert ThrottlingSQS.requests == ["AmazonSQS.GetQueueUrl"] * 3  # botocore retried
    assert "task not posted" in caplog.text


def test_readme_example_runs(tmp_path, monkeypatch, caplog):
    """The contact form of docs/tasks.md, as written, posts a task that runs locally."""
    section = (Path(toolkit.__file__).parent / "docs" / "tasks.md").read_text()
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    (tmp_path / "chalicelib").mkdir()
    (tmp_path / "chalicelib" / "__init__.py").write_text("")
    (tmp_path / "chalicelib" / "chalice_http_toolkit.py").write_text(
        Path(toolkit.__file__).read_text()
    )
    (tmp_path / "app.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n == "app" or n.split(".")[0] == "chalicelib"]:
        monkeypatch.delitem(sys.modules, name)
    import app as readme_app

    readme_app.app.log.addHandler(caplog.handler)  # Chalice's app.log does not propagate
    try:
        with caplog.at_level(logging.INFO, "mysite"), Client(readme_app.app) as client:
            response = client.http.post(
                "/contact",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                body=b"message=Hi%21",
            )
    finally:
        readme_app.app.log.removeHandler(caplog.handler)
        for name in [n for n in sys.modules if n == "app" or n.split(".")[0] == "chalicelib"]:
            del sys.modules[name]
    assert response.status_code == 200, response.body
    assert "emailing owner@example.com" in caplog.text
    [record] = [r for r in caplog.records if r.name == "mysite"]
    assert "'stringValue': 'email'" in record.getMessage()
    assert readme_app.task_worker is readme_app.app.handler_map["task_worker"]


def readme_project(root: Path) -> Path:
    """A project whose app.py is docs/tasks.md's example, plus a route posting a broken task."""
    section = (Path(toolkit.__file__).parent / "docs" / "tasks.md").read_text()
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    code += (
        "\n\napp.log.setLevel('INFO')\nFORM = 'application/x-www-form-urlencoded'\n\n\n"
        '@app.route("/broken", methods=["POST"], content_types=[FORM])\n'
        "def broken():\n"
        '    tasks.post(json.dumps({"text": "no address"}))  # send_email: KeyError\n'
        '    return {"queued": True}\n'
    )
    (root / "chalicelib").mkdir(parents=True)
    (root / "chalicelib" / "__init__.py").write_text("")
    (root / "chalicelib" / "chalice_http_toolkit.py").write_text(Path(toolkit.__file__).read_text())
    (root / ".chalice").mkdir()
    (root / ".chalice" / "config.json").write_text(
        json.dumps({"version": "2.0", "app_name": "mysite", "stages": {"dev": {}}})
    )
    (root / "app.py").write_text(code)
    return root


def test_chalice_local_runs_the_task_in_process(tmp_path):
    project = readme_project(tmp_path / "mysite")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "chalice-local.log"
    chalice = Path(sys.executable).parent / "chalice"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(chalice), "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=offline_env(no_proxy="127.0.0.1", NO_PROXY="127.0.0.1"),
        )
        try:
            wait_until_serving(base + "/contact", process, log_path)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            request = urllib.request.Request(
                base + "/contact", data=b"message=Hello", method="POST"
            )
            with opener.open(request, timeout=10) as response:
                queued = json.loads(response.read())
            broken = urllib.request.Request(base + "/broken", data=b"", method="POST")
            with pytest.raises(urllib.error.HTTPError) as failed:
                opener.open(broken, timeout=10)
            failed.value.close()
        finally:
            stop(process)
    output = log_path.read_text()
    assert "emailing owner@example.com" in output
    assert queued["queued"]
    assert failed.value.code == 500  # the task's KeyError, raised from post()
    assert "KeyError: 'to'" in output
