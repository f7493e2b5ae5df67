"""Screenshot pages of an already running Dagster UI with headless Chromium.

Starts nothing but Chromium: run ``lofi ui`` (or ``dagster-webserver``) first,
then for example::

    python scripts/ui_screenshot.py \
        http://127.0.0.1:3000/assets/library_stats docs/ui_stats.png \
        --click "[Show Markdown]" \
        http://127.0.0.1:3000/assets/gap_report docs/ui_gaps.png

Arguments come in ``URL OUTPUT.png`` pairs. Each page gets a fresh throwaway
profile. Without ``--click`` Chromium's own ``--screenshot`` is used, with a
virtual-time budget so the single-page app finishes loading. With ``--click
TEXT`` the page is driven over the DevTools protocol (needs the ``websockets``
package, which dagster-webserver already installs): the first-visit
"Join the Dagster community" dialog is skipped, the first button or link whose
text is TEXT is clicked (Dagster shows Markdown metadata longer than 1,000
characters behind ``[Show Markdown]``), and the picture is taken once the page
settles. Exits 1 with one line per failed page.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser(explicit: str | None = None) -> str:
    """The Chromium binary: ``explicit`` if given, else the first of BROWSERS on PATH."""
    if explicit:
        return explicit
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("error: no chromium on PATH (apt-get install chromium), or pass --browser")


def screenshot(url: str, output: Path, *, browser: str, width: int = 1400, height: int = 1000,
               budget_ms: int = 15000, timeout_s: float = 120.0) -> None:
    """Save a PNG of ``url`` to ``output``; raises RuntimeError when Chromium produced none."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)  # a stale picture must not pass for a new one
    with tempfile.TemporaryDirectory(prefix="ui_screenshot_") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--virtual-time-budget={budget_ms}", f"--screenshot={output}", url]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{url}: chromium did not finish within {timeout_s:.0f} s") from None
    if not output.is_file() or not output.read_bytes()[:8] == PNG_SIGNATURE:
        tail = " | ".join(line for line in proc.stderr.splitlines()[-3:] if line.strip())
        raise RuntimeError(f"{url}: no screenshot written (chromium exit {proc.returncode}: {tail})")


_CLICK_JS = """
(() => {
  const want = %s;
  const skip = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Skip');
  if (skip) skip.click();  // the first-visit community dialog
  if (!want) return 'no click asked';
  const hit = [...document.querySelectorAll('button, a, [role=button]')]
    .find(el => el.textContent.trim() === want);
  if (!hit) return 'not found';
  hit.scrollIntoView({block: 'center'});
  hit.click();
  return 'clicked';
})()
"""


class _DevTools:
    """The few DevTools-protocol calls a screenshot needs, over one page's websocket."""

    def __init__(self, ws: object):
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, timeout: float = 60.0, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})


def start_chromium(browser: str, profile: str, width: int, height: int, *,
                   timeout_s: float = 120.0) -> tuple[subprocess.Popen, int]:
    """Headless Chromium in its own process group with a DevTools port; returns it and the port."""
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        errors="replace", start_new_session=True)
    deadline = time.monotonic() + timeout_s
    for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            # keep draining Chromium's chatter so a full pipe never blocks it
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(m[1])
        if time.monotonic() > deadline:
            break
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    raise RuntimeError("chromium opened no DevTools port")


def screenshot_after_click(url: str, output: Path, *, browser: str, click: str | None, width: int = 1400,
                           height: int = 1000, settle_s: float = 6.0, timeout_s: float = 120.0) -> str:
    """Load ``url``, skip the community dialog, click the element with text ``click``, save a PNG.

    Returns what the click did (``"clicked"``, ``"not found"``, ``"no click asked"``).
    """
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="ui_screenshot_") as profile:
        try:
            proc, port = start_chromium(browser, profile, width, height, timeout_s=timeout_s)
        except RuntimeError as exc:
            raise RuntimeError(f"{url}: {exc}") from None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=20) as resp:
                page = next(t for t in json.load(resp) if t.get("type") == "page")
            from websockets.sync.client import connect  # installed with dagster-webserver

            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as ws:
                tools = _DevTools(ws)
                tools.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=False)
                tools.call("Page.enable")
                tools.call("Page.navigate", url=url)
                time.sleep(settle_s)  # the app loads its data over GraphQL after the page itself
                outcome = tools.call("Runtime.evaluate", expression=_CLICK_JS % json.dumps(click or ""),
                                     returnByValue=True)["result"].get("value", "")
                time.sleep(settle_s / 2)
                shot = tools.call("Page.captureScreenshot", format="png")
        finally:
            proc.kill()
            proc.wait()
    output.write_bytes(base64.b64decode(shot["data"]))
    return str(outcome)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", metavar="URL OUTPUT", help="URL then output PNG path, repeated")
    parser.add_argument("--browser", help="Chromium binary (default: first found on PATH)")
    parser.add_argument("--width", type=int, default=1400, help="window width in px")
    parser.add_argument("--height", type=int, default=1000, help="window height in px")
    parser.add_argument("--budget-ms", type=int, default=15000,
                        help="virtual time Chromium lets the page run before the shot, in ms")
    parser.add_argument("--click", metavar="TEXT",
                        help='click the button or link whose text is TEXT first (e.g. "[Show Markdown]")')
    parser.add_argument("--settle", type=float, default=6.0,
                        help="seconds to let the page load before clicking (with --click)")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("arguments must be URL OUTPUT pairs")
    browser = find_browser(args.browser)
    failed = 0
    for url, out in zip(args.pairs[::2], args.pairs[1::2]):
        try:
            if args.click:
                outcome = screenshot_after_click(url, Path(out), browser=browser, click=args.click,
                                                 width=args.width, height=args.height, settle_s=args.settle)
                print(f"{out}  <-  {url}  ({args.click!r}: {outcome})")
            else:
                screenshot(url, Path(out), browser=browser, width=args.width, height=args.height,
                           budget_ms=args.budget_ms)
                print(f"{out}  <-  {url}")
        except (RuntimeError, OSError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
