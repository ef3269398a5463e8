"""Pravega's controller REST API (v1) on the admin port: the paths, JSON shapes and status codes of Pravega's
OpenAPI description (``/v1/scopes``, ``/v1/scopes/{scope}/streams/{stream}``, ``.../scaling-events``,
``.../state``, ``/v1/scopes/{scope}/readergroups``, ``/v1/health``), so tools written for Pravega's REST work.

Where Pravega answers an error with an empty body, this API adds a JSON body ``{"error": "..."}`` that says
what went wrong; the status codes are Pravega's. Conversions between the REST shapes and the controller's
``StreamConfiguration`` are pure functions (``stream_property``, ``stream_config``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from anabranch.controller.errors import InvalidArgumentError, NoSuchSegmentError, NotFoundError
from anabranch.controller.facade import Controller
from anabranch.controller.records import RetentionConfig, ScalingConfig, StreamConfiguration
from anabranch.model.names import SYSTEM_SCOPE, segment_number
from anabranch.protocol import controller_pb2 as pb

SCALE_TYPE_NAMES = {0: "FIXED_NUM_SEGMENTS", 1: "BY_RATE_IN_KBYTES_PER_SEC", 2: "BY_RATE_IN_EVENTS_PER_SEC"}
SCALE_TYPES = {v: k for k, v in SCALE_TYPE_NAMES.items()}
RETENTION_TIME, RETENTION_SIZE = 1, 2
MS_PER_MINUTE, MS_PER_HOUR, MS_PER_DAY = 60_000, 3_600_000, 86_400_000
MIB = 1024 * 1024

ReaderIds = Callable[[str, str], Awaitable[list[str]]]
"""Online reader ids of a reader group (scope, group); the reader-group state lives in the group's stream."""


class RestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --- shapes -------------------------------------------------------------------------------------------------


def _duration(ms: int) -> dict[str, int]:
    return {"days": ms // MS_PER_DAY, "hours": ms % MS_PER_DAY // MS_PER_HOUR,
            "minutes": ms % MS_PER_HOUR // MS_PER_MINUTE}


def retention_property(retention: RetentionConfig | None) -> dict[str, Any] | None:
    if retention is None or retention.retention_type == 0:
        return None
    if retention.retention_type == RETENTION_TIME:
        return {"type": "LIMITED_DAYS", "value": retention.param // MS_PER_DAY,
                "timeBasedRetention": _duration(retention.param), "maxValue": retention.max // MS_PER_DAY,
                "maxTimeBasedRetention": _duration(retention.max)}
    return {"type": "LIMITED_SIZE_MB", "value": retention.param // MIB, "maxValue": retention.max // MIB}


def stream_property(scope: str, stream: str, config: StreamConfiguration) -> dict[str, Any]:
    s = config.scaling
    prop: dict[str, Any] = {
        "scopeName": scope, "streamName": stream,
        "scalingPolicy": {"type": SCALE_TYPE_NAMES.get(s.scale_type, str(s.scale_type)), "targetRate": s.target_rate,
                          "scaleFactor": s.scale_factor, "minSegments": s.min_segments},
        "tags": list(config.tags),
    }
    retention = retention_property(config.retention)
    if retention is not None:
        prop["retentionPolicy"] = retention
    return prop


def _int(body: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RestError(400, f"{key} must be a non-negative integer, got {value!r}")
    return value


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RestError(400, f"{key} must be a JSON object")
    return value


def _ms(duration: Mapping[str, Any] | None) -> int | None:
    if duration is None:
        return None
    return (_int(duration, "days") * MS_PER_DAY + _int(duration, "hours") * MS_PER_HOUR
            + _int(duration, "minutes") * MS_PER_MINUTE)


def scaling_config(policy: Mapping[str, Any]) -> ScalingConfig:
    kind = policy.get("type", "FIXED_NUM_SEGMENTS")
    if kind not in SCALE_TYPES:
        raise RestError(400, f"scalingPolicy.type must be one of {', '.join(SCALE_TYPES)}, got {kind!r}")
    min_segments = _int(policy, "minSegments", 1)
    if min_segments < 1:
        raise RestError(400, "scalingPolicy.minSegments must be at least 1")
    target, factor = _int(policy, "targetRate"), _int(policy, "scaleFactor")
    if kind != "FIXED_NUM_SEGMENTS" and (target < 1 or factor < 1):
        raise RestError(400, f"{kind} needs a positive targetRate and scaleFactor")
    return ScalingConfig(SCALE_TYPES[kind], target, factor, min_segments)


def retention_config(policy: Mapping[str, Any]) -> RetentionConfig | None:
    kind = policy.get("type")
    if kind == "LIMITED_DAYS":
        param = _ms(_object(policy, "timeBasedRetention"))
        maximum = _ms(_object(policy, "maxTimeBasedRetention"))
        return RetentionConfig(RETENTION_TIME, _int(policy, "value") * MS_PER_DAY if param is None else param,
                               _int(policy, "maxValue") * MS_PER_DAY if maximum is None else maximum)
    if kind == "LIMITED_SIZE_MB":
        return RetentionConfig(RETENTION_SIZE, _int(policy, "value") * MIB, _int(policy, "maxValue") * MIB)
    raise RestError(400, f"retentionPolicy.type must be LIMITED_DAYS or LIMITED_SIZE_MB, got {kind!r}")


def stream_config(body: Mapping[str, Any], base: StreamConfiguration | None = None) -> StreamConfiguration:
    """A ``StreamConfiguration`` from a Create/UpdateStreamRequest; fields the request leaves out keep ``base``."""
    base = base or StreamConfiguration()
    scaling = _object(body, "scalingPolicy")
    retention = _object(body, "retentionPolicy")
    tags = body.get("streamTags", list(base.tags))
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RestError(400, "streamTags must be a list of strings")
    return StreamConfiguration(
        base.scaling if scaling is None else scaling_config(scaling),
        base.retention if retention is None else retention_config(retention),
        tuple(tags),
        _int(body, "timestampAggregationTimeout", base.timestamp_aggregation_timeout),
        _int(body, "rolloverSizeBytes", base.rollover_size_bytes),
    )


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RestError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise RestError(400, "the request body must be a JSON object")
    return body


# --- handlers -----------------------------------------------------------------------------------------------


class RestApi:
    """The ``/v1`` routes over one ``Controller``."""

    def __init__(self, controller: Controller, reader_ids: ReaderIds | None = None,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.controller = controller
        self.reader_ids = reader_ids
        self.ready = ready

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/health", self.health), web.get("/v1/health/liveness", self.liveness),
            web.get("/v1/health/readiness", self.readiness), web.get("/v1/health/status", self.status),
            web.get("/v1/scopes", self.list_scopes), web.post("/v1/scopes", self.create_scope),
            web.get("/v1/scopes/{scope}", self.get_scope), web.delete("/v1/scopes/{scope}", self.delete_scope),
            web.get("/v1/scopes/{scope}/streams", self.list_streams),
            web.post("/v1/scopes/{scope}/streams", self.create_stream),
            web.get("/v1/scopes/{scope}/streams/{stream}", self.get_stream),
            web.put("/v1/scopes/{scope}/streams/{stream}", self.update_stream),
            web.delete("/v1/scopes/{scope}/streams/{stream}", self.delete_stream),
            web.put("/v1/scopes/{scope}/streams/{stream}/state", self.update_state),
            web.get("/v1/scopes/{scope}/streams/{stream}/scaling-events", self.scaling_events),
            web.get("/v1/scopes/{scope}/readergroups", self.list_groups),
            web.get("/v1/scopes/{scope}/readergroups/{group}", self.get_group),
        ]

    async def health(self, _request: web.Request) -> web.Response:
        ready = self.ready()
        return web.json_response({"name": "controller", "status": "UP" if ready else "STARTING",
                                  "readiness": ready, "liveness": True, "details": {}, "children": {}})

    async def liveness(self, _request: web.Request) -> web.Response:
        return web.json_response(True)

    async def readiness(self, _request: web.Request) -> web.Response:
        return web.json_response(self.ready())

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response("UP" if self.ready() else "STARTING")

    # scopes

    async def _user_scopes(self) -> list[str]:
        names = [k.decode() async for k, _v, _ver in self.controller.store.scopes.items()]
        return sorted(n for n in names if n != SYSTEM_SCOPE)

    async def _require_scope(self, scope: str) -> None:
        if not await self.controller.store.scope_exists(scope):
            raise RestError(404, f"scope {scope} does not exist")

    async def list_scopes(self, _request: web.Request) -> web.Response:
        return web.json_response({"scopes": [{"scopeName": n} for n in await self._user_scopes()]})

    async def create_scope(self, request: web.Request) -> web.Response:
        name = (await json_body(request)).get("scopeName")
        if not isinstance(name, str):
            raise RestError(400, "scopeName (a string) is required")
        status = await self.controller.streams.create_scope(name)
        if status == "SCOPE_EXISTS":
            raise RestError(409, f"scope {name} already exists")
        if status == "INVALID_SCOPE_NAME":
            raise RestError(400, f"invalid scope name {name!r}: letters, digits, '-' and '.' only")
        if status != "SUCCESS":
            raise RestError(500, f"creating scope {name} failed: {status}")
        return web.json_response({"scopeName": name}, status=201)

    async def get_scope(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        await self._require_scope(scope)
        return web.json_response({"scopeName": scope})

    async def delete_scope(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        status = await self.controller.streams.delete_scope(scope)
        if status == "SCOPE_NOT_FOUND":
            raise RestError(404, f"scope {scope} does not exist")
        if status == "SCOPE_NOT_EMPTY":
            blockers = await scope_contents(self.controller, scope)
            raise RestError(412, f"scope {scope} is not empty: {describe_contents(blockers)}")
        if status != "SUCCESS":
            raise RestError(500, f"deleting scope {scope} failed: {status}")
        return web.Response(status=204)

    # streams

    async def _config(self, scope: str, stream: str) -> StreamConfiguration:
        try:
            return await self.controller.streams.get_config(scope, stream)
        except NotFoundError:
            raise RestError(404, f"stream {scope}/{stream} does not exist") from None

    async def list_streams(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        await self._require_scope(scope)
        filter_type = request.query.get("filter_type")
        filter_value = request.query.get("filter_value", "")
        if filter_type not in (None, "showInternalStreams", "tag"):
            raise RestError(400, f"filter_type must be showInternalStreams or tag, got {filter_type!r}")
        if filter_type == "tag":
            names = await self.controller.streams.streams_with_tag(scope, filter_value)
        else:
            names = await stream_names(self.controller, scope)
            internal = filter_type == "showInternalStreams" and filter_value.lower() != "false"
            names = [n for n in names if internal or not n.startswith("_")]
        streams = []
        for name in sorted(names):
            try:
                streams.append(stream_property(scope, name, await self.controller.streams.get_config(scope, name)))
            except NotFoundError:
                continue
        return web.json_response({"streams": streams})

    async def create_stream(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        body = await json_body(request)
        name = body.get("streamName")
        if not isinstance(name, str):
            raise RestError(400, "streamName (a string) is required")
        config = stream_config(body)
        try:
            status = await self.controller.streams.create_stream(scope, name, config)
        except InvalidArgumentError as exc:
            raise RestError(400, str(exc)) from None
        if status == "SCOPE_NOT_FOUND":
            raise RestError(404, f"scope {scope} does not exist")
        if status == "STREAM_EXISTS":
            raise RestError(409, f"stream {scope}/{name} already exists")
        if status == "INVALID_STREAM_NAME":
            raise RestError(400, f"invalid stream name {name!r}: letters, digits, '-' and '.' only")
        if status != "SUCCESS":
            raise RestError(500, f"creating stream {scope}/{name} failed: {status}")
        return web.json_response(stream_property(scope, name, config), status=201)

    async def get_stream(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        return web.json_response(stream_property(scope, stream, await self._config(scope, stream)))

    async def update_stream(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        body = await json_body(request)
        config = stream_config(body, await self._config(scope, stream))
        try:
            status = await self.controller.streams.update_stream(scope, stream, config)
        except InvalidArgumentError as exc:
            raise RestError(400, str(exc)) from None
        if status == "STREAM_NOT_FOUND":
            raise RestError(404, f"stream {scope}/{stream} does not exist")
        if status == "STREAM_SEALED":
            raise RestError(412, f"stream {scope}/{stream} is sealed")
        if status != "SUCCESS":
            raise RestError(500, f"updating stream {scope}/{stream} failed: {status}")
        return web.json_response(stream_property(scope, stream, config))

    async def delete_stream(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        status = await self.controller.streams.delete_stream(scope, stream)
        if status == "STREAM_NOT_FOUND":
            raise RestError(404, f"stream {scope}/{stream} does not exist")
        if status == "STREAM_NOT_SEALED":
            raise RestError(412, f"stream {scope}/{stream} is not sealed; seal it first (PUT .../state)")
        if status != "SUCCESS":
            raise RestError(500, f"deleting stream {scope}/{stream} failed: {status}")
        return web.Response(status=204)

    async def update_state(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        state = (await json_body(request)).get("streamState")
        if state != "SEALED":
            raise RestError(400, f"streamState must be SEALED, got {state!r}")
        status = await self.controller.streams.seal_stream(scope, stream)
        if status == "STREAM_NOT_FOUND":
            raise RestError(404, f"stream {scope}/{stream} does not exist")
        if status != "SUCCESS":
            raise RestError(500, f"sealing stream {scope}/{stream} failed: {status}")
        return web.json_response({"streamState": "SEALED"})

    async def scaling_events(self, request: web.Request) -> web.Response:
        scope, stream = request.match_info["scope"], request.match_info["stream"]
        try:
            start, end = int(request.query["from"]), int(request.query["to"])
        except (KeyError, ValueError):
            raise RestError(400, "from and to (milliseconds since 1970) are required integers") from None
        if start > end:
            raise RestError(400, f"from ({start}) is after to ({end})")
        try:
            view = await self.controller.ctx.view(scope, stream)
        except NotFoundError:
            raise RestError(404, f"stream {scope}/{stream} does not exist") from None
        epochs = await self.controller.ctx.all_epochs(view)
        events = []
        for i, epoch in enumerate(epochs):
            # Pravega includes the epoch in force at ``from`` so the list shows the state over the whole window.
            following = epochs[i + 1].creation_time if i + 1 < len(epochs) else None
            if epoch.creation_time > end or (following is not None and following <= start):
                continue
            previous = epochs[i - 1] if i else None
            splits = merges = 0
            if previous is not None:
                gone = [s for s in previous.segments if epoch.find(s.id) is None]
                new = [s for s in epoch.segments if previous.find(s.id) is None]
                splits = sum(1 for old in gone if sum(1 for n in new if n.overlaps(old)) > 1)
                merges = sum(1 for n in new if sum(1 for old in gone if old.overlaps(n)) > 1)
            events.append({
                "timestamp": epoch.creation_time,
                "segmentList": [{"number": segment_number(s.id), "startTime": epochs[s.creation_epoch].creation_time
                                 if s.creation_epoch < len(epochs) else epoch.creation_time,
                                 "keyStart": s.key_start, "keyEnd": s.key_end} for s in epoch.sorted_segments()],
                "splits": splits, "merges": merges,
            })
        return web.json_response({"scalingEvents": events})

    # reader groups

    async def list_groups(self, request: web.Request) -> web.Response:
        scope = request.match_info["scope"]
        await self._require_scope(scope)
        names = await index_names(self.controller, scope, "readerGroups")
        return web.json_response({"readerGroups": [{"readerGroupName": n} for n in names]})

    async def get_group(self, request: web.Request) -> web.Response:
        scope, group = request.match_info["scope"], request.match_info["group"]
        await self._require_scope(scope)
        _status, config = await self.controller.readergroups.get(scope, group)
        if config is None:
            raise RestError(404, f"reader group {scope}/{group} does not exist")
        readers = await self.reader_ids(scope, group) if self.reader_ids is not None else []
        return web.json_response({"scopeName": scope, "readerGroupName": group,
                                  "streamList": group_streams(config), "onlineReaderIds": readers})


def group_streams(config: pb.ReaderGroupConfiguration) -> list[str]:
    return [f"{c.streamInfo.scope}/{c.streamInfo.stream}" for c in config.startingStreamCuts]


async def index_names(controller: Controller, scope: str, index: str) -> list[str]:
    try:
        return sorted([k.decode() async for k, _v, _ver in controller.store.scope_index(scope, index).items()])
    except NoSuchSegmentError:
        return []


async def stream_names(controller: Controller, scope: str) -> list[str]:
    return await index_names(controller, scope, "streams")


async def scope_contents(controller: Controller, scope: str) -> dict[str, list[str]]:
    """What a scope holds: user streams (not the internal ones: reader-group state, marks), reader groups, tables."""
    return {
        "streams": [n for n in await stream_names(controller, scope) if not n.startswith("_")],
        "reader groups": await index_names(controller, scope, "readerGroups"),
        "key-value tables": await index_names(controller, scope, "kvTables"),
    }


def describe_contents(contents: Mapping[str, list[str]]) -> str:
    parts = [f"{kind} {', '.join(names)}" for kind, names in contents.items() if names]
    return "; ".join(parts) or "it holds internal objects"


@web.middleware
async def rest_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """``RestError`` → its status with a JSON body; aiohttp's own 404/405 → the same JSON shape."""
    try:
        return await handler(request)
    except RestError as exc:
        return error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error(exc.status, f"{exc.reason}: {request.method} {request.path}")
        raise
