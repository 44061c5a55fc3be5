"""Several LoRA adapters over one loaded backbone, chosen per batch (``texttune serve BASE --adapter NAME=DIR``).

PEFT injects each adapter's LoRA layers into the model in place, beside the others' (one
``lora_A``/``lora_B`` pair per adapter in every adapted layer). Which one runs is a flag on each
LoRA layer, so switching is a walk over the model's modules and moves no weights: well under a
millisecond per adapted layer (measured in ``benchmarks/serve_load.py``). Adapters stay unmerged:
each forward pass pays for the low-rank products (rank r: about 2r/d more multiply-adds per
adapted projection, 2% for SmolLM2 at r 8), which is the price of serving many on one copy of
the base weights.

Only the model thread switches; the server batches requests per adapter, so a batch never mixes
adapters and no request runs with another's weights.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from texttune.backbones.adapters import is_adapter_dir
from texttune.errors import BackboneError, ConfigError

log = logging.getLogger("texttune")

#: What an adapter may be called (it becomes the ``model`` of OpenAI-compatible requests).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
#: The served name of the backbone alone when the served model is itself an adapter directory.
BASE = "base"


class AdapterSet:
    """The served names and the PEFT adapter each one runs (None: the weights as loaded, adapters off)."""

    def __init__(self, peft_model: Any, names: dict[str, str | None], *, active: str | None) -> None:
        self.peft = peft_model
        self.names = names
        self.active = active

    def activate(self, name: str) -> None:
        """Run the adapter served as ``name`` from the next forward pass on (KeyError for an unknown name)."""
        target = self.names[name]
        if target == self.active:
            return
        if target is None:
            self.peft.base_model.disable_adapter_layers()
        else:
            if self.active is None:
                self.peft.base_model.enable_adapter_layers()
            self.peft.set_adapter(target)
        self.active = target


def attach_adapters(backbone: Any, adapters: dict[str, Path], *, served: str, metadata: dict[str, Any],
                    read: Any) -> AdapterSet:
    """Load each adapter directory over ``backbone`` under its name; the served model stays what ``served`` names.

    ``metadata``: the served model's texttune.json; ``read``: reads another directory's (``runs.read_metadata``).
    When the served model is itself an adapter directory (loaded unmerged, ``backbone.peft`` set), it keeps its
    adapter and :data:`BASE` names the backbone alone. ConfigError for a directory that holds no adapters, an
    adapter of another task or backbone, or a bad or repeated name.
    """
    from peft import PeftModel

    own = backbone.peft is not None
    base_of = metadata["peft"]["base_model"] if own else metadata.get("backbone")
    names: dict[str, str | None] = {served: "default" if own else None}
    if own:
        names[BASE] = None
    for name, directory in adapters.items():
        if not NAME.match(name) or name in names:
            raise ConfigError(f"--adapter {name}={directory}: the name must be new (not {', '.join(names)}) and made of "
                              "letters, digits, '.', '_', ':' or '-'")
        found = _adapter_metadata(name, directory, read=read, task=metadata["task"])
        if str(found["peft"]["base_model"]) != str(base_of):
            raise ConfigError(f"--adapter {name}={directory}: its adapters were trained on {found['peft']['base_model']!r}, "
                              f"the served model's backbone is {base_of!r}; serve adapters of one backbone together")
        try:
            if backbone.peft is None:
                backbone.peft = PeftModel.from_pretrained(backbone.model, str(directory), adapter_name=name)
            else:
                backbone.peft.load_adapter(str(directory), adapter_name=name)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise BackboneError(f"--adapter {name}={directory}: cannot load its LoRA adapters "
                                f"({str(exc).splitlines()[0]})") from None
        names[name] = name
        log.info("adapter %s loaded from %s", name, directory)
    if backbone.peft is None:
        raise ConfigError("no adapters to serve")
    backbone.peft.eval()
    adapter_set = AdapterSet(backbone.peft, names, active="default" if own else next(iter(adapters)))
    adapter_set.activate(served)
    return adapter_set


def _adapter_metadata(name: str, directory: Path, *, read: Any, task: str) -> dict[str, Any]:
    found = read(directory)
    if not is_adapter_dir(found):
        raise ConfigError(f"--adapter {name}={directory}: this model holds merged weights, not LoRA adapters kept apart; "
                          "train it with --peft lora --no-merge-adapters")
    if found["task"] != task:
        raise ConfigError(f"--adapter {name}={directory}: a {found['task']} model; the served model is {task}, and one "
                          "server serves adapters of one task (they share its prompt layout)")
    return found
