"""What the admin endpoint answers, rendered from plain data: Prometheus text and the HTML console.

Pure functions, no I/O: the server gathers counters and names, these turn them into response bodies.
Every name and value that reaches HTML is escaped; metric names are reduced to Prometheus' alphabet.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

_BAD_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_]")

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}")


def metric_name(*parts: str) -> str:
    return _BAD_METRIC_CHARS.sub("_", "_".join(parts))


def prometheus_text(groups: Mapping[str, Mapping[str, int | float]]) -> str:
    """Prometheus text format 0.0.4: one untyped sample per counter, named ``anabranch_<group>_<key>``."""
    lines = []
    for group, counters in groups.items():
        for key, value in sorted(counters.items()):
            name = metric_name("anabranch", group, key)
            lines.append(f"# TYPE {name} untyped")
            lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def console_page(streams_by_scope: Mapping[str, Sequence[str]]) -> str:
    """The index: every scope with its streams, each linking to its description (JSON) and its page."""
    if not streams_by_scope:
        return _page("Anabranch", "<p>No scopes yet.</p>")
    parts = []
    for scope, streams in sorted(streams_by_scope.items()):
        items = "".join(
            f"<li><a href=\"/console/{quote(scope)}/{quote(s)}\">{html.escape(s)}</a> "
            f"(<a href=\"/streams/{quote(scope)}/{quote(s)}\">json</a>)</li>" for s in streams)
        parts.append(f"<h2>{html.escape(scope)}</h2><ul>{items or '<li>no streams</li>'}</ul>")
    links = "<p><a href=\"/health\">health</a> · <a href=\"/metrics\">metrics</a></p>"
    return _page("Anabranch", links + "".join(parts))


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def stream_page(description: Mapping[str, Any]) -> str:
    """One stream: summary, current segments and the epoch history, from ``describe_stream``'s dict."""
    d = description
    name = f"{d['scope']}/{d['stream']}"
    summary = _table(["state", "active epoch", "total bytes", "scaling", "retention"], [[
        d["state"], d["active_epoch"], d["total_bytes"], d["config"]["scaling"]["type"],
        d["config"]["retention"]["type"] if d["config"]["retention"] else "none"]])
    segments = _table(["id", "number", "epoch", "key range", "start", "length", "sealed"], [
        [s["id"], s["number"], s["epoch"], f"[{s['key_start']:.4f}, {s['key_end']:.4f})", s["start_offset"],
         s["length"], s["sealed"]] for s in d["segments"]])
    epochs = _table(["epoch", "created", "reason", "segments", "splits", "merges"], [
        [e["epoch"], e["creation_time"], e["reason"], e["segments"],
         "; ".join(f"{x['segment']}→{x['into']}" for x in e["splits"]),
         "; ".join(f"{x['segments']}→{x['into']}" for x in e["merges"])] for e in d["epochs"]])
    cuts = _table(["", "cut"], [["head", d["head"]], ["tail", d["tail"]]])
    body = (f"<p><a href=\"/\">all streams</a> · <a href=\"/streams/{quote(d['scope'])}/{quote(d['stream'])}\">"
            f"json</a></p>{summary}<h2>Segments</h2>{segments}<h2>Epochs</h2>{epochs}<h2>Head and tail</h2>{cuts}")
    return _page(name, body)
