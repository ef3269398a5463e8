"""The JetStream Tier-1 log passes the ``DurableDataLog`` conformance suite against a real 3-node NATS cluster
(every reopen is a new owner with a higher epoch, as in cluster mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from anabranch.cluster.nats_server import NatsCluster
from anabranch.storage.jetstream_log import JetStreamDurableDataLog
from anabranch.testing.log_conformance import DurableDataLogConformance, LogFactory
from tests.cluster.tier1.tier1_helpers import owners

pytestmark = [pytest.mark.process, pytest.mark.cluster]


class TestJetStreamDurableDataLog(DurableDataLogConformance):
    @pytest.fixture
    async def log_factory(self, nats_cluster: NatsCluster) -> AsyncIterator[LogFactory]:
        async with owners(nats_cluster.urls) as keeper:

            async def reopen() -> JetStreamDurableDataLog:
                return await keeper.open()

            yield reopen
