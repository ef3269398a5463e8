"""The gRPC face of the controller: one handler per rpc of ``ControllerService``.

Handlers only translate: proto in → workflow call → proto out; every one is wrapped by
``servicer_base.rpc`` (errors → gRPC status codes). Reader-group and KVT handlers live in
``servicer_groups``.
"""

from __future__ import annotations

import logging
from typing import Any

from anabranch.controller.convert import (
    config_from_proto,
    config_to_proto,
    cut_from_proto,
    segment_id_proto,
    segment_range,
    segment_ranges,
    stream_info,
    token,
    txn_id_from_proto,
    txn_id_to_proto,
)
from anabranch.controller.epochs import all_segments, is_cut_valid, segments_between, successors
from anabranch.controller.errors import (
    InvalidArgumentError,
    NotFoundError,
)
from anabranch.controller.facade import Controller
from anabranch.controller.servicer_base import PAGE_SIZE, is_rust_client, rpc
from anabranch.controller.servicer_groups import GroupRpcs
from anabranch.controller.validation import hex_token, index_token
from anabranch.model.names import MARK_PREFIX, qualified_segment_name, segment_epoch
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

class ControllerServicer(GroupRpcs, pb_grpc.ControllerServiceServicer):
    def __init__(self, controller: Controller) -> None:
        self.c = controller

    async def _materialize(self, scope: str, stream: str) -> None:
        """A stream's mark stream ``_MARK<s>`` is created when first asked for (``Streams.ensure_mark_stream``), so
        every rpc reading a stream's records answers for it as if it had been created with ``s``."""
        if stream.startswith(MARK_PREFIX):
            await self.c.streams.ensure_mark_stream(scope, stream)

    # ---- cluster / auth ----

    @rpc
    async def getControllerServerList(self, request: pb.ServerRequest, context: Any) -> pb.ServerResponse:
        return pb.ServerResponse(nodeURI=[pb.NodeUri(endpoint=h, port=p) for h, p in self.c.controller_uris()])

    @rpc
    async def getDelegationToken(self, request: pb.StreamInfo, context: Any) -> pb.DelegationToken:
        return pb.DelegationToken(delegationToken="")

    @rpc
    async def getControllerToBucketMapping(self, request: pb.ControllerToBucketMappingRequest, context: Any
                                           ) -> pb.ControllerToBucketMappingResponse:
        response = pb.ControllerToBucketMappingResponse()
        response.mapping[f"{self.c.host}:{self.c.port}"].id.append(0)
        return response

    # ---- scopes ----

    @rpc
    async def createScope(self, request: pb.ScopeInfo, context: Any) -> pb.CreateScopeStatus:
        return pb.CreateScopeStatus(status=await self.c.streams.create_scope(request.scope))  # type: ignore[arg-type]

    @rpc
    async def deleteScope(self, request: pb.ScopeInfo, context: Any) -> pb.DeleteScopeStatus:
        return pb.DeleteScopeStatus(status=await self.c.streams.delete_scope(request.scope))  # type: ignore[arg-type]

    @rpc
    async def deleteScopeRecursive(self, request: pb.ScopeInfo, context: Any) -> pb.DeleteScopeStatus:
        return pb.DeleteScopeStatus(status=await self.c.delete_scope_recursive(request.scope))  # type: ignore[arg-type]

    @rpc
    async def checkScopeExists(self, request: pb.ScopeInfo, context: Any) -> pb.ExistsResponse:
        return pb.ExistsResponse(exists=await self.c.store.scope_exists(request.scope))

    @rpc
    async def listScopes(self, request: pb.ScopesRequest, context: Any) -> pb.ScopesResponse:
        names, next_token = await self.c.streams.list_page(
            "scopes", "", hex_token(request.continuationToken.token), PAGE_SIZE)
        return pb.ScopesResponse(scopes=names, continuationToken=token(next_token.hex()))

    # ---- streams ----

    @rpc
    async def createStream(self, request: pb.StreamConfig, context: Any) -> pb.CreateStreamStatus:
        info = request.streamInfo
        status = await self.c.streams.create_stream(info.scope, info.stream, config_from_proto(request))
        return pb.CreateStreamStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def updateStream(self, request: pb.StreamConfig, context: Any) -> pb.UpdateStreamStatus:
        info = request.streamInfo
        status = await self.c.streams.update_stream(info.scope, info.stream, config_from_proto(request))
        return self._update_status(status, context)

    def _update_status(self, status: str, context: Any) -> pb.UpdateStreamStatus:
        if status == "STREAM_SEALED" and is_rust_client(context):
            status = "FAILURE"
        return pb.UpdateStreamStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def truncateStream(self, request: pb.StreamCut, context: Any) -> pb.UpdateStreamStatus:
        info = request.streamInfo
        status = await self.c.streams.truncate_stream(info.scope, info.stream, cut_from_proto(request.cut))
        return self._update_status(status, context)

    @rpc
    async def sealStream(self, request: pb.StreamInfo, context: Any) -> pb.UpdateStreamStatus:
        return self._update_status(await self.c.streams.seal_stream(request.scope, request.stream), context)

    @rpc
    async def deleteStream(self, request: pb.StreamInfo, context: Any) -> pb.DeleteStreamStatus:
        status = await self.c.streams.delete_stream(request.scope, request.stream)
        return pb.DeleteStreamStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def checkStreamExists(self, request: pb.StreamInfo, context: Any) -> pb.ExistsResponse:
        await self._materialize(request.scope, request.stream)
        return pb.ExistsResponse(exists=await self.c.store.stream_exists(request.scope, request.stream))

    @rpc
    async def getStreamConfiguration(self, request: pb.StreamInfo, context: Any) -> pb.StreamConfig:
        await self._materialize(request.scope, request.stream)
        config = await self.c.streams.get_config(request.scope, request.stream)
        return config_to_proto(request.scope, request.stream, config)

    @rpc
    async def listStreamsInScope(self, request: pb.StreamsInScopeRequest, context: Any) -> pb.StreamsInScopeResponse:
        scope = request.scope.scope
        if not await self.c.store.scope_exists(scope):
            return pb.StreamsInScopeResponse(status=pb.StreamsInScopeResponse.SCOPE_NOT_FOUND,
                                             continuationToken=token(request.continuationToken.token))
        names, next_token = await self.c.streams.list_page(
            "streams", scope, hex_token(request.continuationToken.token), PAGE_SIZE)
        return pb.StreamsInScopeResponse(streams=[stream_info(scope, n) for n in names],
                                         continuationToken=token(next_token.hex()))

    @rpc
    async def listStreamsInScopeForTag(self, request: pb.StreamsInScopeWithTagRequest, context: Any
                                       ) -> pb.StreamsInScopeResponse:
        scope = request.scope.scope
        if not request.tag:
            raise InvalidArgumentError("listStreamsInScopeForTag needs a tag")
        if not await self.c.store.scope_exists(scope):
            return pb.StreamsInScopeResponse(status=pb.StreamsInScopeResponse.SCOPE_NOT_FOUND,
                                             continuationToken=token(request.continuationToken.token))
        start = index_token(request.continuationToken.token)
        names = (await self.c.streams.streams_with_tag(scope, request.tag))[start:start + PAGE_SIZE]
        return pb.StreamsInScopeResponse(streams=[stream_info(scope, n) for n in names],
                                         continuationToken=token(str(start + len(names))))

    # ---- segments ----

    @rpc
    async def getCurrentSegments(self, request: pb.StreamInfo, context: Any) -> pb.SegmentRanges:
        await self._materialize(request.scope, request.stream)
        view = await self.c.ctx.view(request.scope, request.stream)
        segments = await self.c.ctx.active_segments(view)
        return pb.SegmentRanges(segmentRanges=segment_ranges(request.scope, request.stream, segments),
                                delegationToken="")

    @rpc
    async def getEpochSegments(self, request: pb.GetEpochSegmentsRequest, context: Any) -> pb.SegmentRanges:
        info = request.streamInfo
        if request.epoch < 0:
            raise InvalidArgumentError(f"epoch {request.epoch} < 0")
        await self._materialize(info.scope, info.stream)
        view = await self.c.ctx.view(info.scope, info.stream)
        if request.epoch > view.latest:
            raise NotFoundError(f"stream {info.scope}/{info.stream} has no epoch {request.epoch}")
        record = await self.c.ctx.epoch(view, request.epoch)
        return pb.SegmentRanges(segmentRanges=segment_ranges(info.scope, info.stream, record.segments),
                                delegationToken="")

    @rpc
    async def getSegments(self, request: pb.GetSegmentsRequest, context: Any) -> pb.SegmentsAtTime:
        info = request.streamInfo
        await self._materialize(info.scope, info.stream)
        head = await self.c.head(info.scope, info.stream)
        return pb.SegmentsAtTime(segments=[
            pb.SegmentsAtTime.SegmentLocation(segmentId=segment_id_proto(info.scope, info.stream, seg_id), offset=o)
            for seg_id, o in head], delegationToken="")

    @rpc
    async def getSegmentsImmediatelyFollowing(self, request: pb.SegmentId, context: Any) -> pb.SuccessorResponse:
        info = request.streamInfo
        await self._materialize(info.scope, info.stream)
        view = await self.c.ctx.view(info.scope, info.stream)
        first = max(0, min(segment_epoch(request.segmentId), view.latest))
        epochs = await self.c.store.epochs(info.scope, info.stream, first, view.latest)
        return pb.SuccessorResponse(segments=[
            pb.SuccessorResponse.SegmentEntry(segment=segment_range(info.scope, info.stream, succ), value=preds)
            for succ, preds in successors(request.segmentId, epochs)], delegationToken="")

    @rpc
    async def getSegmentsImmediatlyFollowing(self, request: pb.SegmentId, context: Any) -> pb.SuccessorResponse:
        return await self.getSegmentsImmediatelyFollowing.__wrapped__(self, request, context)  # type: ignore[attr-defined]

    @rpc
    async def getSegmentsBetween(self, request: pb.StreamCutRange, context: Any) -> pb.StreamCutRangeResponse:
        info = request.streamInfo
        start, end = cut_from_proto(getattr(request, "from")), cut_from_proto(request.to)
        if not start and not end:
            raise InvalidArgumentError("getSegmentsBetween needs at least one of the two stream cuts")
        view = await self.c.ctx.view(info.scope, info.stream)
        epochs = await self.c.ctx.all_epochs(view)
        segments = all_segments(epochs)
        if any(i not in segments for i in (*start, *end)):
            raise InvalidArgumentError("a stream cut names a segment this stream never had")
        between = segments_between(start, end, epochs[0], await self.c.ctx.epoch(view, view.active), segments)
        return pb.StreamCutRangeResponse(
            segments=[segment_id_proto(info.scope, info.stream, s.id) for s in between], delegationToken="")

    @rpc
    async def isSegmentValid(self, request: pb.SegmentId, context: Any) -> pb.SegmentValidityResponse:
        info = request.streamInfo
        view = await self.c.ctx.view(info.scope, info.stream)
        active = await self.c.ctx.active_segments(view)
        return pb.SegmentValidityResponse(response=any(s.id == request.segmentId for s in active))

    @rpc
    async def isStreamCutValid(self, request: pb.StreamCut, context: Any) -> pb.StreamCutValidityResponse:
        info = request.streamInfo
        view = await self.c.ctx.view(info.scope, info.stream)
        segments = all_segments(await self.c.ctx.all_epochs(view))
        return pb.StreamCutValidityResponse(response=is_cut_valid(cut_from_proto(request.cut), segments))

    @rpc
    async def getURI(self, request: pb.SegmentId, context: Any) -> pb.NodeUri:
        info = request.streamInfo
        host, port = await self.c.segment_store_uri(qualified_segment_name(info.scope, info.stream, request.segmentId))
        return pb.NodeUri(endpoint=host, port=port)

    # ---- scaling ----

    @rpc
    async def scale(self, request: pb.ScaleRequest, context: Any) -> pb.ScaleResponse:
        info = request.streamInfo
        ranges = [(r.start, r.end) for r in request.newKeyRanges]
        status, created, epoch = await self.c.scaling.scale(info.scope, info.stream, list(request.sealedSegments),
                                                            ranges)
        return pb.ScaleResponse(status=status, segments=segment_ranges(info.scope, info.stream, created),  # type: ignore[arg-type]
                                epoch=epoch)

    @rpc
    async def checkScale(self, request: pb.ScaleStatusRequest, context: Any) -> pb.ScaleStatusResponse:
        info = request.streamInfo
        if request.epoch < 0:
            raise InvalidArgumentError(f"epoch {request.epoch} < 0")
        status = await self.c.scaling.check_scale(info.scope, info.stream, request.epoch)
        return pb.ScaleStatusResponse(status=status)  # type: ignore[arg-type]

    # ---- transactions ----

    @rpc
    async def createTransaction(self, request: pb.CreateTxnRequest, context: Any) -> pb.CreateTxnResponse:
        info = request.streamInfo
        txn_id, segments = await self.c.txns.create(info.scope, info.stream, request.lease)
        return pb.CreateTxnResponse(txnId=txn_id_to_proto(txn_id),
                                    activeSegments=segment_ranges(info.scope, info.stream, segments),
                                    delegationToken="")

    @rpc
    async def pingTransaction(self, request: pb.PingTxnRequest, context: Any) -> pb.PingTxnStatus:
        info = request.streamInfo
        status = await self.c.txns.ping(info.scope, info.stream, txn_id_from_proto(request.txnId), request.lease)
        return pb.PingTxnStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def commitTransaction(self, request: pb.TxnRequest, context: Any) -> pb.TxnStatus:
        info = request.streamInfo
        status = await self.c.txns.commit(info.scope, info.stream, txn_id_from_proto(request.txnId),
                                          request.writerId, request.timestamp)
        return pb.TxnStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def abortTransaction(self, request: pb.TxnRequest, context: Any) -> pb.TxnStatus:
        info = request.streamInfo
        status = await self.c.txns.abort(info.scope, info.stream, txn_id_from_proto(request.txnId))
        return pb.TxnStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def checkTransactionState(self, request: pb.TxnRequest, context: Any) -> pb.TxnState:
        info = request.streamInfo
        state = await self.c.txns.state(info.scope, info.stream, txn_id_from_proto(request.txnId))
        return pb.TxnState(state=state)  # type: ignore[arg-type]

    @rpc
    async def listCompletedTransactions(self, request: pb.ListCompletedTxnRequest, context: Any
                                        ) -> pb.ListCompletedTxnResponse:
        info = request.streamInfo
        done = await self.c.txns.list_completed(info.scope, info.stream)
        return pb.ListCompletedTxnResponse(response=[
            pb.TxnResponse(txnId=txn_id_to_proto(t), status=s) for t, s in done])  # type: ignore[misc]

    # ---- writers ----

    @rpc
    async def noteTimestampFromWriter(self, request: pb.TimestampFromWriter, context: Any) -> pb.TimestampResponse:
        info = request.position.streamInfo
        result = await self.c.writers.note_time(info.scope, info.stream, request.writer,
                                                cut_from_proto(request.position.cut), request.timestamp)
        return pb.TimestampResponse(result=result)  # type: ignore[arg-type]

    @rpc
    async def removeWriter(self, request: pb.RemoveWriterRequest, context: Any) -> pb.RemoveWriterResponse:
        info = request.stream
        result = await self.c.writers.remove(info.scope, info.stream, request.writer)
        return pb.RemoveWriterResponse(result=result)  # type: ignore[arg-type]
