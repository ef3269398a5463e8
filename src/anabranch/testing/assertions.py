"""What users assert about a stream application: every acknowledged event was read exactly once, and the events of
each routing key were read in the order they were written.

Both take events as hashable values (the ``bytes`` a reader returns, or anything the application decodes them to)
and fail with an ``AssertionError`` naming the first event that breaks the rule::

    assert_exactly_once(acked, read)
    assert_per_key_order(read, key=lambda e: e.split(b":")[0], written=sent)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

E = TypeVar("E", bound=Hashable)

__all__ = ["assert_exactly_once", "assert_per_key_order"]


def assert_exactly_once(acked: Iterable[E], read: Iterable[E], *, only_acked: bool = False) -> None:
    """Every event in ``acked`` appears in ``read`` exactly once, and no event is read twice.

    ``read`` may hold events that were written but whose acknowledgement the writer never saw (a write can succeed
    while its ack is lost); ``only_acked=True`` forbids those too. Messages name the first duplicated event (in read
    order), the first missing one (in acked order) and how many there are.
    """
    acked_list = list(acked)
    read_list = list(read)
    counts = Counter(read_list)
    duplicated = [e for e in dict.fromkeys(read_list) if counts[e] > 1]
    if duplicated:
        first = duplicated[0]
        raise AssertionError(f"{len(duplicated)} event(s) read more than once; the first, {first!r}, "
                             f"{counts[first]} times (at read positions "
                             f"{[i for i, e in enumerate(read_list) if e == first][:5]})")
    missing = [e for e in acked_list if e not in counts]
    if missing:
        raise AssertionError(f"{len(missing)} of {len(acked_list)} acknowledged event(s) never read; the first, "
                             f"{missing[0]!r} (acknowledged #{acked_list.index(missing[0])})")
    if only_acked:
        known = set(acked_list)
        extra = [e for e in read_list if e not in known]
        if extra:
            raise AssertionError(f"{len(extra)} event(s) read that were never acknowledged; the first, {extra[0]!r}")


def assert_per_key_order(read: Iterable[E], key: Callable[[E], Hashable], *, written: Sequence[E] | None = None,
                         sequence: Callable[[E], Any] | None = None) -> None:
    """The events of each routing key were read in the order they were written.

    ``key(event)`` is the event's routing key. The order written is either ``written`` (every event in the order the
    application wrote it) or ``sequence(event)`` (a number the event carries, growing per key). Events read that are
    not in ``written`` are ignored (``assert_exactly_once`` says whether that is allowed). The message names the key
    and the two events that are out of order.
    """
    if (written is None) == (sequence is None):
        raise TypeError("give exactly one of written= (the order written) or sequence= (a number each event carries)")
    rank: Callable[[E], Any]
    if written is not None:
        positions = {event: i for i, event in enumerate(written)}

        def rank(event: E) -> Any:
            return positions.get(event)
    else:
        assert sequence is not None
        rank = sequence
    last: dict[Hashable, tuple[Any, E, int]] = {}
    for index, event in enumerate(read):
        position = rank(event)
        if position is None:
            continue
        routing_key = key(event)
        previous = last.get(routing_key)
        if previous is not None and not previous[0] < position:
            raise AssertionError(f"routing key {routing_key!r} out of order: {event!r} (read #{index}) was written "
                                 f"before {previous[1]!r} (read #{previous[2]}), which was read first")
        last[routing_key] = (position, event, index)
