"""``controller.validation.check_request``: what the official clients send passes; each kind of bad field is
refused with INVALID_ARGUMENT's message naming the field (the rpc path is covered through a real server in
tests/integration/robustness_controller)."""

from __future__ import annotations

import pytest

from anabranch.controller.errors import InvalidArgumentError
from anabranch.controller.validation import (
    MAX_KVT_PARTITIONS,
    MAX_SEGMENTS_PER_EPOCH,
    check_request,
    hex_token,
    index_token,
)
from anabranch.protocol import controller_pb2 as pb

INFO = pb.StreamInfo(scope="sc", stream="st")


def config(**scaling: int) -> pb.StreamConfig:
    return pb.StreamConfig(streamInfo=INFO, scalingPolicy=pb.ScalingPolicy(**scaling))  # type: ignore[arg-type]


def refused(rpc: str, request: object) -> str:
    with pytest.raises(InvalidArgumentError) as error:
        check_request(rpc, request)  # type: ignore[arg-type]
    return str(error.value)


def test_what_clients_send_passes() -> None:
    full = config(scaleType=1, targetRate=100, scaleFactor=2, minNumSegments=MAX_SEGMENTS_PER_EPOCH)
    full.retentionPolicy.CopyFrom(pb.RetentionPolicy(retentionType=pb.RetentionPolicy.SIZE, retentionParam=1 << 30))
    full.tags.tag.extend(["a", "b"])
    check_request("createStream", full)
    check_request("truncateStream", pb.StreamCut(streamInfo=INFO, cut={0: 10, (1 << 32) | 1: 0}))
    check_request("createReaderGroup", pb.ReaderGroupConfiguration(
        scope="sc", readerGroupName="g", readerGroupId="00000000-0000-0000-0000-000000000000", retentionType=2,
        startingStreamCuts=[pb.StreamCut(streamInfo=INFO, cut={0: -1})]))
    check_request("createKeyValueTable", pb.KeyValueTableConfig(scope="sc", kvtName="t",
                                                                partitionCount=MAX_KVT_PARTITIONS,
                                                                primaryKeyLength=4, secondaryKeyLength=4))
    check_request("listScopes", pb.ScopesRequest(continuationToken=pb.ContinuationToken(token="00ab")))
    check_request("createTransaction", pb.CreateTxnRequest(streamInfo=INFO, lease=30_000))
    check_request("createScope", pb.ScopeInfo(scope="x" * 300))  # the workflow answers INVALID_SCOPE_NAME


def test_limits_and_ranges() -> None:
    assert f"at most {MAX_SEGMENTS_PER_EPOCH}" in refused("createStream", config(minNumSegments=2**31 - 1))
    assert "scaleFactor" in refused("updateStream", config(scaleType=1, targetRate=1, scaleFactor=101,
                                                           minNumSegments=1))
    assert "targetRate" in refused("createStream", config(scaleType=1, targetRate=-1, scaleFactor=2,
                                                          minNumSegments=1))
    retention = config(minNumSegments=1)
    retention.retentionPolicy.CopyFrom(pb.RetentionPolicy(retentionType=1, retentionParam=-5))
    assert "retentionParam" in refused("createStream", retention)
    assert "partitions" in refused("createKeyValueTable", pb.KeyValueTableConfig(scope="s", kvtName="t",
                                                                                 partitionCount=0))
    assert "newKeyRanges" in refused("scale", pb.ScaleRequest(
        streamInfo=INFO, newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=0.5, end=0.5)]))
    assert "lease" in refused("pingTransaction", pb.PingTxnRequest(streamInfo=INFO, lease=-1))
    assert "epoch" in refused("checkScale", pb.ScaleStatusRequest(streamInfo=INFO, epoch=-3))


def test_enums_strings_lists_and_cuts_anywhere_in_the_message() -> None:
    bad = config(minNumSegments=1)
    bad.scalingPolicy.scaleType = 3  # type: ignore[assignment]
    assert "scalingPolicy.scaleType" in refused("createStream", bad)
    assert "a name of 256 characters" in refused("getCurrentSegments", pb.StreamInfo(scope="s", stream="x" * 256))
    assert "at most 4096" in refused("createScope", pb.ScopeInfo(scope="x" * 5000))
    group = pb.ReaderGroupConfiguration(scope="s", readerGroupName="g", startingStreamCuts=[
        pb.StreamCut(streamInfo=INFO, cut={-4: 0})])
    assert "segment id -4 is negative" in refused("createReaderGroup", group)
    many = pb.StreamCut(streamInfo=INFO, cut={i: 0 for i in range(10_001)})
    assert "10001 entries" in refused("isStreamCutValid", many)
    assert "not a finite number" in refused("scale", pb.ScaleRequest(
        streamInfo=INFO, newKeyRanges=[pb.ScaleRequest.KeyRangeEntry(start=float("nan"), end=1.0)]))
    assert "negative" in refused("truncateStream", pb.StreamCut(streamInfo=INFO, cut={0: -1}))
    assert "retentionType" in refused("updateReaderGroup", pb.ReaderGroupConfiguration(retentionType=9))


def test_tokens() -> None:
    assert hex_token("") == b"" and hex_token("00ff") == b"\x00\xff"
    assert index_token("") == 0 and index_token("12") == 12
    for token in ("zz", "abc", "é", "a" * 40_000):
        with pytest.raises(InvalidArgumentError):
            hex_token(token)
    for token in ("-1", "1e3", "abcd", "٣", "9" * 20):
        with pytest.raises(InvalidArgumentError):
            index_token(token)


def test_status_messages_are_bounded() -> None:
    from anabranch.controller.servicer_base import MAX_DETAILS, shorten_details

    assert shorten_details("short") == "short"
    long = shorten_details("é" * 5000)
    assert len(long) == MAX_DETAILS + 3 and long.endswith("...")
