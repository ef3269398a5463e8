"""gRPC handlers for reader groups, subscribers and key-value tables (a mixin of ``ControllerServicer``)."""

from __future__ import annotations

from typing import Any

from anabranch.controller.convert import cut_from_proto, segment_ranges, token
from anabranch.controller.errors import NotFoundError, StreamNotFoundError
from anabranch.controller.facade import Controller
from anabranch.controller.servicer_base import PAGE_SIZE, rpc
from anabranch.controller.validation import hex_token
from anabranch.protocol import controller_pb2 as pb


class GroupRpcs:
    c: Controller

    # ---- reader groups ----

    @rpc
    async def createReaderGroup(self, request: pb.ReaderGroupConfiguration, context: Any
                                ) -> pb.CreateReaderGroupResponse:
        status, config = await self.c.readergroups.create(request)
        return pb.CreateReaderGroupResponse(status=status, config=config)  # type: ignore[arg-type]

    @rpc
    async def getReaderGroupConfig(self, request: pb.ReaderGroupInfo, context: Any) -> pb.ReaderGroupConfigResponse:
        status, config = await self.c.readergroups.get(request.scope, request.readerGroup)
        if config is None:
            config = pb.ReaderGroupConfiguration(scope=request.scope, readerGroupName=request.readerGroup)
        return pb.ReaderGroupConfigResponse(status=status, config=config)  # type: ignore[arg-type]

    @rpc
    async def updateReaderGroup(self, request: pb.ReaderGroupConfiguration, context: Any
                                ) -> pb.UpdateReaderGroupResponse:
        status, generation = await self.c.readergroups.update(request)
        return pb.UpdateReaderGroupResponse(status=status, generation=generation)  # type: ignore[arg-type]

    @rpc
    async def deleteReaderGroup(self, request: pb.ReaderGroupInfo, context: Any) -> pb.DeleteReaderGroupStatus:
        status = await self.c.readergroups.delete(request.scope, request.readerGroup, request.readerGroupId)
        return pb.DeleteReaderGroupStatus(status=status)  # type: ignore[arg-type]

    @rpc
    async def listSubscribers(self, request: pb.StreamInfo, context: Any) -> pb.SubscribersResponse:
        try:
            names = await self.c.readergroups.list_subscribers(request.scope, request.stream)
        except StreamNotFoundError:
            return pb.SubscribersResponse(status=pb.SubscribersResponse.STREAM_NOT_FOUND)
        return pb.SubscribersResponse(subscribers=names, status=pb.SubscribersResponse.SUCCESS)

    @rpc
    async def updateSubscriberStreamCut(self, request: pb.SubscriberStreamCut, context: Any
                                        ) -> pb.UpdateSubscriberStatus:
        info = request.streamCut.streamInfo
        status = await self.c.readergroups.update_subscriber_cut(
            info.scope, info.stream, request.subscriber, request.readerGroupId, request.generation,
            cut_from_proto(request.streamCut.cut))
        return pb.UpdateSubscriberStatus(status=status)  # type: ignore[arg-type]

    # ---- key-value tables ----

    @rpc
    async def createKeyValueTable(self, request: pb.KeyValueTableConfig, context: Any
                                  ) -> pb.CreateKeyValueTableStatus:
        return pb.CreateKeyValueTableStatus(status=await self.c.kvtables.create(request))  # type: ignore[arg-type]

    @rpc
    async def getCurrentSegmentsKeyValueTable(self, request: pb.KeyValueTableInfo, context: Any
                                              ) -> pb.SegmentRanges:
        segments = await self.c.kvtables.segments(request.scope, request.kvtName)
        return pb.SegmentRanges(segmentRanges=segment_ranges(request.scope, request.kvtName, segments),
                                delegationToken="")

    @rpc
    async def listKeyValueTablesInScope(self, request: pb.KVTablesInScopeRequest, context: Any
                                        ) -> pb.KVTablesInScopeResponse:
        scope = request.scope.scope
        if not await self.c.store.scope_exists(scope):
            return pb.KVTablesInScopeResponse(status=pb.KVTablesInScopeResponse.SCOPE_NOT_FOUND,
                                              continuationToken=token(request.continuationToken.token))
        names, next_token = await self.c.streams.list_page(
            "kvTables", scope, hex_token(request.continuationToken.token), PAGE_SIZE)
        return pb.KVTablesInScopeResponse(kvtables=[pb.KeyValueTableInfo(scope=scope, kvtName=n) for n in names],
                                          continuationToken=token(next_token.hex()))

    @rpc
    async def getKeyValueTableConfiguration(self, request: pb.KeyValueTableInfo, context: Any
                                            ) -> pb.KeyValueTableConfigResponse:
        try:
            config = await self.c.kvtables.config(request.scope, request.kvtName)
        except NotFoundError:
            return pb.KeyValueTableConfigResponse(status=pb.KeyValueTableConfigResponse.TABLE_NOT_FOUND)
        return pb.KeyValueTableConfigResponse(config=config, status=pb.KeyValueTableConfigResponse.SUCCESS)

    @rpc
    async def deleteKeyValueTable(self, request: pb.KeyValueTableInfo, context: Any) -> pb.DeleteKVTableStatus:
        return pb.DeleteKVTableStatus(status=await self.c.kvtables.delete(request.scope, request.kvtName))  # type: ignore[arg-type]
