"""``AdminServer``: the operators' HTTP endpoint, on aiohttp, served on the controller's asyncio loop.

Routes:
- ``/v1/...``: Pravega's controller REST API (``admin.rest``): scopes, streams (create, update, seal, delete,
  list with the internal-stream and tag filters), scaling events, reader groups, health;
- ``/health`` → {"status": "ok"} (alive); ``/ready`` → 200 or 503 with the reasons (``admin.readiness``:
  metadata reachable, every in-process container running); ``/metrics`` → Prometheus text (``admin.metrics``):
  typed series with HELP; ``/about`` → {"controller": "host:port", "version"};
- ``/scopes`` (``?all=1`` includes internal scopes) → {"scopes": [...]}; ``/scopes/<scope>/streams`` →
  {"scope", "streams"}; ``/streams/<scope>/<stream>`` → ``describe_stream``'s dict;
- ``/`` (index) and ``/console/<scope>/<stream>`` (live page) with ``/console/<scope>/<stream>/data`` (what
  the page polls: ``admin.console``).
Errors answer JSON ``{"error": "..."}`` with the status. With ``authenticate`` set, every route except the
probes in ``OPEN_PATHS`` needs an ``Authorization`` header it accepts (401 with a Basic challenge otherwise).
Other parts can add routes to ``app`` before ``start()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from anabranch import __version__
from anabranch.admin import metrics
from anabranch.admin.console import ClusterInfo, GroupProbe, stream_view
from anabranch.admin.pages import console_page, stream_page
from anabranch.admin.readiness import StoreHealthSource, readiness
from anabranch.admin.rest import RestApi, RestError, index_names, rest_errors, stream_names
from anabranch.controller.describe import describe_stream
from anabranch.controller.epochs import all_segments
from anabranch.controller.errors import NotFoundError
from anabranch.controller.facade import Controller
from anabranch.model.names import SYSTEM_SCOPE

log = logging.getLogger(__name__)

StatsSource = Callable[[], Mapping[str, int]]
OPEN_PATHS = frozenset({"health", "ready"})
"""Probes answer without credentials; every other route needs them when auth is on."""
Authenticate = Callable[[str | None], object]
"""Takes the ``Authorization`` header (None if absent); raises ``anabranch.auth.errors.AuthError`` to refuse."""
COUNTS_REFRESH = 15.0
"""Seconds between refreshes of the controller's object counts for ``/metrics`` (a scrape never walks scopes)."""
CLIENT_MAX_SIZE = 1024 * 1024


class AdminServer:
    """The admin endpoint over one ``Controller`` (and, optionally, a local segment store's containers)."""

    def __init__(self, controller: Controller, *, segment_store_stats: StatsSource | None = None,
                 container_stats: metrics.ContainerStats | None = None, host: str = "127.0.0.1", port: int = 9091,
                 authenticate: Authenticate | None = None, cluster_info: ClusterInfo | None = None,
                 console_interval_ms: int = 1000, counts_refresh: float = COUNTS_REFRESH,
                 store_health: StoreHealthSource | None = None) -> None:
        self.controller = controller
        self.store_health = store_health
        """The in-process segment store's health, for ``/ready`` (None: no segment store in this process)."""
        self.authenticate = authenticate
        self.host = host
        self.port = port
        self.requests = 0
        self.cluster_info = cluster_info
        self.console_interval_ms = console_interval_ms
        self.counts_refresh = counts_refresh
        self.groups = GroupProbe(f"tcp://{controller.host}:{controller.port}")
        self._counts: dict[str, int] = {}
        self._counts_task: asyncio.Task[None] | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(metrics.AdminCollector(lambda: self.requests))
        self.registry.register(metrics.ControllerCollector(lambda: self._counts))
        if container_stats is None and segment_store_stats is not None:
            totals = segment_store_stats
            container_stats = lambda: {-1: totals()}  # noqa: E731 - a store without per-container numbers
        if container_stats is not None:
            self.registry.register(metrics.StoreStatsCollector(container_stats))
        self.rest = RestApi(controller, self.groups.reader_ids)
        self.app = web.Application(middlewares=[self._count_and_authenticate, rest_errors],
                                   client_max_size=CLIENT_MAX_SIZE)
        self.app.add_routes([
            web.get("/", self._console), web.get("/health", self._health), web.get("/ready", self._ready),
            web.get("/metrics", self._metrics), web.get("/about", self._about),
            web.get("/scopes", self._scopes), web.get("/scopes/{scope}/streams", self._streams_of),
            web.get("/streams/{scope}/{stream}", self._describe),
            web.get("/console/{scope}/{stream}", self._stream_page),
            web.get("/console/{scope}/{stream}/data", self._stream_data),
            *self.rest.routes(),
        ])
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on ``host:port`` (0 picks a free port, stored back in ``port``); ``OSError`` if it cannot."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = int(self._runner.addresses[0][1])
        await self._refresh_counts()
        self._counts_task = asyncio.create_task(self._refresh_counts_forever(), name="admin-counts")
        log.info("admin endpoint on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._counts_task is not None:
            self._counts_task.cancel()
            await asyncio.gather(self._counts_task, return_exceptions=True)
            self._counts_task = None
        await self.groups.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AdminServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- middleware ---------------------------------------------------------------------------------------

    @web.middleware
    async def _count_and_authenticate(self, request: web.Request,
                                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                      ) -> web.StreamResponse:
        self.requests += 1
        first = request.path.strip("/").split("/", 1)[0]
        if self.authenticate is not None and first not in OPEN_PATHS:
            from anabranch.auth.errors import AuthError

            try:
                self.authenticate(request.headers.get("Authorization"))
            except AuthError as exc:
                return web.json_response({"error": str(exc)}, status=401,
                                         headers={"WWW-Authenticate": 'Basic realm="anabranch"'})
        try:
            return await handler(request)
        except (RestError, web.HTTPException):
            raise
        except NotFoundError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except Exception as exc:
            log.exception("admin request %s %s failed", request.method, request.path)
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=500)

    # --- plain JSON routes --------------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, _request: web.Request) -> web.Response:
        report = await readiness(self.controller, self.store_health)
        return web.json_response(report, status=200 if report["ready"] else 503)

    async def _about(self, _request: web.Request) -> web.Response:
        """Which controller this endpoint belongs to (the CLI checks it before trusting a guessed admin URL)."""
        return web.json_response({"controller": f"{self.controller.host}:{self.controller.port}",
                                  "version": __version__})

    async def _scope_names(self, include_internal: bool) -> list[str]:
        names = [k.decode() async for k, _v, _ver in self.controller.store.scopes.items()]
        return sorted(n for n in names if include_internal or not n.startswith("_"))

    async def _stream_names(self, scope: str) -> list[str]:
        if not await self.controller.store.scope_exists(scope):
            raise RestError(404, f"scope {scope} does not exist")
        return [n for n in await stream_names(self.controller, scope) if not n.startswith("_")]

    async def _scopes(self, request: web.Request) -> web.Response:
        return web.json_response({"scopes": await self._scope_names(request.query.get("all") == "1")})

    async def _streams_of(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        return web.json_response({"scope": scope, "streams": await self._stream_names(scope)})

    async def _describe(self, request: web.Request) -> web.Response:
        return web.json_response(await describe_stream(self.controller, request.match_info["scope"],
                                                       request.match_info["stream"]))

    # --- console ------------------------------------------------------------------------------------------

    async def _console(self, _request: web.Request) -> web.Response:
        listing = {scope: await self._stream_names(scope) for scope in await self._scope_names(False)}
        return web.Response(text=console_page(listing), content_type="text/html")

    async def _stream_page(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        await self.controller.ctx.view(scope, stream)
        return web.Response(text=stream_page(scope, stream, self.console_interval_ms), content_type="text/html")

    async def _stream_data(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        description = await describe_stream(self.controller, scope, stream)
        view = await self.controller.ctx.view(scope, stream)
        ranges = {seg_id: (seg.key_start, seg.key_end)
                  for seg_id, seg in all_segments(await self.controller.ctx.all_epochs(view)).items()}
        data = stream_view(description, ranges, int(time.time() * 1000))
        data["reader_groups"] = [await self.groups.describe(scope, group)
                                 for group in await self._groups_reading(scope, stream)]
        data["cluster"] = await self._cluster() if self.cluster_info is not None else None
        return web.json_response(data)

    async def _cluster(self) -> dict[str, Any] | None:
        assert self.cluster_info is not None
        try:
            return await self.cluster_info()
        except Exception as exc:
            log.info("cluster state unavailable for the console: %s", exc)
            return {"error": f"{type(exc).__name__}: {exc}", "hosts": []}

    async def _groups_reading(self, scope: str, stream: str) -> list[str]:
        """Reader groups of ``scope`` whose configuration names ``scope/stream``."""
        found = []
        for group in await index_names(self.controller, scope, "readerGroups"):
            _status, config = await self.controller.readergroups.get(scope, group)
            if config is not None and any((c.streamInfo.scope, c.streamInfo.stream) == (scope, stream)
                                          for c in config.startingStreamCuts):
                found.append(group)
        return found

    # --- metrics ------------------------------------------------------------------------------------------

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = metrics.exposition([metrics.DATA_PATH_REGISTRY, self.registry])
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _refresh_counts_forever(self) -> None:
        while True:
            await asyncio.sleep(self.counts_refresh)
            try:
                await self._refresh_counts()
            except Exception:
                log.exception("could not count the controller's objects for /metrics")

    async def _refresh_counts(self) -> None:
        counts = {"scopes": 0, "streams": 0, "reader_groups": 0, "kv_tables": 0}
        for scope in await self._scope_names(include_internal=True):
            if scope == SYSTEM_SCOPE:
                continue
            counts["scopes"] += 1
            streams = await stream_names(self.controller, scope)
            counts["streams"] += sum(1 for n in streams if not n.startswith("_"))
            counts["reader_groups"] += len(await index_names(self.controller, scope, "readerGroups"))
            counts["kv_tables"] += len(await index_names(self.controller, scope, "kvTables"))
        self._counts = counts


async def start_admin(controller: Controller, host: str, port: int, *,
                      segment_store_stats: StatsSource | None = None,
                      container_stats: metrics.ContainerStats | None = None,
                      authenticate: Authenticate | None = None, **options: Any) -> AdminServer | None:
    """Start the admin endpoint for a server command: port 0 means off. The endpoint is optional, so a
    port that is already taken only disables it (with a warning) rather than stopping the server."""
    if port == 0:
        return None
    admin = AdminServer(controller, segment_store_stats=segment_store_stats, container_stats=container_stats,
                        host=host, port=port, authenticate=authenticate, **options)
    try:
        await admin.start()
    except OSError as exc:
        log.warning("admin endpoint disabled: cannot listen on %s:%d (%s)", host, port, exc)
        return None
    return admin
