"""Which segment store runs which container: Pravega's ``UniformContainerBalancer`` as a pure function.

``rebalance(current, hosts, count)`` takes the map in force (host id → container ids), the live hosts and the
cluster's container count, and returns the new map:

1. keep every container already assigned to a live host (a container listed twice stays with the first host in
   sorted order; ids outside ``0..count-1`` are dropped);
2. give each orphan (a container of a dead host, or never assigned), lowest id first, to the least loaded host;
3. while the most and the least loaded hosts differ by more than one container, move the highest container id of
   the most loaded host to the least loaded one.

Ties go to the lowest host id, so the result is deterministic, and on an empty map it gives container ``i`` to
the ``i mod n``-th host in sorted order. Moves are as few as evening out to ±1 needs: a container is only taken
from a host holding more than its share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def rebalance(current: Mapping[str, Iterable[int]], hosts: Iterable[str], container_count: int
              ) -> dict[str, tuple[int, ...]]:
    """The new assignment (every live host listed, each with its sorted container ids; empty without hosts)."""
    live = sorted(set(hosts))
    if not live:
        return {}
    assignment: dict[str, set[int]] = {host: set() for host in live}
    taken: set[int] = set()
    for host in sorted(h for h in current if h in assignment):
        for container in sorted(set(current[host])):
            if 0 <= container < container_count and container not in taken:
                assignment[host].add(container)
                taken.add(container)

    def least_loaded() -> str:
        return min(live, key=lambda h: (len(assignment[h]), h))

    for container in range(container_count):
        if container not in taken:
            assignment[least_loaded()].add(container)
    while True:
        top = max(len(assignment[h]) for h in live)
        most = next(h for h in live if len(assignment[h]) == top)
        least = least_loaded()
        if len(assignment[most]) - len(assignment[least]) <= 1:
            break
        moved = max(assignment[most])
        assignment[most].discard(moved)
        assignment[least].add(moved)
    return {host: tuple(sorted(containers)) for host, containers in assignment.items()}
