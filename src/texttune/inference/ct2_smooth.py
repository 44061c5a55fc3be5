"""SmoothQuant for int8 conversions of Llama-style decoders (SmolLM2, Llama, Mistral).

Why: on CPU, CTranslate2's int8 quantizes activations as well as weights, and a
few activation channels of these models are tens of times larger than the rest,
so rounding them costs accuracy. Measured on zero-shot SmolLM2-135M summaries of
256 Debian descriptions (ROUGE-L, transformers float32 = 15.07): plain int8 13.27;
smoothed as here 15.14. Rounding only the weights cost 0.16 on 64 rows, so the loss
is in the activations. Fine-tuned demo model: 33.83 float32, 32.29 plain int8, 33.43
smoothed (and 34.79 vs 34.06 on 256 other rows). Table and alphas: docs/inference.md.

SmoothQuant (Xiao et al. 2023) moves that range from the activations into the
weights, which int8 rounds per output channel: with ``s_j = max|X_j|^a / max|W_j|^(1-a)``
the layer computes ``(X / s) (s W)``, the same function in exact arithmetic. ``X / s``
is folded into the RMSNorm before attention and the MLP, and into the up projection
before the down projection. ``max|X_j|`` comes from running the model on
``CALIBRATION_ROWS`` texttune demo rows (Debian descriptions, bundled with the
package) in the model's own prompt format.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from texttune.tasks.prompting import PromptFormat

#: Decoder families whose CTranslate2 spec this module knows (fused QKV, gated MLP, RMSNorm).
SMOOTHED_MODEL_TYPES = frozenset({"llama", "mistral"})
ALPHA = 0.85  # tried 0.5, 0.7, 0.85, 1.0 on the fine-tuned demo model (see docs/inference.md)
CALIBRATION_ROWS = 32
#: Part of the conversion cache key: a new recipe must not reuse old conversions.
RECIPE = f"sq{ALPHA}h"


def applies(model_type: str, quantization: str) -> bool:
    """Whether an int8 conversion of this model type is smoothed."""
    return quantization.startswith("int8") and model_type in SMOOTHED_MODEL_TYPES


def calibration_ids(tokenizer: Any, metadata: dict[str, Any]) -> list[list[int]]:
    """Token ids of the calibration rows, as the saved task would show them to the model."""
    path = Path(str(resources.files("texttune") / "demo_data" / "debian" / "train.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:CALIBRATION_ROWS]]
    state = metadata.get("task_state") or {}
    if "prefix" not in state:  # a task without a prompt format (causal-lm) reads plain text
        return [tokenizer(f"{r['document']} {r['summary']}")["input_ids"] for r in rows]
    fmt = PromptFormat(tokenizer=tokenizer, family="causal", prefix=state.get("prefix") or "")
    return [fmt.encode(r["document"], r["summary"], max_source_length=state.get("max_source_length", 512),
                       max_target_length=state.get("max_target_length", 128)).input_ids for r in rows]


def activation_maxima(model: Any, batches: list[list[int]]) -> dict[str, Any]:
    """Per-channel max |input| of each layer's attention, MLP and down projections over ``batches``."""
    import torch

    maxima: dict[str, Any] = {}

    def record(name: str) -> Any:
        def hook(module: Any, inputs: tuple[Any, ...]) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0).float()
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x
        return hook

    handles = [model.get_output_embeddings().register_forward_pre_hook(record("head"))]
    for i, layer in enumerate(model.model.layers):
        handles += [layer.self_attn.q_proj.register_forward_pre_hook(record(f"{i}.attention")),
                    layer.mlp.gate_proj.register_forward_pre_hook(record(f"{i}.mlp")),
                    layer.mlp.down_proj.register_forward_pre_hook(record(f"{i}.down"))]
    try:
        with torch.inference_mode():
            for ids in batches:
                model(torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    return maxima


def _scales(activation: Any, weights: list[Any]) -> Any:
    import torch

    weight_max = torch.cat([w.float() for w in weights], 0).abs().amax(0).clamp(min=1e-5)
    return (activation.pow(ALPHA) / weight_max.pow(1 - ALPHA)).clamp(min=1e-5)


def smooth_spec(spec: Any, maxima: dict[str, Any]) -> None:
    """Rescale a Llama-style CTranslate2 spec in place (same function, int8-friendlier activations)."""
    import torch

    for i, layer in enumerate(spec.decoder.layer):
        attention, ffn = layer.self_attention, layer.ffn
        for norm, linears, key in ((attention.layer_norm, [attention.linear[0]], "attention"),
                                   (ffn.layer_norm, [ffn.linear_0, ffn.linear_0_noact], "mlp")):
            s = _scales(maxima[f"{i}.{key}"], [torch.as_tensor(lin.weight) for lin in linears])
            norm.gamma = (torch.as_tensor(norm.gamma).float() / s).to(torch.as_tensor(norm.gamma).dtype)
            for lin in linears:
                weight = torch.as_tensor(lin.weight)
                lin.weight = (weight.float() * s).to(weight.dtype)
        up, down = torch.as_tensor(ffn.linear_0_noact.weight), torch.as_tensor(ffn.linear_1.weight)
        s = _scales(maxima[f"{i}.down"], [down])
        ffn.linear_0_noact.weight = (up.float() / s[:, None]).to(up.dtype)  # the down projection's input channels
        if ffn.linear_0_noact.has_bias():
            bias = torch.as_tensor(ffn.linear_0_noact.bias)
            ffn.linear_0_noact.bias = (bias.float() / s).to(bias.dtype)
        ffn.linear_1.weight = (down.float() * s).to(down.dtype)

    # The output projection reads the final norm's output: smooth it the same way. This unties it
    # from the input embeddings (CTranslate2 then stores both), which the lookups do not mind.
    projection = torch.as_tensor(spec.decoder.projection.weight)
    s = _scales(maxima["head"], [projection])
    gamma = torch.as_tensor(spec.decoder.layer_norm.gamma)
    spec.decoder.layer_norm.gamma = (gamma.float() / s).to(gamma.dtype)
    spec.decoder.projection.weight = (projection.float() * s).to(projection.dtype)
