"""The live console in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by selenium)
against a real ``anabranch standalone``: the page draws a stream's segments, and while the page stays open a
manual split and then a merge appear without a reload; a reader group shows its reader and the segments it
holds. Saves the screenshots used in docs/console.md when ``ANABRANCH_SCREENSHOTS`` names a directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from anabranch.client.config import ClientConfig, ScalingPolicy, StreamConfiguration
from anabranch.client.reader_group import ReaderGroupConfig
from anabranch.client.stream_manager import StreamManager
from anabranch.model.stream_cut import StreamCut
from anabranch.testing.processes import HOST, Standalone, free_port, wait_for_port

pytestmark = pytest.mark.process

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once the browser is known to exist
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

WAIT = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Standalone, str]]:
    admin_port = free_port()
    process = Standalone(tmp_path_factory.mktemp("console") / "data", None, None, "--admin-port", str(admin_port))
    process.start()
    try:
        wait_for_port(HOST, admin_port, 30, process.process)
        yield process, f"http://{HOST}:{admin_port}"
    finally:
        process.kill()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="anabranch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1000,1100", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


SNAPSHOT_JS = """
const segments = {};
for (const rect of document.querySelectorAll("svg#keyspace rect.segment")) {
  segments[rect.dataset.number] = {
    state: rect.classList.contains("active") ? "active" : "sealed",
    keys: [parseFloat(rect.dataset.keyStart), parseFloat(rect.dataset.keyEnd)],
  };
}
const text = (id) => (document.getElementById(id) || {}).textContent || "";
return {
  segments: segments,
  epochLines: document.querySelectorAll("svg#keyspace line.epoch").length,
  cuts: text("cuts"), epochs: text("epochs"), groups: text("groups"),
  clusterHidden: document.getElementById("cluster").hidden,
};
"""


def page_snapshot(driver: webdriver.Chrome) -> dict[str, Any]:
    """What the page shows, read in one script so that a live redraw between reads cannot leave stale elements."""
    return cast(dict[str, Any], driver.execute_script(SNAPSHOT_JS))


def segments_drawn(snapshot: dict[str, Any]) -> dict[int, str]:
    """Segment number → "active" or "sealed", from the SVG's rectangles."""
    return {int(number): seg["state"] for number, seg in snapshot["segments"].items()}


def wait_for(driver: webdriver.Chrome, expected: dict[int, str]) -> dict[str, Any]:
    """Wait until the drawing shows ``expected``; returns the snapshot that did."""
    seen: list[dict[str, Any]] = []

    def drawn(d: webdriver.Chrome) -> bool:
        seen[:] = [page_snapshot(d)]
        return segments_drawn(seen[0]) == expected

    WebDriverWait(driver, WAIT, poll_frequency=0.2).until(drawn, f"the page never drew {expected}")
    return seen[0]


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    target = os.environ.get("ANABRANCH_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / name))


async def _setup(uri: str) -> None:
    async with StreamManager(ClientConfig(uri)) as m:
        await m.create_scope("web")
        await m.create_stream("web", "orders", StreamConfiguration(ScalingPolicy.fixed(1)))
        writer = m.create_writer("web", "orders")
        for i in range(50):
            await writer.write_event(f"order-{i}", routing_key=f"customer-{i % 7}")
        await writer.flush()


async def _scale(uri: str, sealed: list[int], ranges: list[tuple[float, float]]) -> None:
    async with StreamManager(ClientConfig(uri)) as m:
        await m.controller.scale_and_wait("web", "orders", sealed, ranges)
        writer = m.create_writer("web", "orders")
        for i in range(20):
            await writer.write_event(f"late-{i}", routing_key=f"customer-{i}")
        await writer.flush()


async def _segment_ids(uri: str) -> list[int]:
    async with StreamManager(ClientConfig(uri)) as m:
        return [s.segment_id for s in await m.get_current_segments("web", "orders")]


def test_console_draws_split_and_merge_live(server: tuple[Standalone, str], browser: webdriver.Chrome) -> None:
    process, admin = server
    uri = process.controller_uri
    asyncio.run(asyncio.wait_for(_setup(uri), 60))
    browser.get(f"{admin}/console/web/orders")
    wait_for(browser, {0: "active"})
    first_load = browser.execute_script("return performance.timeOrigin")

    asyncio.run(asyncio.wait_for(_scale(uri, [0], [(0.0, 0.5), (0.5, 1.0)]), 60))
    split = wait_for(browser, {0: "sealed", 1: "active", 2: "active"})
    assert split["segments"]["1"]["keys"] == [0.0, 0.5]
    assert split["epochLines"] == 1
    screenshot(browser, "console-split.png")

    ids = asyncio.run(asyncio.wait_for(_segment_ids(uri), 60))
    asyncio.run(asyncio.wait_for(_scale(uri, ids, [(0.0, 1.0)]), 60))
    merged = wait_for(browser, {0: "sealed", 1: "sealed", 2: "sealed", 3: "active"})
    assert merged["epochLines"] == 2
    assert browser.execute_script("return performance.timeOrigin") == first_load, "the page was reloaded"
    assert "segment 3 @" in merged["cuts"] and "head" in merged["cuts"]
    assert "manual scale" in merged["epochs"]
    assert merged["clusterHidden"]
    screenshot(browser, "console-merge.png")


async def _reader(uri: str, stop: asyncio.Event, reading: asyncio.Event) -> None:
    async with StreamManager(ClientConfig(uri)) as m:
        group = await m.create_reader_group("web", "billing",
                                            ReaderGroupConfig((StreamCut.unbounded("web", "orders"),)))
        reader = await group.create_reader("billing-1")
        try:
            await reader.read_next_event(timeout=5)
            reading.set()
            await stop.wait()
        finally:
            await reader.close()


def test_console_shows_reader_groups(server: tuple[Standalone, str], browser: webdriver.Chrome) -> None:
    process, admin = server

    async def scenario() -> None:
        stop, reading = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(_reader(process.controller_uri, stop, reading))
        try:
            await asyncio.wait_for(reading.wait(), 60)
            await asyncio.to_thread(browser.get, f"{admin}/console/web/orders")
            await asyncio.to_thread(
                WebDriverWait(browser, WAIT, poll_frequency=0.2).until,
                lambda d: "billing-1" in page_snapshot(d)["groups"], "the reader never showed")
            assert "billing" in page_snapshot(browser)["groups"]
            await asyncio.to_thread(screenshot, browser, "console-readers.png")
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(scenario())
