"""Testing Anabranch applications (docs/testing.md): the embedded server is ``anabranch.embedded``; the pytest
fixtures come with the ``anabranch`` pytest plugin (``anabranch.testing.pytest_plugin``); the mock clock is
``anabranch.clock.ManualClock``; fault injection is ``anabranch.testing.faults``; and the checks users make are
``assert_exactly_once`` and ``assert_per_key_order`` (``anabranch.testing.assertions``)."""

from anabranch.testing.assertions import assert_exactly_once, assert_per_key_order

__all__ = ["assert_exactly_once", "assert_per_key_order"]
