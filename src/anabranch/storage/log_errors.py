"""Errors of replicated Tier-1 logs (the JetStream log), beyond the ``LogClosedError`` every log raises."""

from __future__ import annotations

from anabranch.storage.interfaces import LogClosedError, StorageError


class LogFencedError(LogClosedError):
    """A newer owner of the container (a higher epoch) opened the log: this instance may never write again.

    The log is closed for good; the container must stop. Not retriable with the same epoch: only a new owner
    (a new epoch from ZooKeeper) may open the log again."""

    retriable = False

    def __init__(self, message: str, *, epoch: int, newer_epoch: int | None = None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.newer_epoch = newer_epoch


class Tier1UnavailableError(StorageError):
    """The Tier-1 engine (NATS JetStream) could not be reached or did not answer in time; nothing was changed
    by the failed call. Retry once the engine is back."""

    retriable = True


class RecordTooLargeError(StorageError, ValueError):
    """A record exceeds the log's ``max_record_size``; nothing was written and the log stays open."""

    retriable = False
