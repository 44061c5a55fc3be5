"""Run directories, atomic files, saved models and environment records."""

from texttune.runs.layout import RunDir
from texttune.runs.model_dir import find_model_dir, model_name, read_metadata, save_model_dir

__all__ = ["RunDir", "find_model_dir", "model_name", "read_metadata", "save_model_dir"]
