"""The cluster-mode Tier-1 log: one replicated, fsync'd NATS JetStream stream per segment container, fenced by epoch.

Layout of the stream and its messages: ``jetstream_log_format``. The server side must run with
``sync_interval: always`` (``anabranch.cluster.nats_server.NatsCluster`` does): then a publish acknowledgement means
the message is fsync'd on a quorum of replicas.

Fencing (``open``), with ``epoch`` taken from ZooKeeper by the caller (``anabranch.cluster.epochs``):

1. the stream is created if missing (R3, or the cluster size if smaller; file storage; limits retention);
2. if it captures an older epoch's subject it is moved to this epoch's subject ``<prefix>.c<N>.e<epoch>``: from
   then on an older owner's publishes find no responder, pipelined or not (a compare-and-set on the tail alone
   is not a fence: a zombie's later pipelined appends line up again after a single rejected one);
3. the last message is read: if a newer epoch wrote it (or the stream captures a newer subject), this log is
   fenced out (``LogFencedError``); otherwise an epoch marker is published with ``Nats-Expected-Last-Sequence``
   set to it; a message that slipped in between makes the CAS fail, and the steps repeat.

Epochs therefore never decrease along the stream, and recovery (``iter_records``) reads messages in stream order,
dropping any record older than the newest marker before it (defence in depth) and markers themselves.

Appends: a single sender task publishes messages in call order, each with the epoch in a header and
``Nats-Expected-Last-Sequence`` chained from the previous one, so a message only lands right after its
predecessor; acknowledgements are awaited in order, each within ``ack_timeout``, and an append returns once every
message of its record is acknowledged. Publishes are pipelined (at most ``max_in_flight`` messages unacknowledged).
Any failure (a rejected or unanswered publish, a connection lost with messages in flight) fails every pending
append with ``LogClosedError`` and closes the log for good (fail-stop): after a failure nobody knows which of the
in-flight messages landed, so only a new owner, after the fence, may write. A rejection caused by a newer owner
is reported as ``LogFencedError``.

Replies are tracked by this module (one subscription on a private inbox), not by nats-py's ``publish_async``,
whose future never completes when JetStream rejects a message (nats-py 2.16.0).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from anabranch.storage.interfaces import Buffer, LogClosedError
from anabranch.storage.jetstream_log_format import (
    EXPECTED_LAST_HEADER,
    MAX_MESSAGE_DATA,
    MAX_MESSAGE_SIZE,
    RecordAssembler,
    SequenceIndex,
    check_prefix,
    epoch_subject,
    marker_headers,
    parse_headers,
    record_headers,
    split,
    stream_name,
    subject_epoch,
)
from anabranch.storage.log_errors import LogFencedError, RecordTooLargeError, Tier1UnavailableError

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORD_SIZE = 64 * 1024 * 1024
"""Largest record ``append`` accepts; above ``MAX_MESSAGE_DATA`` a record is split over several messages. The
container's records stay below 8 MiB plus one operation (at most one 16 MiB wire frame)."""
NO_RESPONDERS = "503"
MAX_FENCE_ATTEMPTS = 50
FENCE_RETRY_DELAY = 0.05
_STREAM_NOT_FOUND = 10059


@dataclass(slots=True)
class _Append:
    sequence: int
    pieces: list[memoryview]
    future: asyncio.Future[int]


@dataclass(slots=True)
class _InFlight:
    stream_sequence: int
    append: _Append
    last_piece: bool
    sent_at: float
    reply: asyncio.Future[dict[str, Any]] = field(repr=False)


class JetStreamDurableDataLog:
    """A ``DurableDataLog`` on NATS JetStream for container ``container_id``, written by the owner of ``epoch``.

    ``servers`` are ``nats://host:port`` URLs of the JetStream cluster; ``stream_prefix`` names the stream
    (``<prefix>-c<N>``) and subjects (``<prefix>.c<N>.e<epoch>``): give each cluster its own prefix. ``open`` it
    (the fence), read ``iter_records`` to recover, then append. One instance serves one ownership: after
    ``close`` or a failure, a new owner opens a new instance with a higher epoch.
    """

    def __init__(self, container_id: int, servers: Sequence[str], epoch: int, *, stream_prefix: str = "anabranch",
                 replicas: int = 3, ack_timeout: float = 10.0, request_timeout: float = 10.0,
                 connect_timeout: float = 5.0, max_in_flight: int = 256,
                 max_record_size: int = DEFAULT_MAX_RECORD_SIZE, max_message_data: int = MAX_MESSAGE_DATA) -> None:
        if epoch < 1:
            raise ValueError(f"epoch must be at least 1, got {epoch}")
        if not servers:
            raise ValueError("no NATS server given for the Tier-1 log")
        if not 0 < max_message_data <= MAX_MESSAGE_DATA:
            raise ValueError(f"max_message_data must be in 1..{MAX_MESSAGE_DATA}, got {max_message_data}")
        self.container_id = container_id
        self.servers = list(servers)
        self.epoch = epoch
        self.prefix = check_prefix(stream_prefix)
        self.stream = stream_name(self.prefix, container_id)
        self.subject = epoch_subject(self.prefix, container_id, epoch)
        self.replicas = replicas
        self.ack_timeout = ack_timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_in_flight = max_in_flight
        self.max_record_size = max_record_size
        self.max_message_data = max_message_data
        self._nc: Client | None = None
        self._inbox = ""
        self._token = 0
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._queue: deque[_Append] = deque()
        self._in_flight: deque[_InFlight] = deque()
        self._queued = asyncio.Event()
        """Set when an append is queued (wakes the sender)."""
        self._sent = asyncio.Event()
        """Set when a message is published, or on close and failure (wakes the acknowledgement task)."""
        self._acked = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._open = False
        self._used = False
        self._failure: BaseException | None = None
        self._sending: _Append | None = None
        self._next_sequence = 1
        self._sent_tail = 0
        """Stream sequence of the last message published (the expected last sequence of the next one)."""
        self._acked_tail = 0
        """Stream sequence of the last message acknowledged (or of the marker)."""
        self.marker_sequence = 0
        """Stream sequence of this owner's epoch marker (0 until ``open``)."""
        self.index = SequenceIndex()

    # ----------------------------------------------------------------------------------------------- open

    async def open(self) -> None:
        """Connect, fence older owners out and write this epoch's marker; ``LogFencedError`` if a newer owner
        holds the log, ``Tier1UnavailableError`` if JetStream cannot be reached."""
        if self._open:
            raise LogClosedError(f"Tier-1 log {self.stream} (epoch {self.epoch}) is already open")
        if self._used:
            raise LogClosedError(f"Tier-1 log {self.stream} (epoch {self.epoch}) was closed; a new owner must "
                                 "open a new log with a new epoch") from self._failure
        self._used = True
        started = time.monotonic()
        self._nc = await self._connect()
        try:
            self._inbox = self._nc.new_inbox()
            await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
            await self._fence()
        except BaseException:
            await self._disconnect()
            raise
        self._open = True
        self._sender = asyncio.create_task(self._send_loop(), name=f"tier1-send-{self.stream}")
        self._acker = asyncio.create_task(self._ack_loop(), name=f"tier1-ack-{self.stream}")
        log.info("Tier-1 log %s opened by epoch %d in %.0f ms: marker at stream sequence %d, next log sequence %d",
                 self.stream, self.epoch, (time.monotonic() - started) * 1000, self.marker_sequence,
                 self._next_sequence)

    async def _connect(self) -> Client:
        urls = ",".join(self.servers)
        errors: list[Exception] = []
        refused_everywhere = asyncio.Event()

        async def on_error(exc: Exception) -> None:
            if self._open or self._failure is not None:
                log.warning("Tier-1 log %s: NATS connection error: %r", self.stream, exc)
                return
            errors.append(exc)
            if len(errors) >= len(self.servers):
                refused_everywhere.set()

        async def on_disconnect() -> None:
            if self._in_flight:
                self._fail(LogClosedError(f"Tier-1 log {self.stream}: connection to NATS lost with "
                                          f"{len(self._in_flight)} messages unacknowledged"))

        connect = asyncio.ensure_future(nats.connect(
            servers=self.servers, name=f"anabranch-{self.stream}-e{self.epoch}",
            connect_timeout=min(self.connect_timeout, 2.0), reconnect_time_wait=0.5, max_reconnect_attempts=-1,
            error_cb=on_error, disconnected_cb=on_disconnect, pending_size=64 * 1024 * 1024))
        refused = asyncio.ensure_future(refused_everywhere.wait())
        try:
            await asyncio.wait([connect, refused], timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
        if connect.done() and not connect.cancelled() and connect.exception() is None:
            return connect.result()
        connect.cancel()
        with contextlib.suppress(BaseException):
            await connect
        cause = errors[-1] if errors else TimeoutError(f"no answer within {self.connect_timeout:g} s")
        raise Tier1UnavailableError(f"Tier-1 (NATS JetStream) at {urls} is not reachable: "
                                    f"{str(cause) or type(cause).__name__}") from cause

    async def _request(self, subject: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """A JetStream API call; ``Tier1UnavailableError`` if it gets no answer, the decoded reply otherwise."""
        assert self._nc is not None
        try:
            reply = await self._nc.request(subject, json.dumps(payload).encode() if payload is not None else b"",
                                           timeout=self.request_timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError) as exc:
            raise Tier1UnavailableError(f"Tier-1 (NATS JetStream) did not answer {subject}: "
                                        f"{type(exc).__name__}") from exc
        answer: dict[str, Any] = json.loads(reply.data)
        return answer

    async def _stream_info(self) -> dict[str, Any] | None:
        info = await self._request(f"$JS.API.STREAM.INFO.{self.stream}")
        error = info.get("error")
        if error is None:
            return info
        if error.get("err_code") == _STREAM_NOT_FOUND:
            return None
        raise Tier1UnavailableError(f"Tier-1 stream {self.stream}: {error.get('description', error)}")

    def _stream_config(self) -> StreamConfig:
        assert self._nc is not None
        known = self._nc._server_info.get("connect_urls") or []  # every server of the cluster, this one included
        replicas = max(1, min(self.replicas, len(known) or 1))
        if replicas < self.replicas:
            log.warning("Tier-1 stream %s gets %d replicas: the NATS cluster has %d servers", self.stream,
                        replicas, len(known) or 1)
        return StreamConfig(name=self.stream, subjects=[self.subject], storage=StorageType.FILE,
                            num_replicas=replicas, retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD,
                            max_msg_size=MAX_MESSAGE_SIZE, allow_direct=True)

    async def _fence(self) -> None:
        assert self._nc is not None
        for _ in range(MAX_FENCE_ATTEMPTS):
            info = await self._stream_info()
            if info is None:
                config: dict[str, Any] = self._stream_config().as_dict()
                created = await self._request(f"$JS.API.STREAM.CREATE.{self.stream}", config)
                if "error" in created:
                    log.info("Tier-1 stream %s: create answered %s; reading it again", self.stream, created["error"])
                    continue
                info = created
            config = info["config"]
            held = [e for s in config.get("subjects", []) if (e := subject_epoch(self.prefix, self.container_id, s))
                    is not None]
            newest = max(held, default=0)
            if newest > self.epoch:
                raise self._fenced(newest, "the stream captures its subject")
            if config.get("subjects") != [self.subject]:
                config["subjects"] = [self.subject]
                updated = await self._request(f"$JS.API.STREAM.UPDATE.{self.stream}", config)
                if "error" in updated:
                    raise Tier1UnavailableError(f"Tier-1 stream {self.stream}: moving it to {self.subject} failed: "
                                                f"{updated['error'].get('description', updated['error'])}")
            last_stream_sequence = int(info["state"]["last_seq"])
            last_sequence = await self._last_log_sequence(last_stream_sequence)
            headers = {**marker_headers(self.epoch, last_sequence), EXPECTED_LAST_HEADER: str(last_stream_sequence)}
            reply = await self._publish_and_wait(headers, b"")
            if "error" in reply or reply.get("status") == NO_RESPONDERS:
                log.info("Tier-1 stream %s: epoch %d marker not written (%s); another write came in between or "
                         "the stream is electing a leader, retrying", self.stream, self.epoch,
                         reply.get("error") or "no responders")
                await asyncio.sleep(FENCE_RETRY_DELAY)
                continue
            self.marker_sequence = int(reply["seq"])
            self._sent_tail = self._acked_tail = self.marker_sequence
            self._next_sequence = last_sequence + 1
            return
        raise Tier1UnavailableError(f"Tier-1 stream {self.stream}: could not write the epoch {self.epoch} marker "
                                    f"in {MAX_FENCE_ATTEMPTS} attempts (writes keep coming in between)")

    async def _last_log_sequence(self, last_stream_sequence: int) -> int:
        """The last log sequence used so far, from the stream's last message; fenced if a newer epoch wrote it."""
        if last_stream_sequence == 0:
            return 0
        answer = await self._request(f"$JS.API.STREAM.MSG.GET.{self.stream}", {"seq": last_stream_sequence})
        if "error" in answer:
            # Only a purge of everything (truncation always keeps the last message) leaves no last message; log
            # sequences never exceed stream sequences, so continuing above the stream's last one is safe.
            log.warning("Tier-1 stream %s: last message %d unreadable (%s); continuing after it", self.stream,
                        last_stream_sequence, answer["error"].get("description"))
            return last_stream_sequence
        message = answer["message"]
        headers = _decode_headers(message.get("hdrs"))
        parsed = parse_headers(last_stream_sequence, headers)
        if parsed.epoch > self.epoch:
            raise self._fenced(parsed.epoch, f"it wrote stream message {last_stream_sequence}")
        return parsed.sequence

    def _fenced(self, newer: int, how: str) -> LogFencedError:
        return LogFencedError(f"Tier-1 log {self.stream}: a newer owner (epoch {newer}) holds the container, "
                              f"{how}; this owner (epoch {self.epoch}) may not write", epoch=self.epoch,
                              newer_epoch=newer)

    async def _publish_and_wait(self, headers: dict[str, str], data: Buffer) -> dict[str, Any]:
        reply = await self._publish(headers, data)
        try:
            return await asyncio.wait_for(reply, self.ack_timeout)
        except TimeoutError as exc:
            raise Tier1UnavailableError(f"Tier-1 stream {self.stream}: no acknowledgement within "
                                        f"{self.ack_timeout:g} s") from exc

    async def _publish(self, headers: dict[str, str], data: Buffer) -> asyncio.Future[dict[str, Any]]:
        assert self._nc is not None
        self._token += 1
        token = str(self._token)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[token] = reply
        try:
            await self._nc.publish(self.subject, bytes(data), reply=f"{self._inbox}.{token}", headers=headers)
        except BaseException:
            self._replies.pop(token, None)
            raise
        return reply

    async def _on_reply(self, msg: Msg) -> None:
        reply = self._replies.pop(msg.subject.rsplit(".", 1)[-1], None)
        if reply is None or reply.done():
            return
        if msg.headers and msg.headers.get("Status"):
            reply.set_result({"status": msg.headers["Status"]})
            return
        try:
            reply.set_result(json.loads(msg.data))
        except ValueError:
            reply.set_result({"error": {"description": f"undecodable acknowledgement {msg.data[:80]!r}"}})

    # -------------------------------------------------------------------------------------------- recovery

    async def iter_records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """Yield (sequence, payload) of every record with sequence > ``after`` up to the last one acknowledged,
        in order; markers, stale-epoch records and incomplete split records are skipped."""
        if not self._open or self._nc is None:
            raise LogClosedError(f"Tier-1 log {self.stream} is not open") from self._failure
        end = self._acked_tail
        info = await self._stream_info()
        first = int(info["state"]["first_seq"]) if info is not None else end + 1
        if first > end or first == end == self.marker_sequence:
            return
        assembler = RecordAssembler(self.index)
        js = self._nc.jetstream(timeout=self.request_timeout)
        subscription = await js.subscribe(
            "", stream=self.stream, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first),
            pending_bytes_limit=256 * 1024 * 1024)
        try:
            while True:
                try:
                    msg = await subscription.next_msg(timeout=self.request_timeout)
                except nats.errors.TimeoutError as exc:
                    raise Tier1UnavailableError(f"Tier-1 stream {self.stream}: recovery read stalled after "
                                                f"{self.request_timeout:g} s (up to {end} expected)") from exc
                stream_sequence = msg.metadata.sequence.stream
                if stream_sequence > end:
                    break
                record = assembler.feed(stream_sequence, msg.headers, msg.data)
                if record is not None and record[0] > after:
                    yield record
                if stream_sequence >= end:
                    break
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        if assembler.dropped_stale or assembler.dropped_partial:
            log.warning("Tier-1 log %s: recovery skipped %d records of fenced-out owners and %d incomplete records",
                        self.stream, assembler.dropped_stale, assembler.dropped_partial)

    # ----------------------------------------------------------------------------------------------- append

    async def append(self, data: Buffer | Sequence[Buffer]) -> int:
        if not self._open:
            raise self._closed_error()
        payload = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else b"".join(data)
        if len(payload) > self.max_record_size:
            raise RecordTooLargeError(f"a Tier-1 record of {len(payload)} bytes exceeds the log's limit of "
                                      f"{self.max_record_size} bytes; nothing was written")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Append(self._next_sequence, split(payload, self.max_message_data), future))
        self._next_sequence += 1
        self._queued.set()
        return await future

    async def _send_loop(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._queued.clear()
                    await self._queued.wait()
                    continue
                append = self._sending = self._queue.popleft()
                parts = len(append.pieces)
                for number, piece in enumerate(append.pieces, start=1):
                    while len(self._in_flight) >= self.max_in_flight:
                        self._acked.clear()
                        await self._acked.wait()
                    headers = {**record_headers(self.epoch, append.sequence, number, parts),
                               EXPECTED_LAST_HEADER: str(self._sent_tail)}
                    reply = await self._publish(headers, piece)
                    self._sent_tail += 1
                    self._in_flight.append(_InFlight(self._sent_tail, append, number == parts, time.monotonic(),
                                                     reply))
                    self._sent.set()
                self._sending = None
                self._sent.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(LogClosedError(f"Tier-1 log {self.stream}: publish failed ({exc!r})"), exc)

    async def _ack_loop(self) -> None:
        try:
            while True:
                if not self._in_flight:
                    if not self._open and not self._queue and self._sending is None:
                        return
                    self._sent.clear()
                    await self._sent.wait()
                    continue
                head = self._in_flight[0]
                remaining = head.sent_at + self.ack_timeout - time.monotonic()
                try:
                    reply = await asyncio.wait_for(asyncio.shield(head.reply), max(remaining, 0))
                except TimeoutError:
                    # e.g. a publish racing a fence: the stream stopped capturing this epoch's subject and the
                    # message was dropped without a reply. The cause decides the error, as for a refusal.
                    await self._fail_unacknowledged(head, f"not acknowledged within {self.ack_timeout:g} s")
                    return
                if "error" in reply or reply.get("status") or reply.get("seq") != head.stream_sequence:
                    await self._fail_rejected(head, reply)
                    return
                self._in_flight.popleft()
                self._acked_tail = head.stream_sequence
                self._acked.set()
                if head.last_piece:
                    self.index.add(head.append.sequence, head.stream_sequence)
                    if not head.append.future.done():
                        head.append.future.set_result(head.append.sequence)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(LogClosedError(f"Tier-1 log {self.stream}: acknowledgement handling failed ({exc!r})"), exc)

    async def _fail_rejected(self, head: _InFlight, reply: dict[str, Any]) -> None:
        """A publish was refused: closed for good, fenced if a newer owner did it."""
        reason = (reply.get("error") or {}).get("description") or (
            "no responders (the stream does not capture this epoch's subject, or has no leader)"
            if reply.get("status") == NO_RESPONDERS else f"unexpected acknowledgement {reply!r}")
        await self._fail_unacknowledged(head, f"was refused ({reason})")

    async def _fail_unacknowledged(self, head: _InFlight, what: str) -> None:
        """The oldest publish in flight was not acknowledged (``what`` says how): closed for good, and fenced
        (``LogFencedError``) if a newer owner holds the stream."""
        error: LogClosedError = LogClosedError(
            f"Tier-1 log {self.stream} (epoch {self.epoch}): stream message {head.stream_sequence} {what}")
        self._stop_sending()
        with contextlib.suppress(Exception):
            newer = await asyncio.wait_for(self._newest_epoch(), min(self.request_timeout, 2.0))
            if newer > self.epoch:
                error = self._fenced(newer, f"stream message {head.stream_sequence} {what}")
        self._fail(error)

    async def _newest_epoch(self) -> int:
        info = await self._stream_info()
        if info is None:
            return 0
        subjects = info["config"].get("subjects", [])
        epochs = [e for s in subjects if (e := subject_epoch(self.prefix, self.container_id, s)) is not None]
        newest = max(epochs, default=0)
        last = int(info["state"]["last_seq"])
        if last:
            answer = await self._request(f"$JS.API.STREAM.MSG.GET.{self.stream}", {"seq": last})
            if "message" in answer:
                newest = max(newest, parse_headers(last, _decode_headers(answer["message"].get("hdrs"))).epoch)
        return newest

    def _stop_sending(self) -> None:
        self._open = False
        if self._sender is not None and self._sender is not asyncio.current_task():
            self._sender.cancel()

    def _fail(self, error: LogClosedError, cause: BaseException | None = None) -> None:
        """Fail-stop: fail every pending append with ``error`` and close the log for good."""
        if self._failure is not None:
            return
        if cause is not None:
            error.__cause__ = cause
        sending = [self._sending] if self._sending is not None else []
        pending = {id(a): a for a in [*(f.append for f in self._in_flight), *sending, *self._queue]}
        log.error("%s; failing %d pending appends and closing the log", error, len(pending))
        self._failure = error
        self._stop_sending()
        for append in pending.values():
            if not append.future.done():
                append.future.set_exception(self._closed_error())
        self._sending = None
        self._queue.clear()
        self._in_flight.clear()
        for reply in self._replies.values():
            reply.cancel()
        self._replies.clear()
        if self._acker is not None and self._acker is not asyncio.current_task():
            self._acker.cancel()
        self._sent.set()

    def _closed_error(self) -> LogClosedError:
        """A fresh error for a refused append: the failure's type (fenced or not) and message, or plain closed."""
        failure = self._failure
        if isinstance(failure, LogFencedError):
            error: LogClosedError = LogFencedError(str(failure), epoch=failure.epoch, newer_epoch=failure.newer_epoch)
        elif failure is not None:
            error = LogClosedError(str(failure))
        else:
            return LogClosedError(f"Tier-1 log {self.stream} (epoch {self.epoch}) is closed")
        error.__cause__ = failure
        return error

    @property
    def failure(self) -> BaseException | None:
        """Why the log closed itself (None while healthy or after a clean close)."""
        return self._failure

    # ------------------------------------------------------------------------------------ truncate, close

    async def truncate(self, up_to: int) -> None:
        """Purge the messages of records <= ``up_to``; the last acknowledged message is always kept, so the next
        owner still learns the last log sequence. A no-op for records this instance never saw."""
        if self._nc is None or self._failure is not None:
            raise LogClosedError(f"Tier-1 log {self.stream} is closed") from self._failure
        end = self.index.stream_sequence(up_to)
        if end is None:
            return
        keep_from = min(end + 1, self._acked_tail)
        answer = await self._request(f"$JS.API.STREAM.PURGE.{self.stream}", {"seq": keep_from})
        if "error" in answer:
            raise Tier1UnavailableError(f"Tier-1 stream {self.stream}: purge below {keep_from} failed: "
                                        f"{answer['error'].get('description', answer['error'])}")
        self.index.forget_below(up_to)
        log.debug("Tier-1 log %s truncated up to log sequence %d (stream messages below %d purged: %d)",
                  self.stream, up_to, keep_from, answer.get("purged", 0))

    async def close(self) -> None:
        """Wait (within ``ack_timeout``) for pending appends, then disconnect. Appends after close raise
        ``LogClosedError``."""
        was_open, self._open = self._open, False
        if was_open and self._acker is not None:
            self._sent.set()
            done, _ = await asyncio.wait([self._acker], timeout=self.ack_timeout + 1)
            if not done:
                self._fail(LogClosedError(f"Tier-1 log {self.stream}: closed with appends still unacknowledged"))
        for task in (self._sender, self._acker):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        for append in [*self._queue, *([self._sending] if self._sending is not None else [])]:
            if not append.future.done():
                append.future.set_exception(self._closed_error())
        self._queue.clear()
        await self._disconnect()

    async def _disconnect(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), self.request_timeout)


def _decode_headers(encoded: str | None) -> dict[str, str] | None:
    """Headers of a ``STREAM.MSG.GET`` answer (base64 of ``NATS/1.0`` header lines)."""
    if not encoded:
        return None
    lines = base64.b64decode(encoded).decode("utf-8", "replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers
