"""Large CBOR collections written and read one item at a time.

A checkpoint or snapshot holding every segment is tens of MB at 100,000 streams. Encoding it as one list or dict
first, or decoding it into one before converting it, puts a second copy of everything in memory at once, as small
objects interleaved with the ones that stay. So such collections are written as CBOR indefinite-length arrays or
maps, item by item, and read back item by item up to their break byte (any CBOR reader still decodes them whole).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import cbor2

from anabranch.errors import DataCorruptionError

ARRAY_START = b"\x9f"
MAP_START = b"\xbf"
BREAK = b"\xff"


def items_until_break(stream: io.BytesIO, decoder: cbor2.CBORDecoder, what: str) -> Iterator[Any]:
    """The items of an indefinite-length array or map whose start byte was just read (a map yields keys and values
    alternately), up to its break byte."""
    while (marker := stream.read(1)) != BREAK:
        if not marker:
            raise DataCorruptionError(f"malformed {what}: it ends without a break")
        stream.seek(-1, io.SEEK_CUR)
        yield decoder.decode()
