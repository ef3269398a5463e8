"""Give the heap memory the process freed back to the operating system (glibc's ``malloc_trim``).

A segment store allocates and frees far more than it keeps: request buffers, Tier-1 records, checkpoints, the bytes
of segments that went idle. glibc keeps freed memory in its arenas (one per thread that allocated), and once large
buffers have raised its mmap threshold they come from the heap too, so the resident size stays near the high-water
mark long after the bytes are gone. ``malloc_trim(0)`` returns every free page of every arena; it takes well under a
millisecond, so the storage writer calls it after a cycle that dropped memory (idle segments released, a
checkpoint written), at most once per ``min_interval`` for the whole process. Where the C library has no
``malloc_trim`` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable


def find_malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


class HeapTrimmer:
    """Calls ``trim(0)`` (``malloc_trim``; None: nothing to call) when asked, at most once per ``min_interval``
    seconds."""

    def __init__(self, min_interval: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 trim: Callable[[int], int] | None = None) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._trim = trim
        self._last: float | None = None
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def trim(self) -> bool:
        """Return free heap pages to the OS unless that was done less than ``min_interval`` ago; True if it ran."""
        if self._trim is None:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self.min_interval:
            return False
        self._last = now
        self._trim(0)
        self.trims += 1
        return True


PROCESS_HEAP = HeapTrimmer(trim=find_malloc_trim())
"""The one trimmer of the process: the heap is shared by every container and server in it."""
