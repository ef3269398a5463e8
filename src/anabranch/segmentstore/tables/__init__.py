"""Table segments: a key-value map stored as an append-only log of checksummed record batches in a segment."""

from anabranch.segmentstore.tables.compaction import CompactionPolicy
from anabranch.segmentstore.tables.errors import (
    TableArgumentError,
    TableError,
    TableKeyBadVersionError,
    TableKeyDoesNotExistError,
    TableSegmentNotEmptyError,
)
from anabranch.segmentstore.tables.table_store import DeltaRead, TableInfo, TableStore

__all__ = [
    "CompactionPolicy",
    "DeltaRead",
    "TableArgumentError",
    "TableError",
    "TableInfo",
    "TableKeyBadVersionError",
    "TableKeyDoesNotExistError",
    "TableSegmentNotEmptyError",
    "TableStore",
]
