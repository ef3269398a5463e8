"""Applies durable operations to the committed container metadata and the read index.

Called by the operation processor after the log append returned (and by recovery while replaying
the log), in log order. Operations were validated when staged, so applying never fails on valid
input; a violated invariant raises DataCorruptionError (the container then stops). Wakes tail
readers of every segment whose data or state changed. Also updates ``next_segment_id`` so a
replayed log never reuses an id.
"""

from __future__ import annotations

from anabranch.clock import Clock, SystemClock
from anabranch.errors import DataCorruptionError
from anabranch.protocol.commands import NULL_ATTRIBUTE_VALUE
from anabranch.segmentstore.metadata import ContainerMetadata, PendingMerge, SegmentMetadata
from anabranch.segmentstore.operations import (
    Append,
    Checkpoint,
    CreateSegment,
    Delete,
    Merge,
    Operation,
    Seal,
    Truncate,
    UpdateAttributes,
    UpdatePolicy,
)
from anabranch.segmentstore.read_index import ReadIndex


class OperationApplier:
    def __init__(self, metadata: ContainerMetadata, read_index: ReadIndex, clock: Clock | None = None) -> None:
        self.metadata = metadata
        self._clock = clock or SystemClock()
        self.read_index = read_index
        self.appends = 0
        self.append_bytes = 0

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def _segment(self, segment_id: int) -> SegmentMetadata:
        meta = self.metadata.segments.get(segment_id)
        if meta is None:
            raise DataCorruptionError(
                f"container {self.metadata.container_id}: log operation for unknown segment id {segment_id}"
            )
        return meta

    def apply(self, op: Operation, sequence: int) -> None:
        if isinstance(op, Append):
            self._append(op, sequence)
        elif isinstance(op, CreateSegment):
            self._create(op)
        elif isinstance(op, Seal):
            meta = self._segment(op.segment_id)
            meta.sealed = True
            meta.last_modified_ms = self._now_ms()
            self.metadata.dirty.add(meta.segment_id)
            self.read_index.notify(meta.segment_id)
        elif isinstance(op, Truncate):
            meta = self._segment(op.segment_id)
            meta.start_offset = max(meta.start_offset, op.offset)
            meta.last_modified_ms = self._now_ms()
            self.metadata.dirty.add(meta.segment_id)
        elif isinstance(op, Delete):
            meta = self._segment(op.segment_id)
            self.metadata.remove(meta)
            self.metadata.lts_deletes.append(meta.lts_name)
            self.metadata.lts_deletes.extend(p.source_lts_name for p in meta.pending_merges)
            self.read_index.remove(meta.segment_id)
        elif isinstance(op, Merge):
            self._merge(op)
        elif isinstance(op, UpdateAttributes):
            meta = self._segment(op.segment_id)
            for key, value in op.updates:
                meta.set_attribute(key, None if value == NULL_ATTRIBUTE_VALUE else value)
        elif isinstance(op, UpdatePolicy):
            meta = self._segment(op.segment_id)
            meta.scale_type = op.scale_type
            meta.target_rate = op.target_rate
        elif not isinstance(op, Checkpoint):
            raise DataCorruptionError(f"cannot apply unknown operation {op!r}")

    def _append(self, op: Append, sequence: int) -> None:
        meta = self._segment(op.segment_id)
        if op.offset != meta.length:
            raise DataCorruptionError(
                f"append to {meta.name!r} at offset {op.offset} but its length is {meta.length}"
            )
        size = op.length
        meta.length += size
        self.metadata.dirty.add(meta.segment_id)
        if op.writer_id is not None:
            meta.set_attribute(op.writer_id, op.event_number)
        meta.last_modified_ms = self._now_ms()
        self.appends += 1
        self.append_bytes += size
        self.read_index.add(meta.segment_id, op.offset, op.data, sequence, meta.storage_length)
        self.read_index.notify(meta.segment_id)

    def _create(self, op: CreateSegment) -> None:
        staged = self.metadata.staged_by_name.get(op.name)
        if staged is not None and staged.segment_id == op.segment_id:
            meta = staged
        else:
            meta = SegmentMetadata(op.segment_id, op.name, op.created_ms)
        meta.scale_type = op.scale_type
        meta.target_rate = op.target_rate
        meta.rollover_size = op.rollover_size
        meta.is_table = op.is_table
        meta.created_ms = meta.last_modified_ms = op.created_ms
        self.metadata.add(meta)
        self.metadata.next_segment_id = max(self.metadata.next_segment_id, op.segment_id + 1)

    def _merge(self, op: Merge) -> None:
        target = self._segment(op.target_id)
        for source_ref in op.sources:
            source = self._segment(source_ref.segment_id)
            offset = source_ref.target_offset
            if offset != target.length or source_ref.length != source.length:
                raise DataCorruptionError(
                    f"merge of {source.name!r} (length {source.length}) into {target.name!r} "
                    f"(length {target.length}) does not match the log ({source_ref})"
                )
            source.sealed = True
            if target.storage_length <= offset and source.length > 0:
                target.pending_merges += (PendingMerge(offset, source.lts_name, source.storage_length, source.length),)
            else:
                self.metadata.lts_deletes.append(source.lts_name)
            for nested in source.pending_merges:
                shifted = PendingMerge(nested.target_offset + offset, nested.source_lts_name, nested.lts_length,
                                       nested.length)
                if target.storage_length <= shifted.target_offset:
                    target.pending_merges += (shifted,)
            target.length += source.length
            self.read_index.move(source.segment_id, target.segment_id, offset, target.storage_length)
            self.metadata.remove(source)
        target.last_modified_ms = self._now_ms()
        self.metadata.dirty.add(target.segment_id)
        self.read_index.notify(target.segment_id)
