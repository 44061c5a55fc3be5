"""A Llama-architecture transformers model as GGUF hyperparameters and tensors, in the layout llama.cpp expects.

llama.cpp's ``llama`` architecture runs LlamaForCausalLM and MistralForCausalLM checkpoints (SmolLM2,
Llama 1-3, Mistral, TinyLlama...). Its tensors have their own names (``blk.N.attn_q.weight``), and
its rotary embedding rotates adjacent pairs of each head's dimensions where transformers rotates the
first half against the second: the query and key projections are permuted row-wise here so both
compute the same attention. Norm weights stay float32 at every quantization (llama.cpp's convention);
matrices are stored as the quantization asks, ``q8_0`` through the gguf package's own quantizer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from texttune.errors import ConfigError

#: transformers architectures written as llama.cpp's "llama" architecture.
SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("LlamaForCausalLM", "MistralForCausalLM")
#: --quantization -> (gguf.GGMLQuantizationType name for matrices, gguf.LlamaFileType name).
QUANTIZATION_TYPES: dict[str, tuple[str, str]] = {
    "f32": ("F32", "ALL_F32"), "f16": ("F16", "MOSTLY_F16"), "bf16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
}
#: transformers parameter name -> GGUF tensor name ({} is the layer number).
_NAMES: dict[str, str] = {
    r"model\.embed_tokens\.weight": "token_embd.weight",
    r"model\.norm\.weight": "output_norm.weight",
    r"lm_head\.weight": "output.weight",
    r"model\.layers\.(\d+)\.input_layernorm\.weight": "blk.{}.attn_norm.weight",
    r"model\.layers\.(\d+)\.self_attn\.q_proj\.weight": "blk.{}.attn_q.weight",
    r"model\.layers\.(\d+)\.self_attn\.k_proj\.weight": "blk.{}.attn_k.weight",
    r"model\.layers\.(\d+)\.self_attn\.v_proj\.weight": "blk.{}.attn_v.weight",
    r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight": "blk.{}.attn_output.weight",
    r"model\.layers\.(\d+)\.post_attention_layernorm\.weight": "blk.{}.ffn_norm.weight",
    r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight": "blk.{}.ffn_gate.weight",
    r"model\.layers\.(\d+)\.mlp\.up_proj\.weight": "blk.{}.ffn_up.weight",
    r"model\.layers\.(\d+)\.mlp\.down_proj\.weight": "blk.{}.ffn_down.weight",
}
Q8_BLOCK = 32  # values per q8_0 block: a row must be a multiple of it
KEPT_F16_AT_Q8 = frozenset({"token_embd.weight", "output.weight"})  # the logits layer (see ``stored``)


def check_architecture(config: Any, *, where: str) -> None:
    """ConfigError, naming the supported architectures, unless llama.cpp's llama architecture runs this model."""
    names = list(getattr(config, "architectures", None) or [type(config).__name__])
    if getattr(config, "is_encoder_decoder", False) or not set(names) & set(SUPPORTED_ARCHITECTURES):
        kind = "an encoder-decoder" if getattr(config, "is_encoder_decoder", False) else f"a {', '.join(names)}"
        raise ConfigError(f"{where} is {kind} model; GGUF export supports decoder-only "
                          f"{', '.join(SUPPORTED_ARCHITECTURES)} models")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            raise ConfigError(f"{where}: GGUF export does not write {flag.replace('_', ' ')}es (config {flag}=true)")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ConfigError(f"{where}: llama.cpp's llama architecture uses SiLU, this model {config.hidden_act}")


def head_dim(config: Any) -> int:
    """Dimensions per attention head (configs may state it; else hidden size / heads)."""
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def _rope(config: Any) -> tuple[float, dict[str, Any]]:
    """(RoPE base, scaling parameters) from a transformers 4 (rope_theta, rope_scaling) or 5 (rope_parameters) config."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    theta = float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    params.setdefault("rope_type", params.get("type", "default"))
    return theta, params


def llama3_rope_factors(config: Any) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's RoPE scaling (llama.cpp's ``rope_freqs.weight``), shape (head_dim/2,).

    High frequencies (wavelength under original context / high_freq_factor) are kept, low ones divided
    by ``factor``, and those between interpolated smoothly, as transformers' "llama3" rope type does.
    """
    theta, params = _rope(config)
    dim = head_dim(config)
    factor, low, high = params["factor"], params.get("low_freq_factor", 1.0), params.get("high_freq_factor", 4.0)
    original = params.get("original_max_position_embeddings", 8192)
    divisors = []
    for freq in 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim):
        wavelength = 2 * math.pi / freq
        if wavelength < original / high:
            divisors.append(1.0)
        elif wavelength > original / low:
            divisors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            divisors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(divisors, dtype=np.float32)


def write_hyperparameters(writer: Any, config: Any, *, where: str) -> bool:
    """Add the llama architecture's keys to a ``gguf.GGUFWriter``; True when a ``rope_freqs`` tensor is needed."""
    import gguf

    theta, rope = _rope(config)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    if head_dim(config) != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    kind = rope["rope_type"]
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind not in ("default", "llama3"):
        raise ConfigError(f"{where}: GGUF export writes default, linear and llama3 RoPE, not {kind!r} scaling")
    return kind == "llama3"


def _rope_interleave(weight: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a q/k projection reordered from transformers' half-split RoPE to llama.cpp's adjacent pairs.

    weight: (heads * head_dim, hidden). Per head, rows [x_0..x_{d/2-1}, y_0..y_{d/2-1}] become
    [x_0, y_0, x_1, y_1, ...]: (heads, 2, d/2, hidden) -> (heads, d/2, 2, hidden).
    """
    rows, cols = weight.shape
    return weight.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def gguf_name(name: str) -> str:
    """The GGUF tensor name of a transformers parameter; ConfigError for one llama.cpp has no place for."""
    for pattern, target in _NAMES.items():
        match = re.fullmatch(pattern, name)
        if match:
            return target.format(*match.groups())
    raise ConfigError(f"GGUF export has no llama.cpp tensor for parameter {name!r}")


def llama_tensors(state: dict[str, Any], config: Any) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) of every weight, q/k permuted for llama.cpp's RoPE; no output.weight when tied."""
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for name, tensor in state.items():
        if "rotary_emb" in name or (tied and name == "lm_head.weight"):
            continue
        array = tensor.detach().float().cpu().numpy()
        target = gguf_name(name)
        if target.endswith("attn_q.weight"):
            array = _rope_interleave(array, heads)
        elif target.endswith("attn_k.weight"):
            array = _rope_interleave(array, kv_heads)
        yield target, array


def stored(array: np.ndarray, quantization: str, *, name: str = "") -> tuple[np.ndarray, Any]:
    """(data, gguf.GGMLQuantizationType) of one tensor at ``quantization``: vectors float32, matrices as asked.

    q8_0 falls back to float16 for rows that are not a multiple of 32, and for the token embedding: small models
    tie it to the output layer, and 8-bit logits of a fine-tuned SmolLM2-135M changed 11 of 20 greedy summaries
    (ROUGE-L -5.2) where a float16 embedding changed 7 (-0.7), for 27 MB more (tests/slow/test_gguf_llama_cpp.py).
    """
    import gguf

    kind = gguf.GGMLQuantizationType[QUANTIZATION_TYPES[quantization][0]]
    if array.ndim < 2 or kind == gguf.GGMLQuantizationType.F32:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    if kind == gguf.GGMLQuantizationType.Q8_0 and (array.shape[-1] % Q8_BLOCK or name in KEPT_F16_AT_Q8):
        return array.astype(np.float16), gguf.GGMLQuantizationType.F16
    if kind == gguf.GGMLQuantizationType.F16:
        return array.astype(np.float16), gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(array, kind), kind


def write_tensors(writer: Any, model: Any, *, quantization: str, rope_freqs: bool) -> None:
    """Add every weight of a Llama-architecture model to a ``gguf.GGUFWriter`` at ``quantization``."""
    for name, array in llama_tensors(model.state_dict(), model.config):
        data, kind = stored(array, quantization, name=name)
        writer.add_tensor(name, data, raw_dtype=kind)
    if rope_freqs:
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(model.config))


__all__ = ["QUANTIZATION_TYPES", "SUPPORTED_ARCHITECTURES", "check_architecture", "gguf_name", "head_dim",
           "llama3_rope_factors", "llama_tensors", "stored", "write_hyperparameters", "write_tensors"]
