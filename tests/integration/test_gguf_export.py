"""GGUF export (``texttune export --format gguf``) of tiny Llama models, read back three ways.

1. gguf's own ``GGUFReader``: hyperparameters, tokenizer keys, chat template, prompt layout, tensor types.
2. transformers' GGUF loader (``from_pretrained(dir, gguf_file=...)``, how texttune itself loads GGUF):
   the same logits as the source model (1e-4 at f32, 1e-2 at f16) and the same token ids for 100 strings.
3. llama.cpp itself (llama-cpp-python, the ``gguf`` extra, installed in CI): the same token ids and
   logits computed by llama.cpp's own kernels, which checks the tensor layout (q/k RoPE permutation)
   independently of transformers' reading of it.

The models are the sharpened tiny models of the CTranslate2 tests (weights with std 0.3), so logits
depend on every weight and a wrong layout cannot hide under near-uniform outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from texttune.errors import ConfigError
from texttune.inference import gguf_export, gguf_tensors
from ct2_models import sharpen
from run_files import assert_user_error
from tiny_models import corpus_texts

Cli = Callable[..., tuple[int, str, str]]
PREFIX = "Summarize:"


def _saved(kind: str, tiny: Path, work: Path, **options: Any) -> Path:
    from texttune.api import Summarization

    sharp = sharpen(tiny, work / f"{kind}-sharp", decoder_only=True)
    return Summarization(backbone=str(sharp), options=options).save(work / f"{kind}-model")


@pytest.fixture(scope="module")
def llama_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain Llama (BOS added, no chat template), fine-tuned layout ``Summarize:\\n\\n{input}\\n\\nResponse:``."""
    return _saved("llama", tiny_model_dir("llama"), tmp_path_factory.mktemp("gguf-llama"), prefix=PREFIX)


@pytest.fixture(scope="module")
def random_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama as built (transformers' init, std 0.02: logits near zero)."""
    from texttune.api import Summarization

    return Summarization(backbone=str(tiny_model_dir("llama"))).save(tmp_path_factory.mktemp("gguf-random") / "model")


@pytest.fixture(scope="module")
def chat_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-like ChatML Llama: the layout is the chat template around the input."""
    return _saved("llama-chat", tiny_model_dir("llama-chat"), tmp_path_factory.mktemp("gguf-chat"))


def strings() -> list[str]:
    """100 texts: corpus lines, special tokens inside text, digits, accents, emoji, odd whitespace."""
    corpus = [t for t in corpus_texts() if t.strip()][:70]
    odd = ["", " ", "  two  spaces", "\ttab\nnewline\n\n", "1234567890 3.14159", "héllo wörld ça va", "日本語のテキスト",
           "emoji 🙂👍", "<s> bos inside", "text </s> eos", "<|im_start|>user\nhi<|im_end|>", "<unk>", "don't won't I'm",
           "CAPS and MiXeD", "a" * 50, "x-y_z/w\\v", "  leading", "trailing  ", "\u00a0nbsp", "<|im_end|><|im_end|>",
           "<s></s>", "Response:", "Summarize:\n\ntext", "e.g. i.e. etc.", "$100 €5 £3", "a\r\nb", "'quoted' \"double\"",
           "(paren) [bracket] {brace}", "tab\t\ttabs", "end."]
    return (corpus + odd)[:100]


def _reader(path: Path) -> Any:
    from gguf import GGUFReader

    return GGUFReader(path)


def _field(reader: Any, key: str) -> Any:
    """A scalar or string key of a GGUFReader (arrays of strings as lists)."""
    field = reader.fields[key]
    values = field.contents()
    return values


def _logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _source(model_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(model_dir)


def _from_gguf(out: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out, gguf_file=gguf_export.GGUF_FILE, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(out, gguf_file=gguf_export.GGUF_FILE)


def test_metadata_tokenizer_and_layout_are_in_the_file(llama_dir: Path, tmp_path: Path) -> None:
    out = gguf_export.export(llama_dir, output=tmp_path / "exp", quantization="f32")
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "README.md", "model.gguf", "texttune.json"]
    source, tokenizer = _source(llama_dir)
    config, reader = source.config, _reader(out / "model.gguf")
    expected = {
        "general.architecture": "llama", "llama.context_length": config.max_position_embeddings,
        "llama.block_count": config.num_hidden_layers, "llama.embedding_length": config.hidden_size,
        "llama.feed_forward_length": config.intermediate_size, "llama.attention.head_count": config.num_attention_heads,
        "llama.attention.head_count_kv": config.num_key_value_heads, "llama.rope.freq_base": 10000.0,
        "llama.rope.dimension_count": 16, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": True, "texttune.task": "summarization",
        "texttune.prompt_template": f"{PREFIX}\n\n{{input}}\n\nResponse:",
    }
    assert {key: _field(reader, key) for key in expected} == expected
    assert _field(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(config.rms_norm_eps)
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert tokens == [tokenizer.convert_ids_to_tokens(i) for i in range(config.vocab_size)]
    assert _field(reader, "tokenizer.ggml.token_type")[:4] == [3, 3, 3, 1]  # special (matched whole in text), then normal
    assert len(_field(reader, "tokenizer.ggml.merges")) == len(json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"])
    # no chat template in the tokenizer: the layout becomes one, so llama-server's chat route frames inputs the same way
    from jinja2 import Template

    rendered = Template(_field(reader, "tokenizer.chat_template")).render(messages=[{"role": "user", "content": "doc"}])
    assert rendered == f"{PREFIX}\n\ndoc\n\nResponse:"
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    assert names["blk.0.attn_q.weight"] == "F32" and names["output.weight"] == "F32" and len(names) == 2 + 9 * 2 + 1


@pytest.mark.parametrize(("quantization", "matrix_type", "tolerance"),
                         [("f32", "F32", 1e-4), ("f16", "F16", 1e-2), ("bf16", "BF16", 0.1), ("q8_0", "Q8_0", 0.1)])
def test_transformers_reads_back_the_same_model(random_dir: Path, llama_dir: Path, tmp_path: Path, quantization: str,
                                                matrix_type: str, tolerance: float) -> None:
    """Absolute tolerance on the tiny random model (its own init); relative to the largest logit on the sharpened one
    (logits up to ~7, where float16 rounding alone moves them by ~0.02). bf16 and q8_0 are lossy: 10% at most, 1%
    on average."""
    for model_dir, relative in ((random_dir, False), (llama_dir, True)):
        out = gguf_export.export(model_dir, output=tmp_path / f"{quantization}-{relative}", quantization=quantization)
        types = {t.name: t.tensor_type.name for t in _reader(out / "model.gguf").tensors}
        assert types["blk.1.ffn_down.weight"] == matrix_type and types["blk.1.ffn_norm.weight"] == "F32"
        (source, tokenizer), (loaded, _) = _source(model_dir), _from_gguf(out)
        ids = tokenizer("the cat sat on the mat and a library for parsing json files")["input_ids"]
        reference, got = _logits(source, ids), _logits(loaded, ids)
        scale = float(np.abs(reference).max()) if relative else 1.0
        assert not relative or scale > 1.0  # sharpened: logits far from uniform, so the comparison means something
        assert float(np.abs(got - reference).max()) <= tolerance * scale, (model_dir.name, quantization)
        if quantization in ("bf16", "q8_0"):
            assert float(np.abs(got - reference).mean()) <= 0.01 * scale
        if relative:
            assert (got.argmax(-1) == reference.argmax(-1)).mean() >= (1.0 if quantization in ("f32", "f16") else 0.9)


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_token_ids_special_ids_and_chat_template_survive(kind: str, llama_dir: Path, chat_dir: Path, tmp_path: Path) -> None:
    model_dir = llama_dir if kind == "llama" else chat_dir
    out = gguf_export.export(model_dir, output=tmp_path / "exp", quantization="f16")
    (_, tokenizer), (_, loaded) = _source(model_dir), _from_gguf(out)
    texts = strings()
    assert len(texts) == 100
    assert [loaded(t)["input_ids"] for t in texts] == [tokenizer(t)["input_ids"] for t in texts]
    for name in ("bos", "eos", "unk", "pad"):
        assert getattr(loaded, f"{name}_token_id") == getattr(tokenizer, f"{name}_token_id"), name
    assert loaded.chat_template == (tokenizer.chat_template if kind == "llama-chat" else loaded.chat_template)
    if kind == "llama-chat":
        messages = [{"role": "user", "content": "hello there"}]
        assert loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_modelfile_and_readme_carry_the_prompt_layout(llama_dir: Path, chat_dir: Path, tmp_path: Path) -> None:
    plain = gguf_export.export(llama_dir, output=tmp_path / "Plain Model", quantization="q8_0")
    text = (plain / "Modelfile").read_text()
    assert text.startswith("FROM ./model.gguf\n")
    assert f'TEMPLATE """{PREFIX}\n\n{{{{ .Prompt }}}}\n\nResponse:"""' in text
    assert 'PARAMETER stop "</s>"' in text and "PARAMETER temperature 0" in text and "PARAMETER num_predict 128" in text
    readme = (plain / "README.md").read_text()
    assert "ollama create plain-model -f Modelfile" in readme and "llama-server -m model.gguf" in readme
    assert json.loads(readme.split("-d '")[1].split("'\n")[0])["prompt"] == f"{PREFIX}\n\nYour input text here.\n\nResponse:"
    chat = gguf_export.export(chat_dir, output=tmp_path / "chat", quantization="q8_0")
    text = (chat / "Modelfile").read_text()
    assert ('TEMPLATE """<|im_start|>user\nSummarize the following text.\n\n{{ .Prompt }}<|im_end|>\n'
            '<|im_start|>assistant\n"""') in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    meta = json.loads((chat / "texttune.json").read_text())
    assert meta["backend"] == "gguf" and meta["gguf"]["quantization"] == "q8_0" and meta["task"] == "summarization"


def test_cli_export_and_one_line_refusals(cli: Cli, llama_dir: Path, tiny_model_dir: Callable[[str], Path],
                                          tmp_path: Path) -> None:
    out = tmp_path / "exp"
    code, stdout, err = cli("export", llama_dir, "--format", "gguf", "--quantization", "q8_0", "--output", out)
    assert code == 0, err
    assert stdout.strip() == str(out) and (out / "model.gguf").is_file()
    code, _, err = cli("export", llama_dir, "--format", "gguf", "--output", out)  # an earlier export is replaced
    assert code == 0, err
    assert _field(_reader(out / "model.gguf"), "general.file_type") == 1  # the default, f16
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"input": "a package"}\n', encoding="utf-8")
    code, _, err = cli("predict", out, "--input-file", inputs, "--output-file", tmp_path / "p.jsonl")
    assert_user_error(code, err, "is a GGUF export for llama.cpp and Ollama", str(llama_dir.resolve()))
    from texttune.api import Summarization, TextClassification

    t5 = Summarization(backbone=str(tiny_model_dir("t5"))).save(tmp_path / "t5")
    code, _, err = cli("export", t5, "--format", "gguf", "--output", tmp_path / "t5-out")
    assert_user_error(code, err, "encoder-decoder", "LlamaForCausalLM", "MistralForCausalLM")
    bert = TextClassification(backbone=str(tiny_model_dir("bert")), options={"label_list": ["a", "b"]}).save(tmp_path / "bert")
    code, _, err = cli("export", bert, "--format", "gguf", "--output", tmp_path / "bert-out")
    assert_user_error(code, err, "text-classification")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, _, err = cli("export", llama_dir, "--format", "gguf", "--output", taken)
    assert_user_error(code, err, "exists and is not a GGUF export")
    code, _, err = cli("export", llama_dir, "--format", "gguf", "--quantization", "q4_0", "--output", tmp_path / "q4")
    assert_user_error(code, err, "q4_0", "'bf16', 'f16', 'f32', 'q8_0'")
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "t5-out").exists() and not (tmp_path / "bert-out").exists() and not (tmp_path / "q4").exists()


def test_a_tokenizer_gguf_cannot_represent_is_refused(llama_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = shutil.copytree(llama_dir, tmp_path / "nfkc")
    spec = json.loads((broken / "tokenizer.json").read_text())
    spec["normalizer"] = {"type": "NFKC"}
    (broken / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="normalizer") as caught:
        gguf_export.export(broken, output=tmp_path / "out", quantization="f16")
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_a_failure_half_way_leaves_nothing(llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = gguf_export.export(llama_dir, output=tmp_path / "exp", quantization="f32")
    before = (earlier / "model.gguf").read_bytes()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf_export, "write_tensors", fail)
    with pytest.raises(OSError, match="disk full"):
        gguf_export.export(llama_dir, output=tmp_path / "exp", quantization="q8_0")
    with pytest.raises(OSError, match="disk full"):
        gguf_export.export(llama_dir, output=tmp_path / "new", quantization="q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary or half-written directory
    assert (earlier / "model.gguf").read_bytes() == before


def test_llama3_rope_factors_follow_transformers() -> None:
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = LlamaConfig(hidden_size=64, num_attention_heads=2, rope_parameters={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192})
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
    plain = 1.0 / 500000.0 ** (torch.arange(0, 32, 2, dtype=torch.float64) / 32)
    expected = (plain / scaled.double()).numpy()
    assert np.allclose(gguf_tensors.llama3_rope_factors(config), expected, rtol=1e-5)


# --------------------------------------------------------------------------- llama.cpp itself


@pytest.mark.parametrize("kind", ["llama", "llama-chat"])
def test_llama_cpp_tokenizes_and_computes_as_transformers(llama_cpp: ModuleType, kind: str, llama_dir: Path, chat_dir: Path,
                                                          tmp_path: Path) -> None:
    model_dir = llama_dir if kind == "llama" else chat_dir
    out = gguf_export.export(model_dir, output=tmp_path / "exp", quantization="f32")
    llm = llama_cpp.Llama(str(out / "model.gguf"), n_ctx=256, logits_all=True, verbose=False, n_threads=1,
                          type_k=0, type_v=0)  # a float32 KV cache (GGML_TYPE_F32), as transformers computes
    source, tokenizer = _source(model_dir)
    adds_bos = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    for text in strings():
        assert llm.tokenize(text.encode(), add_bos=adds_bos, special=True) == tokenizer(text)["input_ids"], text
    ids = tokenizer("the cat sat on the mat and a library for parsing json files")["input_ids"]
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)])  # (tokens, vocab)
    reference = _logits(source, ids)
    assert float(np.abs(reference).max()) > 1.0
    assert float(np.abs(got - reference).max()) <= 1e-4  # measured: ~1e-5 on logits up to ~10
    assert (got.argmax(-1) == reference.argmax(-1)).all()


#: Split expressions as real tokenizer.json files spell them (llama.cpp quotes them in llama-vocab.cpp).
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
           r"|\s+(?!\S)|\s+")
_TEKKEN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
           r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _variant_model(pre: str, work: Path) -> Path:
    """A saved texttune model whose byte-level BPE splits text as SmolLM, Llama 3 or Mistral's Tekken tokenizer does,
    trained on the tiny corpus (BOS added, like Llama 3)."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from texttune.api import Summarization

    def split(pattern: str) -> list[Any]:
        return [pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]

    steps = {"smollm": [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)],
             "llama-bpe": split(_LLAMA3), "tekken": split(_TEKKEN)}[pre]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus_texts(), trainer=trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=256, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(work / "hf")
    fast.save_pretrained(work / "hf")
    return Summarization(backbone=str(work / "hf")).save(work / "model")


@pytest.mark.parametrize("pre", ["smollm", "llama-bpe", "tekken"])
def test_llama_cpp_splits_text_as_each_known_pre_tokenizer(llama_cpp: ModuleType, pre: str, tmp_path: Path) -> None:
    """The pre-tokenizer is recognised by shape and named as llama.cpp expects: llama.cpp then gives the same ids."""
    model_dir = _variant_model(pre, tmp_path)
    out = gguf_export.export(model_dir, output=tmp_path / "exp", quantization="f32")
    reader = _reader(out / "model.gguf")
    assert _field(reader, "tokenizer.ggml.pre") == pre
    assert "output.weight" not in {t.name for t in reader.tensors}  # tied embeddings: llama.cpp reuses token_embd
    _, tokenizer = _source(model_dir)
    llm = llama_cpp.Llama(str(out / "model.gguf"), n_ctx=64, verbose=False, n_threads=1)
    for text in strings():
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == tokenizer(text)["input_ids"], text


def test_lora_adapters_saved_apart_are_merged_first(tiny_model_dir: Callable[[str], Path], tmp_path: Path) -> None:
    """A --no-merge-adapters model exports as backbone + adapters merged: the logits of texttune.load's merged model."""
    import texttune
    from texttune.api import Summarization

    data = Path(__file__).resolve().parents[1] / "data" / "summarization.jsonl"
    task = Summarization(backbone=str(tiny_model_dir("llama")), options={
        "peft": "lora", "lora_rank": 4, "merge_adapters": False, "learning_rate": 0.05, "baselines": False,
        "progress_bar": False, "tensorboard": False, "max_eval_samples": 2, "samples_per_eval": 0,
        "max_source_length": 48, "max_target_length": 8})
    result = task.fit(train=data, output_dir=tmp_path / "run", max_steps=3, batch_size=4)
    assert json.loads((result.model_dir / "texttune.json").read_text())["peft"]["merged"] is False
    out = gguf_export.export(tmp_path / "run", output=tmp_path / "exp", quantization="f32")
    merged = texttune.load(tmp_path / "run")._backbone.model
    (base, tokenizer), (loaded, _) = _source(tiny_model_dir("llama")), _from_gguf(out)
    ids = tokenizer("the cat sat on the mat and a library for parsing json files")["input_ids"]
    reference = _logits(merged, ids)
    assert float(np.abs(_logits(base, ids) - reference).max()) > 1e-3  # the adapters changed the model
    assert float(np.abs(_logits(loaded, ids) - reference).max()) <= 1e-4
