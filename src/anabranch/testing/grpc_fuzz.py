"""A hypothesis-driven fuzzer of the Controller gRPC API, with the checks that must hold after every batch.

``request_strategy(rpc)`` builds hypothesis strategies for every rpc's request message from its protobuf
descriptor: integers at the edges of their types (and anywhere in between), unknown enum values, empty, odd and
over-long strings, names from a small pool (so some requests meet existing scopes and streams), malformed
continuation tokens, stream cuts with negative, huge or many entries, non-finite doubles, nested messages and
lists. ``GrpcFuzzer`` sends one request per example and records its status code; ``check`` asserts that the
controller answers a fresh channel, that the reference data created before the fuzz is unchanged, and that its
resident memory stays under a bound. A reply must be OK or a status other than INTERNAL (and UNKNOWN only where
Pravega answers it: a transaction lease outside the allowed range). ``FuzzFigures`` counts what happened. Used by
``tests/integration/robustness_controller/test_grpc_fuzz.py`` (bounded) and ``scripts/fuzz_grpc.py`` (long runs).
The fuzz names only scopes from ``NAME_POOL`` (and random text); the reference data lives in a scope named
``ref-<random hex>``, which no example can name.
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.testing.wire_fuzz import resident_mib

SERVICE = pb.DESCRIPTOR.services_by_name["ControllerService"]
RPCS = sorted(method.name for method in SERVICE.methods)
NAME_POOL = ("fz", "fz2", "st", "st2", "kv", "g", "_system", "", "a" * 255, "a" * 256, "bad/name", "_MARKst")
NAME_FIELDS = frozenset({"scope", "stream", "kvtName", "readerGroup", "readerGroupName", "subscriber", "tag",
                         "writer", "writerId", "endpoint"})
LONG_STRINGS = ("x" * 5000, "é" * 70_000)
INT_EDGES = {
    FieldDescriptor.TYPE_INT32: (0, 1, -1, 2, 999, 1000, 1001, 2**31 - 1, -(2**31), 10_000, 100_000),
    FieldDescriptor.TYPE_INT64: (0, 1, -1, 2, 1000, 1001, 10_000, 600_000, 600_001, 2**31 - 1, 2**32, 2**63 - 1,
                                 -(2**63), (1 << 32) | 1),
}
INT_RANGES = {FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1)}
TOKENS = ("", "zz", "0", "00", "abcd", "a", "ffffffff", "-1", "12", "9" * 30, "ab" * 9000, "é")
ALLOWED_UNKNOWN = frozenset({"createTransaction", "pingTransaction"})
"""Rpcs that answer UNKNOWN on purpose (a lease outside [min, max], as Pravega does)."""
MAX_LIST = 4


class FuzzFailure(AssertionError):
    """An invariant broke: the server crashed, hung, answered INTERNAL, grew too much or lost reference data."""


def request_class(rpc: str) -> type[Message]:
    return message_factory.GetMessageClass(SERVICE.methods_by_name[rpc].input_type)


def _scalar(field_desc: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field_desc.type
    if kind in INT_EDGES:
        low, high = INT_RANGES[kind]
        return st.one_of(st.sampled_from(INT_EDGES[kind]), st.integers(low, high))
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field_desc.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(st.sampled_from((0.0, 0.5, 1.0, -0.0, -1.0, 2.0, float("nan"), float("inf"))),
                         st.floats(allow_nan=True, allow_infinity=True))
    if kind == FieldDescriptor.TYPE_STRING:
        if field_desc.name == "token":
            return st.one_of(st.sampled_from(TOKENS), st.binary(max_size=40).map(bytes.hex), st.text(max_size=20))
        if field_desc.name in NAME_FIELDS:
            return st.one_of(st.sampled_from(NAME_POOL), st.text(max_size=40), st.sampled_from(LONG_STRINGS))
        if field_desc.name == "readerGroupId":
            return st.one_of(st.uuids().map(str), st.just(str(uuid.UUID(int=0))), st.text(max_size=40))
        return st.one_of(st.text(max_size=40), st.sampled_from(LONG_STRINGS))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    raise ValueError(f"no strategy for field {field_desc.full_name} of type {kind}")


def _cut_map() -> st.SearchStrategy[dict[int, int]]:
    ints = st.one_of(st.sampled_from(INT_EDGES[FieldDescriptor.TYPE_INT64]), st.integers(-(2**63), 2**63 - 1))
    return st.one_of(
        st.dictionaries(st.sampled_from((0, 1, 2, 3, (1 << 32) | 2, -1)), ints, max_size=4),
        st.dictionaries(ints, ints, max_size=4),
        st.integers(1, 3).map(lambda k: {i: 0 for i in range(k * 6000)}),
    )


def _map_entries(field_desc: FieldDescriptor, depth: int) -> st.SearchStrategy[dict[Any, Any]]:
    if field_desc.message_type.fields_by_name["key"].type == FieldDescriptor.TYPE_INT64:
        return _cut_map()
    value_field = field_desc.message_type.fields_by_name["value"]
    values = message_strategy(value_field.message_type, depth + 1) \
        if value_field.type == FieldDescriptor.TYPE_MESSAGE else _scalar(value_field)
    return st.dictionaries(st.text(max_size=20), values, max_size=MAX_LIST)


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of type ``descriptor`` with any subset of fields set to fuzzed values (nesting depth <= 3)."""
    cls = message_factory.GetMessageClass(descriptor)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field_desc in descriptor.fields:
        is_map = field_desc.type == FieldDescriptor.TYPE_MESSAGE and field_desc.message_type.GetOptions().map_entry
        if is_map:
            parts[field_desc.name] = _map_entries(field_desc, depth)
            continue
        if field_desc.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            single = message_strategy(field_desc.message_type, depth + 1)
        else:
            single = _scalar(field_desc)
        parts[field_desc.name] = st.lists(single, max_size=MAX_LIST) if field_desc.is_repeated else single

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for name, strategy in parts.items():
            if not draw(st.booleans()):
                continue
            value = draw(strategy)
            target = getattr(message, name)
            if isinstance(value, Message):
                target.CopyFrom(value)
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Message):
                        target[key].CopyFrom(item)
                    else:
                        target[key] = item
            elif isinstance(value, list):
                if value and isinstance(value[0], Message):
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            else:
                setattr(message, name, value)
        return message

    return build()


def request_strategy(rpc: str) -> st.SearchStrategy[Message]:
    return message_strategy(SERVICE.methods_by_name[rpc].input_type)


@dataclass
class FuzzFigures:
    requests: int = 0
    by_code: collections.Counter[str] = field(default_factory=collections.Counter)
    by_rpc: collections.Counter[str] = field(default_factory=collections.Counter)
    hangs: int = 0
    checks: int = 0
    peak_rss_mib: float = 0.0
    start_rss_mib: float = 0.0
    slowest_ms: float = 0.0
    slowest_rpc: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "by_code": dict(self.by_code.most_common()), "hangs": self.hangs,
                "checks": self.checks, "start_rss_mib": round(self.start_rss_mib, 1),
                "peak_rss_mib": round(self.peak_rss_mib, 1), "slowest_ms": round(self.slowest_ms, 1),
                "slowest_rpc": self.slowest_rpc, "rpcs": len(self.by_rpc)}


class GrpcFuzzer:
    """Fuzzes the controller at ``host:port`` (process ``pid``) and checks it after every batch."""

    def __init__(self, host: str, port: int, pid: int, *, rss_limit_mib: float, call_timeout: float = 30.0) -> None:
        self.target = f"{host}:{port}"
        self.pid = pid
        self.rss_limit_mib = rss_limit_mib
        self.call_timeout = call_timeout
        self.figures = FuzzFigures()
        self.reference_scope = f"ref-{uuid.uuid4().hex[:12]}"
        self._channel = grpc.insecure_channel(self.target, options=[("grpc.max_send_message_length", 64 << 20)])
        self.stub = pb_grpc.ControllerServiceStub(self._channel)
        self._reference: dict[str, bytes] = {}

    def close(self) -> None:
        self._channel.close()

    # ---- reference data ----

    def setup(self) -> None:
        """Create the reference data (a scope, a stream of 3 segments, a key-value table) and the fuzz scopes."""
        scope = self.reference_scope
        for name in (scope, "fz", "fz2"):
            self.stub.createScope(pb.ScopeInfo(scope=name), timeout=self.call_timeout)
        config = pb.StreamConfig(streamInfo=pb.StreamInfo(scope=scope, stream="ref"),
                                 scalingPolicy=pb.ScalingPolicy(minNumSegments=3), tags=pb.Tags(tag=["t"]))
        assert self.stub.createStream(config, timeout=self.call_timeout).status == pb.CreateStreamStatus.SUCCESS
        kvt = pb.KeyValueTableConfig(scope=scope, kvtName="refkv", partitionCount=2, primaryKeyLength=4)
        assert self.stub.createKeyValueTable(kvt, timeout=self.call_timeout).status == \
            pb.CreateKeyValueTableStatus.SUCCESS
        for name in ("fz", "fz2"):
            self.stub.createStream(pb.StreamConfig(streamInfo=pb.StreamInfo(scope=name, stream="st"),
                                                   scalingPolicy=pb.ScalingPolicy(minNumSegments=2)),
                                   timeout=self.call_timeout)
        self._reference = self._snapshot()
        self.figures.start_rss_mib = self.figures.peak_rss_mib = resident_mib(self.pid)

    def _snapshot(self) -> dict[str, bytes]:
        scope, timeout = self.reference_scope, self.call_timeout
        info = pb.StreamInfo(scope=scope, stream="ref")
        return {
            "config": self.stub.getStreamConfiguration(info, timeout=timeout).SerializeToString(),
            "segments": self.stub.getCurrentSegments(info, timeout=timeout).SerializeToString(),
            "kvt": self.stub.getKeyValueTableConfiguration(
                pb.KeyValueTableInfo(scope=scope, kvtName="refkv"), timeout=timeout).SerializeToString(),
            "scope": self.stub.checkScopeExists(pb.ScopeInfo(scope=scope), timeout=timeout).SerializeToString(),
        }

    # ---- one request ----

    def call(self, rpc: str, request: Message) -> grpc.StatusCode:
        """Send one fuzzed request; raise ``FuzzFailure`` on INTERNAL, a misplaced UNKNOWN or a hang."""
        method = getattr(self.stub, rpc)
        started = time.monotonic()
        code = grpc.StatusCode.OK
        details = ""
        try:
            method(request, timeout=self.call_timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), str(exc.details())
        elapsed_ms = (time.monotonic() - started) * 1000
        figures = self.figures
        figures.requests += 1
        figures.by_code[code.name] += 1
        figures.by_rpc[rpc] += 1
        if elapsed_ms > figures.slowest_ms:
            figures.slowest_ms, figures.slowest_rpc = elapsed_ms, rpc
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            figures.hangs += 1
            raise FuzzFailure(f"{rpc} got no answer within {self.call_timeout} s: {_shown(request)}")
        if code is grpc.StatusCode.INTERNAL or (code is grpc.StatusCode.UNKNOWN and rpc not in ALLOWED_UNKNOWN):
            raise FuzzFailure(f"{rpc} answered {code.name} ({details[:300]}) to {_shown(request)}")
        if code is grpc.StatusCode.UNAVAILABLE:
            raise FuzzFailure(f"{rpc} answered UNAVAILABLE ({details[:300]}): is the server down?")
        return code

    # ---- the checks after each batch ----

    def check(self) -> None:
        """A fresh channel is answered, the reference data is unchanged, resident memory is under the bound."""
        with grpc.insecure_channel(self.target) as channel:
            fresh = pb_grpc.ControllerServiceStub(channel)
            try:
                exists = fresh.checkScopeExists(pb.ScopeInfo(scope=self.reference_scope), timeout=self.call_timeout)
            except grpc.RpcError as exc:
                raise FuzzFailure(f"a fresh channel got {exc.code().name}: {exc.details()}") from None
            if not exists.exists:
                raise FuzzFailure(f"the reference scope {self.reference_scope} is gone")
        now = self._snapshot()
        for key, value in self._reference.items():
            if now[key] != value:
                raise FuzzFailure(f"reference data changed: {key}")
        rss = resident_mib(self.pid)
        self.figures.peak_rss_mib = max(self.figures.peak_rss_mib, rss)
        self.figures.checks += 1
        if rss > self.rss_limit_mib:
            raise FuzzFailure(f"resident memory {rss:.0f} MiB exceeds the bound of {self.rss_limit_mib:.0f} MiB")


def _shown(request: Message) -> str:
    text = f"{type(request).__name__}({str(request)[:400]!r})"
    return text
