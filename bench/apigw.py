"""A model of API Gateway REST (Lambda proxy integration) for tests.

`make_event` builds the proxy event API Gateway sends; `deliver` turns the
handler's return value into what the client receives:

- The Lambda runtime serialises the result with the real runtime client's
  marshaller (``awslambdaric.lambda_runtime_marshaller``: simplejson, with
  ``AWS_EXECUTION_ENV`` set for this Python as Lambda sets it, which switches
  ``ensure_ascii`` off from python3.12 on). A ``bytes`` body is decoded as UTF-8
  by simplejson; only a result it cannot serialise (non-UTF-8 bytes, an object)
  fails with ``Runtime.MarshalError``, and API Gateway answers 502.
- The payload limit is counted in bytes of the serialised (UTF-8) response: the
  Lambda Runtime Interface Emulator refuses more than ``LAMBDA_PAYLOAD_LIMIT``
  bytes (tests/test_lambda_runtime.py checks the boundary against it) -> 502.
- API Gateway's base64 decision is a model of AWS's documented rule ("Binary
  media types for REST APIs in API Gateway", API Gateway Developer Guide: "API
  Gateway uses the first Accept header from clients to determine if a response
  should return binary media"): a base64 body (``isBase64Encoded``) is decoded
  only when the FIRST media type of the request's ``Accept`` header matches an
  entry of binaryMediaTypes (``type/*`` and ``*/*`` wildcards allowed); a request
  without ``Accept`` matches only a ``*/*`` entry. Otherwise the client receives
  the base64 text itself.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import uuid
from typing import Any, NamedTuple

from awslambdaric.lambda_runtime_exception import FaultException
from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller
from chalice.local import LambdaContext, RouteMatcher

# The emulator's limit on a response payload (6 MiB + 100 bytes), in bytes of UTF-8 JSON.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024 + 100
# What Lambda sets for this Python (awslambdaric reads it to choose ensure_ascii).
EXECUTION_ENV = f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
GATEWAY_ERROR = b'{"message": "Internal server error"}'


def _lambda_marshaller() -> LambdaMarshaller:
    """awslambdaric's marshaller as Lambda builds it, without leaving AWS_EXECUTION_ENV set."""
    saved = os.environ.get("AWS_EXECUTION_ENV")
    os.environ["AWS_EXECUTION_ENV"] = EXECUTION_ENV
    try:
        return LambdaMarshaller()
    finally:
        if saved is None:
            del os.environ["AWS_EXECUTION_ENV"]
        else:
            os.environ["AWS_EXECUTION_ENV"] = saved


MARSHALLER = _lambda_marshaller()


class MarshalError(Exception):
    """The runtime client could not serialise the result, or it is over the payload limit."""


def lambda_payload(result: Any) -> bytes:
    """The bytes the runtime client posts for ``result`` (raises `MarshalError` as Lambda fails)."""
    try:
        payload, _ = MARSHALLER.marshal_response(result)
    except FaultException as error:
        raise MarshalError(f"{error.exception_type}: {error.msg}") from error
    data = payload if isinstance(payload, bytes) else payload.encode("utf-8")
    if len(data) > LAMBDA_PAYLOAD_LIMIT:
        raise MarshalError(f"response payload of {len(data)} bytes over {LAMBDA_PAYLOAD_LIMIT}")
    return data


class Delivered(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def make_event(app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> dict:
    """An API Gateway REST proxy event for ``path``, routed with Chalice's own matcher."""
    match = RouteMatcher(list(app.routes)).match_route(path)
    all_headers = {
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
    }
    all_headers.update(headers or {})
    query = {key: values for key, values in match.query_params.items()} or None
    return {
        "resource": match.route,
        "path": path.split("?")[0],
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": match.captured or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": match.route,
            "httpMethod": method,
            "path": "/api" + path.split("?")[0],
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "198.51.100.7"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def lambda_context(name: str = "site-dev") -> LambdaContext:
    return LambdaContext(function_name=name, memory_size=256, max_runtime_ms=30000)


def _first_media_type(accept: str | None) -> str | None:
    if accept is None:
        return None
    return accept.split(",")[0].split(";")[0].strip().lower()


def _matches(media_type: str | None, binary_media_types: list[str]) -> bool:
    for entry in binary_media_types:
        entry = entry.lower()
        if entry == "*/*":
            return True
        if media_type is None:
            continue
        if entry.endswith("/*") and media_type.startswith(entry[:-1]):
            return True
        if entry == media_type:
            return True
    return False


def deliver(
    result: Any, request_headers: dict[str, str], binary_media_types: list[str]
) -> Delivered:
    """What API Gateway REST hands the client for the handler's ``result``."""
    try:
        payload = lambda_payload(result)
    except MarshalError:
        return Delivered(502, {}, GATEWAY_ERROR)
    return deliver_payload(payload, request_headers, binary_media_types)


def deliver_payload(
    payload: bytes, request_headers: dict[str, str], binary_media_types: list[str]
) -> Delivered:
    """What API Gateway REST hands the client for a Lambda response ``payload``.

    A payload that is not a proxy response (a function error, ``errorType``) is a 502.
    """
    result = json.loads(payload)
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return Delivered(502, {}, GATEWAY_ERROR)
    headers = dict(result.get("headers") or {})
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    body = result.get("body") or ""
    accept = next((v for k, v in request_headers.items() if k.lower() == "accept"), None)
    if result.get("isBase64Encoded"):
        if _matches(_first_media_type(accept), binary_media_types):
            data = base64.b64decode(body)
        else:
            data = body.encode("ascii")
    else:
        data = body.encode("utf-8")
    return Delivered(result["statusCode"], headers, data)


def invoke(app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> Delivered:
    """Send a request through ``app(event, context)`` and API Gateway's delivery rule."""
    event = make_event(app, method, path, headers)
    result = app(event, lambda_context())
    return deliver(result, headers or {}, app.api.binary_types)
