"""Server outages under client load: kill -9 the standalone, wait, restart on the same data dir and ports.

The same writer and reader objects live through the outage: nothing acknowledged is lost or read twice, and
both resume on their own. The figures (time to resume) are printed for docs/client.md.
"""

from __future__ import annotations

import pytest

from anabranch.client import ClientConfig
from anabranch.testing.client_outage import READ_TIMEOUT, OutageResult, run_outage
from anabranch.testing.processes import Standalone

pytestmark = pytest.mark.process


def _check_exactly_once(result: OutageResult) -> None:
    assert result.acked, "nothing was acknowledged"
    assert not result.lost, f"{len(result.lost)} acknowledged events were never read, e.g. {sorted(result.lost)[:5]}"
    assert result.duplicates == 0, "an event was read twice"
    assert set(result.read) <= set(range(result.written)), "read an event that was never written"


def _report(name: str, result: OutageResult) -> None:
    print(f"\n{name}: written {result.written}, acked {len(result.acked)}, failed {len(result.failed)}, "
          f"writer resumed {result.write_resume_seconds:.2f} s and reader {result.read_resume_seconds:.2f} s "
          "after the restarted server listened")


async def test_default_writer_and_reader_survive_a_5_s_outage(standalone: Standalone) -> None:
    result = await run_outage(standalone, 5.0)
    _check_exactly_once(result)
    assert not result.failed, f"events failed: {list(result.failed.items())[:3]}"
    assert not result.read_errors
    assert result.write_resume_seconds is not None and result.write_resume_seconds < 10
    assert result.read_resume_seconds is not None and result.read_resume_seconds < 10
    assert result.longest_read < READ_TIMEOUT + 1.5, f"a {READ_TIMEOUT} s read took {result.longest_read} s"
    _report("5 s outage", result)


async def test_default_writer_and_reader_survive_a_60_s_outage(standalone: Standalone) -> None:
    result = await run_outage(standalone, 60.0, before=0.5, after=1.0)
    _check_exactly_once(result)
    assert not result.failed, f"events failed: {list(result.failed.items())[:3]}"
    assert not result.read_errors
    assert result.write_resume_seconds is not None and result.write_resume_seconds < 10
    assert result.read_resume_seconds is not None and result.read_resume_seconds < 10
    _report("60 s outage", result)


async def test_after_the_budget_is_spent_events_fail_and_the_same_writer_and_reader_resume(
        standalone: Standalone) -> None:
    config = ClientConfig(standalone.controller_uri, retry_budget=1.0, retry_max_delay=0.2)
    result = await run_outage(standalone, 4.0, before=0.5, config=config)
    assert result.failed, "no event failed although the outage outlasted the retry budget"
    assert all("ConnectionLostError" in e or "Unavailable" in e for e in result.failed.values()), result.failed
    assert result.write_resume_seconds is not None, "the writer stayed dead after its budget was spent"
    assert result.read_resume_seconds is not None, "the reader stayed dead after its budget was spent"
    _check_exactly_once(result)
