"""``/ready``: whether this process can serve everything it should, and if not, why.

``/health`` only says the process is alive (its loop answers). ``/ready`` says what is true right now:
- the controller reaches its metadata (a read of the system scope's record answers within ``PROBE_TIMEOUT``);
- with a segment store in the process (``standalone``): every container is ``running`` (``SegmentStore.health``:
  a failed container, or one whose disk is full, makes the process not ready, with the container's reason).
Records quarantined by table index rebuilds are listed but do not make the process unready (the rest serves).
The answer is 200 with ``{"ready": true, ...}`` or 503 with ``{"ready": false, "reasons": [...], ...}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from anabranch.controller.facade import Controller
from anabranch.model.names import SYSTEM_SCOPE
from anabranch.segmentstore.health import StoreHealth

PROBE_TIMEOUT = 5.0
"""Seconds the controller's metadata read may take before the process counts as not ready."""

StoreHealthSource = Callable[[], StoreHealth | None]
"""The in-process segment store's health (None while it is not open)."""


async def readiness(controller: Controller | None, store_health: StoreHealthSource | None) -> dict[str, Any]:
    """The readiness report: ``ready``, ``reasons`` (empty when ready) and the details they come from."""
    reasons: list[str] = []
    report: dict[str, Any] = {}
    if controller is not None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await controller.store.scope_exists(SYSTEM_SCOPE)
            report["controller"] = {"metadata": "reachable"}
        except TimeoutError:
            reasons.append(f"controller: its metadata did not answer within {PROBE_TIMEOUT:g} s")
            report["controller"] = {"metadata": "timeout"}
        except Exception as exc:
            reasons.append(f"controller: its metadata cannot be read: {type(exc).__name__}: {exc}")
            report["controller"] = {"metadata": "unreachable"}
    if store_health is not None:
        health = store_health()
        if health is None:
            reasons.append("segment store: not open")
        else:
            report["segmentstore"] = health.as_dict()
            for container in health.containers:
                if container.state != "running":
                    reasons.append(f"segment store: container {container.container_id} is {container.state}"
                                   + (f": {container.reason}" if container.reason else ""))
    return {"ready": not reasons, "reasons": reasons, **report}
