"""The gRPC fuzzer in CI: a real ``anabranch standalone`` takes hypothesis-generated requests for every rpc of the
Controller API (edge and random field values, unknown enums, odd names and tokens, huge cuts) for at most ~25 s;
every reply is OK or a status other than INTERNAL, and after every batch the controller answers a fresh channel,
the reference data is unchanged and resident memory stays under the bound. Longer runs:
``python3 scripts/fuzz_grpc.py --requests 100000``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from anabranch.testing.grpc_fuzz import RPCS, GrpcFuzzer, request_strategy
from anabranch.testing.processes import HOST, Standalone

pytestmark = pytest.mark.process
RSS_BOUND_MIB = 400.0
"""A standalone at rest takes about 80-100 MiB; a request that allocated per its numbers would pass this."""
TIME_BUDGET = 25.0
CHECK_EVERY = 100


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcFuzzer]:
    server = Standalone(tmp_path_factory.mktemp("grpcfuzz") / "data", None, None, "--admin-port", "0")
    server.start()
    fuzz = GrpcFuzzer(HOST, server.controller_port, server.pid, rss_limit_mib=RSS_BOUND_MIB)
    try:
        fuzz.setup()
        yield fuzz
    finally:
        fuzz.close()
        server.kill()


def test_every_rpc_survives_fuzzed_requests(fuzzer: GrpcFuzzer) -> None:
    deadline = time.monotonic() + TIME_BUDGET

    @settings(max_examples=1500, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        rpc = data.draw(st.sampled_from(RPCS), label="rpc")
        request = data.draw(request_strategy(rpc), label="request")
        if time.monotonic() > deadline:
            return  # out of time: hypothesis still draws the remaining examples, which is cheap
        fuzzer.call(rpc, request)
        if fuzzer.figures.requests % CHECK_EVERY == 0:
            fuzzer.check()

    one()
    fuzzer.check()
    figures = fuzzer.figures
    print(f"grpc fuzz: {figures.as_dict()}")
    assert figures.requests >= 300 and figures.checks >= 3, figures.as_dict()
    assert len(figures.by_rpc) == len(RPCS), sorted(set(RPCS) - set(figures.by_rpc))
    assert figures.by_code["INVALID_ARGUMENT"] > 0 and figures.by_code["OK"] > 0
