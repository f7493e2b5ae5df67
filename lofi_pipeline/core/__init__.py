"""Pure domain core. Nothing in this package imports dagster."""
