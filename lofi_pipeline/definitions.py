"""The Dagster code location: assets, checks, jobs, sensors and resources.

No logic here; resources come from the settings file in LOFI_HOME.
"""

from lofi_pipeline.defs.build import build_definitions

__all__ = ["build_definitions", "defs"]

defs = build_definitions()
