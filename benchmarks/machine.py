"""What machine a benchmark ran on (shared by the scripts in benchmarks/)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform reports, else "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """``2 cores, AMD EPYC …, Python 3.11.7``."""
    return f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}"
