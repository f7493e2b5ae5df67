"""lofi_pipeline: plan, reuse, render and re-file long-form lo-fi mixes."""

__version__ = "0.1.0"
