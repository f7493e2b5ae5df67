"""The project's Definitions for one library's settings (no logic: assets, checks, jobs, sensors, resources).

``lofi_pipeline.definitions`` (the code location the UI loads) calls this with
LOFI_HOME's settings at import; the CLI's runner calls it with the settings it
already has, so a command builds the definitions once.
"""

import dagster as dg

from lofi_pipeline.defs.assets import ALL_ASSETS
from lofi_pipeline.defs.checks import ALL_CHECKS
from lofi_pipeline.defs.jobs import ALL_JOBS
from lofi_pipeline.defs.resources import build_resources
from lofi_pipeline.defs.sensors import ALL_SENSORS
from lofi_pipeline.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.load()
    return dg.Definitions(assets=ALL_ASSETS, asset_checks=ALL_CHECKS, jobs=ALL_JOBS,
                          sensors=ALL_SENSORS,
                          resources=build_resources(settings))
