"""Recovery of a container from Tier-1 and LTS: the state after a restart equals the state before.

Reads the Tier-1 records in order. If the log still starts at sequence 1, every record is replayed
and checkpoints are skipped. Otherwise the log was truncated (a file log deletes whole files, so
records below the truncation point may remain): records before the first checkpoint are skipped,
the metadata starts from that checkpoint (everything before it is in LTS: truncation happened at
or after it), and later checkpoints are skipped. Every other operation is re-applied exactly as at
run time. Each segment is reconciled with LTS when it enters the metadata (loaded from the
checkpoint or re-created), before any later operation touches it: LTS may already hold bytes
written after the checkpoint, and replayed bytes below the LTS length are not kept in memory.
Pending merges already concatenated in LTS are dropped.
"""

from __future__ import annotations

import logging

from anabranch.errors import DataCorruptionError
from anabranch.segmentstore.applier import OperationApplier
from anabranch.segmentstore.metadata import ContainerMetadata, SegmentMetadata
from anabranch.segmentstore.operations import Checkpoint, CreateSegment, decode_record
from anabranch.segmentstore.read_index import ReadIndex
from anabranch.storage.interfaces import DurableDataLog, SegmentStorage

log = logging.getLogger(__name__)


async def _reconcile(meta: SegmentMetadata, storage: SegmentStorage, read_index: ReadIndex) -> None:
    if await storage.exists(meta.lts_name):
        info = await storage.get_info(meta.lts_name)
        meta.storage_exists = True
        meta.storage_length = max(meta.storage_length, info.length)
        meta.storage_sealed = info.sealed
        meta.storage_start_offset = max(meta.storage_start_offset, info.start_offset)
    else:
        if meta.storage_length > 0:
            log.error("segment %r: LTS object %r is missing but %d bytes were recorded as moved to LTS",
                      meta.name, meta.lts_name, meta.storage_length)
        meta.storage_exists = False
    meta.pending_merges = tuple(p for p in meta.pending_merges if p.target_offset >= meta.storage_length)
    index = read_index.segments.get(meta.segment_id)
    if index is not None:
        index.flushed_to = meta.storage_length


async def recover(container_id: int, durable_log: DurableDataLog, storage: SegmentStorage,
                  metadata: ContainerMetadata, read_index: ReadIndex, applier: OperationApplier) -> None:
    """Rebuild ``metadata`` and ``read_index`` (both empty) from the log and LTS."""
    started: bool | None = None
    records = skipped = 0
    async for sequence, payload in durable_log.iter_records():
        if started is None:
            started = sequence == 1
        records += 1
        for op in decode_record(payload):
            if isinstance(op, Checkpoint):
                if not started:
                    loaded = ContainerMetadata.deserialize(op.snapshot)
                    metadata.next_segment_id = loaded.next_segment_id
                    metadata.lts_deletes[:] = loaded.lts_deletes
                    for meta in loaded.segments.values():
                        metadata.add(meta)
                        await _reconcile(meta, storage, read_index)
                    started = True
                continue
            if not started:
                skipped += 1
                continue
            applier.apply(op, sequence)
            if isinstance(op, CreateSegment):
                await _reconcile(metadata.segments[op.segment_id], storage, read_index)
    if started is False:
        raise DataCorruptionError(
            f"container {container_id}: the Tier-1 log was truncated but holds no checkpoint; cannot recover"
        )
    metadata.reset_staged()
    metadata.mark_all_dirty()
    log.info("container %d recovered %d segments from %d Tier-1 records (%d operations below the truncation "
             "point skipped)", container_id, len(metadata.segments), records, skipped)
