"""``ControllerService``: the controller as a server: a grpc.aio server on ``host:port`` in front of a
``Controller`` that keeps all its metadata on one segment store.

``start`` connects to the segment store (waiting up to ``startup_timeout`` for it), creates the system
tables, finishes any workflow a crash interrupted (the startup sweep), then listens and starts the
transaction lease timer and a periodic sweep that finishes workflows a failed request left half done.
``stop`` reverses that. The controller holds no state of its own: kill it at any point and start it again.
With ``tls`` the gRPC port speaks only TLS; with ``segment_store_ssl`` the controller reaches the segment store
over TLS (plaintext when either is ``None``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from anabranch.clock import SYSTEM_CLOCK, Clock
from anabranch.cluster.liveness import HostProber
from anabranch.controller.autoscale import AutoScaler
from anabranch.controller.context import wall_clock_ms
from anabranch.controller.errors import SegmentStoreUnavailableError
from anabranch.controller.facade import Controller
from anabranch.controller.retention import RetentionJob
from anabranch.controller.segment_helper import Connect, SegmentHelper, SegmentRouter, SegmentStoreOps
from anabranch.controller.servicer import ControllerServicer
from anabranch.controller.watermarks import WatermarkJob, WireAppender
from anabranch.protocol import controller_pb2_grpc as pb_grpc
from anabranch.tls import ServerTls

if TYPE_CHECKING:
    from anabranch.auth.server import ServerAuth
    from anabranch.cluster.controller_cluster import ControllerClusterOptions, ControllerMember

log = logging.getLogger(__name__)


class ControllerService:
    def __init__(self, segment_store_host: str = "", segment_store_port: int = 0, *, host: str = "127.0.0.1",
                 port: int = 9090, ops: SegmentStoreOps | None = None, monotonic: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = wall_clock_ms, lease_check_interval: float = 1.0,
                 startup_timeout: float = 60.0, sweep_interval: float = 30.0, tls: ServerTls | None = None,
                 segment_store_ssl: ssl.SSLContext | None = None, time_scale: float = 1.0,
                 auth: ServerAuth | None = None, cluster: ControllerClusterOptions | None = None,
                 clock: Clock | None = None, segment_store_connect: Connect | None = None) -> None:
        self.segment_store_host = segment_store_host
        self.segment_store_port = segment_store_port
        self.host = host
        self.port = port
        self.tls = tls
        self.segment_store_ssl = segment_store_ssl
        self.auth = auth
        """Authenticates rpcs and signs tokens; its system token goes with every wire request (None: no auth)."""
        if cluster is not None and cluster.controller_id is None and port:
            cluster = dataclasses.replace(cluster, controller_id=f"{host}:{port}")
        self.cluster = cluster
        """Cluster mode: routes by the container map in ZooKeeper, cluster-wide jobs on the leader only."""
        self.member: ControllerMember | None = None
        if cluster is not None:
            from anabranch.cluster.controller_cluster import ControllerMember  # kazoo: only in cluster mode

            self.member = ControllerMember(cluster)
        self._given_ops = ops
        self.segment_store_connect = segment_store_connect
        """How the segment helper connects (None: TCP; a standalone gives an in-process connection)."""
        self.ops: SegmentStoreOps = ops or self._segment_helper(None)
        self.clock: Clock = clock or SYSTEM_CLOCK
        """Drives every timer: transaction leases, the sweep, auto-scale, retention and watermark jobs (given a clock,
        ``monotonic`` and ``wall_ms`` follow it too)."""
        self.monotonic = clock.monotonic if clock is not None else monotonic
        self.wall_ms = (lambda: int(self.clock.time() * 1000)) if clock is not None else wall_ms
        self.lease_check_interval = lease_check_interval
        self.startup_timeout = startup_timeout
        self.sweep_interval = sweep_interval
        self.time_scale = time_scale
        """Divides the periods of the auto-scale, retention and watermark jobs (1 = Pravega's timing)."""
        self.controller: Controller | None = None
        self._server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._prober: HostProber | None = None

    def _segment_helper(self, router: SegmentRouter | None) -> SegmentHelper:
        return SegmentHelper(self.segment_store_host, self.segment_store_port, ssl_context=self.segment_store_ssl,
                             token=self.auth.system_token if self.auth is not None else None, router=router,
                             connect=self.segment_store_connect if router is None else None)

    async def start(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        if self.member is not None:
            await self._join_cluster(self.member)
        controller = Controller(self.ops, self.segment_store_host, self.segment_store_port, host=self.host,
                                port=self.port, monotonic=self.monotonic, wall_ms=self.wall_ms)
        if self.member is not None:
            self._route_by_map(controller, self.member)
        while True:
            try:
                await controller.bootstrap()
                break
            except SegmentStoreUnavailableError:
                if time.monotonic() > deadline:
                    raise
                log.warning("segment store %s not reachable yet; retrying", self.segment_stores())
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)],
                                 interceptors=self.auth.grpc_interceptors() if self.auth is not None else None)
        pb_grpc.add_ControllerServiceServicer_to_server(ControllerServicer(controller), server)
        address = f"{self.host}:{self.port}"
        try:
            if self.tls is not None:
                bound = server.add_secure_port(address, self.tls.grpc_credentials())
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises instead of returning 0 when the bind fails
            bound = 0
        if bound == 0:
            raise OSError(f"controller cannot listen on {self.host}:{self.port} (port in use or address not "
                          "available)")
        self.port = controller.port = bound
        await server.start()
        self.controller, self._server = controller, server
        if self.member is None:
            self._start_cluster_jobs()
        else:
            await self.member.register(self.host, self.port)
            self.member.on_elected = self._start_cluster_jobs
            self.member.on_deposed = self._stop_cluster_jobs
            if self.member.is_leader:
                self._start_cluster_jobs()
        log.info("controller listening on %s:%d (segment store %s)", self.host, self.port, self.segment_stores())

    def segment_stores(self) -> str:
        if self.member is None:
            return f"{self.segment_store_host}:{self.segment_store_port}"
        return f"of cluster {self.member.paths.root} at ZooKeeper {self.member.zk.hosts}"

    async def _join_cluster(self, member: ControllerMember) -> None:
        """Cluster mode: settle the container count, route by the map, contend for leadership, and wait (bounded by
        ``startup_timeout``) until live segment stores own every container."""
        view = await member.connect(settle_timeout=self.startup_timeout)
        if self._given_ops is None:
            self.ops = self._segment_helper(view)
        member.start_election()
        log.info("controller joined cluster %s (%d containers); waiting for segment stores", member.paths.root,
                 view.container_count)
        try:
            await view.wait_until_covered(self.startup_timeout)
        except BaseException:
            await member.stop()
            raise

    def _route_by_map(self, controller: Controller, member: ControllerMember) -> None:
        view = member.view
        assert view is not None
        prober = self._prober = HostProber(lambda: view.hosts.values())
        prober.start()

        async def segment_store_uri(segment: str) -> tuple[str, int]:
            return await prober.choose(view.endpoint_for(segment), view.hosts.values()) or ("", 0)

        controller.segment_store_uri = segment_store_uri
        controller.controller_uris = lambda: view.controllers or [(self.host, self.port)]

    def _start_cluster_jobs(self) -> None:
        """Start the jobs that run once per cluster (all of them in single-controller mode): transaction lease
        timeouts, the workflow sweep (at once, then every ``sweep_interval``), auto-scale, retention, watermarks."""
        controller = self.controller
        if controller is None or self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(controller.txns.run_lease_timer(self.lease_check_interval, self.clock),
                             name="controller-txn-leases"),
            loop.create_task(self._sweep(controller, at_once=self.member is not None), name="controller-sweeper"),
            *(loop.create_task(job.run(), name=f"controller-{name}") for name, job in self._jobs(controller)),
        ]

    def _stop_cluster_jobs(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def _jobs(self, controller: Controller) -> list[tuple[str, AutoScaler | RetentionJob | WatermarkJob]]:
        """The periodic jobs of an elastic stream store: auto-scaling, retention, watermarks."""
        clock, scale = self.clock, self.time_scale
        view = self.member.view if self.member is not None else None
        appender = WireAppender(self.segment_store_host, self.segment_store_port, ssl_context=self.segment_store_ssl,
                                token=self.auth.system_token if self.auth is not None else lambda: "",
                                locate=view.endpoint_for if view is not None else None)
        return [
            ("autoscale", AutoScaler(controller, clock, poll_interval=max(0.05, 1.0 / scale), validity=600.0 / scale,
                                     cold_period=600.0 / scale)),
            ("retention", RetentionJob(controller, clock, period=1800.0 / scale)),
            ("watermarks", WatermarkJob(controller, clock, appender, period=max(0.05, 10.0 / scale))),
        ]

    async def _sweep(self, controller: Controller, *, at_once: bool = False) -> None:
        """Every ``sweep_interval`` seconds (and first at once with ``at_once``: a new leader finishes the workflows
        a dead controller left), finish workflows a failed request left half done."""
        if not at_once:
            await self.clock.sleep(self.sweep_interval)
        while True:
            try:
                if self.member is not None:
                    await controller.resume_all()  # a cluster: what failed on other controllers is swept too
                else:
                    await controller.resume_unfinished()  # alone: only what failed here, not every stream
            except Exception:
                log.exception("controller sweep failed; retrying in %s s", self.sweep_interval)
            await self.clock.sleep(self.sweep_interval)

    async def stop(self, grace: float = 1.0) -> None:
        if self.member is not None:
            self.member.on_deposed = lambda: None
            await self.member.stop()
        if self._prober is not None:
            await self._prober.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        await self.ops.close()

    async def __aenter__(self) -> ControllerService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
