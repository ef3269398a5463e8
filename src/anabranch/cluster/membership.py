"""A segment store's membership in a cluster: the cluster's fixed container count and its ``hosts/<id>`` node.

``ensure_cluster_config`` writes ``config`` (the container count) if this is the first process of the cluster,
and otherwise checks that this process agrees with it: the count decides which container holds each segment,
so two different counts in one cluster would lose data. ``HostRegistration`` keeps this segment store's
ephemeral ``HostRecord`` under ``hosts/``: it creates it at start, re-creates it after the ZooKeeper session was
lost (an ephemeral node dies with its session) and deletes it at a clean stop. A node left by a previous
process with the same host id (restarted within the session timeout) is replaced, since it describes the
same endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState

from anabranch.cluster.layout import ClusterPaths, HostRecord, decode_config, encode_config
from anabranch.cluster.zk import ZkClient
from anabranch.errors import ConfigError

log = logging.getLogger(__name__)


async def ensure_cluster_config(zk: ZkClient, paths: ClusterPaths, container_count: int) -> int:
    """Record ``container_count`` as the cluster's, or check that it equals the recorded one (``ConfigError``)."""
    if await zk.create_if_missing(paths.config, encode_config(container_count)):
        log.info("cluster %s: %d containers (first process of this cluster)", paths.root, container_count)
        return container_count
    data, _ = await zk.get(paths.config)
    recorded = decode_config(data)
    if recorded != container_count:
        raise ConfigError(
            f"cluster {paths.root} has {recorded} containers (fixed when it was created), but this segment store "
            f"was started with --containers {container_count}; use --containers {recorded}"
        )
    return recorded


class HostRegistration:
    """The ephemeral ``hosts/<host id>`` node of this segment store, kept for the life of the process."""

    def __init__(self, zk: ZkClient, paths: ClusterPaths, record: HostRecord) -> None:
        self._zk = zk
        self._paths = paths
        self.record = record
        self._session_lost = False
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        zk.add_state_listener(self._on_state)

    @property
    def path(self) -> str:
        return self._paths.host(self.record.host_id)

    async def register(self) -> None:
        """Create the node (replacing one a dead session of the same host id left behind)."""
        await self._zk.ensure_path(self._paths.hosts)
        data = self.record.encode()
        for _ in range(3):
            try:
                await self._zk.create(self.path, data, ephemeral=True)
                log.info("registered segment store %s at %s", self.record.host_id, self.path)
                return
            except NodeExistsError:
                pass
            try:
                _, stat = await self._zk.get(self.path)
            except NoNodeError:
                continue
            if stat.ephemeralOwner == self._zk.kazoo.client_id[0]:
                return
            log.info("replacing %s left by an earlier session of this host id", self.path)
            with contextlib.suppress(NoNodeError):
                await self._zk.delete(self.path, stat.version)
        raise ConfigError(f"another live segment store keeps registering as {self.record.host_id!r}; "
                          "give each segment store its own --host-id")

    async def unregister(self) -> None:
        """Delete the node now (a clean stop), so the controller can move the containers without waiting."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(NoNodeError, KazooException):
            await asyncio.wait_for(self._zk.delete(self.path), 5.0)

    def _on_state(self, state: KazooState) -> None:
        if state == KazooState.LOST:
            self._session_lost = True
        elif state == KazooState.CONNECTED and self._session_lost and not self._stopped:
            self._session_lost = False
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._reregister(), name="zk-reregister")

    async def _reregister(self) -> None:
        delay = 0.2
        while not self._stopped:
            try:
                await self.register()
                return
            except (KazooException, ConfigError) as exc:
                log.warning("could not register %s again (retrying in %.1f s): %s", self.path, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
