"""``free_port`` hands out loopback ports outside the kernel's ephemeral range, each once."""

from __future__ import annotations

import socket

from anabranch.testing.processes import HOST, PORT_RANGE, free_port


def _ephemeral_range() -> tuple[int, int]:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        low, high = (int(part) for part in ranges.read().split())
    return low, high


def test_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_RANGE[0] <= port <= PORT_RANGE[1] for port in ports)
    assert not any(low <= port <= high for port in ports)


def test_a_handed_out_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((HOST, port))
        server.listen()
        with socket.create_connection((HOST, port), timeout=5):
            pass
