"""Owner epochs of segment containers, kept in ZooKeeper (``container-epochs/<n>``, the decimal epoch).

A segment store about to own container N takes the next epoch with a compare-and-set on the znode's version, so
two would-be owners never get the same epoch even when they race: the loser's write fails with
``BadVersionError`` (or ``NodeExistsError`` on the first creation) and it reads again. The epoch then fences the
container's Tier-1 log and its LTS metadata: whoever holds the higher epoch wins, whatever the container map says.
"""

from __future__ import annotations

import logging

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from anabranch.cluster.layout import ClusterPaths
from anabranch.cluster.zk import ClusterUnavailableError, ZkClient
from anabranch.errors import DataCorruptionError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 100
"""A CAS only loses to another owner's CAS; this many losses in a row means something is wrong."""


def _decode(container_id: int, data: bytes) -> int:
    try:
        epoch = int(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataCorruptionError(f"container {container_id}: the epoch znode holds {data[:40]!r}, not a "
                                  "decimal epoch") from exc
    if epoch < 0:
        raise DataCorruptionError(f"container {container_id}: the epoch znode holds a negative epoch {epoch}")
    return epoch


async def current_container_epoch(zk: ZkClient, paths: ClusterPaths, container_id: int) -> int:
    """The epoch of the container's latest owner (0 if no owner ever took one)."""
    found = await zk.get_or_none(paths.container_epoch(container_id))
    return 0 if found is None else _decode(container_id, found[0])


async def next_container_epoch(zk: ZkClient, paths: ClusterPaths, container_id: int) -> int:
    """Take the container's next owner epoch (1 for the first owner) by create-or-CAS; return it."""
    path = paths.container_epoch(container_id)
    for _ in range(MAX_ATTEMPTS):
        found = await zk.get_or_none(path)
        if found is None:
            try:
                await zk.create(path, b"1", makepath=True)
            except NodeExistsError:
                continue
            epoch = 1
        else:
            data, stat = found
            epoch = _decode(container_id, data) + 1
            try:
                await zk.set(path, str(epoch).encode("ascii"), version=stat.version)
            except (BadVersionError, NoNodeError):
                continue
        log.debug("container %d: took owner epoch %d", container_id, epoch)
        return epoch
    raise ClusterUnavailableError(f"container {container_id}: lost the epoch compare-and-set {MAX_ATTEMPTS} times in "
                                  "a row (another process keeps taking epochs); retry later")
