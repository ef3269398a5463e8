"""``WriteToAnabranch``: a Beam sink writing elements as events, at least once or exactly once.

- At least once (``exactly_once=False``): one event writer per DoFn instance, flushed at the end of every bundle
  (a bundle succeeds only once its events are acknowledged). A retried bundle writes its events again.
- Exactly once, no checkpoint (``exactly_once=True``): the events of a bundle go into one transaction, flushed at
  the end of the bundle and committed when the runner finalizes the bundle (``DoFn.BundleFinalizerParam``: called
  only once the runner has durably accepted the bundle's result). A failed bundle's transaction is aborted (or
  left to its lease); its retry writes a new transaction, so nothing appears twice.
- Exactly once, with ``checkpoint_name`` (two-phase commit with the reader's checkpoint): a finalized bundle's
  transaction is not committed but *staged* in the pipeline's checkpoint record (``extra["staged"]``); the
  driver (``anabranch.beam.two_phase``) moves the staged transactions to ``pending_txns`` together with the
  input cut the run reached, then commits them. Transactions must outlive a restart: their lease is
  ``txn_lease_ms`` of the client config (kept alive while the pipeline runs; default 90 s, at most 600 s).

Connections: each DoFn instance opens one ``StreamManager`` on a private loop thread in ``setup``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import apache_beam as beam

from anabranch.beam.read import _Connected
from anabranch.beam.two_phase import STAGED, stage
from anabranch.client.config import ClientConfig
from anabranch.client.event_writer import EventStreamWriter
from anabranch.client.serializers import Serializer
from anabranch.client.transactional_writer import Transaction, TransactionalEventStreamWriter
from anabranch.errors import ConfigError

log = logging.getLogger(__name__)

class _WriteFn(beam.DoFn):  # type: ignore[misc]
    def __init__(self, config: ClientConfig, scope: str, stream: str,
                 routing_key: Callable[[Any], str | None] | None, serializer: Serializer[Any] | None) -> None:
        self.client = _Connected(config)
        self.scope = scope
        self.stream = stream
        self.routing_key = routing_key
        self.serializer = serializer

    def setup(self) -> None:
        self.client.open()

    def teardown(self) -> None:
        self.client.close()

    def _key(self, element: Any) -> str | None:
        return None if self.routing_key is None else self.routing_key(element)


class _WriteAtLeastOnce(_WriteFn):
    writer: EventStreamWriter[Any] | None = None

    def start_bundle(self) -> None:
        if self.writer is None:
            manager: Any = self.client.manager  # create_writer's overloads do not take an optional serializer
            self.writer = manager.create_writer(self.scope, self.stream, self.serializer)

    def process(self, element: Any) -> None:
        assert self.writer is not None
        self.client.run(self.writer.write_event(element, routing_key=self._key(element)))

    def finish_bundle(self) -> None:
        assert self.writer is not None
        self.client.run(self.writer.flush())

    def teardown(self) -> None:
        if self.writer is not None and self.client.runner is not None:
            self.client.run(self.writer.close())
        self.writer = None
        super().teardown()


class _WriteTransactional(_WriteFn):
    def __init__(self, config: ClientConfig, scope: str, stream: str,
                 routing_key: Callable[[Any], str | None] | None, serializer: Serializer[Any] | None,
                 checkpoint_name: str | None, checkpoint_scope: str) -> None:
        super().__init__(config, scope, stream, routing_key, serializer)
        self.checkpoint_name = checkpoint_name
        self.checkpoint_scope = checkpoint_scope
        self.writer: TransactionalEventStreamWriter[Any] | None = None
        self.txn: Transaction[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["writer"] = state["txn"] = None
        return state

    def setup(self) -> None:
        super().setup()
        manager: Any = self.client.manager
        self.writer = manager.create_transactional_writer(self.scope, self.stream, self.serializer)

    def process(self, element: Any, finalizer: Any = beam.DoFn.BundleFinalizerParam) -> None:
        assert self.writer is not None
        if self.txn is None:
            self.txn = self.client.run(self.writer.begin_txn())
            txn = self.txn
            finalizer.register(lambda: self._finalize(txn))
        self.client.run(self.txn.write_event(element, routing_key=self._key(element)))

    def finish_bundle(self) -> None:
        if self.txn is not None:
            txn, self.txn = self.txn, None
            try:
                self.client.run(txn.flush())
            except BaseException:
                self._abort(txn)
                raise

    def _finalize(self, txn: Transaction[Any]) -> None:
        if self.checkpoint_name is None:
            self.client.run(txn.commit())
        else:
            assert self.client.manager is not None
            self.client.run(stage(self.client.manager, self.checkpoint_scope, self.checkpoint_name,
                                  (self.scope, self.stream), txn.txn_id))
        log.debug("bundle transaction %s %s", txn.txn_id, "committed" if self.checkpoint_name is None else "staged")

    def _abort(self, txn: Transaction[Any]) -> None:
        if txn.is_open:
            try:
                self.client.run(txn.abort())
            except Exception as exc:  # its lease ends it anyway
                log.warning("aborting transaction %s failed: %r", txn.txn_id, exc)

    def teardown(self) -> None:
        if self.txn is not None:
            self._abort(self.txn)
            self.txn = None
        if self.writer is not None and self.client.runner is not None:
            self.client.run(self.writer.close())
        self.writer = None
        super().teardown()


class WriteToAnabranch(beam.PTransform):  # type: ignore[misc]
    """Writes each element as one event to ``scope/stream``.

    ``WriteToAnabranch("tcp://127.0.0.1:9090", "scope", "stream", routing_key=lambda e: ..., exactly_once=True)``

    - ``client_config``: a controller URI or a ``ClientConfig`` (its ``txn_lease_ms`` is the transactions' lease).
    - ``routing_key``: a function of the element giving its routing key (per-key order), or None (random).
    - ``serializer``: turns elements into bytes (default: ``bytes`` as is, ``str`` as UTF-8).
    - ``exactly_once``: one transaction per bundle, committed when the runner finalizes the bundle (default);
      False: an event writer flushed at the end of every bundle (at least once).
    - ``checkpoint_name`` / ``checkpoint_scope``: stage the finalized transactions in that checkpoint record
      instead of committing them (see ``anabranch.beam.two_phase``); needs ``exactly_once``.
    """

    def __init__(self, client_config: ClientConfig | str, scope: str, stream: str, *,
                 routing_key: Callable[[Any], str | None] | None = None, serializer: Serializer[Any] | None = None,
                 exactly_once: bool = True, checkpoint_name: str | None = None,
                 checkpoint_scope: str | None = None) -> None:
        super().__init__()
        if checkpoint_name is not None and not exactly_once:
            raise ConfigError("checkpoint_name needs exactly_once=True (transactions are what a checkpoint holds)")
        self.config = ClientConfig(client_config) if isinstance(client_config, str) else client_config
        self.scope = scope
        self.stream = stream
        self.routing_key = routing_key
        self.serializer = serializer
        self.exactly_once = exactly_once
        self.checkpoint_name = checkpoint_name
        self.checkpoint_scope = checkpoint_scope or scope

    def expand(self, pcoll: Any) -> Any:
        fn: _WriteFn
        if self.exactly_once:
            fn = _WriteTransactional(self.config, self.scope, self.stream, self.routing_key, self.serializer,
                                     self.checkpoint_name, self.checkpoint_scope)
        else:
            fn = _WriteAtLeastOnce(self.config, self.scope, self.stream, self.routing_key, self.serializer)
        return pcoll | "Write" >> beam.ParDo(fn)


__all__ = ["STAGED", "WriteToAnabranch"]
