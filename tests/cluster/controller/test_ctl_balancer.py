"""The container balancer: Pravega's UniformContainerBalancer rules, by example and as properties."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from anabranch.cluster.balancer import rebalance


def loads(assignment: dict[str, tuple[int, ...]]) -> list[int]:
    return [len(cs) for cs in assignment.values()]


def test_initial_map_gives_container_i_to_host_i_mod_n() -> None:
    assert rebalance({}, ["b", "a", "c"], 7) == {"a": (0, 3, 6), "b": (1, 4), "c": (2, 5)}


def test_no_hosts_no_assignment() -> None:
    assert rebalance({"a": (0, 1)}, [], 2) == {}


def test_dead_hosts_containers_go_to_the_least_loaded() -> None:
    current = {"a": (0, 3), "b": (1, 4), "c": (2, 5)}
    assert rebalance(current, ["a", "c"], 6) == {"a": (0, 1, 3), "c": (2, 4, 5)}


def test_new_host_takes_from_the_most_loaded_only() -> None:
    current = {"a": (0, 1, 2, 3), "b": (4, 5, 6, 7)}
    new = rebalance(current, ["a", "b", "c"], 8)
    assert new == {"a": (0, 1, 2), "b": (4, 5, 6), "c": (3, 7)}


def test_invalid_and_duplicate_containers_are_cleaned_up() -> None:
    assert rebalance({"a": (0, 1, 9), "b": (1, -1)}, ["a", "b"], 2) == {"a": (0,), "b": (1,)}


maps = st.dictionaries(st.sampled_from(["h0", "h1", "h2", "h3", "h4", "h5"]),
                       st.lists(st.integers(-1, 20), max_size=12), max_size=6)
host_sets = st.lists(st.sampled_from(["h0", "h1", "h2", "h3", "h4", "h5", "h6"]), min_size=1, max_size=7)


@given(maps, host_sets, st.integers(1, 20))
def test_every_container_once_on_a_live_host_balanced_within_one(current: dict[str, list[int]], hosts: list[str],
                                                                 count: int) -> None:
    new = rebalance(current, hosts, count)
    assert set(new) == set(hosts)
    assigned = [c for cs in new.values() for c in cs]
    assert sorted(assigned) == list(range(count))
    assert max(loads(new)) - min(loads(new)) <= 1


@given(maps, host_sets, st.integers(1, 20))
def test_deterministic_and_stable(current: dict[str, list[int]], hosts: list[str], count: int) -> None:
    new = rebalance(current, hosts, count)
    assert rebalance(current, list(reversed(hosts)), count) == new
    assert rebalance(new, hosts, count) == new


@given(maps, host_sets, st.integers(1, 20))
def test_moves_only_what_evening_out_needs(current: dict[str, list[int]], hosts: list[str], count: int) -> None:
    """A container stays on its live host unless that host held more than its share (ceil(count / hosts))."""
    new = rebalance(current, hosts, count)
    share = math.ceil(count / len(set(hosts)))
    for host in set(hosts):
        kept = {c for c in current.get(host, ()) if 0 <= c < count}
        owned_elsewhere = {c for h, cs in current.items() if h < host and h in set(hosts) for c in cs}
        kept -= owned_elsewhere
        lost = kept - set(new[host])
        if lost:
            assert len(kept) > share - (1 if count % len(set(hosts)) else 0) or len(kept) >= share
            assert len(new[host]) >= share - 1
