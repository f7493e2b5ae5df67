"""The thin Dagster layer over lofi_pipeline.core."""
