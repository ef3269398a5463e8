"""Per-sensor windowed aggregates with Apache Beam on Anabranch, exactly once, restartable.

    python3 examples/beam_sensors/run.py --controller tcp://127.0.0.1:9090
    anabranch read sensors/aggregates --from-head --timeout 2

1. A generator writes sensor readings ``{"sensor", "time", "value"}`` (routing key: the sensor id; ``time``: the
   reading's event time in seconds) into ``<scope>/readings`` (skipped with ``--no-generate``).
2. A Beam pipeline on the local runner reads the readings from the checkpoint's cut to the tail, puts them into
   fixed event-time windows of ``--window`` seconds, computes count/mean/max per sensor and window, and writes one
   JSON result per sensor and window into ``<scope>/aggregates`` through transactions.
3. The run's end cut and its transactions are committed together in the checkpoint record (two-phase commit):
   a run killed at any point and started again redoes exactly the unfinished work, so each result appears once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import FixedWindows, IntervalWindow

from anabranch.beam import ReadFromAnabranch, WriteToAnabranch
from anabranch.beam.two_phase import begin_run, complete_run
from anabranch.client import ClientConfig, JsonSerializer, ScalingPolicy, StreamConfiguration, StreamManager

READINGS, RESULTS = "readings", "aggregates"
START_TIME = 1_700_000_000


def readings(count: int, sensors: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` readings, a reading every 0.1 s of event time, round robin over the sensors."""
    rng = random.Random(seed)
    return [{"sensor": f"sensor-{i % sensors}", "time": START_TIME + i / 10, "value": round(rng.uniform(0, 100), 2)}
            for i in range(count)]


async def generate(controller: str, scope: str, count: int, sensors: int) -> None:
    async with StreamManager(ClientConfig(controller)) as manager:
        await manager.create_scope(scope)
        await manager.create_stream(scope, READINGS, StreamConfiguration(ScalingPolicy.fixed(3)))
        writer = manager.create_writer(scope, READINGS, JsonSerializer())
        for reading in readings(count, sensors):
            await writer.write_event(reading, routing_key=reading["sensor"])
        await writer.flush()
        await writer.close()


class Aggregate(beam.CombineFn):  # type: ignore[misc]
    """(count, sum, max) of the readings' values."""

    def create_accumulator(self) -> tuple[int, float, float]:
        return 0, 0.0, float("-inf")

    def add_input(self, acc: tuple[int, float, float], value: float) -> tuple[int, float, float]:
        return acc[0] + 1, acc[1] + value, max(acc[2], value)

    def merge_accumulators(self, accs: Any) -> tuple[int, float, float]:
        accs = list(accs)
        return sum(a[0] for a in accs), sum(a[1] for a in accs), max(a[2] for a in accs)

    def extract_output(self, acc: tuple[int, float, float]) -> dict[str, Any]:
        return {"count": acc[0], "mean": round(acc[1] / acc[0], 4) if acc[0] else None, "max": acc[2]}


def result(element: tuple[str, dict[str, Any]], window: IntervalWindow = beam.DoFn.WindowParam) -> str:
    sensor, aggregate = element
    return json.dumps({"sensor": sensor, "window_start": float(window.start), "window_end": float(window.end),
                       **aggregate}, sort_keys=True)


def run_pipeline(controller: str, scope: str, window: float, name: str, hold: float = 0.0) -> int:
    """One restartable run: recover, read to the tail, aggregate, commit. Returns the results committed."""
    streams = [(scope, READINGS)]

    async def begin() -> Any:
        async with StreamManager(ClientConfig(controller)) as manager:
            await manager.create_stream(scope, RESULTS, StreamConfiguration(ScalingPolicy.fixed(1)))
            return await begin_run(manager, scope, name, streams)

    _record, ends = asyncio.run(begin())
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
        (pipeline
         | "Read" >> ReadFromAnabranch(controller, streams, end=ends, serializer=JsonSerializer(),
                                       timestamp_fn=lambda r: r["time"], checkpoint_name=name)
         | "Window" >> beam.WindowInto(FixedWindows(window))
         | "BySensor" >> beam.Map(lambda r: (r["sensor"], r["value"]))
         | "Aggregate" >> beam.CombinePerKey(Aggregate())
         | "Format" >> beam.Map(result)
         | "Write" >> WriteToAnabranch(controller, scope, RESULTS, routing_key=lambda r: json.loads(r)["sensor"],
                                       checkpoint_name=name))

    if hold:
        print(f"pipeline done; holding {hold} s before the commit point (kill -9 me and run again)", flush=True)
        time.sleep(hold)

    async def complete() -> int:
        async with StreamManager(ClientConfig(controller)) as manager:
            return await complete_run(manager, scope, name, ends)
    return asyncio.run(complete())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--controller", default="tcp://127.0.0.1:9090")
    parser.add_argument("--scope", default="sensors")
    parser.add_argument("--readings", type=int, default=600, help="readings the generator writes")
    parser.add_argument("--sensors", type=int, default=4)
    parser.add_argument("--window", type=float, default=10.0, help="event-time window length, seconds")
    parser.add_argument("--checkpoint-name", default="beam-sensors")
    parser.add_argument("--no-generate", action="store_true", help="only run the pipeline")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="seconds to wait between the pipeline's end and the commit point (to try a kill -9)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.no_generate:
        asyncio.run(generate(args.controller, args.scope, args.readings, args.sensors))
        print(f"wrote {args.readings} readings to {args.scope}/{READINGS}")
    committed = run_pipeline(args.controller, args.scope, args.window, args.checkpoint_name, args.hold)
    print(f"pipeline done ({committed} transactions committed); results: "
          f"anabranch read {args.scope}/{RESULTS} --from-head --timeout 2 --controller {args.controller}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
