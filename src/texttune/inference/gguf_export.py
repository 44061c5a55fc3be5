"""``texttune export --format gguf``: a saved decoder-only model as one ``.gguf`` file for llama.cpp and Ollama.

The export directory holds ``model.gguf`` (weights in llama.cpp's layout, every hyperparameter
llama.cpp reads, the tokenizer, the chat template and the prompt layout the model was fine-tuned
with), an Ollama ``Modelfile``, a ``README.md`` with the commands that run it, and ``texttune.json``
(the source's metadata plus ``"backend": "gguf"``), which marks the directory as an export that a
later export may replace. Everything is checked before anything is written (architecture, tokenizer,
output directory), and the directory is built aside and renamed into place, so a failure leaves
nothing half-written. Weights come from transformers in float32; LoRA adapters saved apart
(``--no-merge-adapters``) are merged into their backbone's weights first, as ``texttune.load`` does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from texttune._version import __version__
from texttune.backbones.adapters import adapter_backbone, is_adapter_dir
from texttune.errors import ConfigError, choices
from texttune.files import atomic_directory, write_json
from texttune.inference.export_dir import check_output
from texttune.inference.gguf_modelfile import PromptLayout, modelfile, prompt_layout, readme
from texttune.inference.gguf_tensors import QUANTIZATION_TYPES, check_architecture, write_hyperparameters, write_tensors
from texttune.inference.gguf_tokenizer import GGUFVocab, gguf_vocab, write_vocab
from texttune.runs.model_dir import METADATA_FILE, find_model_dir, read_metadata

#: What ``texttune export --format gguf --quantization`` accepts (llama.cpp's type names).
QUANTIZATIONS: tuple[str, ...] = tuple(QUANTIZATION_TYPES)
DEFAULT_QUANTIZATION = "f16"
GGUF_FILE = "model.gguf"
#: Tasks whose saved model is a language model (the others add classification or span heads).
_GENERATING = ("summarization", "translation", "text2text", "causal-lm", "chat")
_TEXT_TO_TEXT = ("summarization", "translation", "text2text")


def is_export(metadata: dict[str, Any]) -> bool:
    """Whether a texttune.json describes a ``texttune export --format gguf`` directory."""
    return metadata.get("backend") == "gguf"


def _check_source(model_dir: Path, metadata: dict[str, Any], quantization: str) -> None:
    """One-line ConfigErrors for what cannot become a GGUF: the task, the model family, an export, the quantization."""
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"--quantization {quantization!r} is not valid for GGUF; valid choices: {choices(QUANTIZATIONS)}")
    if metadata.get("backend"):
        raise ConfigError(f"{model_dir} is already a {metadata['backend']} export; export from the model directory it "
                          "came from")
    if metadata["task"] not in _GENERATING:
        raise ConfigError(f"{model_dir}: task {metadata['task']!r} has no text-generation head; GGUF export writes "
                          f"models of the tasks {', '.join(_GENERATING)}")
    if metadata.get("family") in ("seq2seq", "encoder"):
        kind = "an encoder-decoder" if metadata["family"] == "seq2seq" else "an encoder-only"
        raise ConfigError(f"{model_dir} is {kind} model; GGUF export supports decoder-only LlamaForCausalLM and "
                          "MistralForCausalLM models")


def _stops(vocab: GGUFVocab, tokenizer: Any) -> list[str]:
    """Texts generation stops at: the end token, and ChatML's end of turn when the vocabulary has it."""
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    if "<|im_end|>" in tokenizer.get_vocab() and "<|im_end|>" not in stops:
        stops.append("<|im_end|>")
    return stops


def _write_gguf(path: Path, *, model: Any, vocab: GGUFVocab, layout: PromptLayout, metadata: dict[str, Any],
                quantization: str, name: str) -> None:
    """Write the .gguf file: general keys, hyperparameters, tokenizer, texttune's prompt layout, tensors."""
    import gguf

    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType[QUANTIZATION_TYPES[quantization][1]])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    rope_freqs = write_hyperparameters(writer, model.config, where=name)
    write_vocab(writer, vocab)
    writer.add_string("texttune.task", metadata["task"])
    writer.add_string("texttune.prompt_template", layout.template)
    writer.add_uint32("texttune.max_new_tokens", layout.max_new_tokens)
    writer.add_string("texttune.version", __version__)
    write_tensors(writer, model, quantization=quantization, rope_freqs=rope_freqs)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _layout_template(layout: PromptLayout) -> str:
    """A Jinja chat template laying out the last user message as texttune's prompt (for llama-server's chat route)."""
    return f"{{{{ {json.dumps(layout.before)} }}}}{{{{ messages[-1]['content'] }}}}{{{{ {json.dumps(layout.after)} }}}}"


def export(source: str | Path, *, output: str | Path, quantization: str = DEFAULT_QUANTIZATION) -> Path:
    """Write a GGUF export of a texttune run or model directory to ``output`` (atomically); returns ``output``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir, output = find_model_dir(source), Path(output)
    metadata = read_metadata(model_dir)
    _check_source(model_dir, metadata, quantization)
    config = AutoConfig.from_pretrained(model_dir)
    check_architecture(config, where=str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab = gguf_vocab(tokenizer, rows=int(config.vocab_size), where=str(model_dir))
    text_to_text = metadata["task"] in _TEXT_TO_TEXT
    layout = prompt_layout(metadata["task"], metadata.get("task_state") or {}, tokenizer)
    vocab.add_bos = layout.add_bos  # llama.cpp adds BOS exactly when texttune's prompts start with it
    if text_to_text and not vocab.chat_template:
        vocab.chat_template = _layout_template(layout)
    check_output(output, model_dir, backend="gguf", label="a GGUF")
    name = re.sub(r"[^a-z0-9._-]+", "-", output.resolve().name.lower()).strip("-.") or "texttune-model"  # Ollama's names
    stops = _stops(vocab, tokenizer)
    if is_adapter_dir(metadata):  # LoRA adapters saved apart: merged into their backbone's weights first
        model = adapter_backbone(model_dir, metadata, dtype=torch.float32).model
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with atomic_directory(output) as tmp:
        _write_gguf(tmp / GGUF_FILE, model=model, vocab=vocab, layout=layout, metadata=metadata,
                    quantization=quantization, name=name)
        (tmp / "Modelfile").write_text(modelfile(gguf_name=GGUF_FILE, layout=layout, chat_template=vocab.chat_template,
                                                 text_to_text=text_to_text, stops=stops,
                                                 context_length=int(config.max_position_embeddings)), encoding="utf-8")
        (tmp / "README.md").write_text(readme(name=name, gguf_name=GGUF_FILE, task=metadata["task"],
                                              quantization=quantization, layout=layout, stops=stops,
                                              source=str(model_dir.resolve())), encoding="utf-8")
        write_json(tmp / METADATA_FILE, {**metadata, "backend": "gguf", "gguf": {
            "file": GGUF_FILE, "quantization": quantization, "prompt_template": layout.template,
            "source_model": str(model_dir.resolve()), "exported_by": f"texttune {__version__}"}})
    return output


__all__ = ["DEFAULT_QUANTIZATION", "GGUF_FILE", "QUANTIZATIONS", "export", "is_export"]
