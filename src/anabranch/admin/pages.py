"""The console's HTML: the index of streams and the live page of one stream. Pure functions, no I/O.

The stream page is static HTML plus a small script that polls ``/console/<scope>/<stream>/data`` (see
``admin.console``) and redraws an SVG of the key space over time: time runs to the right, the key range
[0, 1) upwards, every segment is a rectangle from its creation to its seal (active ones reach "now"), so
splits and merges show as rectangles ending and thinner or wider ones starting. Below it: head and tail by
segment number, the reader groups (readers, their segments, lag) and, when the server gives it, the cluster.
Every name that reaches HTML is escaped (the script builds text nodes, never HTML strings).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from urllib.parse import quote

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
svg{background:#fafafa;border:1px solid #ddd}
rect.segment{stroke:#333;stroke-width:1}
rect.active{fill:#7fb3e6}
rect.sealed{fill:#c8c8c8}
line.epoch{stroke:#e67e22;stroke-dasharray:4 3}
text.seglabel{font-size:11px;text-anchor:middle;dominant-baseline:middle}
.muted{color:#777}
"""


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n"
            f"{f'<script>{script}</script>' if script else ''}</body></html>\n")


def console_page(streams_by_scope: Mapping[str, Sequence[str]]) -> str:
    """The index: every scope with its streams, each linking to its live page and its description (JSON)."""
    links = ("<p><a href=\"/health\">health</a> · <a href=\"/metrics\">metrics</a> · "
             "<a href=\"/v1/scopes\">REST v1</a></p>")
    if not streams_by_scope:
        return _page("Anabranch", links + "<p>No scopes yet.</p>")
    parts = []
    for scope, streams in sorted(streams_by_scope.items()):
        items = "".join(
            f"<li><a href=\"/console/{quote(scope)}/{quote(s)}\">{html.escape(s)}</a> "
            f"(<a href=\"/streams/{quote(scope)}/{quote(s)}\">json</a>)</li>" for s in streams)
        parts.append(f"<h2>{html.escape(scope)}</h2><ul>{items or '<li>no streams</li>'}</ul>")
    return _page("Anabranch", links + "".join(parts))


_SCRIPT = r"""
const CONFIG = __CONFIG__;
const NS = "http://www.w3.org/2000/svg";
const W = 900, H = 320, LEFT = 46, RIGHT = 12, TOP = 10, BOTTOM = 28;
let polls = 0;

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = String(text);
  row.appendChild(td);
}
function fillTable(id, rows) {
  const body = document.getElementById(id);
  body.replaceChildren();
  for (const values of rows) {
    const tr = document.createElement("tr");
    values.forEach(v => cell(tr, v));
    body.appendChild(tr);
  }
}
function clock(ms) { return new Date(ms).toISOString().substring(11, 19); }

function draw(d) {
  const svg = document.getElementById("keyspace");
  svg.replaceChildren();
  const span = Math.max(d.now_ms - d.start_ms, 1000);
  const x = t => LEFT + (t - d.start_ms) / span * (W - LEFT - RIGHT);
  const y = k => TOP + (1 - k) * (H - TOP - BOTTOM);
  svg.appendChild(el("text", {x: 4, y: y(1) + 10, "font-size": 11}, "key 1"));
  svg.appendChild(el("text", {x: 4, y: y(0), "font-size": 11}, "key 0"));
  svg.appendChild(el("text", {x: LEFT, y: H - 8, "font-size": 11}, clock(d.start_ms)));
  svg.appendChild(el("text", {x: W - RIGHT - 50, y: H - 8, "font-size": 11}, clock(d.now_ms)));
  for (const s of d.segments) {
    const x0 = x(s.from_ms), x1 = x(s.to_ms === null ? d.now_ms : s.to_ms);
    const y0 = y(s.key_end), y1 = y(s.key_start);
    const rect = el("rect", {id: "seg-" + s.number, class: "segment " + (s.active ? "active" : "sealed"),
      x: x0, y: y0, width: Math.max(x1 - x0, 1), height: Math.max(y1 - y0, 1),
      "data-number": s.number, "data-key-start": s.key_start, "data-key-end": s.key_end});
    rect.appendChild(el("title", {}, "segment " + s.number + " [" + s.key_start.toFixed(3) + ", " +
      s.key_end.toFixed(3) + ")" + (s.length === null ? "" : ", " + s.length + " bytes")));
    svg.appendChild(rect);
    if (x1 - x0 > 14 && y1 - y0 > 12)
      svg.appendChild(el("text", {class: "seglabel", x: (x0 + x1) / 2, y: (y0 + y1) / 2}, String(s.number)));
  }
  for (const e of d.epochs.slice(1)) {
    if (e.time_ms === null) continue;
    const line = el("line", {class: "epoch", x1: x(e.time_ms), x2: x(e.time_ms), y1: TOP, y2: H - BOTTOM,
      "data-epoch": e.epoch});
    line.appendChild(el("title", {}, "epoch " + e.epoch + ": " + (e.reason || "") + " at " + clock(e.time_ms)));
    svg.appendChild(line);
  }
  const active = d.segments.filter(s => s.active).length;
  document.getElementById("summary").textContent = d.state + " · epoch " + d.active_epoch + " · " + active +
    " active segments · " + d.segments.length + " segments ever · " + d.total_bytes + " readable bytes";
  fillTable("cuts", [["head", d.head.map(c => "segment " + c.segment + " @ " + c.offset).join(", ")],
                     ["tail", d.tail.map(c => "segment " + c.segment + " @ " + c.offset).join(", ")]]);
  fillTable("epochs", d.epochs.slice().reverse().map(e =>
    [e.epoch, e.time_ms === null ? "?" : clock(e.time_ms), e.reason || "", e.splits, e.merges]));
  const rows = [];
  for (const g of d.reader_groups) {
    if (g.error) { rows.push([g.name, "(state unavailable)", "", g.error]); continue; }
    if (g.readers.length === 0) rows.push([g.name, "(no readers)", g.unassigned.join(" "), g.lag_bytes]);
    for (const r of g.readers)
      rows.push([g.name, r.id, r.segments.join(" "), r.lag_bytes === null ? "?" : r.lag_bytes]);
  }
  fillTable("groups", rows);
  const cluster = document.getElementById("cluster");
  cluster.hidden = !d.cluster;
  if (d.cluster) fillTable("hosts", d.cluster.error ? [["(unavailable)", "", "", d.cluster.error]] :
    d.cluster.hosts.map(h => [h.host, h.endpoint || "-", h.live ? "up" : "down", h.containers.join(" ")]));
}

async function poll() {
  try {
    const reply = await fetch(CONFIG.data, {cache: "no-store"});
    if (!reply.ok) throw new Error((await reply.json()).error || reply.statusText);
    draw(await reply.json());
    polls += 1;
    document.getElementById("status").textContent = "live · updated " + new Date().toISOString().substring(11, 19);
    document.getElementById("status").dataset.polls = polls;
  } catch (err) {
    document.getElementById("status").textContent = "cannot update: " + err.message;
  }
  setTimeout(poll, CONFIG.interval_ms);
}
poll();
"""


def stream_page(scope: str, stream: str, interval_ms: int = 1000) -> str:
    """The live page of one stream; the script fetches its data and redraws every ``interval_ms``."""
    data_url = f"/console/{quote(scope, safe='')}/{quote(stream, safe='')}/data"
    config = json.dumps({"data": data_url, "interval_ms": interval_ms}).replace("<", "\\u003c")
    body = (
        f"<p><a href=\"/\">all streams</a> · <a href=\"/streams/{quote(scope)}/{quote(stream)}\">json</a> · "
        f"<span id=\"status\" class=\"muted\" data-polls=\"0\">loading…</span></p>"
        "<p id=\"summary\"></p>"
        "<h2>Key space over time</h2>"
        "<svg id=\"keyspace\" width=\"900\" height=\"320\" viewBox=\"0 0 900 320\" role=\"img\" "
        "aria-label=\"segments by key range over time\"></svg>"
        "<p class=\"muted\">Time runs to the right, keys [0, 1) upwards; blue: active segments, grey: sealed; "
        "dashed lines: scaling epochs.</p>"
        "<h2>Head and tail</h2><table><tbody id=\"cuts\"></tbody></table>"
        "<h2>Reader groups</h2><table><thead><tr><th>group</th><th>reader</th><th>segments</th>"
        "<th>lag (bytes)</th></tr></thead><tbody id=\"groups\"></tbody></table>"
        "<section id=\"cluster\" hidden><h2>Cluster</h2><table><thead><tr><th>segment store</th>"
        "<th>endpoint</th><th>state</th><th>containers</th></tr></thead><tbody id=\"hosts\"></tbody></table></section>"
        "<h2>Epochs</h2><table><thead><tr><th>epoch</th><th>time (UTC)</th><th>reason</th><th>splits</th>"
        "<th>merges</th></tr></thead><tbody id=\"epochs\"></tbody></table>"
    )
    return _page(f"{scope}/{stream}", body, _SCRIPT.replace("__CONFIG__", config))
