"""Generation backends: what turns a batch of token ids into the completions' token ids.

:func:`texttune.inference.generation.generate_texts` owns everything around the
model call (length sorting, batching, restoring input order, decoding), so every
backend produces the same text for the same token ids. A backend only runs one
batch: :class:`TransformersBackend` pads it and calls ``model.generate``;
``texttune.inference.ct2_backend.CTranslate2Model`` hands the tokens to
CTranslate2. Tasks pass whichever one their model is; a plain transformers model
is wrapped here, so the tasks do not know which backend they run on.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

from texttune.config import GenerationConfig
from texttune.errors import ConfigError
from texttune.inference.options import TRANSFORMERS

#: Waits for one submitted batch and returns each completion's token ids, in batch order.
BatchResult = Callable[[], list[list[int]]]
#: Starts one batch of inputs (token ids). A backend with several workers (CTranslate2) runs batches
#: side by side until their results are asked for; transformers runs each batch when it is submitted.
BatchGenerate = Callable[[Sequence[list[int]]], BatchResult]
#: Told each new token of each row as it is generated: (row in the batch, token id) -> whether that row is done
#: (a stop sequence, a caller gone). Runs on the model thread, between decoding steps.
OnToken = Callable[[int, int], bool]
#: Generates one batch to its end, reporting every token through ``OnToken``.
TokenBatch = Callable[[Sequence[list[int]], OnToken], None]


class GenerationBackend(abc.ABC):
    """An inference engine for generation. ``name`` is what ``--backend`` calls it."""

    name: ClassVar[str]

    @abc.abstractmethod
    def generation(self, tokenizer: Any, *, decoder_only: bool, options: GenerationConfig,
                   forced_bos_token_id: int | None = None) -> AbstractContextManager[BatchGenerate]:
        """A context in which the returned function generates batches with ``options``.

        ``forced_bos_token_id`` (encoder-decoder models): the token every output starts with, instead of
        the generation config's (a many-to-many translation model's target language).

        A context rather than a plain call so a backend can set up once per
        ``generate_texts`` call (option mapping, eval mode) and undo it after.
        """

    @abc.abstractmethod
    def token_generation(self, tokenizer: Any, *, decoder_only: bool, options: GenerationConfig,
                         forced_bos_token_id: int | None = None, seed: int | None = None) -> AbstractContextManager[TokenBatch]:
        """As :meth:`generation`, for token streaming: the returned function runs one batch and calls ``on_token`` for
        each new token; a row whose ``on_token`` says done stops (the batch stops when every row is done).
        ``seed``: seeds sampling for this batch. Greedy or sampling only (no beams: a beam's tokens are not final)."""

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/model`` says about the backend."""
        return {"name": self.name}


def generation_kwargs(options: GenerationConfig, *, pad_token_id: int, eos_token_id: int | list[int] | None,
                      forced_bos_token_id: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``; only options that apply are passed.

    ``forced_bos_token_id`` is passed only when given: the model's generation config keeps its own otherwise.

    ``max_new_tokens`` must be resolved by the caller: transformers falls back to
    ``max_length=20`` otherwise, the silent truncation this library exists to avoid.
    """
    if options.max_new_tokens is None:
        raise ValueError("max_new_tokens must be resolved before generation")
    kwargs: dict[str, Any] = {
        "max_new_tokens": options.max_new_tokens,
        "num_beams": options.num_beams,
        "do_sample": options.do_sample,
        "pad_token_id": pad_token_id,
        "use_cache": True,
    }
    if eos_token_id is not None:
        kwargs["eos_token_id"] = eos_token_id
    if forced_bos_token_id is not None:
        kwargs["forced_bos_token_id"] = forced_bos_token_id
    if options.min_new_tokens:
        kwargs["min_new_tokens"] = options.min_new_tokens
    if options.do_sample:
        kwargs["temperature"] = options.temperature
        kwargs["top_k"] = options.top_k if options.top_k is not None else 0
        kwargs["top_p"] = options.top_p if options.top_p is not None else 1.0
    else:  # neutralise sampling defaults some checkpoints ship in generation_config.json
        kwargs.update(temperature=None, top_k=None, top_p=None)
    if options.no_repeat_ngram_size:
        kwargs["no_repeat_ngram_size"] = options.no_repeat_ngram_size
    if options.num_beams > 1 and options.length_penalty is not None:
        kwargs["length_penalty"] = options.length_penalty
    if options.repetition_penalty is not None:
        kwargs["repetition_penalty"] = options.repetition_penalty
    return kwargs


def special_ids(tokenizer: Any, generation_config: Any) -> tuple[int, int | list[int] | None]:
    """(pad id, end-of-sequence id or ids): the model's generation config first, then the tokenizer's."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = getattr(generation_config, "eos_token_id", None)
    return pad_id, eos if eos is not None else tokenizer.eos_token_id


def pad_ids(batch: Sequence[list[int]], pad_id: int, *, left: bool) -> tuple[Any, Any]:
    """Token ids and attention mask tensors, padded on the left (decoder-only prompts) or right."""
    import torch

    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        if left:
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        else:
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
    return ids, mask  # (B, T) each


class TransformersBackend(GenerationBackend):
    """``model.generate`` on padded batches: decoder-only prompts left-padded so completions start together."""

    name: ClassVar[str] = "transformers"

    def __init__(self, model: Any) -> None:
        self.model = model

    @contextmanager
    def generation(self, tokenizer: Any, *, decoder_only: bool, options: GenerationConfig,
                   forced_bos_token_id: int | None = None) -> Iterator[BatchGenerate]:
        import torch

        model = self.model
        pad_id, eos = special_ids(tokenizer, model.generation_config)
        kwargs = generation_kwargs(options, pad_token_id=pad_id, eos_token_id=eos, forced_bos_token_id=forced_bos_token_id)
        device = next(model.parameters()).device

        def generate(batch: Sequence[list[int]]) -> BatchResult:
            ids, mask = pad_ids(batch, pad_id, left=decoder_only)
            with torch.inference_mode():
                generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
            if decoder_only:
                generated = generated[:, ids.shape[1]:]  # (B, new tokens): drop the prompt
            completions = generated.tolist()
            return lambda: completions

        was_training = model.training
        model.eval()
        try:
            yield generate
        finally:
            model.train(was_training)


    @contextmanager
    def token_generation(self, tokenizer: Any, *, decoder_only: bool, options: GenerationConfig,
                         forced_bos_token_id: int | None = None, seed: int | None = None) -> Iterator[TokenBatch]:
        import torch

        model = self.model
        pad_id, eos = special_ids(tokenizer, model.generation_config)
        kwargs = generation_kwargs(options, pad_token_id=pad_id, eos_token_id=eos, forced_bos_token_id=forced_bos_token_id)
        device = next(model.parameters()).device

        def run(batch: Sequence[list[int]], on_token: OnToken) -> None:
            ids, mask = pad_ids(batch, pad_id, left=decoder_only)
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                               stopping_criteria=_row_stopper(on_token, len(batch)), **kwargs)

        was_training = model.training
        model.eval()
        try:
            yield run
        finally:
            model.train(was_training)


def _row_stopper(on_token: OnToken, rows: int) -> Any:
    """A transformers stopping criterion that reports each row's newest token and stops the rows ``on_token`` ends.

    transformers calls it after every decoding step with the ids so far, (B, T): the last column is the step's
    tokens. The (B,) answer marks rows finished; generate pads them from then on and stops when all are done.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class RowStopper(StoppingCriteria):
        def __init__(self) -> None:
            self.done = [False] * rows

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                if not self.done[row]:
                    self.done[row] = bool(on_token(row, int(token)))
            return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([RowStopper()])


def backend_for(model: Any) -> GenerationBackend:
    """``model`` itself when it is a backend, else a transformers model wrapped in one."""
    return model if isinstance(model, GenerationBackend) else TransformersBackend(model)


def backend_name(model: Any) -> str:
    """"transformers", or the name of the :class:`GenerationBackend` ``model`` is."""
    return model.name if isinstance(model, GenerationBackend) else TRANSFORMERS


def refuse_backend(model: Any, verb: str) -> None:
    """ConfigError when ``model`` is not a transformers model: training, saving, perplexity need one."""
    name = backend_name(model)
    if name != TRANSFORMERS:
        raise ConfigError(f"a model loaded with the {name} backend cannot be {verb}; load its model directory with the "
                          "transformers backend (the default) for that")
