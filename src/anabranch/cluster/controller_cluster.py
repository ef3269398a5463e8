"""A controller as a cluster member: the container map it routes by, its registration, and the leader's duties.

``ClusterView`` is every controller's picture of the cluster, kept fresh by watches (kazoo ``DataWatch`` on
``container-map``, ``ChildrenWatch`` on ``hosts/`` and ``controllers/``) plus a periodic re-read, and re-read at
once when a segment store answers ``WrongHost``. It answers where a segment's container runs
(``endpoint_for``), with ``anabranch.segmentstore.store.container_id_for``.

``ControllerMember`` owns the ZooKeeper session of one controller: it settles the container count (the ``config``
znode; a mismatch is a ``ConfigError``), keeps the ephemeral ``controllers/<id>`` node, and contends in a kazoo
``Election`` on ``controller-leader``. kazoo's election blocks a thread for as long as this controller leads, so it
runs on a daemon thread that hands the news to the event loop. The leader rewrites ``container-map`` with
``balancer.rebalance`` whenever ``hosts/`` changes, at most once per ``rebalance_interval`` (Pravega's
minRebalanceInterval; changes that arrive meanwhile are batched into one rewrite), with a CAS on the znode version,
and calls ``on_elected`` / ``on_deposed`` so the service runs the cluster-wide jobs on the leader only.
Leadership ends when the session is lost, or has been suspended for longer than the session timeout (the servers
have expired it by then and another controller may lead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState

from anabranch.cluster.balancer import rebalance
from anabranch.cluster.layout import (
    DEFAULT_CLUSTER,
    ClusterPaths,
    ContainerMap,
    HostRecord,
    decode_config,
    encode_config,
)
from anabranch.cluster.zk import DEFAULT_SESSION_TIMEOUT, ClusterUnavailableError, ZkClient
from anabranch.errors import ConfigError
from anabranch.segmentstore.store import container_id_for

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class ControllerClusterOptions:
    """How a controller joins a cluster."""

    zookeeper: str
    """ZooKeeper connect string, ``host:port[,host:port...]``."""
    name: str = DEFAULT_CLUSTER
    containers: int | None = None
    """The container count to record if this is the cluster's first process (None: wait for the recorded one)."""
    controller_id: str | None = None
    """Default: ``host:port`` of the gRPC endpoint."""
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    connect_timeout: float = 5.0
    rebalance_interval: float = 1.0
    """At least this long between two rewrites of the container map (changes meanwhile are batched)."""
    refresh_interval: float = 5.0
    """Re-read the map and hosts this often even without a watch firing; the leader re-checks the map as often."""

    @property
    def paths(self) -> ClusterPaths:
        return ClusterPaths.for_cluster(self.name)


class ClusterView:
    """The container map and the live segment stores and controllers, as this controller last read them."""

    def __init__(self, zk: ZkClient, paths: ClusterPaths, container_count: int, refresh_interval: float = 5.0) -> None:
        self._zk = zk
        self._refresh_interval = refresh_interval
        self._paths = paths
        self.container_count = container_count
        self.map = ContainerMap()
        self.hosts: dict[str, Endpoint] = {}
        self.controllers: list[Endpoint] = []
        self._wake = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        await self._zk.ensure_path(self._paths.hosts)
        await self._zk.ensure_path(self._paths.controllers)
        await self.refresh()
        self._zk.kazoo.DataWatch(self._paths.container_map, self._on_watch)
        self._zk.kazoo.ChildrenWatch(self._paths.hosts, self._on_watch)
        self._zk.kazoo.ChildrenWatch(self._paths.controllers, self._on_watch)
        self._refresher = asyncio.get_running_loop().create_task(self._keep_fresh(), name="cluster-view")

    def close(self) -> None:
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()

    def _on_watch(self, *_: object) -> bool | None:
        if self._closed:
            return False  # kazoo: stop watching
        self._zk.call_soon(self._wake.set)
        return None

    async def _keep_fresh(self) -> None:
        """Re-read after every watch event (events during a read cause one more read) and every refresh interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._refresh_interval)
            self._wake.clear()
            await self._refresh_logged()

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            log.debug("could not re-read the cluster map now: %r", exc)

    async def refresh(self) -> None:
        """Read the map, the segment stores' endpoints and the controllers' from ZooKeeper now."""
        found = await self._zk.get_or_none(self._paths.container_map)
        container_map = ContainerMap.decode(found[0]) if found is not None else ContainerMap()
        hosts = await self._read_children(self._paths.hosts, self._paths.host, _host_endpoint)
        controllers = await self._read_children(self._paths.controllers, self._paths.controller, _controller_endpoint)
        changed = container_map.version != self.map.version or hosts != self.hosts
        self.map, self.hosts, self.controllers = container_map, hosts, sorted(controllers.values())
        if changed:
            log.info("container map version %d, segment stores %s", container_map.version, sorted(hosts))
            self._changed.set()

    async def _read_children(self, parent: str, child: Callable[[str], str],
                             decode: Callable[[bytes], Endpoint]) -> dict[str, Endpoint]:
        try:
            names = await self._zk.get_children(parent)
        except NoNodeError:
            return {}
        found = await asyncio.gather(*(self._zk.get_or_none(child(name)) for name in names))
        endpoints = {}
        for name, node in zip(names, found, strict=True):
            if node is None:
                continue
            try:
                endpoints[name] = decode(node[0])
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable cluster node %s", child(name))
        return endpoints

    def owner(self, container_id: int) -> Endpoint | None:
        """The endpoint of the live segment store the map gives ``container_id`` to (None: none right now)."""
        host = self.map.owner_of(container_id)
        return self.hosts.get(host) if host is not None else None

    def endpoint_for(self, segment: str) -> Endpoint | None:
        return self.owner(container_id_for(segment, self.container_count))

    def any_host(self) -> Endpoint | None:
        return min(self.hosts.values()) if self.hosts else None

    def covers_all(self) -> bool:
        """Every container has an owner that is alive."""
        return all(self.owner(c) is not None for c in range(self.container_count))

    async def wait_until_covered(self, timeout: float) -> None:
        """Wait until every container has a live owner (``ClusterUnavailableError`` after ``timeout``)."""
        deadline = time.monotonic() + timeout
        last_log = 0.0
        while not self.covers_all():
            now = time.monotonic()
            if now >= deadline:
                raise ClusterUnavailableError(
                    f"cluster {self._paths.root}: no segment store owns every container after {timeout:g} s "
                    f"(segment stores: {sorted(self.hosts) or 'none'}); start segment stores with --zookeeper "
                    f"{self._zk.hosts} --cluster {self._paths.root.rsplit('/', 1)[-1]}")
            if now - last_log > 5.0:
                log.info("waiting for segment stores to own all %d containers (live: %s)", self.container_count,
                         sorted(self.hosts) or "none")
                last_log = now
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(1.0, deadline - now))
            if not self.covers_all():
                await self._refresh_logged()


def _host_endpoint(data: bytes) -> Endpoint:
    record = HostRecord.decode(data)
    return record.host, record.port


def _controller_endpoint(data: bytes) -> Endpoint:
    host, _, port = str(json.loads(data)["uri"]).rpartition(":")
    return host, int(port)


async def settle_container_count(zk: ZkClient, paths: ClusterPaths, wanted: int | None, timeout: float) -> int:
    """The cluster's container count: record ``wanted`` if the cluster has none yet, else check it matches.
    With ``wanted`` None, wait (up to ``timeout``) for a segment store to record it."""
    deadline = time.monotonic() + timeout
    while True:
        if wanted is not None and await zk.create_if_missing(paths.config, encode_config(wanted)):
            log.info("cluster %s: %d containers (first process of this cluster)", paths.root, wanted)
            return wanted
        found = await zk.get_or_none(paths.config)
        if found is not None:
            recorded = decode_config(found[0])
            if wanted is not None and recorded != wanted:
                raise ConfigError(f"cluster {paths.root} has {recorded} containers (fixed when it was created), but "
                                  f"this controller was started with --containers {wanted}; use --containers "
                                  f"{recorded} or leave it out")
            return recorded
        if time.monotonic() > deadline:
            raise ClusterUnavailableError(f"cluster {paths.root} has no container count after {timeout:g} s: start "
                                          f"its segment stores first, or give the controller --containers N")
        await asyncio.sleep(0.2)


class ControllerMember:
    """The cluster side of one controller process."""

    def __init__(self, options: ControllerClusterOptions) -> None:
        self.options = options
        self.paths = options.paths
        self.zk = ZkClient(options.zookeeper, session_timeout=options.session_timeout,
                           connect_timeout=options.connect_timeout)
        self.view: ClusterView | None = None
        self.on_elected: Callable[[], None] = lambda: None
        """Called on the event loop when this controller becomes the leader."""
        self.on_deposed: Callable[[], None] = lambda: None
        """Called on the event loop when it stops being the leader (session lost, or stopping)."""
        self.is_leader = False
        self.map_writes = 0
        self._uri: str | None = None
        self._session_lost = False
        self._suspended: asyncio.TimerHandle | None = None
        self._closing = threading.Event()
        self._leadership_over = threading.Event()
        self._election_thread: threading.Thread | None = None
        self._balancer: asyncio.Task[None] | None = None
        self._hosts_changed = asyncio.Event()
        self._last_rewrite = 0.0
        self._reregister: asyncio.Task[None] | None = None

    @property
    def container_count(self) -> int:
        assert self.view is not None
        return self.view.container_count

    async def connect(self, settle_timeout: float = 60.0) -> ClusterView:
        """Open the session, settle the container count, start the cluster view; one-line errors otherwise."""
        await self.zk.start()
        try:
            count = await settle_container_count(self.zk, self.paths, self.options.containers, settle_timeout)
            self.view = ClusterView(self.zk, self.paths, count, self.options.refresh_interval)
            await self.view.start()
        except BaseException:
            await self.zk.stop()
            raise
        self.zk.add_state_listener(self._on_state)
        self.zk.kazoo.ChildrenWatch(self.paths.hosts, self._on_hosts)
        return self.view

    def start_election(self) -> None:
        """Contend for leadership (on a daemon thread: kazoo's election blocks while it leads)."""
        self._election_thread = threading.Thread(target=self._contend, name="controller-election", daemon=True)
        self._election_thread.start()

    async def register(self, host: str, port: int) -> None:
        """Create ``controllers/<id>`` (ephemeral) with this controller's gRPC endpoint."""
        self._uri = f"{host}:{port}"
        await self._create_registration()

    @property
    def controller_id(self) -> str:
        return self.options.controller_id or self._uri or "controller"

    async def _create_registration(self) -> None:
        path = self.paths.controller(self.controller_id)
        data = json.dumps({"uri": self._uri}).encode()
        for _ in range(3):
            try:
                await self.zk.create(path, data, ephemeral=True)
                return
            except NodeExistsError:
                with contextlib.suppress(NoNodeError):
                    _, stat = await self.zk.get(path)
                    if stat.ephemeralOwner == self.zk.kazoo.client_id[0]:
                        return
                    log.info("replacing %s left by an earlier session of this controller id", path)
                    await self.zk.delete(path, stat.version)
        raise ConfigError(f"another live controller registers as {self.controller_id!r}; give each its own id")

    async def stop(self) -> None:
        """Give up leadership, deregister and close the session."""
        self._closing.set()
        self._leadership_over.set()
        if self.view is not None:
            self.view.close()
        self._set_leader(False)
        for task in (self._reregister,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.zk.stop()
        if self._election_thread is not None:
            await asyncio.to_thread(self._election_thread.join, 10.0)

    # --- leadership ----------------------------------------------------------------------------

    def _contend(self) -> None:
        """Election thread: contend, lead until told to stop, contend again (each round a fresh Election)."""
        while not self._closing.is_set():
            election = self.zk.kazoo.Election(self.paths.controller_leader, self.options.controller_id or "")
            try:
                election.run(self._lead)
            except Exception as exc:
                if self._closing.is_set():
                    return
                log.info("controller election interrupted (%r); contending again", exc)
                self._closing.wait(0.5)

    def _lead(self) -> None:
        if self._closing.is_set() or not self.zk.connected:
            return
        self._leadership_over.clear()
        self.zk.call_soon(self._set_leader, True)
        self._leadership_over.wait()
        self.zk.call_soon(self._set_leader, False)

    def _set_leader(self, leader: bool) -> None:
        if leader == self.is_leader or (leader and self._closing.is_set()):
            return
        self.is_leader = leader
        if leader:
            log.info("controller %s leads cluster %s", self.controller_id, self.paths.root)
            self._balancer = asyncio.get_running_loop().create_task(self._balance(), name="container-balancer")
            self.on_elected()
        else:
            log.info("controller %s no longer leads cluster %s", self.controller_id, self.paths.root)
            if self._balancer is not None:
                self._balancer.cancel()
                self._balancer = None
            self.on_deposed()

    def _on_state(self, state: KazooState) -> None:
        if self._suspended is not None:
            self._suspended.cancel()
            self._suspended = None
        if state == KazooState.LOST:
            self._session_lost = True
            self._give_up("ZooKeeper session lost")
        elif state == KazooState.SUSPENDED:
            self._suspended = asyncio.get_running_loop().call_later(
                self.options.session_timeout, self._give_up, "ZooKeeper unreachable for longer than the session")
        elif state == KazooState.CONNECTED and self._session_lost and not self._closing.is_set():
            self._session_lost = False
            self._reregister = asyncio.get_running_loop().create_task(self._register_again(), name="zk-reregister")

    def _give_up(self, why: str) -> None:
        if self.is_leader:
            log.warning("controller %s gives up leadership: %s", self.controller_id, why)
        self._set_leader(False)
        self._leadership_over.set()

    async def _register_again(self) -> None:
        delay = 0.2
        while self._uri is not None and not self._closing.is_set():
            try:
                await self._create_registration()
                return
            except (KazooException, ConfigError) as exc:
                log.warning("could not register controller again (retrying in %.1f s): %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # --- the leader's balancer -------------------------------------------------------------------

    def _on_hosts(self, *_: object) -> bool | None:
        if self._closing.is_set():
            return False  # kazoo: stop watching
        self.zk.call_soon(self._hosts_changed.set)
        return None

    async def _balance(self) -> None:
        """While leading: rewrite the map after ``hosts/`` changes (batched) and every ``refresh_interval``."""
        while True:
            self._hosts_changed.clear()
            wait = self._last_rewrite + self.options.rebalance_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.rebalance_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("container balancing failed (retrying): %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hosts_changed.wait(), self.options.refresh_interval)

    async def rebalance_once(self) -> bool:
        """Read the live hosts and the map; write the balanced map if it differs (True when written)."""
        assert self.view is not None
        hosts = await self.zk.get_children(self.paths.hosts)
        found = await self.zk.get_or_none(self.paths.container_map)
        current = ContainerMap.decode(found[0]) if found is not None else ContainerMap()
        assignment = rebalance(current.assignment, hosts, self.view.container_count)
        if assignment == {h: tuple(sorted(cs)) for h, cs in current.assignment.items()}:
            return False
        new = ContainerMap(assignment, current.version + 1)
        try:
            if found is None:
                await self.zk.create(self.paths.container_map, new.encode())
            else:
                await self.zk.set(self.paths.container_map, new.encode(), found[1].version)
        except (BadVersionError, NodeExistsError):
            log.info("container map changed while balancing; balancing again")
            self._hosts_changed.set()
            return False
        self._last_rewrite = time.monotonic()
        self.map_writes += 1
        log.info("container map version %d: %s", new.version,
                 {h: list(cs) for h, cs in sorted(assignment.items())})
        return True
