"""ControllerClient over a real gRPC channel to an in-test servicer: retries, status mapping, paging, ids."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from anabranch.client.config import ClientConfig, RetentionPolicy, ScalingPolicy, StreamConfiguration
from anabranch.client.controller_client import ControllerClient
from anabranch.client.errors import (
    ControllerError,
    ControllerUnavailableError,
    InvalidNameError,
    NoSuchStreamError,
    ScopeNotEmptyError,
    TxnFailedError,
)
from anabranch.protocol import controller_pb2 as pb
from anabranch.protocol import controller_pb2_grpc as pb_grpc


class Servicer(pb_grpc.ControllerServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.unavailable = 0
        self.configs: dict[str, Any] = {}
        self.txn: Any = None
        self.scopes = [f"scope{i}" for i in range(5)]

    async def createScope(self, request: Any, context: Any) -> Any:
        if self.unavailable:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try later")
        if request.scope.startswith("_bad"):
            return pb.CreateScopeStatus(status=pb.CreateScopeStatus.INVALID_SCOPE_NAME)
        return pb.CreateScopeStatus(status=pb.CreateScopeStatus.SUCCESS)

    async def deleteScope(self, request: Any, context: Any) -> Any:
        return pb.DeleteScopeStatus(status=pb.DeleteScopeStatus.SCOPE_NOT_EMPTY)

    async def listScopes(self, request: Any, context: Any) -> Any:
        start = int(request.continuationToken.token or 0)
        page = self.scopes[start:start + 2]
        return pb.ScopesResponse(scopes=page, continuationToken=pb.ContinuationToken(token=str(start + len(page))))

    async def createStream(self, request: Any, context: Any) -> Any:
        self.configs[request.streamInfo.stream] = request
        return pb.CreateStreamStatus(status=pb.CreateStreamStatus.SUCCESS)

    async def getStreamConfiguration(self, request: Any, context: Any) -> Any:
        if request.stream not in self.configs:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no stream")
        return self.configs[request.stream]

    async def createTransaction(self, request: Any, context: Any) -> Any:
        return pb.CreateTxnResponse(txnId=pb.TxnId(highBits=-5, lowBits=-7), activeSegments=[pb.SegmentRange(
            segmentId=pb.SegmentId(streamInfo=request.streamInfo, segmentId=(3 << 32) | 1), minKey=0.0, maxKey=1.0)])

    async def commitTransaction(self, request: Any, context: Any) -> Any:
        self.txn = request.txnId
        return pb.TxnStatus(status=pb.TxnStatus.FAILURE)


@pytest.fixture
async def servicer_and_client() -> AsyncIterator[tuple[Servicer, ControllerClient]]:
    server = grpc.aio.server()
    servicer = Servicer()
    pb_grpc.add_ControllerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = ControllerClient(ClientConfig(f"tcp://127.0.0.1:{port}", retry_attempts=3, retry_initial_delay=0.001))
    try:
        yield servicer, client
    finally:
        await client.close()
        await server.stop(None)


async def test_transport_errors_are_retried(servicer_and_client: tuple[Servicer, ControllerClient]) -> None:
    servicer, client = servicer_and_client
    servicer.unavailable = 2
    assert await client.create_scope("a")
    servicer.unavailable = 5
    with pytest.raises(ControllerUnavailableError):
        await client.create_scope("a")


async def test_status_enums_become_values_or_typed_errors(
        servicer_and_client: tuple[Servicer, ControllerClient]) -> None:
    _, client = servicer_and_client
    with pytest.raises(InvalidNameError):
        await client.create_scope("_bad")
    with pytest.raises(ScopeNotEmptyError):
        await client.delete_scope("x")
    with pytest.raises(NoSuchStreamError):
        await client.get_stream_configuration("sc", "missing")
    with pytest.raises(ControllerError):
        await client.get_current_segments("sc", "st")  # UNIMPLEMENTED: not retried


async def test_paging_and_configuration_round_trip(servicer_and_client: tuple[Servicer, ControllerClient]) -> None:
    servicer, client = servicer_and_client
    assert [s async for s in client.list_scopes()] == servicer.scopes
    config = StreamConfiguration(ScalingPolicy.by_data_rate(1024, 3, 2), RetentionPolicy.by_time(60_000), ("t",))
    assert await client.create_stream("sc", "st", config)
    assert await client.get_stream_configuration("sc", "st") == config


async def test_transaction_ids_keep_all_128_bits(servicer_and_client: tuple[Servicer, ControllerClient]) -> None:
    servicer, client = servicer_and_client
    created = await client.create_transaction("sc", "st", 30_000)
    assert created.txn_id == uuid.UUID(int=((2**64 - 5) << 64) | (2**64 - 7))
    assert created.segments[0].segment_id == (3 << 32) | 1
    with pytest.raises(TxnFailedError):
        await client.commit_transaction("sc", "st", created.txn_id)
    assert (servicer.txn.highBits, servicer.txn.lowBits) == (-5, -7)


async def test_several_controllers_fail_over_to_one_that_answers() -> None:
    """``tcp://a,b``: the channel moves on to the next controller when the first one is gone."""
    dead = grpc.aio.server()
    dead_port = dead.add_insecure_port("127.0.0.1:0")
    await dead.start()
    await dead.stop(None)
    live = grpc.aio.server()
    pb_grpc.add_ControllerServiceServicer_to_server(Servicer(), live)
    live_port = live.add_insecure_port("127.0.0.1:0")
    await live.start()
    config = ClientConfig(f"tcp://127.0.0.1:{dead_port},127.0.0.1:{live_port}", retry_attempts=20,
                          retry_initial_delay=0.01)
    assert config.controller_target == f"ipv4:127.0.0.1:{dead_port},127.0.0.1:{live_port}"
    client = ControllerClient(config)
    try:
        assert await client.create_scope("scope-a") is True
    finally:
        await client.close()
        await live.stop(None)
