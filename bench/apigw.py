"""A model of API Gateway REST (Lambda proxy integration) for tests.

`make_event` builds the proxy event API Gateway sends; `deliver` turns the
handler's return value into what the client receives, following the rules the
toolkit must survive:

- The Lambda runtime serialises the result as JSON: a ``bytes`` body cannot be
  serialised (the invocation fails and API Gateway answers 502), and a payload
  over 6 MB is rejected the same way.
- A base64 body (``isBase64Encoded``) is decoded only when the FIRST media type
  of the request's ``Accept`` header matches an entry of binaryMediaTypes; a
  request without ``Accept`` matches only a ``*/*`` entry. Otherwise the client
  receives the base64 text itself.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any, NamedTuple

from chalice.local import LambdaContext, RouteMatcher

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024


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
    result: dict, request_headers: dict[str, str], binary_media_types: list[str]
) -> Delivered:
    """What API Gateway REST hands the client for the handler's ``result``."""
    try:
        payload = json.dumps(result)
    except (TypeError, ValueError):
        return Delivered(502, {}, b'{"message": "Internal server error"}')
    if len(payload) > LAMBDA_PAYLOAD_LIMIT:
        return Delivered(502, {}, b'{"message": "Internal server error"}')
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
