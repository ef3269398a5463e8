"""Transaction leases with several controllers over one metadata store: the controller that times transactions out
(the leader) must not abort a transaction whose pings reach another controller, and must abort it once the pings
stop. Two ``Controller`` instances share an in-memory segment store, as two controller processes share the
segment stores."""

from __future__ import annotations

from anabranch.controller.facade import Controller
from anabranch.controller.records import StreamConfiguration
from anabranch.controller.segment_helper_memory import InMemorySegmentStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_ping_on_another_controller_renews_the_leaders_lease() -> None:
    store, clock = InMemorySegmentStore(), Clock()
    leader = Controller(store, "127.0.0.1", 1, monotonic=clock)
    other = Controller(store, "127.0.0.1", 1, monotonic=clock)
    await leader.bootstrap()
    await other.bootstrap()
    assert await leader.streams.create_scope("sc") == "SUCCESS"
    assert await leader.streams.create_stream("sc", "st", StreamConfiguration()) == "SUCCESS"
    txn_id, _ = await other.txns.create("sc", "st", 10_000)
    await leader.resume_all()  # the leader's sweep learns of the transaction
    for _ in range(3):
        clock.now += 6
        assert await other.txns.ping("sc", "st", txn_id, 10_000) == "OK"
        clock.now += 5  # past the leader's deadline, but pinged elsewhere meanwhile
        assert await leader.txns.expire_due() == 0
        assert await leader.txns.state("sc", "st", txn_id) == "OPEN"
    clock.now += 11  # no ping for a whole lease
    assert await leader.txns.expire_due() == 1
    assert await leader.txns.state("sc", "st", txn_id) in ("ABORTING", "ABORTED")


async def test_unpinged_transaction_expires_once() -> None:
    store, clock = InMemorySegmentStore(), Clock()
    controller = Controller(store, "127.0.0.1", 1, monotonic=clock)
    await controller.bootstrap()
    await controller.streams.create_scope("sc")
    await controller.streams.create_stream("sc", "st", StreamConfiguration())
    txn_id, _ = await controller.txns.create("sc", "st", 10_000)
    clock.now += 9
    assert await controller.txns.expire_due() == 0
    clock.now += 2
    assert await controller.txns.expire_due() == 1
    assert await controller.txns.expire_due() == 0
    assert await controller.txns.state("sc", "st", txn_id) in ("ABORTING", "ABORTED")
