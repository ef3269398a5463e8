"""Reader groups, subscribers, key-value tables and writer marks through gRPC."""

from __future__ import annotations

import uuid

from anabranch.protocol import controller_pb2 as pb
from tests.unit.controller.helpers import Harness, S, make_stream


def rg_config(scope: str, name: str, stream: str, rg_id: str, retention: int = 0) -> pb.ReaderGroupConfiguration:
    return pb.ReaderGroupConfiguration(
        scope=scope, readerGroupName=name, groupRefreshTimeMillis=3000, automaticCheckpointIntervalMillis=30000,
        maxOutstandingCheckpointRequest=3, retentionType=retention, generation=0, readerGroupId=rg_id,
        startingStreamCuts=[pb.StreamCut(streamInfo=S(scope=scope, stream=stream))],
        endingStreamCuts=[pb.StreamCut(streamInfo=S(scope=scope, stream=stream))])


async def test_reader_group_lifecycle(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 1)
    rg_id = str(uuid.uuid4())
    config = rg_config("sc", "rg", "st", rg_id, retention=1)
    created = await stub.createReaderGroup(config)
    assert created.status == pb.CreateReaderGroupResponse.SUCCESS and created.config == config
    again = await stub.createReaderGroup(rg_config("sc", "rg", "st", str(uuid.uuid4())))
    assert again.config.readerGroupId == rg_id
    assert (await stub.createReaderGroup(rg_config("sc", "_bad", "st", rg_id))).status == \
        pb.CreateReaderGroupResponse.INVALID_RG_NAME
    assert (await stub.createReaderGroup(rg_config("none", "rg", "st", rg_id))).status == \
        pb.CreateReaderGroupResponse.SCOPE_NOT_FOUND
    assert (await stub.checkStreamExists(S(scope="sc", stream="_RGrg"))).exists
    got = await stub.getReaderGroupConfig(pb.ReaderGroupInfo(scope="sc", readerGroup="rg"))
    assert got.status == pb.ReaderGroupConfigResponse.SUCCESS and got.config == config
    subs = await stub.listSubscribers(S(scope="sc", stream="st"))
    assert list(subs.subscribers) == ["sc/rg"]
    cut = pb.StreamCut(streamInfo=S(scope="sc", stream="st"), cut={0: 0})
    update_cut = pb.SubscriberStreamCut(subscriber="sc/rg", generation=0, readerGroupId=rg_id, streamCut=cut)
    assert (await stub.updateSubscriberStreamCut(update_cut)).status == pb.UpdateSubscriberStatus.SUCCESS
    wrong_gen = pb.SubscriberStreamCut(subscriber="sc/rg", generation=4, readerGroupId=rg_id, streamCut=cut)
    assert (await stub.updateSubscriberStreamCut(wrong_gen)).status == pb.UpdateSubscriberStatus.GENERATION_MISMATCH
    stale = rg_config("sc", "rg", "st", rg_id)
    stale.generation = 3
    assert (await stub.updateReaderGroup(stale)).status == pb.UpdateReaderGroupResponse.INVALID_CONFIG
    updated = await stub.updateReaderGroup(rg_config("sc", "rg", "st", rg_id))
    assert updated.status == pb.UpdateReaderGroupResponse.SUCCESS and updated.generation == 1
    assert list((await stub.listSubscribers(S(scope="sc", stream="st"))).subscribers) == []
    assert (await stub.deleteReaderGroup(pb.ReaderGroupInfo(scope="sc", readerGroup="rg",
                                                            readerGroupId=str(uuid.uuid4())))).status == \
        pb.DeleteReaderGroupStatus.RG_NOT_FOUND
    assert (await stub.deleteReaderGroup(pb.ReaderGroupInfo(scope="sc", readerGroup="rg",
                                                            readerGroupId=rg_id))).status == \
        pb.DeleteReaderGroupStatus.SUCCESS
    assert not (await stub.checkStreamExists(S(scope="sc", stream="_RGrg"))).exists
    missing = await stub.getReaderGroupConfig(pb.ReaderGroupInfo(scope="sc", readerGroup="rg"))
    assert missing.status == pb.ReaderGroupConfigResponse.RG_NOT_FOUND


async def test_nil_reader_group_id_gets_a_random_one(harness: Harness) -> None:
    await harness.stub.createScope(pb.ScopeInfo(scope="sc"))
    created = await harness.stub.createReaderGroup(rg_config("sc", "rg", "st", str(uuid.UUID(int=0))))
    assert uuid.UUID(created.config.readerGroupId) != uuid.UUID(int=0) and created.config.generation == 0


async def test_key_value_tables(harness: Harness) -> None:
    stub = harness.stub
    await stub.createScope(pb.ScopeInfo(scope="sc"))
    config = pb.KeyValueTableConfig(scope="sc", kvtName="kv", partitionCount=3, primaryKeyLength=4)
    assert (await stub.createKeyValueTable(config)).status == pb.CreateKeyValueTableStatus.SUCCESS
    assert (await stub.createKeyValueTable(config)).status == pb.CreateKeyValueTableStatus.TABLE_EXISTS
    assert "sc/kv_kvtable/2.#epoch.0" in harness.memory.tables
    segs = await stub.getCurrentSegmentsKeyValueTable(pb.KeyValueTableInfo(scope="sc", kvtName="kv"))
    assert len(segs.segmentRanges) == 3 and segs.segmentRanges[-1].maxKey == 1.0
    listed = await stub.listKeyValueTablesInScope(pb.KVTablesInScopeRequest(scope=pb.ScopeInfo(scope="sc")))
    assert [t.kvtName for t in listed.kvtables] == ["kv"]
    got = await stub.getKeyValueTableConfiguration(pb.KeyValueTableInfo(scope="sc", kvtName="kv"))
    assert got.config == config
    assert (await stub.deleteKeyValueTable(pb.KeyValueTableInfo(scope="sc", kvtName="kv"))).status == \
        pb.DeleteKVTableStatus.SUCCESS
    assert (await stub.deleteKeyValueTable(pb.KeyValueTableInfo(scope="sc", kvtName="kv"))).status == \
        pb.DeleteKVTableStatus.TABLE_NOT_FOUND
    assert "sc/kv_kvtable/0.#epoch.0" not in harness.memory.tables


async def test_writer_marks(harness: Harness) -> None:
    stub = harness.stub
    await make_stream(harness, "sc", "st", 1)
    info = S(scope="sc", stream="st")

    def mark(ts: int, offset: int) -> pb.TimestampFromWriter:
        return pb.TimestampFromWriter(writer="w", position=pb.StreamCut(streamInfo=info, cut={0: offset}),
                                      timestamp=ts)

    assert (await stub.noteTimestampFromWriter(mark(10, 5))).result == pb.TimestampResponse.SUCCESS
    assert (await stub.noteTimestampFromWriter(mark(9, 6))).result == pb.TimestampResponse.INVALID_TIME
    assert (await stub.noteTimestampFromWriter(mark(11, 4))).result == pb.TimestampResponse.INVALID_POSITION
    assert (await stub.removeWriter(pb.RemoveWriterRequest(writer="w", stream=info))).result == \
        pb.RemoveWriterResponse.SUCCESS
    assert (await stub.removeWriter(pb.RemoveWriterRequest(writer="w", stream=info))).result == \
        pb.RemoveWriterResponse.UNKNOWN_WRITER
    servers = await stub.getControllerServerList(pb.ServerRequest())
    assert servers.nodeURI[0].port == harness.service.port
