"""``admin.readiness``: each reason a process is not ready, from the store's health and the controller's
metadata probe (the healthy and the lost-segment-store cases run through real processes in
tests/integration/robustness_controller)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from anabranch.admin import readiness as readiness_module
from anabranch.admin.readiness import readiness
from anabranch.segmentstore.health import ContainerHealth, StoreHealth


def test_failed_and_full_containers_make_the_store_unready() -> None:
    health = StoreHealth((ContainerHealth(0, "running"), ContainerHealth(1, "failed", "durable log failed: EIO"),
                          ContainerHealth(2, "disk_full", "no space left on device")))
    report = asyncio.run(readiness(None, lambda: health))
    assert report["ready"] is False
    assert report["reasons"] == ["segment store: container 1 is failed: durable log failed: EIO",
                                 "segment store: container 2 is disk_full: no space left on device"]
    assert report["segmentstore"]["containers"][1] == {"id": 1, "state": "failed",
                                                       "reason": "durable log failed: EIO"}
    assert asyncio.run(readiness(None, lambda: None))["reasons"] == ["segment store: not open"]
    running = StoreHealth((ContainerHealth(0, "running"),))
    assert asyncio.run(readiness(None, lambda: running)) == {"ready": True, "reasons": [],
                                                            "segmentstore": running.as_dict()}


class _Store:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    async def scope_exists(self, scope: str) -> bool:
        if self.behaviour == "hang":
            await asyncio.sleep(60)
        if self.behaviour == "fail":
            raise ConnectionError("refused")
        return True


class _Controller:
    def __init__(self, behaviour: str) -> None:
        self.store = _Store(behaviour)


@pytest.mark.parametrize(("behaviour", "reason"), [("ok", None), ("hang", "did not answer within 0.05 s"),
                                                   ("fail", "cannot be read: ConnectionError: refused")])
def test_the_controller_metadata_probe(monkeypatch: pytest.MonkeyPatch, behaviour: str, reason: str | None) -> None:
    monkeypatch.setattr(readiness_module, "PROBE_TIMEOUT", 0.05)
    controller: Any = _Controller(behaviour)
    report = asyncio.run(readiness(controller, None))
    assert report["ready"] is (reason is None)
    if reason is not None:
        assert len(report["reasons"]) == 1 and reason in report["reasons"][0]
