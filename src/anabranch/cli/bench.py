"""``anabranch bench``: benchmarks that print one JSON line of figures."""

from __future__ import annotations

import click

from anabranch.cli.bench_append import bench_append
from anabranch.cli.bench_client import bench_read, bench_write
from anabranch.cli.bench_streams import bench_streams


@click.group()
def bench() -> None:
    """Measure throughput and latency against a real server (prints one JSON line)."""


bench.add_command(bench_append, "append")
bench.add_command(bench_write, "write")
bench.add_command(bench_read, "read")
bench.add_command(bench_streams, "streams")
