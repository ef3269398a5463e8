"""``AdminServer``: the optional HTTP endpoint for operators (health, Prometheus metrics, stream
descriptions as JSON, a small HTML console), served on the controller's asyncio loop.

Routes (GET only; anything else answers 405, unknown paths 404, always with a JSON error body):
``/health`` → {"status": "ok"}; ``/metrics`` → Prometheus text (the segment store's ``statistics()``
counters when one runs in this process, and controller counts); ``/scopes`` (``?all=1`` includes internal
scopes) → {"scopes": [...]}; ``/scopes/<scope>/streams`` → {"scope", "streams"}; ``/streams/<scope>/<stream>``
→ ``describe_stream``'s dict; ``/`` and ``/console/<scope>/<stream>`` → HTML pages.

It reads the controller's records and never changes them. One request per connection (HTTP/1.1 with
``Connection: close``); requests are bounded in size and time so a stuck client cannot hold a task forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from anabranch.admin.pages import console_page, prometheus_text, stream_page
from anabranch.controller.describe import describe_stream
from anabranch.controller.errors import NoSuchSegmentError, NotFoundError
from anabranch.controller.facade import Controller
from anabranch.model.names import SYSTEM_SCOPE

log = logging.getLogger(__name__)

StatsSource = Callable[[], Mapping[str, int]]
MAX_REQUEST_HEAD = 16 * 1024
REQUEST_TIMEOUT = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}
OPEN_PATHS = frozenset({"health", "ready"})
"""Probes answer without credentials; every other route needs them when auth is on."""
Authenticate = Callable[[str | None], object]
"""Takes the ``Authorization`` header (None if absent); raises ``anabranch.auth.errors.AuthError`` to refuse."""


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Response = tuple[int, str, bytes]


def _json(value: Any, status: int = 200) -> Response:
    return status, "application/json", json.dumps(value, indent=1).encode()


class AdminServer:
    """The admin HTTP endpoint over one ``Controller`` (and, optionally, a local segment store's counters)."""

    def __init__(self, controller: Controller, *, segment_store_stats: StatsSource | None = None,
                 host: str = "127.0.0.1", port: int = 9091, authenticate: Authenticate | None = None) -> None:
        self.controller = controller
        self.authenticate = authenticate
        self.segment_store_stats = segment_store_stats
        self.host = host
        self.port = port
        self.requests = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on ``host:port`` (0 picks a free port, stored back in ``port``); ``OSError`` if it cannot."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("admin endpoint on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AdminServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            try:
                response = await self._respond(head)
            except HttpError as exc:
                response = _json({"error": str(exc)}, exc.status)
            except Exception as exc:
                log.exception("admin request failed")
                response = _json({"error": f"{type(exc).__name__}: {exc}"}, 500)
            status, content_type, body = response
            challenge = 'WWW-Authenticate: Basic realm="anabranch"\r\n' if status == 401 else ""
            writer.write(f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n{challenge}"
                         f"Content-Type: {content_type}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, head: bytes) -> Response:
        if len(head) > MAX_REQUEST_HEAD:
            raise HttpError(400, "request head too large")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, _version = parts
        if method != "GET":
            raise HttpError(405, f"{method} is not supported; only GET")
        self.requests += 1
        url = urlsplit(target)
        path = [unquote(p) for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if self.authenticate is not None and (path[0] if path else "") not in OPEN_PATHS:
            self._check_credentials(head)
        routes: dict[tuple[str, int], Callable[[list[str]], Awaitable[Response]]] = {
            ("", 0): self._console, ("health", 1): self._health, ("metrics", 1): self._metrics,
            ("scopes", 1): lambda _p: self._scopes("1" in query.get("all", [])),
            ("scopes", 3): self._streams_of, ("streams", 3): self._describe, ("console", 3): self._stream_page,
        }
        handler = routes.get((path[0] if path else "", len(path)))
        if handler is None or (len(path) == 3 and path[0] == "scopes" and path[2] != "streams"):
            raise HttpError(404, f"no such resource: {url.path}")
        return await handler(path)

    def _check_credentials(self, head: bytes) -> None:
        from anabranch.auth.errors import AuthError

        assert self.authenticate is not None
        authorization = None
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == "authorization":
                authorization = value.strip()
        try:
            self.authenticate(authorization)
        except AuthError as exc:
            raise HttpError(401, str(exc)) from None

    async def _health(self, _path: list[str]) -> Response:
        return _json({"status": "ok"})

    async def _scope_names(self, include_internal: bool) -> list[str]:
        names = [k.decode() async for k, _v, _ver in self.controller.store.scopes.items()]
        return sorted(n for n in names if include_internal or not n.startswith("_"))

    async def _stream_names(self, scope: str, include_internal: bool = False) -> list[str]:
        if not await self.controller.store.scope_exists(scope):
            raise HttpError(404, f"scope {scope} does not exist")
        try:
            names = [k.decode() async for k, _v, _ver in self.controller.store.scope_index(scope, "streams").items()]
        except NoSuchSegmentError:
            raise HttpError(404, f"scope {scope} does not exist") from None
        return sorted(n for n in names if include_internal or not n.startswith("_"))

    async def _scopes(self, include_internal: bool) -> Response:
        return _json({"scopes": await self._scope_names(include_internal)})

    async def _streams_of(self, path: list[str]) -> Response:
        return _json({"scope": path[1], "streams": await self._stream_names(path[1])})

    async def _description(self, scope: str, stream: str) -> dict[str, Any]:
        try:
            return await describe_stream(self.controller, scope, stream)
        except NotFoundError as exc:
            raise HttpError(404, str(exc)) from exc

    async def _describe(self, path: list[str]) -> Response:
        return _json(await self._description(path[1], path[2]))

    async def _stream_page(self, path: list[str]) -> Response:
        return 200, "text/html; charset=utf-8", stream_page(await self._description(path[1], path[2])).encode()

    async def _console(self, _path: list[str]) -> Response:
        listing = {scope: await self._stream_names(scope) for scope in await self._scope_names(False)}
        return 200, "text/html; charset=utf-8", console_page(listing).encode()

    async def _metrics(self, _path: list[str]) -> Response:
        groups: dict[str, Mapping[str, int]] = {"admin": {"requests": self.requests}}
        if self.segment_store_stats is not None:
            groups["segmentstore"] = self.segment_store_stats()
        groups["controller"] = await self._controller_counts()
        return 200, "text/plain; version=0.0.4; charset=utf-8", prometheus_text(groups).encode()

    async def _controller_counts(self) -> dict[str, int]:
        store = self.controller.store
        counts = {"scopes": 0, "streams": 0, "reader_groups": 0, "kv_tables": 0}
        for scope in await self._scope_names(include_internal=True):
            if scope == SYSTEM_SCOPE:
                continue
            counts["scopes"] += 1
            for index, key in (("streams", "streams"), ("readerGroups", "reader_groups"), ("kvTables", "kv_tables")):
                try:
                    names = [k async for k, _v, _ver in store.scope_index(scope, index).items()]
                except NoSuchSegmentError:
                    continue
                counts[key] += sum(1 for n in names if index != "streams" or not n.startswith(b"_"))
        return counts


async def start_admin(controller: Controller, host: str, port: int, *,
                      segment_store_stats: StatsSource | None = None,
                      authenticate: Authenticate | None = None) -> AdminServer | None:
    """Start the admin endpoint for a server command: port 0 means off. The endpoint is optional, so a
    port that is already taken only disables it (with a warning) rather than stopping the server."""
    if port == 0:
        return None
    admin = AdminServer(controller, segment_store_stats=segment_store_stats, host=host, port=port,
                        authenticate=authenticate)
    try:
        await admin.start()
    except OSError as exc:
        log.warning("admin endpoint disabled: cannot listen on %s:%d (%s)", host, port, exc)
        return None
    return admin
