"""Typed asyncio access to the Controller gRPC API (``ControllerService``).

Owns one gRPC channel to the controller, the retry policy (only transport-level gRPC codes are
retried, with exponential backoff, as the official clients do), and the mapping of status enums to
booleans or typed exceptions (:mod:`anabranch.client.errors`). Every method takes and returns plain
Python values (defined in :mod:`anabranch.client.controller_types`, re-exported here); no protobuf
message escapes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

from anabranch.client.config import (
    ClientConfig,
    StreamConfiguration,
)
from anabranch.client.controller_types import (
    NO_TIMESTAMP,
    ControllerReaderGroupConfig,
    CreatedTxn,
    Endpoint,
    KeyValueTableConfiguration,
    PingStatus,
    ScaleResult,
    Successor,
    TxnState,
    cut_pb,
    reader_group_from_pb,
    reader_group_pb,
    segment_range,
    stream_config_from_pb,
    stream_config_pb,
    stream_info,
    txn_pb,
    txn_uuid,
)
from anabranch.client.errors import (
    AuthenticationError,
    AuthorizationError,
    ClientClosedError,
    ControllerError,
    ControllerUnavailableError,
    InvalidNameError,
    KeyValueTableExistsError,
    NoSuchKeyValueTableError,
    NoSuchReaderGroupError,
    NoSuchScopeError,
    NoSuchStreamError,
    NoSuchTransactionError,
    ReaderGroupConfigError,
    ScaleFailedError,
    ScopeNotEmptyError,
    StreamNotSealedError,
    StreamSealedError,
    TxnFailedError,
)
from anabranch.client.hashing import SegmentWithRange
from anabranch.model.stream_cut import StreamCut
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.retry import RetryPolicy
from anabranch.tls import read_trust_pem

log = logging.getLogger(__name__)
T = TypeVar("T")

_NOT_RETRIED = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
})

class ControllerClient:
    """Async wrappers for every controller rpc the clients need. Use ``async with`` or call ``close()``."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", authorization),) if (authorization := self.config.authorization) else ()
        )
        self._closed = False

    async def __aenter__(self) -> ControllerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_stub(self) -> Any:
        if self._closed:
            raise ClientClosedError("the controller client is closed")
        if self._stub is None:
            reconnect_ms = max(100, int(self.config.retry_max_delay * 1000))
            options = [
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                # gRPC's own reconnect backoff (up to 120 s by default) would delay recovery after an outage
                # well past our retry policy's delays: keep it within them.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", reconnect_ms),
            ]
            target = self.config.controller_target
            if self.config.use_tls:
                root = read_trust_pem(self.config.effective_trust_store)
                creds = grpc.ssl_channel_credentials(root_certificates=root)
                self._channel = grpc.aio.secure_channel(target, creds, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(target, options=options)
            self._stub = pb_grpc.ControllerServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None

    async def _call(
        self, rpc: str, request: Any, *, not_found: Callable[[], Exception] | None = None
    ) -> Any:
        """One rpc, retried under the client's retry policy on transport-level failures; other gRPC errors become
        typed ones."""
        backoff = self.config.retry_policy.start()
        last: grpc.aio.AioRpcError | None = None
        while True:
            method = getattr(self._ensure_stub(), rpc)
            try:
                return await method(request, metadata=self._metadata, timeout=self.config.request_timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND and not_found is not None:
                    raise not_found() from exc
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    raise AuthenticationError(f"{rpc}: credentials refused: {exc.details()}") from exc
                if code == grpc.StatusCode.PERMISSION_DENIED:
                    raise AuthorizationError(f"{rpc}: permission denied: {exc.details()}") from exc
                if code in _NOT_RETRIED:
                    raise ControllerError(f"{rpc} failed: {code.name} {exc.details()}") from exc
                last = exc
                log.debug("%s failed with %s (attempt %d), retrying", rpc, code.name, backoff.attempts + 1)
            if not await backoff.wait():
                break
        detail = f"{last.code().name} {last.details()}" if last is not None else "no attempt"
        raise ControllerUnavailableError(
            f"{rpc}: controller at {self.config.controller_uri} unavailable after {backoff.describe()} ({detail})"
        )

    async def _pages(self, rpc: str, make: Callable[[Any], Any], items: Callable[[Any], Sequence[T]],
                     check: Callable[[Any], None] | None = None) -> AsyncIterator[T]:
        token = ""
        while True:
            reply = await self._call(rpc, make(pb.ContinuationToken(token=token)))
            if check is not None:
                check(reply)
            page = items(reply)
            if not page:
                return
            for item in page:
                yield item
            next_token = reply.continuationToken.token
            if next_token == token:
                return
            token = next_token

    # ---- scopes ----

    async def create_scope(self, scope: str) -> bool:
        """True if created, False if it existed."""
        status = (await self._call("createScope", pb.ScopeInfo(scope=scope))).status
        if status == pb.CreateScopeStatus.SUCCESS:
            return True
        if status == pb.CreateScopeStatus.SCOPE_EXISTS:
            return False
        if status == pb.CreateScopeStatus.INVALID_SCOPE_NAME:
            raise InvalidNameError(f"invalid scope name {scope!r}")
        raise ControllerError(f"creating scope {scope} failed", retriable=True)

    async def delete_scope(self, scope: str) -> bool:
        """True if deleted, False if it did not exist."""
        status = (await self._call("deleteScope", pb.ScopeInfo(scope=scope))).status
        if status == pb.DeleteScopeStatus.SUCCESS:
            return True
        if status == pb.DeleteScopeStatus.SCOPE_NOT_FOUND:
            return False
        if status == pb.DeleteScopeStatus.SCOPE_NOT_EMPTY:
            raise ScopeNotEmptyError(f"scope {scope} still holds streams, reader groups or tables")
        raise ControllerError(f"deleting scope {scope} failed", retriable=True)

    async def scope_exists(self, scope: str) -> bool:
        return bool((await self._call("checkScopeExists", pb.ScopeInfo(scope=scope))).exists)

    def list_scopes(self) -> AsyncIterator[str]:
        return self._pages("listScopes", lambda tok: pb.ScopesRequest(continuationToken=tok), lambda r: r.scopes)

    # ---- streams ----

    async def create_stream(self, scope: str, stream: str, config: StreamConfiguration) -> bool:
        """True if created, False if a stream of that name existed (its configuration is not compared)."""
        status = (await self._call("createStream", stream_config_pb(scope, stream, config))).status
        if status == pb.CreateStreamStatus.SUCCESS:
            return True
        if status == pb.CreateStreamStatus.STREAM_EXISTS:
            return False
        if status == pb.CreateStreamStatus.SCOPE_NOT_FOUND:
            raise NoSuchScopeError(f"scope {scope} does not exist")
        if status == pb.CreateStreamStatus.INVALID_STREAM_NAME:
            raise InvalidNameError(f"invalid stream name {stream!r}")
        raise ControllerError(f"creating stream {scope}/{stream} failed", retriable=True)

    def _update_status(self, status: int, scope: str, stream: str, what: str) -> None:
        if status == pb.UpdateStreamStatus.SUCCESS:
            return
        if status == pb.UpdateStreamStatus.STREAM_NOT_FOUND:
            raise NoSuchStreamError(f"stream {scope}/{stream} does not exist")
        if status == pb.UpdateStreamStatus.SCOPE_NOT_FOUND:
            raise NoSuchScopeError(f"scope {scope} does not exist")
        if status == pb.UpdateStreamStatus.STREAM_SEALED:
            raise StreamSealedError(f"stream {scope}/{stream} is sealed")
        raise ControllerError(f"{what} of stream {scope}/{stream} failed", retriable=True)

    async def update_stream(self, scope: str, stream: str, config: StreamConfiguration) -> None:
        reply = await self._call("updateStream", stream_config_pb(scope, stream, config))
        self._update_status(reply.status, scope, stream, "update")

    async def truncate_stream(self, cut: StreamCut) -> None:
        reply = await self._call("truncateStream", cut_pb(cut))
        self._update_status(reply.status, cut.scope, cut.stream, "truncation")

    async def seal_stream(self, scope: str, stream: str) -> None:
        reply = await self._call("sealStream", stream_info(scope, stream))
        self._update_status(reply.status, scope, stream, "sealing")

    async def delete_stream(self, scope: str, stream: str) -> bool:
        """True if deleted, False if it did not exist. Only sealed streams can be deleted."""
        status = (await self._call("deleteStream", stream_info(scope, stream))).status
        if status == pb.DeleteStreamStatus.SUCCESS:
            return True
        if status == pb.DeleteStreamStatus.STREAM_NOT_FOUND:
            return False
        if status == pb.DeleteStreamStatus.STREAM_NOT_SEALED:
            raise StreamNotSealedError(f"stream {scope}/{stream} must be sealed before it is deleted")
        raise ControllerError(f"deleting stream {scope}/{stream} failed", retriable=True)

    def _no_stream(self, scope: str, stream: str) -> Callable[[], Exception]:
        return lambda: NoSuchStreamError(f"stream {scope}/{stream} does not exist")

    async def stream_exists(self, scope: str, stream: str) -> bool:
        return bool((await self._call("checkStreamExists", stream_info(scope, stream))).exists)

    async def get_stream_configuration(self, scope: str, stream: str) -> StreamConfiguration:
        reply = await self._call("getStreamConfiguration", stream_info(scope, stream),
                                 not_found=self._no_stream(scope, stream))
        return stream_config_from_pb(reply)

    def _scope_status(self, scope: str) -> Callable[[Any], None]:
        def check(reply: Any) -> None:
            if reply.status == 2:
                raise NoSuchScopeError(f"scope {scope} does not exist")
            if reply.status == 1:
                raise ControllerError(f"listing scope {scope} failed", retriable=True)
        return check

    def list_streams(self, scope: str) -> AsyncIterator[str]:
        """All stream names of a scope, internal ones (``_MARK...``) included."""
        return self._pages(
            "listStreamsInScope",
            lambda tok: pb.StreamsInScopeRequest(scope=pb.ScopeInfo(scope=scope), continuationToken=tok),
            lambda r: [s.stream for s in r.streams], self._scope_status(scope),
        )

    def list_streams_for_tag(self, scope: str, tag: str) -> AsyncIterator[str]:
        return self._pages(
            "listStreamsInScopeForTag",
            lambda tok: pb.StreamsInScopeWithTagRequest(
                scope=pb.ScopeInfo(scope=scope), tag=tag, continuationToken=tok
            ),
            lambda r: [s.stream for s in r.streams], self._scope_status(scope),
        )

    # ---- segments ----

    async def get_current_segments(self, scope: str, stream: str) -> list[SegmentWithRange]:
        """The active segments sorted by key; empty for a sealed stream."""
        reply = await self._call("getCurrentSegments", stream_info(scope, stream),
                                 not_found=self._no_stream(scope, stream))
        return sorted((segment_range(r) for r in reply.segmentRanges), key=lambda s: s.min_key)

    async def get_epoch_segments(self, scope: str, stream: str, epoch: int) -> list[SegmentWithRange]:
        request = pb.GetEpochSegmentsRequest(streamInfo=stream_info(scope, stream), epoch=epoch)
        reply = await self._call("getEpochSegments", request, not_found=self._no_stream(scope, stream))
        return sorted((segment_range(r) for r in reply.segmentRanges), key=lambda s: s.min_key)

    async def get_head_segments(self, scope: str, stream: str) -> dict[int, int]:
        """The head of the stream: segment id → start offset (the truncation cut, or epoch 0 at 0)."""
        request = pb.GetSegmentsRequest(streamInfo=stream_info(scope, stream), timestamp=0)
        reply = await self._call("getSegments", request, not_found=self._no_stream(scope, stream))
        return {loc.segmentId.segmentId: loc.offset for loc in reply.segments}

    async def get_successors(self, scope: str, stream: str, segment_id: int) -> list[Successor]:
        """Segments immediately following a sealed one; empty when the stream is sealed or the segment active."""
        request = pb.SegmentId(streamInfo=stream_info(scope, stream), segmentId=segment_id)
        reply = await self._call("getSegmentsImmediatelyFollowing", request, not_found=self._no_stream(scope, stream))
        return [Successor(segment_range(e.segment), tuple(e.value)) for e in reply.segments]

    async def get_segments_between(self, start: StreamCut, end: StreamCut) -> list[int]:
        request = pb.StreamCutRange(streamInfo=stream_info(start.scope, start.stream),
                                    **{"from": dict(start.positions), "to": dict(end.positions)})
        reply = await self._call("getSegmentsBetween", request, not_found=self._no_stream(start.scope, start.stream))
        return [s.segmentId for s in reply.segments]

    async def is_segment_valid(self, scope: str, stream: str, segment_id: int) -> bool:
        request = pb.SegmentId(streamInfo=stream_info(scope, stream), segmentId=segment_id)
        return bool((await self._call("isSegmentValid", request)).response)

    async def is_stream_cut_valid(self, cut: StreamCut) -> bool:
        return bool((await self._call("isStreamCutValid", cut_pb(cut))).response)

    async def get_uri(self, scope: str, stream: str, segment_id: int) -> Endpoint:
        """The segment store serving a segment (works for any name, e.g. reader-group tables)."""
        reply = await self._call("getURI", pb.SegmentId(streamInfo=stream_info(scope, stream), segmentId=segment_id))
        return Endpoint(reply.endpoint, reply.port)

    async def get_delegation_token(self, scope: str, stream: str) -> str:
        return str((await self._call("getDelegationToken", stream_info(scope, stream))).delegationToken)

    # ---- scaling ----

    async def scale(self, scope: str, stream: str, sealed: Iterable[int],
                    new_ranges: Iterable[tuple[float, float]], timestamp_ms: int | None = None) -> ScaleResult:
        request = pb.ScaleRequest(
            streamInfo=stream_info(scope, stream), sealedSegments=list(sealed),
            newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=a, end=b) for a, b in new_ranges],
            scaleTimestamp=int(self.config.clock.time() * 1000) if timestamp_ms is None else timestamp_ms,
        )
        reply = await self._call("scale", request, not_found=self._no_stream(scope, stream))
        if reply.status == pb.ScaleResponse.STARTED:
            return ScaleResult(tuple(segment_range(r) for r in reply.segments), reply.epoch)
        reason = "precondition failed" if reply.status == pb.ScaleResponse.PRECONDITION_FAILED else "rejected"
        raise ScaleFailedError(f"scale of {scope}/{stream} {reason}: check the sealed ids are current and the "
                               "new ranges cover exactly their key ranges")

    async def check_scale(self, scope: str, stream: str, epoch: int) -> bool:
        """True once the scale started from ``epoch`` is complete."""
        request = pb.ScaleStatusRequest(streamInfo=stream_info(scope, stream), epoch=epoch)
        status = (await self._call("checkScale", request)).status
        if status == pb.ScaleStatusResponse.SUCCESS:
            return True
        if status == pb.ScaleStatusResponse.IN_PROGRESS:
            return False
        raise ScaleFailedError(f"checking the scale of {scope}/{stream} from epoch {epoch} failed ({status})")

    async def scale_and_wait(self, scope: str, stream: str, sealed: Iterable[int],
                             new_ranges: Iterable[tuple[float, float]], timeout: float = 60.0) -> ScaleResult:
        result = await self.scale(scope, stream, sealed, new_ranges)
        clock = self.config.clock
        deadline = clock.monotonic() + timeout
        delay = 0.005
        while not await self.check_scale(scope, stream, result.epoch):
            if clock.monotonic() > deadline:
                raise ControllerError(f"scale of {scope}/{stream} did not finish within {timeout} s", retriable=True)
            await clock.sleep(delay)
            delay = min(delay * 2, 0.5)
        return result

    # ---- transactions ----

    async def create_transaction(self, scope: str, stream: str, lease_ms: int) -> CreatedTxn:
        request = pb.CreateTxnRequest(streamInfo=stream_info(scope, stream), lease=lease_ms)
        reply = await self._call("createTransaction", request, not_found=self._no_stream(scope, stream))
        return CreatedTxn(txn_uuid(reply.txnId),
                          tuple(sorted((segment_range(r) for r in reply.activeSegments), key=lambda s: s.min_key)))

    def _txn_status(self, status: int, txn_id: uuid.UUID, what: str) -> None:
        if status == pb.TxnStatus.SUCCESS:
            return
        if status == pb.TxnStatus.TRANSACTION_NOT_FOUND:
            raise NoSuchTransactionError(f"transaction {txn_id} is unknown")
        if status == pb.TxnStatus.STREAM_NOT_FOUND:
            raise NoSuchStreamError(f"the stream of transaction {txn_id} does not exist")
        raise TxnFailedError(f"{what} of transaction {txn_id} failed: it is no longer open")

    async def commit_transaction(self, scope: str, stream: str, txn_id: uuid.UUID, writer_id: str = "",
                                 timestamp: int | None = None) -> None:
        request = pb.TxnRequest(streamInfo=stream_info(scope, stream), txnId=txn_pb(txn_id), writerId=writer_id,
                                timestamp=NO_TIMESTAMP if timestamp is None else timestamp)
        self._txn_status((await self._call("commitTransaction", request)).status, txn_id, "commit")

    async def abort_transaction(self, scope: str, stream: str, txn_id: uuid.UUID) -> None:
        request = pb.TxnRequest(streamInfo=stream_info(scope, stream), txnId=txn_pb(txn_id))
        self._txn_status((await self._call("abortTransaction", request)).status, txn_id, "abort")

    async def ping_transaction(self, scope: str, stream: str, txn_id: uuid.UUID, lease_ms: int) -> PingStatus:
        request = pb.PingTxnRequest(streamInfo=stream_info(scope, stream), txnId=txn_pb(txn_id), lease=lease_ms)
        return PingStatus((await self._call("pingTransaction", request)).status)

    async def check_transaction_state(self, scope: str, stream: str, txn_id: uuid.UUID) -> TxnState:
        request = pb.TxnRequest(streamInfo=stream_info(scope, stream), txnId=txn_pb(txn_id))
        reply = await self._call("checkTransactionState", request, not_found=self._no_stream(scope, stream))
        return TxnState(reply.state)

    async def list_completed_transactions(self, scope: str, stream: str) -> dict[uuid.UUID, TxnState]:
        reply = await self._call("listCompletedTransactions", pb.ListCompletedTxnRequest(
            streamInfo=stream_info(scope, stream)), not_found=self._no_stream(scope, stream))
        return {txn_uuid(r.txnId): TxnState.COMMITTED if r.status == 0 else TxnState.ABORTED for r in reply.response}

    # ---- reader groups and subscribers ----

    async def create_reader_group(self, config: ControllerReaderGroupConfig) -> ControllerReaderGroupConfig:
        """Creates the group (or finds it) and returns the configuration the controller stores."""
        reply = await self._call("createReaderGroup", reader_group_pb(config))
        if reply.status == pb.CreateReaderGroupResponse.SUCCESS:
            return reader_group_from_pb(reply.config)
        if reply.status == pb.CreateReaderGroupResponse.SCOPE_NOT_FOUND:
            raise NoSuchScopeError(f"scope {config.scope} does not exist")
        if reply.status == pb.CreateReaderGroupResponse.INVALID_RG_NAME:
            raise InvalidNameError(f"invalid reader group name {config.group!r}")
        raise ControllerError(f"creating reader group {config.scope}/{config.group} failed", retriable=True)

    async def get_reader_group_config(self, scope: str, group: str) -> ControllerReaderGroupConfig:
        reply = await self._call("getReaderGroupConfig", pb.ReaderGroupInfo(scope=scope, readerGroup=group))
        if reply.status == pb.ReaderGroupConfigResponse.SUCCESS:
            return reader_group_from_pb(reply.config)
        if reply.status == pb.ReaderGroupConfigResponse.RG_NOT_FOUND:
            raise NoSuchReaderGroupError(f"reader group {scope}/{group} does not exist")
        raise ControllerError(f"reading reader group {scope}/{group} failed", retriable=True)

    async def update_reader_group(self, config: ControllerReaderGroupConfig) -> int:
        """Applies ``config`` (its generation must be the stored one); returns the new generation."""
        reply = await self._call("updateReaderGroup", reader_group_pb(config))
        if reply.status == pb.UpdateReaderGroupResponse.SUCCESS:
            return int(reply.generation)
        if reply.status == pb.UpdateReaderGroupResponse.RG_NOT_FOUND:
            raise NoSuchReaderGroupError(f"reader group {config.scope}/{config.group} does not exist")
        if reply.status == pb.UpdateReaderGroupResponse.INVALID_CONFIG:
            raise ReaderGroupConfigError(f"reader group {config.scope}/{config.group}: stale generation or id")
        raise ControllerError(f"updating reader group {config.scope}/{config.group} failed", retriable=True)

    async def delete_reader_group(self, scope: str, group: str, reader_group_id: uuid.UUID,
                                  generation: int = 0) -> bool:
        """True if deleted, False if it did not exist (or has another id)."""
        request = pb.ReaderGroupInfo(scope=scope, readerGroup=group, readerGroupId=str(reader_group_id),
                                     generation=generation)
        status = (await self._call("deleteReaderGroup", request)).status
        if status == pb.DeleteReaderGroupStatus.SUCCESS:
            return True
        if status == pb.DeleteReaderGroupStatus.RG_NOT_FOUND:
            return False
        raise ControllerError(f"deleting reader group {scope}/{group} failed", retriable=True)

    async def list_subscribers(self, scope: str, stream: str) -> list[str]:
        reply = await self._call("listSubscribers", stream_info(scope, stream))
        if reply.status == 2:
            raise NoSuchStreamError(f"stream {scope}/{stream} does not exist")
        return list(reply.subscribers)

    async def update_subscriber_stream_cut(self, subscriber: str, reader_group_id: uuid.UUID, generation: int,
                                           cut: StreamCut) -> None:
        request = pb.SubscriberStreamCut(subscriber=subscriber, generation=generation,
                                         readerGroupId=str(reader_group_id), streamCut=cut_pb(cut))
        status = (await self._call("updateSubscriberStreamCut", request)).status
        if status == pb.UpdateSubscriberStatus.SUCCESS:
            return
        if status == pb.UpdateSubscriberStatus.STREAM_NOT_FOUND:
            raise NoSuchStreamError(f"stream {cut.scope}/{cut.stream} does not exist")
        names = {3: "unknown subscriber", 4: "invalid stream cut", 5: "generation mismatch"}
        raise ControllerError(f"updating subscriber {subscriber} failed: {names.get(status, 'failure')}",
                              retriable=status == 1)

    # ---- key-value tables ----

    async def create_key_value_table(self, scope: str, name: str, config: KeyValueTableConfiguration) -> bool:
        """True if created, False if it existed."""
        request = pb.KeyValueTableConfig(
            scope=scope, kvtName=name, partitionCount=config.partition_count,
            primaryKeyLength=config.primary_key_length, secondaryKeyLength=config.secondary_key_length,
            rolloverSizeBytes=config.rollover_size_bytes,
        )
        status = (await self._call("createKeyValueTable", request)).status
        if status == pb.CreateKeyValueTableStatus.SUCCESS:
            return True
        if status == pb.CreateKeyValueTableStatus.TABLE_EXISTS:
            return False
        if status == pb.CreateKeyValueTableStatus.SCOPE_NOT_FOUND:
            raise NoSuchScopeError(f"scope {scope} does not exist")
        if status == pb.CreateKeyValueTableStatus.INVALID_TABLE_NAME:
            raise InvalidNameError(f"invalid key-value table name {name!r}")
        raise ControllerError(f"creating key-value table {scope}/{name} failed", retriable=True)

    async def get_key_value_table_segments(self, scope: str, name: str) -> list[SegmentWithRange]:
        reply = await self._call(
            "getCurrentSegmentsKeyValueTable", pb.KeyValueTableInfo(scope=scope, kvtName=name),
            not_found=lambda: NoSuchKeyValueTableError(f"key-value table {scope}/{name} does not exist"),
        )
        return sorted((segment_range(r) for r in reply.segmentRanges), key=lambda s: s.min_key)

    async def get_key_value_table_configuration(self, scope: str, name: str) -> KeyValueTableConfiguration:
        reply = await self._call("getKeyValueTableConfiguration", pb.KeyValueTableInfo(scope=scope, kvtName=name))
        if reply.status == pb.KeyValueTableConfigResponse.TABLE_NOT_FOUND:
            raise NoSuchKeyValueTableError(f"key-value table {scope}/{name} does not exist")
        if reply.status != pb.KeyValueTableConfigResponse.SUCCESS:
            raise ControllerError(f"reading key-value table {scope}/{name} failed", retriable=True)
        c = reply.config
        return KeyValueTableConfiguration(c.partitionCount, c.primaryKeyLength, c.secondaryKeyLength,
                                          c.rolloverSizeBytes)

    def list_key_value_tables(self, scope: str) -> AsyncIterator[str]:
        return self._pages(
            "listKeyValueTablesInScope",
            lambda tok: pb.KVTablesInScopeRequest(scope=pb.ScopeInfo(scope=scope), continuationToken=tok),
            lambda r: [t.kvtName for t in r.kvtables], self._scope_status(scope),
        )

    async def delete_key_value_table(self, scope: str, name: str) -> bool:
        """True if deleted, False if it did not exist."""
        status = (await self._call("deleteKeyValueTable", pb.KeyValueTableInfo(scope=scope, kvtName=name))).status
        if status == pb.DeleteKVTableStatus.SUCCESS:
            return True
        if status == pb.DeleteKVTableStatus.TABLE_NOT_FOUND:
            return False
        raise ControllerError(f"deleting key-value table {scope}/{name} failed", retriable=True)

    # ---- writers ----

    async def note_timestamp_from_writer(self, writer: str, scope: str, stream: str, timestamp: int,
                                         position: Mapping[int, int]) -> bool:
        """Records a writer's time mark; False if the controller rejected it (time or position went back)."""
        request = pb.TimestampFromWriter(writer=writer, timestamp=timestamp,
                                         position=cut_pb(StreamCut(scope, stream, dict(position))))
        return (await self._call("noteTimestampFromWriter", request)).result == pb.TimestampResponse.SUCCESS

    async def remove_writer(self, writer: str, scope: str, stream: str) -> bool:
        request = pb.RemoveWriterRequest(writer=writer, stream=stream_info(scope, stream))
        return (await self._call("removeWriter", request)).result == pb.RemoveWriterResponse.SUCCESS


async def retry_retriable(op: Callable[[], Awaitable[T]], policy: RetryPolicy | None = None) -> T:
    """Runs ``op`` again, under ``policy``, while it raises an error whose ``retriable`` flag is set."""
    backoff = (policy or RetryPolicy()).start()
    while True:
        try:
            return await op()
        except Exception as exc:
            if not getattr(exc, "retriable", False) or not await backoff.wait():
                raise


__all__ = [
    "NO_TIMESTAMP",
    "ControllerClient",
    "ControllerReaderGroupConfig",
    "CreatedTxn",
    "Endpoint",
    "KeyValueTableConfiguration",
    "KeyValueTableExistsError",
    "PingStatus",
    "ScaleResult",
    "Successor",
    "TxnState",
    "retry_retriable",
]
