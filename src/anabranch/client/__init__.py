"""The Anabranch Python client: asyncio-native, with a blocking facade (``anabranch.client.connect``).

Start with ``StreamManager`` (scopes, streams, writers, reader groups, key-value tables); see
docs/client.md for a tour. Everything here speaks only Pravega's public protocols.
"""

from anabranch.client.batch import BatchClient, BatchEvent, SegmentRange
from anabranch.client.blocking import (
    BlockingEventStreamReader,
    BlockingEventStreamWriter,
    BlockingReaderGroup,
    BlockingStreamManager,
    connect,
)
from anabranch.client.byte_stream import ByteStreamReader, ByteStreamWriter
from anabranch.client.config import (
    ClientConfig,
    RetentionPolicy,
    RetentionType,
    ScaleType,
    ScalingPolicy,
    StreamConfiguration,
)
from anabranch.client.controller_client import (
    ControllerClient,
    KeyValueTableConfiguration,
    PingStatus,
    TxnState,
)
from anabranch.client.errors import *  # noqa: F403 - every client error is public
from anabranch.client.errors import __all__ as _error_names
from anabranch.client.event_pointer import EventPointer
from anabranch.client.event_reader import EventRead, EventStreamReader
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.group_notifications import EndOfDataNotification, SegmentNotification
from anabranch.client.hashing import SegmentWithRange, hash_routing_key
from anabranch.client.kv_table import KeyValueTable, Put, TableEntry, TableKey
from anabranch.client.lag import Lag
from anabranch.client.reader_group import Position, ReaderGroup, ReaderGroupConfig, ReaderGroupManager
from anabranch.client.reader_group_state import Checkpoint
from anabranch.client.serializers import BytesSerializer, JsonSerializer, Serializer, StringSerializer
from anabranch.client.state_synchronizer import StateSynchronizer
from anabranch.client.stream_manager import StreamInfo, StreamManager
from anabranch.client.transactional_writer import Transaction, TransactionalEventStreamWriter
from anabranch.client.watermark_reader import StreamNotInReaderGroupError, TimeWindow
from anabranch.model.stream_cut import StreamCut

__all__ = [
    "BatchClient",
    "BatchEvent",
    "BlockingEventStreamReader",
    "BlockingEventStreamWriter",
    "BlockingReaderGroup",
    "BlockingStreamManager",
    "ByteStreamReader",
    "ByteStreamWriter",
    "BytesSerializer",
    "Checkpoint",
    "ClientConfig",
    "ControllerClient",
    "EndOfDataNotification",
    "EventPointer",
    "EventRead",
    "EventStreamReader",
    "EventStreamWriter",
    "JsonSerializer",
    "KeyValueTable",
    "KeyValueTableConfiguration",
    "Lag",
    "PingStatus",
    "Position",
    "Put",
    "ReaderGroup",
    "ReaderGroupConfig",
    "ReaderGroupManager",
    "RetentionPolicy",
    "RetentionType",
    "ScaleType",
    "ScalingPolicy",
    "SegmentNotification",
    "SegmentRange",
    "SegmentWithRange",
    "Serializer",
    "StateSynchronizer",
    "StreamConfiguration",
    "StreamCut",
    "StreamInfo",
    "StreamManager",
    "StreamNotInReaderGroupError",
    "StringSerializer",
    "TableEntry",
    "TableKey",
    "TimeWindow",
    "Transaction",
    "TransactionalEventStreamWriter",
    "TxnState",
    "connect",
    "hash_routing_key",
    *_error_names,
]
