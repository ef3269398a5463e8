"""The in-memory Tier-1 log passes the DurableDataLog conformance suite."""

from __future__ import annotations

import pytest

from anabranch.storage.memory_log import InMemoryDurableDataLog
from anabranch.testing.log_conformance import DurableDataLogConformance, LogFactory


class TestInMemoryDurableDataLog(DurableDataLogConformance):
    @pytest.fixture
    def log_factory(self) -> LogFactory:
        log = InMemoryDurableDataLog()

        async def reopen() -> InMemoryDurableDataLog:
            await log.open()
            return log

        return reopen
