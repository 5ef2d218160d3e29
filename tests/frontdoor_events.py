"""Events of the front doors other than API Gateway REST, and what each hands the client.

The shapes follow AWS's documentation; the values are ours:

- "Invoking Lambda function URLs" (AWS Lambda Developer Guide), section "Request and
  response payloads": the Function URL request event (payload format 2.0, domain
  ``<url-id>.lambda-url.<region>.on.aws``, ``routeKey`` and ``stage`` ``$default``) and
  its response format (``cookies``; base64 bodies with ``isBase64Encoded``).
- "Create AWS Lambda proxy integrations for HTTP APIs in API Gateway" (Amazon API
  Gateway Developer Guide), "Payload format version" 2.0: no ``multiValue*`` fields,
  duplicate headers and query strings joined with commas, ``rawQueryString``, the
  ``cookies`` array; each response cookie becomes a ``set-cookie`` header.
- "Process Application Load Balancer requests with Lambda" (AWS Lambda Developer Guide)
  and "Use Lambda functions as targets of an Application Load Balancer" (Elastic Load
  Balancing User Guide), "Multi-value headers": the target-group event (``requestContext.
  elb.targetGroupArn``), query parameters left percent-encoded, either ``headers`` /
  ``queryStringParameters`` or, when the target group enables multi-value headers,
  ``multiValueHeaders`` / ``multiValueQueryStringParameters`` only; the response with
  ``statusDescription`` and the matching header field; a 1 MB response limit.
"""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
ALB_RESPONSE_LIMIT = 1024 * 1024

URL_ID = "abcdefghijklmnopqrstuvwxyz012345"
FUNCTION_URL_HOST = f"{URL_ID}.lambda-url.us-east-1.on.aws"
HTTP_API_HOST = "r4nd0m1d42.execute-api.us-east-1.amazonaws.com"
TARGET_GROUP_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/site/0123456789abcdef"
)


class Delivered(NamedTuple):
    """What the client receives: status, headers (lower-case names), body, Set-Cookie list."""

    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str]


def _split(path: str) -> tuple[str, str]:
    raw_path, _, raw_query = path.partition("?")
    return raw_path, raw_query


def _body(body: bytes | str | None, binary: bool) -> tuple[str, bool]:
    if body is None:
        return "", False
    data = body.encode() if isinstance(body, str) else body
    if binary:
        return base64.b64encode(data).decode("ascii"), True
    return data.decode("utf-8"), False


def v2_event(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    cookies: list[str] | None = None,
    body: bytes | str | None = None,
    binary: bool = False,
    function_url: bool = True,
    stage: str = "$default",
) -> dict[str, Any]:
    """A payload format 2.0 event: a Function URL's, or an HTTP API's (``function_url=False``).

    ``path`` may carry a query string (``/p?a=1&a=2``): ``rawQueryString`` keeps it,
    ``queryStringParameters`` joins repeats with commas. Header names are lower case.
    """
    raw_path, raw_query = _split(path)
    if stage != "$default":
        raw_path = f"/{stage}{raw_path}"
    host = FUNCTION_URL_HOST if function_url else HTTP_API_HOST
    all_headers = {
        "host": host,
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-forwarded-for": "198.51.100.7",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36",
        "x-amzn-trace-id": "Root=1-67a1b2c3-0123456789abcdef01234567",
    }
    all_headers.update({name.lower(): value for name, value in (headers or {}).items()})
    query: dict[str, list[str]] = {}
    for pair in filter(None, raw_query.split("&")):
        name, _, value = pair.partition("=")
        query.setdefault(name, []).append(value)
    text, is_base64 = _body(body, binary)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "anonymous" if function_url else "123456789012",
            "apiId": URL_ID if function_url else "r4nd0m1d42",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": "c0ffee00-1234-4321-abcd-0123456789ab",
            "routeKey": "$default",
            "stage": stage,
            "time": "01/Dec/2026:22:00:00 +0000",
            "timeEpoch": 1796162400000,
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    if body is not None:
        event["body"] = text
    if not function_url:
        event["pathParameters"] = {}
        event["stageVariables"] = None
    return event


def alb_event(
    method: str,
    path: str,
    headers: dict[str, str | list[str]] | None = None,
    *,
    multi_value: bool = False,
    body: bytes | str | None = None,
    binary: bool = False,
) -> dict[str, Any]:
    """An ALB target-group event; ``multi_value``: the target group enables multi-value headers.

    Query parameters stay as the client sent them (percent-encoded). Without multi-value
    headers a repeated header or parameter keeps its last value.
    """
    raw_path, raw_query = _split(path)
    all_headers: dict[str, list[str]] = {
        "host": ["site-alb-1234567890.us-east-1.elb.amazonaws.com"],
        "x-forwarded-for": ["198.51.100.7"],
        "x-forwarded-port": ["443"],
        "x-forwarded-proto": ["https"],
        "user-agent": ["Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36"],
        "x-amzn-trace-id": ["Root=1-67a1b2c3-0123456789abcdef01234567"],
    }
    for name, value in (headers or {}).items():
        all_headers[name.lower()] = value if isinstance(value, list) else [value]
    query: dict[str, list[str]] = {}
    for pair in filter(None, raw_query.split("&")):
        name, _, value = pair.partition("=")
        query.setdefault(name, []).append(value)
    text, is_base64 = _body(body, binary)
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP_ARN}},
        "httpMethod": method,
        "path": raw_path,
        "body": text,
        "isBase64Encoded": is_base64,
    }
    if multi_value:
        event["multiValueHeaders"] = all_headers
        event["multiValueQueryStringParameters"] = query
    else:
        event["headers"] = {name: values[-1] for name, values in all_headers.items()}
        event["queryStringParameters"] = {name: values[-1] for name, values in query.items()}
    return event


def deliver_v2(result: dict) -> Delivered:
    """What an HTTP API or a Function URL hands the client for a 2.0 response."""
    payload = json.dumps(result)  # the runtime's serialisation: bytes would fail here
    if len(payload) > LAMBDA_PAYLOAD_LIMIT:
        return Delivered(502, {}, b'{"message":"Internal Server Error"}', [])
    headers = {name.lower(): value for name, value in (result.get("headers") or {}).items()}
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return Delivered(result["statusCode"], headers, data, list(result.get("cookies") or []))


def deliver_alb(result: dict, multi_value: bool) -> Delivered:
    """What an ALB hands the client; a response without the target group's header field fails."""
    payload = json.dumps(result)
    if len(payload) > ALB_RESPONSE_LIMIT:
        return Delivered(502, {}, b"<html>502 Bad Gateway</html>", [])
    field, other = (
        ("multiValueHeaders", "headers") if multi_value else ("headers", "multiValueHeaders")
    )
    if other in result:
        raise AssertionError(f"{other} in an ALB response for multi_value={multi_value}")
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in (result.get(field) or {}).items():
        values = value if multi_value else [value]
        if name.lower() == "set-cookie":
            cookies.extend(values)
        else:
            headers[name.lower()] = ", ".join(values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return Delivered(result["statusCode"], headers, data, cookies)


def form(fields: dict[str, str]) -> str:
    """An ``application/x-www-form-urlencoded`` body."""
    return urlencode(fields, quote_via=quote)
