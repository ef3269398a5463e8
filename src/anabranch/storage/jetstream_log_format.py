"""How the JetStream Tier-1 log lays records out in a stream (sans-IO: names, headers, splitting, reassembly).

One stream per container, ``<prefix>-c<N>``, capturing only the subject of the current owner's epoch,
``<prefix>.c<N>.e<epoch>``. Every message carries headers:

- ``Anabranch-Epoch``: the epoch of the owner that wrote it;
- ``Anabranch-Seq``: for a record, its log sequence (what ``append`` returned); for an epoch marker, the last log
  sequence used before it (so a new owner continues from there even when every record was truncated);
- ``Anabranch-Marker: 1`` on the marker a new owner writes when it opens the log (the fence);
- ``Anabranch-Part: i/n`` on each message of a record split over ``n`` messages (records above
  ``MAX_MESSAGE_DATA`` bytes; the pieces are consecutive and the record counts only once all are read).

Log sequences are not stream sequences: markers and split records take extra stream sequences. Reading in stream
order, a record whose epoch is older than the newest marker read before it is dropped (it can only be a zombie's
write that slipped past the fence), and so is a record whose pieces are not all present (the writer failed
mid-record, or truncation cut into it).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass

from anabranch.errors import DataCorruptionError

EPOCH_HEADER = "Anabranch-Epoch"
SEQUENCE_HEADER = "Anabranch-Seq"
MARKER_HEADER = "Anabranch-Marker"
PART_HEADER = "Anabranch-Part"
EXPECTED_LAST_HEADER = "Nats-Expected-Last-Sequence"

MAX_MESSAGE_DATA = 1024 * 1024 - 1024
"""Record bytes per message: 1 MiB - 1 KiB (BookKeeper's entry limit in Pravega), leaving room for headers."""
MAX_MESSAGE_SIZE = 1024 * 1024
"""The stream's ``max_msg_size``: one message's data plus headers."""

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_prefix(prefix: str) -> str:
    """A stream prefix must be usable in both a stream name and a subject token."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"stream prefix {prefix!r} must be 1-64 letters, digits, '-' or '_'")
    return prefix


def stream_name(prefix: str, container_id: int) -> str:
    return f"{prefix}-c{container_id}"


def epoch_subject(prefix: str, container_id: int, epoch: int) -> str:
    return f"{prefix}.c{container_id}.e{epoch}"


def subject_epoch(prefix: str, container_id: int, subject: str) -> int | None:
    """The epoch of an owner subject of this container (None if ``subject`` is not one)."""
    head = f"{prefix}.c{container_id}.e"
    if subject.startswith(head) and subject[len(head):].isdigit():
        return int(subject[len(head):])
    return None


def record_headers(epoch: int, sequence: int, part: int = 1, parts: int = 1) -> dict[str, str]:
    headers = {EPOCH_HEADER: str(epoch), SEQUENCE_HEADER: str(sequence)}
    if parts > 1:
        headers[PART_HEADER] = f"{part}/{parts}"
    return headers


def marker_headers(epoch: int, last_sequence: int) -> dict[str, str]:
    return {EPOCH_HEADER: str(epoch), SEQUENCE_HEADER: str(last_sequence), MARKER_HEADER: "1"}


def split(payload: bytes, limit: int = MAX_MESSAGE_DATA) -> list[memoryview]:
    """The pieces of a record, each at most ``limit`` bytes (one empty piece for an empty record)."""
    view = memoryview(payload)
    if len(view) <= limit:
        return [view]
    return [view[i:i + limit] for i in range(0, len(view), limit)]


@dataclass(frozen=True, slots=True)
class LogMessage:
    """What the headers of one stream message say."""

    epoch: int
    sequence: int
    marker: bool
    part: int = 1
    parts: int = 1


def parse_headers(stream_sequence: int, headers: Mapping[str, str] | None) -> LogMessage:
    """Decode a message's headers; ``DataCorruptionError`` if they are not a log message's."""
    try:
        assert headers is not None
        epoch = int(headers[EPOCH_HEADER])
        sequence = int(headers[SEQUENCE_HEADER])
        marker = headers.get(MARKER_HEADER) == "1"
        part, parts = 1, 1
        if PART_HEADER in headers:
            first, _, total = headers[PART_HEADER].partition("/")
            part, parts = int(first), int(total)
            if not 1 <= part <= parts:
                raise ValueError(f"part {part} of {parts}")
    except (AssertionError, KeyError, ValueError) as exc:
        raise DataCorruptionError(
            f"stream message {stream_sequence} is not a Tier-1 log message (headers {dict(headers or {})!r}): "
            f"{exc!r}") from exc
    return LogMessage(epoch, sequence, marker, part, parts)


class SequenceIndex:
    """Maps log sequences to the stream sequence of their record's last message, for truncation.

    Stores only breakpoints: within a run of single-message records without markers, the stream sequence is the
    log sequence plus a constant offset, and the offset only grows (markers and split records add messages).
    Looking up a sequence that was never recorded (a gap) gives a stream sequence at or below the truth, so a
    purge based on it never removes a later record.
    """

    def __init__(self) -> None:
        self._sequences: list[int] = []
        self._offsets: list[int] = []
        self.last_sequence = 0

    def add(self, sequence: int, stream_sequence: int) -> None:
        """Record that log ``sequence`` ends at ``stream_sequence`` (ignored unless after the last one added)."""
        if sequence <= self.last_sequence:
            return
        offset = stream_sequence - sequence
        if not self._offsets or self._offsets[-1] != offset:
            self._sequences.append(sequence)
            self._offsets.append(offset)
        self.last_sequence = sequence

    def stream_sequence(self, sequence: int) -> int | None:
        """The stream sequence of ``sequence``'s last message (a lower bound for gaps); None if unknown."""
        index = bisect.bisect_right(self._sequences, sequence) - 1
        if index < 0:
            return None
        return min(sequence, self.last_sequence) + self._offsets[index]

    def forget_below(self, sequence: int) -> None:
        """Drop breakpoints no longer needed to answer for ``sequence`` and later."""
        keep = max(bisect.bisect_right(self._sequences, sequence) - 1, 0)
        del self._sequences[:keep]
        del self._offsets[:keep]


class RecordAssembler:
    """Turns stream messages, fed in stream order, into the log's records; fills ``index`` as it goes."""

    def __init__(self, index: SequenceIndex | None = None) -> None:
        self.index = index if index is not None else SequenceIndex()
        self.fence_epoch = 0
        """The newest marker's epoch read so far."""
        self.dropped_stale = 0
        self.dropped_partial = 0
        self._parts: list[bytes] = []
        self._current: LogMessage | None = None

    def feed(self, stream_sequence: int, headers: Mapping[str, str] | None, data: bytes) -> tuple[int, bytes] | None:
        """The completed record ``(sequence, payload)`` this message ends, else None."""
        message = parse_headers(stream_sequence, headers)
        if message.marker:
            self._drop_partial()
            self.fence_epoch = max(self.fence_epoch, message.epoch)
            return None
        if message.epoch < self.fence_epoch:
            self._drop_partial()
            self.dropped_stale += 1
            return None
        current = self._current
        if message.part == 1:
            self._drop_partial()
        elif (current is None or current.sequence != message.sequence or current.epoch != message.epoch
              or current.parts != message.parts or current.part + 1 != message.part):
            self._drop_partial()
            self.dropped_partial += 1
            return None
        if message.part < message.parts:
            self._current = message
            self._parts.append(data)
            return None
        payload = data if message.parts == 1 else b"".join([*self._parts, data])
        self._current, self._parts = None, []
        self.index.add(message.sequence, stream_sequence)
        return message.sequence, payload

    def _drop_partial(self) -> None:
        if self._current is not None:
            self.dropped_partial += 1
        self._current, self._parts = None, []
