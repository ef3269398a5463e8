"""``HostProber``: which segment stores accept connections right now.

ZooKeeper notices a dead segment store only when its session expires (seconds); until then the container map still
names it. A client told to use a dead host can get stuck there: the official Rust client retries its SetupAppend to
the endpoint ``getURI`` gave it, forever, inside the one task that serves every segment of the writer. So ``getURI``
never names a host that does not accept connections: ``choose`` connects to the owner before naming it, and the
prober connects to every registered segment store every ``interval`` seconds; a host that refuses (or does not
answer within ``timeout``) is avoided until it answers again. Another live host answers ``WrongHost``, and the client
asks ``getURI`` again until the container's new owner serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]


async def accepts_connections(endpoint: Endpoint, timeout: float, linger: float = 0.02) -> bool:
    """True when ``endpoint`` accepts a connection and keeps it open for ``linger`` seconds. A process being killed
    can still complete a handshake from its listen backlog and then reset the connection, so an accepted connection
    alone does not prove the server lives."""
    host, port = endpoint
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        closed = await asyncio.wait_for(reader.read(1), linger) == b""
    except TimeoutError:
        closed = False
    except OSError:
        closed = True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return not closed


class HostProber:
    """Probes ``hosts()`` every ``interval`` seconds; ``down`` holds the endpoints that did not accept a connection."""

    def __init__(self, hosts: Callable[[], Iterable[Endpoint]], *, interval: float = 0.5,
                 timeout: float = 0.5) -> None:
        self._hosts = hosts
        self.interval = interval
        self.timeout = timeout
        self.down: frozenset[Endpoint] = frozenset()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="segment-store-prober")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def probe_once(self) -> None:
        hosts = sorted(set(self._hosts()))
        results = await asyncio.gather(*(accepts_connections(h, self.timeout) for h in hosts))
        down = frozenset(h for h, ok in zip(hosts, results, strict=True) if not ok)
        if down != self.down:
            log.info("segment stores not accepting connections: %s", sorted(down) or "none")
        self.down = down

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_once()
            except Exception:
                log.exception("probing segment stores failed")
            await asyncio.sleep(self.interval)

    async def choose(self, owner: Endpoint | None, candidates: Iterable[Endpoint]) -> Endpoint | None:
        """``owner`` when it accepts a connection now, else a candidate that did at the last probe (None when there
        is none). The owner is checked on every call: a client asks the moment its connection to a dying segment
        store breaks, before any periodic probe could have noticed."""
        if owner is not None and owner not in self.down:
            if await accepts_connections(owner, self.timeout):
                return owner
            self.down = self.down | {owner}
            log.info("segment store %s:%d does not accept connections; answering another host", *owner)
        alive = sorted(c for c in candidates if c not in self.down and c != owner)
        return alive[0] if alive else owner
