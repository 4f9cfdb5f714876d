"""The page at `/` in a real browser (headless chromium over CDP): what is on the screen.

- The live view of the looped stream shows an *annotated* frame: the screenshot of the <img> is
  compared with every frame of the clip, raw and annotated (maskrt's own render of the same
  engine's detections, without the fps label): it must be far closer to an annotated frame than
  to any raw one.
- The figures move: frames grow and the picture changes between two reads a few seconds apart.

MASKRT_SCREENSHOT=docs/serve-page.png also saves the whole page (2x) there.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import maskrt
from maskrt.engine.render import draw_detections

from .browser import Chromium
from .conftest import BUNDLED, wait_for

LABEL = (slice(0, 18), slice(0, 64))  # the fps label's corner (rows, columns): its text differs


@pytest.fixture(scope="module")
def clip_frames(service):
    """(raw, annotated) float32 [10, H, W, 3] frames of the looped clip as the stream sees them."""
    seg = maskrt.load(BUNDLED, min_size=128, max_size=128, score_threshold=0.5)
    with av.open(str(service.clip)) as c:
        raw = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    annotated = [draw_detections(img, seg(img), seg.classes) for img in raw]
    return np.stack(raw).astype(np.float32), np.stack(annotated).astype(np.float32)


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "profile")
    yield chromium
    chromium.close()


def figures(browser: Chromium, name: str) -> dict:
    return browser.evaluate(f"""(() => {{
        const t = id => document.getElementById(id).textContent;
        const img = document.getElementById('view-{name}');
        const r = img.getBoundingClientRect();
        return {{state: t('state-{name}'), fps: t('fps-{name}'), frames: t('frames-{name}'),
                 dropped: t('dropped-{name}'), infer: t('p50-{name}-infer'), latency99: t('p99-{name}-latency'),
                 natural: [img.naturalHeight, img.naturalWidth], rect: [r.x, r.y, r.width, r.height]}};
    }})()""")


def view(browser: Chromium, fig: dict) -> np.ndarray:
    x, y, w, h = fig["rect"]
    png = browser.screenshot({"x": x, "y": y, "width": w, "height": h})
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.float32)


def closest(shot: np.ndarray, frames: np.ndarray) -> float:
    """The smallest mean absolute difference between `shot` and any frame, outside the label corner."""
    keep = np.ones(shot.shape[:2], bool)
    keep[LABEL] = False
    return float(min(np.abs(shot - f)[keep].mean() for f in frames))


def test_page_shows_live_annotated_streams(service, browser, clip_frames):
    wait_for(lambda: all(s["state"] == "running" for s in service.get("/v1/streams").json()), what="streams")
    browser.send("Page.enable")
    browser.send("Page.navigate", url=service.url + "/")
    first = wait_for(lambda: (f := figures(browser, "loop"))["natural"][1] > 0 and f["frames"].isdigit() and f,
                     timeout_s=60, what="the page's live view and figures")
    assert first["natural"] == [96, 128] and first["rect"][2:] == [128, 96]
    assert first["state"] == "running" and float(first["fps"]) > 0 and float(first["infer"]) > 0
    shot = view(browser, first)
    raw, annotated = clip_frames
    to_annotated, to_raw = closest(shot, annotated), closest(shot, raw)
    # JPEG (quality 80) of a 128x96 frame moves pixels by a few levels on average; the overlay
    # (masks blended 50% with saturated colours, outlines, labels) moves covered pixels by tens
    assert to_annotated < 8.0 and to_annotated < 0.5 * to_raw, (to_annotated, to_raw)

    def moved():
        later = figures(browser, "loop")
        return int(later["frames"]) > int(first["frames"]) + 3 and later

    later = wait_for(moved, timeout_s=60, what="the figures to move")
    # and the picture: a later frame differs (the clip's objects move every frame)
    wait_for(lambda: np.abs(view(browser, figures(browser, "loop")) - shot).mean() > 1.0, timeout_s=60,
             what="the live view to change")
    assert int(later["frames"]) > int(first["frames"])
    # the second stream's view: waited for as the first one was (a loaded machine shows it later)
    net = wait_for(lambda: (f := figures(browser, "net"))["natural"][1] > 0 and f["frames"].isdigit() and f,
                   timeout_s=60, what="the second stream's live view")
    assert net["natural"] == [96, 128] and net["frames"].isdigit()

    target = os.environ.get("MASKRT_SCREENSHOT")
    if target:
        browser.send("Emulation.setDeviceMetricsOverride", width=820, height=350, deviceScaleFactor=2, mobile=False)
        wait_for(lambda: figures(browser, "loop")["natural"][1] > 0, what="the view after resizing")
        Path(target).write_bytes(browser.screenshot())
