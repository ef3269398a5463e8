"""Segment traffic statistics and the segment store's side of auto-scaling (spec §5.1).

``SegmentStatsRecorder`` is fed by the request handler and ticks on a ``Clock``; its ``AutoScaleProcessor``
turns decaying rates into ``ScaleRequest``s, which ``TableScaleReporter`` stores for the controller.
"""

from anabranch.segmentstore.stats.aggregates import AutoScaleConfig, SegmentAggregate
from anabranch.segmentstore.stats.processor import AutoScaleProcessor, decide
from anabranch.segmentstore.stats.recorder import PolicyLookup, ScaleReporter, SegmentStatsRecorder
from anabranch.segmentstore.stats.reporter import TableScaleReporter, store_policy_lookup
from anabranch.segmentstore.stats.requests import AUTOSCALE_TABLE, ScaleDirection, ScaleRequest

__all__ = [
    "AUTOSCALE_TABLE",
    "AutoScaleConfig",
    "AutoScaleProcessor",
    "PolicyLookup",
    "ScaleDirection",
    "ScaleReporter",
    "ScaleRequest",
    "SegmentAggregate",
    "SegmentStatsRecorder",
    "TableScaleReporter",
    "decide",
    "store_policy_lookup",
]
