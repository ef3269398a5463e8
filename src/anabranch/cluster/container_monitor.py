"""``ContainerMonitor``: makes the containers running in this segment store equal those the map assigns it.

Pravega's ZKSegmentContainerMonitor, on asyncio. Triggers: a kazoo ``DataWatch`` on ``container-map``, a periodic
check (``check_interval``), a container whose durable log failed, and ZooKeeper session changes. Each pass
(one at a time) reads the map, then
- stops the containers no longer assigned here: first out of the store (new requests get ``WrongHost``), then
  closed, flushing to LTS when it can (``stop_timeout``; after it, aborted: nothing acked is lost, the next owner
  recovers from Tier-1);
- removes failed containers (log fail-stop or fenced) and, while still assigned, starts them again with an
  exponential backoff (``backoff_initial`` … ``backoff_max``);
- starts the missing ones, at most ``parallel_starts`` at once and ``start_timeout`` each: the factory takes a
  new epoch and opens the Tier-1 log (the fence) and LTS with it; recovery runs; only then is the container
  added to the store.
After each pass the monitor writes what runs here to the ephemeral ``running/<host id>`` (``cluster status``).
Without a ZooKeeper session (lost, or suspended for longer than the session timeout, after which the servers
have expired it and another host may own the containers) every container is stopped; they come back once the
session is, if the map still assigns them here. The map is advisory: a container started here while another
host still runs it is safe because the new epoch fences the old owner out (nothing it appends afterwards is
acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import KazooState

from anabranch.cluster.layout import ClusterPaths, ContainerMap
from anabranch.cluster.zk import DEFAULT_SESSION_TIMEOUT, ZkClient
from anabranch.segmentstore.container import SegmentContainer
from anabranch.segmentstore.store import SegmentStore

log = logging.getLogger(__name__)

ContainerFactory = Callable[[int, Callable[[int], None]], Awaitable[SegmentContainer]]
"""``factory(container_id, on_failure)``: a new, not yet started container for a new ownership (new epoch, Tier-1
log and LTS opened with it); ``on_failure`` must be passed to the container (it reports a failed log)."""


@dataclass
class _Backoff:
    attempts: int = 0
    not_before: float = 0.0
    reason: str = ""


class ContainerMonitor:
    """Starts and stops containers of ``store`` as the cluster's container map says for ``host_id``."""

    def __init__(
        self,
        store: SegmentStore,
        zk: ZkClient,
        paths: ClusterPaths,
        host_id: str,
        factory: ContainerFactory,
        *,
        check_interval: float = 2.0,
        start_timeout: float = 30.0,
        stop_timeout: float = 30.0,
        parallel_starts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
    ) -> None:
        self._store = store
        self._zk = zk
        self._paths = paths
        self.host_id = host_id
        self._factory = factory
        self._check_interval = check_interval
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._starts = asyncio.Semaphore(parallel_starts)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._session_timeout = session_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._assigned: set[int] = set()
        self._starting: set[int] = set()
        self._backoffs: dict[int, _Backoff] = {}
        self._session_lost = False
        self._suspended_since: float | None = None
        self._map_version = -1
        self._published: bytes | None = None
        self.passes = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Watch the map and run the first pass in the background (containers start as assigned)."""
        self._zk.add_state_listener(self._on_state)
        self._zk.kazoo.DataWatch(self._paths.container_map, self._on_map_changed)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="container-monitor")

    async def stop(self) -> None:
        """Stop watching and close every container of this store (flushing to LTS where it can)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.gather(*(self._stop_container(cid, "segment store stopping")
                               for cid in self._store.container_ids()))

    def status(self) -> dict[str, Any]:
        """What runs here: ``assigned`` and ``running`` container ids, ``starting``, ``failed`` (id → why, for the
        ones waiting to be started again) and ``healthy`` (every assigned container runs and none failed)."""
        running = self._store.container_ids()
        failed = {cid: b.reason for cid, b in sorted(self._backoffs.items()) if b.reason}
        broken = [cid for cid in running if getattr(self._store.running(cid), "failed", False)]
        return {
            "host_id": self.host_id,
            "assigned": sorted(self._assigned),
            "running": running,
            "starting": sorted(self._starting),
            "failed": failed,
            "healthy": set(running) == self._assigned and not broken and not self._starting,
            "map_version": self._map_version,
        }

    def wake(self) -> None:
        """Run a pass soon (safe to call from the event loop only)."""
        self._wake.set()

    # --- triggers ----------------------------------------------------------------------------

    def _on_map_changed(self, data: bytes | None, stat: object) -> None:
        self._zk.call_soon(self._wake.set)  # kazoo thread

    def _on_state(self, state: KazooState) -> None:
        if state == KazooState.LOST:
            self._published = None  # the ephemeral node died with the session
            self._session_lost = True
            self._suspended_since = None
        elif state == KazooState.SUSPENDED:
            self._suspended_since = time.monotonic()
        elif state == KazooState.CONNECTED:
            self._session_lost = False
            self._suspended_since = None
        self._wake.set()

    def _on_container_failed(self, container_id: int) -> None:
        log.warning("container %d failed; it will be stopped and, while assigned here, started again", container_id)
        self._wake.set()

    # --- passes ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("container monitor pass failed; trying again in %.1f s", self._check_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait())

    def _next_wait(self) -> float:
        wait = self._check_interval
        now = time.monotonic()
        for cid, backoff in self._backoffs.items():
            if cid in self._assigned and cid not in self._store.container_ids():
                wait = min(wait, max(backoff.not_before - now, 0.01))
        return wait

    def _without_session(self) -> bool:
        if self._session_lost:
            return True
        return self._suspended_since is not None and time.monotonic() - self._suspended_since >= self._session_timeout

    async def _read_assignment(self) -> set[int] | None:
        """Containers the map gives this host; None if ZooKeeper cannot answer now (keep what runs)."""
        try:
            found = await asyncio.wait_for(self._zk.get_or_none(self._paths.container_map), self._check_interval * 2)
        except Exception as exc:
            log.debug("cannot read the container map now: %r", exc)
            return None
        if found is None:
            self._map_version = -1
            return set()
        container_map = ContainerMap.decode(found[0])
        self._map_version = container_map.version
        return {cid for cid in container_map.assignment.get(self.host_id, ())
                if 0 <= cid < self._store.container_count}

    async def _pass(self) -> None:
        self.passes += 1
        why = "no longer assigned here"
        if self._without_session():
            assigned: set[int] = set()
            why = "no ZooKeeper session (another segment store may own it now)"
        else:
            read = await self._read_assignment()
            assigned = self._assigned if read is None else read
        if assigned != self._assigned:
            log.info("containers assigned to %s: %s", self.host_id, sorted(assigned))
        self._assigned = assigned
        running = set(self._store.container_ids())
        stops = [cid for cid in running if cid not in assigned or self._store.running(cid).failed]  # type: ignore[union-attr]
        await asyncio.gather(*(self._stop_container(cid, why if cid not in assigned else "its log failed")
                               for cid in stops))
        now = time.monotonic()
        for cid in list(self._backoffs):
            if cid not in assigned:
                del self._backoffs[cid]
        starts = [cid for cid in sorted(assigned - set(self._store.container_ids()) - self._starting)
                  if self._backoffs.get(cid, _Backoff()).not_before <= now]
        if starts:
            await asyncio.gather(*(self._start_container(cid) for cid in starts))
        await self._publish()

    async def _publish(self) -> None:
        """Write what runs here to the ephemeral ``running/<host id>`` when it changed (for ``cluster status``)."""
        status = self.status()
        record = json.dumps({"running": status["running"], "assigned": status["assigned"],
                             "healthy": status["healthy"]}).encode()
        if record == self._published or self._without_session():
            return
        path = self._paths.running_on(self.host_id)
        try:
            try:
                await self._zk.set(path, record)
            except NoNodeError:
                await self._zk.create(path, record, ephemeral=True)
        except Exception as exc:
            log.debug("could not publish the running containers now: %r", exc)
            return
        self._published = record

    async def _start_container(self, container_id: int) -> None:
        self._starting.add(container_id)
        try:
            async with self._starts:
                began = time.monotonic()
                container: SegmentContainer | None = None
                try:
                    async with asyncio.timeout(self._start_timeout):
                        container = await self._factory(container_id, self._on_container_failed)
                        await container.start()
                except BaseException as exc:  # a cancelled start (stopping) must not leave its log open either
                    if container is not None:
                        with contextlib.suppress(Exception):
                            await container.abort()
                    if not isinstance(exc, Exception):
                        raise
                    self._failed_start(container_id, exc)
                    return
                if container_id not in self._assigned or self._without_session():
                    await self._close(container, "unassigned while it was starting")
                    return
                self._store.add_container(container)
                self._backoffs.pop(container_id, None)
                log.info("container %d runs on %s (started in %.2f s)", container_id, self.host_id,
                         time.monotonic() - began)
        finally:
            self._starting.discard(container_id)

    def _failed_start(self, container_id: int, exc: BaseException, what: str = "could not start") -> None:
        backoff = self._backoffs.setdefault(container_id, _Backoff())
        delay = min(self._backoff_initial * 2 ** backoff.attempts, self._backoff_max)
        backoff.attempts += 1
        backoff.not_before = time.monotonic() + delay
        backoff.reason = f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"
        log.warning("container %d %s on %s (attempt %d, next start in %.1f s): %s", container_id, what,
                    self.host_id, backoff.attempts, delay, str(exc) or type(exc).__name__)

    async def _stop_container(self, container_id: int, why: str) -> None:
        container = self._store.remove_container(container_id)
        if container is None:
            return
        if container.failed:
            self._failed_start(container_id, RuntimeError("Tier-1 failed or fenced"), "failed")
        log.info("stopping container %d on %s: %s", container_id, self.host_id, why)
        await self._close(container, why)

    async def _close(self, container: SegmentContainer, why: str) -> None:
        if container.failed:
            await container.abort()
            return
        try:
            async with asyncio.timeout(self._stop_timeout):
                await container.close()
        except Exception as exc:
            log.warning("container %d did not close cleanly (%s); aborting it: %r", container.container_id, why, exc)
            await container.abort()
