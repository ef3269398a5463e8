"""Apache Beam connector (``pip install 'anabranch[beam]'``): ``ReadFromAnabranch`` and ``WriteToAnabranch``.

Checkpoint records shared by both live in ``anabranch.beam.checkpoint_store``.
"""

from anabranch.beam.checkpoint_store import CheckpointRecord, CheckpointStore
from anabranch.beam.read import ReadFromAnabranch
from anabranch.beam.write import WriteToAnabranch

__all__ = ["CheckpointRecord", "CheckpointStore", "ReadFromAnabranch", "WriteToAnabranch"]
