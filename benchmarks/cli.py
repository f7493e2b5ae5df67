"""Benchmark: wall time of each `lofi` command on the demo library, cold and warm.

Each command runs as a real `lofi` process (``python -m lofi_pipeline.cli``),
the way a producer types it. *Cold* is its first run in this benchmark (fresh
interpreter; the OS file cache is whatever the machine has, it is not
dropped); *warm* is the median of the next runs. For commands that launch a
job, the run's *work* is the sum of its steps' durations from the run's events
(STEP_START to STEP_SUCCESS/FAILURE) and *overhead* = wall − work: process
start, imports, instance, definitions, run bookkeeping.

Targets (issue 14): read-only commands and input errors ≤ 1 s; job commands
≤ 2 s more than their work.

For scale, the benchmark also times **Dagster's own floor**: a fresh Python
process that imports Dagster, opens a persistent SQLite instance (a temporary
``DAGSTER_HOME``, like the library's) and materialises one asset whose step
returns at once (``dg.materialize``). Its overhead is what any run launched
from a new process costs before lofi adds anything.

Usage::

    .venv/bin/python benchmarks/cli.py [--dir /tmp/lofi_cli_bench] [--warm 3]

The demo library is built in ``--dir`` first when it is not there (~1 min).
Results go to ``benchmarks/results/cli.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

READ_ONLY = [["gaps", "--track", "104"], ["duration", "--track", "104"], ["stats"], ["notion", "show", "104"],
             ["query", "--track", "104", "--show"]]
INPUT_ERRORS = [["query", "--track", "77"], ["query", "--track", "99999999999"], ["query", "--track", "-5"],
                ["import", "--track", "77", "--page", "missing.md"], ["render", "--track", "104", "--duration", "x"]]
JOBS = [["query", "--track", "104"], ["embed"], ["import", "--track", "101"], ["prepare-render", "--track", "104"]]


FLOOR_SCRIPT = """
import os, sys
import dagster as dg

@dg.asset
def noop():
    return None

dg.materialize([noop], instance=dg.DagsterInstance.get())
sys.stdout.flush()
os._exit(0)
"""


def dagster_floor(runs: int) -> dict:
    """Wall, work and overhead of a one-asset no-op Dagster run in a fresh process (see the docstring)."""
    import tempfile

    import dagster as dg

    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": home}
        times = []
        for _ in range(1 + runs):
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", FLOOR_SCRIPT], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.monotonic() - started)
        instance = dg.DagsterInstance.from_config(home)
        from lofi_pipeline.runner import step_seconds

        works = [step_seconds(instance, r.run_id) for r in reversed(instance.get_runs())]
    return {"kind": "reference", "command": "Dagster floor: one no-op asset, fresh process",
            "cold_seconds": round(times[0], 2), "warm_seconds": round(statistics.median(times[1:]), 2),
            "warm_work_seconds": round(statistics.median(works[1:]), 2),
            "warm_overhead_seconds": round(statistics.median([t - w for t, w in zip(times[1:], works[1:])]),
                                           2)}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, exit code, pid) of one `lofi` process."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lofi_pipeline.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    code = proc.wait()
    return time.monotonic() - started, code, proc.pid


def run_work(instance, pid: int) -> tuple[str | None, float | None]:
    """The run the process ``pid`` launched and its work (sum of step durations), in seconds."""
    import dagster as dg

    from lofi_pipeline.runner import PID_TAG, step_seconds

    runs = instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(pid)}), limit=1)
    if not runs:
        return None, None
    return runs[0].run_id, step_seconds(instance, runs[0].run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/lofi_cli_bench", help="Demo library (built when missing).")
    parser.add_argument("--warm", type=int, default=3, help="Warm runs per command (jobs: 1).")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cli.json"))
    a = parser.parse_args()

    home = Path(a.dir).resolve()
    env = {**os.environ, "LOFI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("LOFI_DAGSTER_HOME", None)
    if not (home / "data" / "lofi.duckdb").exists():
        print(f"building the demo library in {home} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "lofi_pipeline.cli", "demo", "--dir", str(home), "--no-render"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
    info = machine()

    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home / "data" / "dagster_home"))
    rows = []
    for kind, commands, warm_runs in (("read-only", READ_ONLY, a.warm), ("input error", INPUT_ERRORS, a.warm),
                                      ("job", JOBS, 1)):
        for args in commands:
            times, works, codes = [], [], []
            for _ in range(1 + warm_runs):
                wall, code, pid = run_once(args, env)
                times.append(wall)
                codes.append(code)
                if kind == "job":
                    works.append(run_work(instance, pid)[1])
            row = {"kind": kind, "command": "lofi " + " ".join(args), "exit_codes": codes,
                   "cold_seconds": round(times[0], 2), "warm_seconds": round(statistics.median(times[1:]), 2)}
            if kind == "job":
                row.update({"cold_work_seconds": round(works[0] or 0, 2), "warm_work_seconds": round(works[-1] or 0, 2),
                            "cold_overhead_seconds": round(times[0] - (works[0] or 0), 2),
                            "warm_overhead_seconds": round(times[-1] - (works[-1] or 0), 2)})
                row["meets_target"] = row["warm_overhead_seconds"] <= 2.0
            else:
                row["meets_target"] = row["warm_seconds"] <= 1.0
            rows.append(row)
            print(f"{row['command']}: {row['cold_seconds']} / {row['warm_seconds']} s", file=sys.stderr)

    floor = dagster_floor(a.warm)
    print(f"{floor['command']}: {floor['cold_seconds']} / {floor['warm_seconds']} s", file=sys.stderr)

    print(f"\nmachine: {info['cpus']} CPUs, {info['cpu_model']}, Python {info['python']}, "
          f"load average at start {info['load_average_at_start']}")
    print(f"{'command':<44} {'cold':>6} {'warm':>6} {'work':>6} {'over':>6}  ok")
    for r in rows:
        work = f"{r['warm_work_seconds']:6.2f}" if r["kind"] == "job" else "     —"
        over = f"{r['warm_overhead_seconds']:6.2f}" if r["kind"] == "job" else "     —"
        print(f"{r['command'][:44]:<44} {r['cold_seconds']:6.2f} {r['warm_seconds']:6.2f} {work} {over}  "
              f"{'yes' if r['meets_target'] else 'NO'}")
    print(f"{floor['command'][:44]:<44} {floor['cold_seconds']:6.2f} {floor['warm_seconds']:6.2f} "
          f"{floor['warm_work_seconds']:6.2f} {floor['warm_overhead_seconds']:6.2f}  (reference)")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"machine": info, "targets": {
        "read-only and input errors": "warm ≤ 1 s", "job": "warm overhead (wall − work) ≤ 2 s"},
        "results": rows, "reference": floor}, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
