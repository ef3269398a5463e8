"""What one ``bench write`` / ``bench read`` run tracks besides its figures: a progress bar on stderr (only on a
terminal) and the streams and reader groups it created, removed at the end when it ran against a live server."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

log = logging.getLogger(__name__)

BENCH_SCOPE = "bench"


@dataclass
class BenchRun:
    show_progress: bool
    clean_up: bool
    streams: list[tuple[str, str]] = field(default_factory=list)
    groups: list[tuple[str, str]] = field(default_factory=list)
    _bar: Progress | None = None
    _task: TaskID | None = None

    def advance(self, events: int) -> None:
        if self._bar is not None and self._task is not None and events:
            self._bar.advance(self._task, events)

    @contextlib.contextmanager
    def progress(self, what: str, total: int) -> Iterator[None]:
        """A bar of ``total`` events while the block runs (nothing when stderr is not a terminal)."""
        if not self.show_progress or not sys.stderr.isatty():
            yield
            return
        bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                       TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        with bar:
            self._bar, self._task = bar, bar.add_task(what, total=total)
            try:
                yield
            finally:
                self._bar = self._task = None

    @contextlib.asynccontextmanager
    async def cleanup(self, manager: Any) -> AsyncIterator[None]:
        """On exit (also after a failure), delete what this run created when ``clean_up`` is set."""
        try:
            yield
        finally:
            if self.clean_up:
                await self._remove(manager)

    async def _remove(self, manager: Any) -> None:
        for scope, group in self.groups:
            with contextlib.suppress(Exception):
                await manager.delete_reader_group(scope, group)
        for scope, stream in self.streams:
            try:
                await manager.seal_stream(scope, stream)
                await manager.delete_stream(scope, stream)
            except Exception as exc:
                log.warning("could not delete benchmark stream %s/%s: %s", scope, stream, exc)
        try:
            await manager.delete_scope(BENCH_SCOPE)
        except Exception as exc:
            log.info("benchmark scope %s kept: %s", BENCH_SCOPE, exc)
