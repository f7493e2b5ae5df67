"""Screenshots of the pictures the Dagster UI shows for the demo library (README's docs/screenshots).

Builds the demo library in ``--home`` unless one is there already (no test
render: ~1 min), starts ``dagster-webserver`` on 127.0.0.1 (a free port) with
that LOFI_HOME and its own instance, and photographs three metadata pictures
with headless Chromium, each as the dialog Dagster opens from the entry's
``[Show Markdown]`` link (a chart's Markdown is longer than 1,000 characters,
so Dagster never shows it inline):

==========================  =================  ======================================
file                        asset (partition)  metadata key
==========================  =================  ======================================
library_distribution.png    library_stats      ``distribution`` (BPM and key spread)
mix_plan_timeline.png       mix_plan (104)     ``timeline`` (arcs over time, repeats)
gap_coverage.png            gap_report (104)   ``coverage`` (prompts by gap status)
==========================  =================  ======================================

A shot only counts when the picture really loaded in the page (the ``<img>``
decoded, with its natural size); otherwise the script says which and exits 1.
The webserver and Chromium are always stopped. Usage::

    PYTHONPATH=. .venv/bin/python scripts/ui_screenshots.py --home /tmp/lofi-demo --out docs/screenshots
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from ui_screenshot import _DevTools, find_browser, start_chromium  # noqa: E402  (the sibling script)

MAX_BYTES = 300_000
TRACK = 104  # the demo's new track


@dataclass(frozen=True)
class Shot:
    filename: str
    path: str  # UI route with its query
    key: str  # the metadata key whose [Show Markdown] opens the picture


SHOTS = (
    Shot("library_distribution.png", "/assets/library_stats?view=events", "distribution"),
    Shot("mix_plan_timeline.png", f"/assets/mix_plan?view=partitions&partition={TRACK}", "timeline"),
    Shot("gap_coverage.png", f"/assets/gap_report?view=partitions&partition={TRACK}", "coverage"),
)

# Returns a JSON string: {"state": "...", "rect": {...}} once the picture is on screen.
_OPEN_JS = """
(() => {
  const key = %s;
  const skip = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Skip');
  if (skip) skip.click();  // the first-visit community dialog
  const shown = [...document.querySelectorAll('img[src^="data:image/png"]')]
    .find(img => img.closest('.bp5-dialog, .bp4-dialog, [role=dialog]'));
  if (!shown) {
    const row = [...document.querySelectorAll('tr')]
      .find(tr => tr.cells.length && tr.cells[0].textContent.trim() === key);
    if (!row) return JSON.stringify({state: 'no row'});
    const link = [...row.querySelectorAll('button, a, [role=button]')]
      .find(el => el.textContent.trim() === '[Show Markdown]');
    if (!link) return JSON.stringify({state: 'no link'});
    link.scrollIntoView({block: 'center'});
    link.click();
    return JSON.stringify({state: 'clicked'});
  }
  if (!shown.complete || !shown.naturalWidth) return JSON.stringify({state: 'loading'});
  const box = shown.closest('.bp5-dialog, .bp4-dialog, [role=dialog]').getBoundingClientRect();
  return JSON.stringify({state: 'shown', natural: [shown.naturalWidth, shown.naturalHeight],
                         drawn: [shown.width, shown.height],
                         rect: {x: box.x, y: box.y, width: box.width, height: box.height}});
})()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_demo(home: Path) -> None:
    """Build the demo library in ``home`` unless it already holds a planned track 104."""
    os.environ["LOFI_HOME"] = str(home)
    from lofi_pipeline.core.library import Library
    from lofi_pipeline.settings import Settings

    home.mkdir(parents=True, exist_ok=True)
    settings = Settings.load(home)
    if Path(settings.duckdb_path).exists() and Library(settings.duckdb_path, home=home).load_mix_plan(TRACK):
        print(f"reusing the demo library in {home}")
        return
    from lofi_pipeline.demo import run_demo

    print(f"building the demo library in {home} (about a minute)")
    run_demo(settings, render=False, say=lambda m: None if m.startswith("[progress]") else print(f"  {m}"))


def start_webserver(home: Path, port: int, log: Path) -> subprocess.Popen:
    from lofi_pipeline.runner import prepare_instance
    from lofi_pipeline.settings import Settings

    settings = Settings.load(home)
    prepare_instance(settings)  # the library's instance, with its dagster.yaml
    exe = Path(sys.executable).with_name("dagster-webserver")
    env = {**os.environ, "LOFI_HOME": str(home), "DAGSTER_HOME": settings.dagster_home,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as out:
        return subprocess.Popen([str(exe), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
                                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_serving(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"dagster-webserver did not answer within {timeout_s:.0f} s; see {log}")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we started, SIGKILL after 15 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)


def take(tools: _DevTools, url: str, key: str, output: Path, timeout_s: float = 60.0) -> str:
    """Open ``url``, open the ``key`` entry's Markdown dialog, save the dialog once its picture loaded."""
    tools.call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout_s
    state: dict = {}
    time.sleep(2.0)
    while time.monotonic() < deadline:
        raw = tools.call("Runtime.evaluate", expression=_OPEN_JS % json.dumps(key),
                         returnByValue=True)["result"].get("value")
        state = json.loads(raw or "{}")
        if state.get("state") == "shown":
            break
        time.sleep(1.0)
    else:
        raise RuntimeError(f"{url}: metadata '{key}' shows no picture (last state: {state.get('state')})")
    time.sleep(0.5)  # the dialog's open transition
    raw = tools.call("Runtime.evaluate", expression=_OPEN_JS % json.dumps(key), returnByValue=True)
    state = json.loads(raw["result"]["value"])
    rect = state["rect"]
    shot = tools.call("Page.captureScreenshot", format="png", clip={
        "x": max(rect["x"] - 8, 0), "y": max(rect["y"] - 8, 0), "width": rect["width"] + 16,
        "height": rect["height"] + 16, "scale": 1})
    data = base64.b64decode(shot["data"])
    output.write_bytes(data)
    if len(data) > MAX_BYTES:
        raise RuntimeError(f"{output}: {len(data) // 1000} KB, over the {MAX_BYTES // 1000} KB limit")
    nat, drawn = state["natural"], state["drawn"]
    return f"picture {nat[0]}×{nat[1]} px drawn at {drawn[0]}×{drawn[1]}, {len(data) // 1000} KB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "lofi-demo",
                        help="demo library folder (built there when missing; default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots",
                        help="folder for the PNGs (default: docs/screenshots)")
    parser.add_argument("--browser", help="Chromium binary (default: first found on PATH)")
    parser.add_argument("--width", type=int, default=1400, help="browser window width in px")
    parser.add_argument("--height", type=int, default=1000, help="browser window height in px")
    args = parser.parse_args(argv)
    home, out = args.home.resolve(), args.out.resolve()
    browser = find_browser(args.browser)
    ensure_demo(home)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "data" / "ui_screenshots_webserver.log"
    web = start_webserver(home, port, log)
    failed = 0
    try:
        wait_until_serving(web, port, log)
        with tempfile.TemporaryDirectory(prefix="ui_screenshots_", ignore_cleanup_errors=True) as profile:
            chrome, devtools = start_chromium(browser, profile, args.width, args.height)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=20) as resp:
                    page = next(t for t in json.load(resp) if t.get("type") == "page")
                from websockets.sync.client import connect  # installed with dagster-webserver

                with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as ws:
                    tools = _DevTools(ws)
                    tools.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
                               deviceScaleFactor=1, mobile=False)
                    tools.call("Page.enable")
                    for shot in SHOTS:
                        target = out / shot.filename
                        target.unlink(missing_ok=True)  # a stale picture must not pass for a new one
                        url = f"http://127.0.0.1:{port}{shot.path}"
                        try:
                            print(f"{target}  <-  {shot.key} of {shot.path}: {take(tools, url, shot.key, target)}")
                        except RuntimeError as exc:
                            print(f"error: {exc}", file=sys.stderr)
                            failed += 1
            finally:
                stop_group(chrome)
    finally:
        stop_group(web)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
