"""Backbones: load any pretrained model by hub name, local directory or offline alias, or start one from scratch."""

from texttune.backbones.aliases import ALIASES
from texttune.backbones.attention import AttentionChoice, choose_attention
from texttune.backbones.backbone import Backbone
from texttune.backbones.sources import detect_family, load_backbone, load_config, resolve_source

__all__ = ["ALIASES", "AttentionChoice", "Backbone", "choose_attention", "detect_family", "load_backbone", "load_config",
           "resolve_source"]
