"""A plain (synchronous) test drives a ``ManualClock`` from its own thread while the embedded standalone's event
loop runs in another: the blocking forms of ``tick`` and ``settle``."""

from __future__ import annotations

import time

from anabranch.clock import ManualClock
from anabranch.embedded import Standalone


def test_a_blocking_test_times_a_transaction_out_from_its_thread() -> None:
    clock = ManualClock()
    with Standalone.blocking(clock=clock) as server:
        server.create_stream("sync", "orders")
        controller = server.server.manager.controller
        txn = server.run(controller.create_transaction("sync", "orders", 10_000))
        started = time.monotonic()
        clock.tick_blocking(9)
        assert server.run(controller.check_transaction_state("sync", "orders", txn.txn_id)).name == "OPEN"
        clock.tick_blocking(2)
        state = server.run(controller.check_transaction_state("sync", "orders", txn.txn_id))
        assert state.name in ("ABORTING", "ABORTED"), state
        assert time.monotonic() - started < 2
