"""How a server process runs CPython's cyclic garbage collector.

By default CPython collects its youngest generation after every 700 net allocations of container objects. A server
allocates far faster than that (every request, reply, future and table entry), so objects that live for a few
event-loop turns are caught alive, promoted, and scanned again by the older generations, whose collections grow
with everything the server holds. Measured with ``gc.callbacks`` on a standalone server during 9,000 stream
creates: 1,057 young, 96 middle and 9 full collections took 1.37 s, about 11 % of the event loop's time; with a
young threshold of 10,000 there were 16 young and 1 middle collection, 0.17 s in all.

The thresholds only space the collections out: reference cycles are still found and freed, a little later, and
everything else is freed by reference counting as before. Libraries (the client) leave the process's settings alone;
only the server commands call ``tune_for_server``.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
OLDER_THRESHOLD = 10


def tune_for_server() -> None:
    """Space out the collector's runs for a long-running server (see the module docstring)."""
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
