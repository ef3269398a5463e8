"""The one retry policy: exponential backoff with jitter, bounded by a budget and optionally by attempts."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from anabranch.client import ClientConfig, TxnState
from anabranch.client.controller_client import ControllerClient
from anabranch.client.errors import ControllerUnavailableError
from anabranch.errors import ConfigError
from anabranch.retry import DEFAULT_BUDGET, RetryPolicy
from anabranch.testing.processes import free_port


def test_delays_grow_exponentially_up_to_the_maximum_with_jitter_below_them() -> None:
    policy = RetryPolicy(initial_delay=0.1, multiplier=2, max_delay=1.0, budget=100, jitter=0.5)
    assert [policy.delay(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff = policy.start()
    drawn = [backoff.next_delay() for _ in range(200)]
    assert all(d is not None and 0.5 * min(1.0, 0.1 * 2 ** i) <= d <= min(1.0, 0.1 * 2 ** i)
               for i, d in enumerate(drawn))
    assert len({round(d or 0, 6) for d in drawn[10:]}) > 100, "delays at the cap must still be jittered"


def test_the_budget_and_the_attempt_cap_end_retrying() -> None:
    capped = RetryPolicy(max_attempts=3, budget=100).start()
    assert capped.next_delay() is not None and capped.next_delay() is not None
    assert capped.next_delay() is None
    spent = RetryPolicy(budget=0.0).start()
    assert spent.next_delay() is None


def test_a_delay_never_sleeps_past_the_budget() -> None:
    backoff = RetryPolicy(initial_delay=5.0, max_delay=5.0, budget=0.2, jitter=0).start()
    delay = backoff.next_delay()
    assert delay is not None and delay <= 0.2


def test_the_client_default_retries_for_minutes() -> None:
    policy = ClientConfig().retry_policy
    assert policy.budget == DEFAULT_BUDGET >= 120
    assert policy.max_attempts is None
    assert ClientConfig(retry_attempts=3).retry_policy.max_attempts == 3


@pytest.mark.parametrize("settings", [{"retry_budget": -1}, {"retry_attempts": 0}, {"retry_multiplier": 0.5},
                                      {"retry_initial_delay": 3.0, "retry_max_delay": 1.0}])
def test_bad_retry_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ClientConfig(**settings)  # type: ignore[arg-type]


async def test_controller_calls_retry_for_the_budget_then_raise_unavailable() -> None:
    port = free_port()  # nothing listens there
    config = ClientConfig(f"tcp://127.0.0.1:{port}", retry_budget=0.6, retry_max_delay=0.1)
    started = time.monotonic()
    async with ControllerClient(config) as client:
        with pytest.raises(ControllerUnavailableError) as failed:
            await client.scope_exists("s")
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5, elapsed
    assert failed.value.retriable
    assert grpc.StatusCode.UNAVAILABLE.name in str(failed.value)


async def test_backoff_wait_sleeps() -> None:
    backoff = RetryPolicy(initial_delay=0.05, max_delay=0.05, jitter=0, budget=10).start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await backoff.wait()
    assert loop.time() - started >= 0.04


def test_transaction_states_print_by_name() -> None:
    assert str(TxnState.COMMITTED) == "COMMITTED"
    assert f"{TxnState.ABORTING}" == "ABORTING"
