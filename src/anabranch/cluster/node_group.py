"""``NodeGroup``: the nodes of one engine (ZooKeeper, NATS) run as child processes of ours.

Each node runs in its own session (a Ctrl-C aimed at the parent does not reach it) and is stopped by pid, waiting
for it to exit so its ports can be reused. Subclasses say how to spawn a node and when the nodes serve.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Self


class NodeGroup:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def pids(self) -> list[int | None]:
        return [p.pid if p is not None and p.poll() is None else None for p in self._processes]

    def _spawn(self, index: int) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 60.0, indexes: list[int] | None = None) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> Self:
        """Start every node; return once all serve (stopping them all if they do not)."""
        for index in range(self.nodes):
            self._spawn(index)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, index: int) -> None:
        """SIGKILL one node (a crash)."""
        self._signal(index, signal.SIGKILL)

    def restart(self, index: int, timeout: float = 60.0) -> None:
        """Stop the node if it runs, start it again with the same ports and data, wait until it serves."""
        self._signal(index, signal.SIGTERM)
        self._spawn(index)
        self.wait_ready(timeout, [index])

    def _signal(self, index: int, sig: signal.Signals, timeout: float = 20.0) -> None:
        process = self._processes[index]
        self._processes[index] = None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM every node and wait for each to exit."""
        for index in range(self.nodes):
            self._signal(index, signal.SIGTERM)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
