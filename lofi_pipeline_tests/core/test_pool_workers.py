"""Analysis pool workers die with their parent (kill -9, OOM) instead of running on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_workers_die_when_the_parent_is_killed(tmp_path):
    sr = 22050
    t = np.arange(sr * 90) / sr
    rng = np.random.default_rng(3)
    for i in range(16):
        y = 0.2 * np.sin(2 * np.pi * (110 + 20 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(tmp_path / f"A_1_{i + 1}_9a.wav", y.astype(np.float32), sr)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from lofi_pipeline.core.audio import analyze_files
        analyze_files(sorted(Path({str(tmp_path)!r}).glob("*.wav")), workers=2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(workers) < 2:
            workers = {c for c in _children(proc.pid) if "spawn_main" in
                       Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")} \
                if _alive(proc.pid) else set()
            time.sleep(0.2)
        assert len(workers) >= 2, "the pool did not start"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "pool workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
