"""Time from pressing Translate to a playable translation on the page (`umt app`), in a real
browser (Playwright driving Debian's chromium), for the sines preview and the WaveNet.

    python bench/app_latency.py [--model M] [--to flute] [--runs 2] [--screenshot docs/app.png]

Uploads the shipped example each run (the upload itself is not timed: it is local), so the
figures are what a user waits for after pressing the button. Prints min / median / max per renderer.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright

from umt.app import serve
from umt.checkpoint import DEFAULT_MODEL, EXAMPLE_CLIP


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--to", default="flute")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--port", type=int, default=7870)
    p.add_argument("--screenshot", type=Path, help="save the page after the last run here")
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
    tic = time.perf_counter()
    app, url, folder = serve(args.model, "127.0.0.1", args.port, torch.device("cpu"), 120.0, block=False)
    print(f"page up in {time.perf_counter() - tic:.1f} s (model loaded, server started)")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            for renderer in ("sines", "wavenet"):
                seconds = []
                for _ in range(args.runs):
                    page.goto(url)
                    page.locator("#input input[type=file]").set_input_files(str(EXAMPLE_CLIP))
                    page.locator("#input audio[src]").wait_for(state="attached")
                    if args.to != "flute":
                        page.get_by_label("flute").uncheck()
                        page.get_by_label(args.to).check()
                    page.get_by_label(renderer).check()
                    tic = time.perf_counter()
                    page.get_by_role("button", name="Translate").click()
                    page.locator(f"#out-{args.to} audio[src]").wait_for(state="attached", timeout=600_000)
                    seconds.append(time.perf_counter() - tic)
                print(f"{renderer}: press to playable {min(seconds):.1f} / {statistics.median(seconds):.1f} / "
                      f"{max(seconds):.1f} s (min / median / max of {args.runs}), 6 s of audio into {args.to}")  # fmt: skip
            if args.screenshot:
                page.screenshot(path=str(args.screenshot), full_page=True)
            browser.close()
    finally:
        app.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
