"""Backbones: load any pretrained model by hub name, local directory or offline alias."""

from texttune.backbones.aliases import ALIASES
from texttune.backbones.loading import Backbone, detect_family, load_backbone, load_config, resolve_source

__all__ = ["ALIASES", "Backbone", "detect_family", "load_backbone", "load_config", "resolve_source"]
