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


def _error_replies() -> list[object]:
    from anabranch.protocol import commands as c

    return [
        c.NoSuchSegment(1, "sc/st/0.#epoch.0", "", -1),
        c.SegmentAlreadyExists(1, "sc/st/0.#epoch.0", ""),
        c.SegmentIsSealed(1, "sc/st/0.#epoch.0", "", -1),
        c.SegmentIsTruncated(1, "sc/st/0.#epoch.0", 40, "", 10),
        c.TableSegmentNotEmpty(1, "t", ""),
        c.TableKeyBadVersion(1, "t", ""),
        c.TableKeyDoesNotExist(1, "t", ""),
        c.ErrorMessage(1, "sc/st/0.#epoch.0", "disk full", 5),
    ]


def test_one_reply_table_gives_client_and_controller_errors_of_the_same_family() -> None:
    from anabranch import errors as families
    from anabranch.client.errors import error_from_reply
    from anabranch.controller.segment_helper import raise_for_reply
    from anabranch.protocol.reply_errors import ERROR_REPLIES, classify

    kinds = (families.NotFoundError, families.AlreadyExistsError, families.SealedError, families.TruncatedError,
             families.ConflictError)
    for reply in _error_replies():
        assert type(reply) in ERROR_REPLIES and classify(reply) is not None  # type: ignore[arg-type]
        client_error = error_from_reply(reply)  # type: ignore[arg-type]
        try:
            raise_for_reply(reply, "fallback")  # type: ignore[arg-type]
        except families.AnabranchError as controller_error:
            for family in kinds:
                if isinstance(controller_error, family):
                    # a missing key is a conflict to the controller's conditional updates, "not found" to a user
                    assert isinstance(client_error, family) or type(reply).__name__ == "TableKeyDoesNotExist", \
                        (reply, client_error, controller_error)
        else:
            raise AssertionError(f"the controller ignored {reply!r}")
