"""Client settings, stream policies and serializers validate and round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anabranch.client.config import (
    MAX_BLOCK_EVENTS,
    ClientConfig,
    RetentionPolicy,
    ScaleType,
    ScalingPolicy,
    StreamConfiguration,
)
from anabranch.client.serializers import BytesSerializer, JsonSerializer, Serializer, StringSerializer
from anabranch.errors import ConfigError


def test_controller_uri_forms() -> None:
    assert ClientConfig().controller_target == "127.0.0.1:9090"
    plain = ClientConfig("127.0.0.1:1234")
    assert (plain.controller_host, plain.controller_port, plain.use_tls) == ("127.0.0.1", 1234, False)
    assert ClientConfig("tls://example.org:443").use_tls
    assert ClientConfig("tcp://h:1", tls=True).use_tls


@pytest.mark.parametrize("uri", ["http://h:1", "tcp://h", "tcp://h:notaport"])
def test_bad_uris_are_rejected(uri: str) -> None:
    with pytest.raises(ConfigError):
        ClientConfig(uri)


def test_limits_are_checked() -> None:
    assert ClientConfig(max_block_events=MAX_BLOCK_EVENTS).max_block_events == MAX_BLOCK_EVENTS
    with pytest.raises(ConfigError):
        ClientConfig(max_block_events=MAX_BLOCK_EVENTS + 1)
    with pytest.raises(ConfigError):
        ClientConfig(max_block_bytes=0)
    with pytest.raises(ConfigError):
        ClientConfig(txn_lease_ms=5)


def test_policies() -> None:
    assert ScalingPolicy.fixed(3) == ScalingPolicy(ScaleType.FIXED_NUM_SEGMENTS, 0, 0, 3)
    assert ScalingPolicy.by_event_rate(100, 2, 1).scale_type == ScaleType.BY_RATE_IN_EVENTS_PER_SEC
    with pytest.raises(ConfigError):
        ScalingPolicy.fixed(0)
    with pytest.raises(ConfigError):
        ScalingPolicy.by_data_rate(0, 2, 1)
    assert RetentionPolicy.by_size(10).retention_param == 10
    with pytest.raises(ConfigError):
        StreamConfiguration(tags=tuple(str(i) for i in range(128)))


@given(st.binary())
def test_bytes_round_trip(data: bytes) -> None:
    s = BytesSerializer()
    assert s.deserialize(memoryview(s.serialize(data))) == data


@given(st.text())
def test_string_round_trip(text: str) -> None:
    s = StringSerializer()
    assert s.deserialize(s.serialize(text)) == text


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10))
def test_json_round_trip(value: object) -> None:
    s: JsonSerializer[object] = JsonSerializer()
    assert s.deserialize(s.serialize(value)) == value


def test_protocol_is_structural() -> None:
    assert isinstance(StringSerializer(), Serializer)
    with pytest.raises(TypeError):
        StringSerializer().serialize(b"x")  # type: ignore[arg-type]
