"""The one training/evaluation engine: a Lightning module that delegates to the task."""

from texttune.engine.finetune import FitResult, fit

__all__ = ["FitResult", "fit"]
