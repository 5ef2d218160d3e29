"""What the browser tests drive: the site under `chalice local` and a tab that logs the network.

Playwright reports a revalidated document as the cached 200 and cannot tell a
cache hit from a request, so :class:`NetworkLog` listens to the ``Network``
domain directly: ``*ExtraInfo`` events carry the headers and status actually
sent and received on the wire, ``requestServedFromCache`` marks cache hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, CDPSession, ConsoleMessage, Response

_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>[0-9]{3})')


class Hit(NamedTuple):
    """A line of `chalice local`'s access log."""

    method: str
    path: str
    status: int


class Site(NamedTuple):
    """The scaffolded project served by `chalice local`."""

    name: str
    base_url: str
    project: Path
    log_path: Path

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def hits_since(self, offset: int) -> list[Hit]:
        """Requests the server logged after ``offset``: what really reached it."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return [
            Hit(match["method"], match["path"], int(match["status"]))
            for match in _ACCESS_LINE.finditer(text)
        ]


@dataclass
class Exchange:
    """One request of a page load and what answered it."""

    request_id: str
    url: str = ""
    resource_type: str = ""
    #: Headers as sent on the wire (lower-case names); empty if the request never left.
    sent_headers: dict[str, str] = field(default_factory=dict)
    #: Status as received on the wire (304 for a revalidation), else as reported to the page.
    wire_status: int | None = None
    reported_status: int | None = None
    #: Response headers as received on the wire, and as reported to the page (lower-case).
    wire_headers: dict[str, str] = field(default_factory=dict)
    reported_headers: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    #: Chromium answered from its memory or disk cache without a request.
    from_cache: bool = False
    failure: str = ""

    @property
    def sent(self) -> bool:
        """Whether the request reached the network (Chromium reports its wire headers)."""
        return bool(self.sent_headers)

    @property
    def status(self) -> int | None:
        return self.wire_status if self.wire_status is not None else self.reported_status

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, those on the wire (a 304's) over those the page saw."""
        return {**self.reported_headers, **self.wire_headers}


class NetworkLog:
    """Every request of a page, from the DevTools protocol's ``Network`` events."""

    def __init__(self, cdp: CDPSession) -> None:
        self._exchanges: dict[str, Exchange] = {}
        cdp.send("Network.enable")
        cdp.on("Network.requestWillBeSent", self._request_will_be_sent)
        cdp.on("Network.requestWillBeSentExtraInfo", self._request_extra_info)
        cdp.on("Network.responseReceived", self._response_received)
        cdp.on("Network.responseReceivedExtraInfo", self._response_extra_info)
        cdp.on("Network.requestServedFromCache", self._served_from_cache)
        cdp.on("Network.loadingFailed", self._loading_failed)

    def take(self) -> list[Exchange]:
        """The exchanges recorded since the last call, in the order they started."""
        exchanges = list(self._exchanges.values())
        self._exchanges.clear()
        return exchanges

    def _get(self, request_id: str) -> Exchange:
        return self._exchanges.setdefault(request_id, Exchange(request_id))

    def _request_will_be_sent(self, params: dict[str, Any]) -> None:
        exchange = self._get(params["requestId"])
        exchange.url = params["request"]["url"]
        exchange.resource_type = params.get("type", "")

    def _request_extra_info(self, params: dict[str, Any]) -> None:
        self._get(params["requestId"]).sent_headers = _lower(params["headers"])

    def _response_received(self, params: dict[str, Any]) -> None:
        exchange = self._get(params["requestId"])
        response = params["response"]
        exchange.url = exchange.url or response["url"]
        exchange.resource_type = params.get("type", exchange.resource_type)
        exchange.reported_status = response["status"]
        exchange.reported_headers = _lower(response["headers"])
        exchange.content_type = exchange.reported_headers.get("content-type") or response.get(
            "mimeType", ""
        )
        exchange.from_cache |= bool(response.get("fromDiskCache"))

    def _response_extra_info(self, params: dict[str, Any]) -> None:
        exchange = self._get(params["requestId"])
        exchange.wire_status = params["statusCode"]
        exchange.wire_headers = _lower(params["headers"])

    def _served_from_cache(self, params: dict[str, Any]) -> None:
        self._get(params["requestId"]).from_cache = True

    def _loading_failed(self, params: dict[str, Any]) -> None:
        self._get(params["requestId"]).failure = params["errorText"]


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def network_table(title: str, exchanges: list[Exchange], base_url: str) -> str:
    """A plain-text table of a page load for logs and reports."""
    rows = [
        ("URL", "status", "content-type", "from cache", "sent", "If-None-Match", "Cache-Control")
    ]
    for exchange in exchanges:
        rows.append(
            (
                exchange.url.removeprefix(base_url) or exchange.url,
                exchange.failure or str(exchange.status),
                exchange.content_type,
                "yes" if exchange.from_cache else "no",
                "yes" if exchange.sent else "no",
                "yes" if "if-none-match" in exchange.sent_headers else "no",
                exchange.headers.get("cache-control", ""),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [f"{title} ({base_url})"]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    return "\n".join(lines)


class Tab:
    """A page in its own browser context with its network log, console errors and responses."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page = context.new_page()
        self.network = NetworkLog(context.new_cdp_session(self.page))
        self.console_errors: list[str] = []
        self.responses: list[Response] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught {error}"))
        self.page.on("response", self._on_response)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location.get("url", "")
            self.console_errors.append(f"{message.text} ({location})")

    def _on_response(self, response: Response) -> None:
        self.responses.append(response)

    def response_for(self, url: str) -> Response:
        """The last Playwright response for ``url`` (for its body)."""
        matches = [response for response in self.responses if response.url == url]
        if not matches:
            raise LookupError(f"no response for {url}; saw {[r.url for r in self.responses]}")
        return matches[-1]
