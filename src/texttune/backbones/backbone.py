"""What texttune holds of a backbone: config, tokenizer, family, and the model once a task has chosen its head."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.errors import BackboneError
from texttune.hub import hub_problem

T5_STYLE = {"t5", "mt5", "umt5", "longt5"}  # trained with task prefixes such as "summarize: "


@dataclass
class Backbone:
    """A backbone's config and tokenizer, and its model once a task has said which head it needs.

    The model is loaded in a second step (:meth:`load_model`) because some tasks
    only know their head after reading the training data (a tagger's label list).
    """

    name: str  # as the user gave it
    source: str  # local directory or hub name it was loaded from
    family: str  # seq2seq | causal | encoder
    model_type: str
    config: Any  # transformers.PretrainedConfig
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    trust_remote_code: bool = False
    model: Any = None  # transformers.PreTrainedModel, after load_model()
    peft: Any = None  # the peft.PeftModel around model while it carries unmerged LoRA adapters (backbones.adapters)

    @property
    def t5_style(self) -> bool:
        return self.model_type in T5_STYLE

    @property
    def scratch(self) -> bool:
        """Whether the weights are new (``scratch:SIZE``) rather than pretrained: LoRA has nothing to adapt."""
        return False

    def initialise(self, rows: Any, *, directory: Path) -> dict[str, Any]:
        """Called once by the recipe with the training rows before the task binds; a pretrained backbone needs nothing."""
        return {}

    def load_model(self, auto_class: str, *, model_kwargs: dict[str, Any] | None = None) -> Any:
        """Load the weights with ``transformers.<auto_class>``; ``model_kwargs`` configure a new head."""
        import transformers

        loader = getattr(transformers, auto_class)
        offline = Path(self.source).is_dir() or hub_problem(self.source) is not None
        try:
            self.model = loader.from_pretrained(
                self.source, local_files_only=offline, trust_remote_code=self.trust_remote_code, **(model_kwargs or {})
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # RuntimeError: torch refusing the config's sizes
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackboneError(f"backbone {self.name!r} cannot be loaded as {auto_class} ({first})") from None
        except pickle.UnpicklingError:  # transformers reads .bin weights with torch.load(weights_only=True)
            raise BackboneError(
                f"backbone {self.name!r}: its pickled weights (pytorch_model.bin) hold Python objects, not only tensors; "
                "texttune does not unpickle those (unpickling can run any code the file names) and ran nothing from it. "
                "Use a copy with model.safetensors weights") from None
        except Exception as exc:
            if type(exc).__name__ != "SafetensorError":  # safetensors' Rust error type has no stable import path
                raise
            raise BackboneError(f"backbone {self.name!r}: its safetensors weights are damaged or truncated ({exc}); "
                                "copy or save the model again") from None
        return self.model
