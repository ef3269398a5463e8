"""One home for the Controller API conversions both planes use, and for the stream configuration values."""

from __future__ import annotations

import uuid

from anabranch.client import config as client_config
from anabranch.client import controller_types
from anabranch.controller import convert
from anabranch.model.stream_config import RetentionPolicy, ScalingPolicy, StreamConfiguration
from anabranch.protocol import controller_messages


def test_transaction_ids_convert_the_same_way_on_both_planes() -> None:
    for value in (uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1), uuid.UUID(int=(0xFFFF_FFFF << 96) | 7)):
        message = convert.txn_id_to_proto(value)
        assert message == controller_types.txn_pb(value)
        assert convert.txn_id_from_proto(message) == controller_types.txn_uuid(message) == value
        assert -(1 << 63) <= message.highBits < (1 << 63)


def test_stream_configuration_has_one_definition_and_round_trips() -> None:
    assert client_config.StreamConfiguration is StreamConfiguration
    assert controller_types.stream_config_pb is controller_messages.stream_config_pb
    config = StreamConfiguration(ScalingPolicy.by_event_rate(100, 2, 3), RetentionPolicy.by_size(1 << 20),
                                 tags=("a", "b"), timestamp_aggregation_timeout_ms=5, rollover_size_bytes=9)
    message = controller_messages.stream_config_pb("s", "t", config)
    assert controller_messages.stream_config_from_pb(message) == config
    controller_side = convert.config_from_proto(message)
    assert convert.config_to_proto("s", "t", controller_side) == message
