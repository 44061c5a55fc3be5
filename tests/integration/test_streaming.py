"""Token streaming (``inference/streaming.py``) on both backends: the streamed text is the predicted text.

The sharpened tiny models of the CTranslate2 tests stop at different lengths, so rows of one
batch end at different steps; every backend must hand out each row's text in pieces that join
to what ``predict`` returns, stop at a stop string, and end a row whose caller left.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from texttune.api import load
from texttune.inference.streaming import CANCELLED, LENGTH, STOP, RowSink, stream_batch
from ct2_models import TEXTS, build_model_dir, require_ctranslate2

BACKENDS = [{}, {"backend": "ctranslate2", "compute_type": "float32"}]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = build_model_dir(kind, tiny_model_dir(kind), tmp_path_factory.mktemp(f"stream-{kind}"))
        return built[kind]

    return get


def _stream(model: object, texts: list[str], *, stops: tuple[str, ...] = (), sinks: list[RowSink] | None = None,
            **options: object) -> tuple[list[object], list[list[str]]]:
    pieces: list[list[str]] = [[] for _ in texts]
    sinks = sinks or [RowSink(emit=pieces[i].append) for i in range(len(texts))]
    prompts = model.prompts(texts, **options)  # type: ignore[attr-defined]
    return stream_batch(model.backbone.model, prompts, sinks, stops=stops), pieces  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS, ids=["transformers", "ctranslate2"])
@pytest.mark.parametrize("kind", ["llama", "t5", "bart"])
def test_streamed_pieces_join_to_the_predicted_text(kind: str, backend: dict[str, str], model_dir: Callable[[str], Path]) -> None:
    if backend:
        require_ctranslate2()
    model = load(model_dir(kind), **backend)
    expected = model.predict(TEXTS, max_new_tokens=12)
    results, pieces = _stream(model, TEXTS, max_new_tokens=12)
    assert [r.text.strip() for r in results] == expected
    assert ["".join(p) for p in pieces] == [r.text for r in results]
    assert max(len(p) for p in pieces) >= 3  # text arrives while it is generated, not at the end
    for result in results:
        assert result.finish_reason in {STOP, LENGTH} and 1 <= result.completion_tokens <= 12
        assert (result.finish_reason == LENGTH) == (result.completion_tokens == 12) or kind == "bart"
    assert {r.finish_reason for r in results} == {STOP, LENGTH}  # the sharpened models end rows at different steps


@pytest.mark.parametrize("backend", BACKENDS, ids=["transformers", "ctranslate2"])
def test_a_stop_string_cuts_the_row_and_a_cancelled_row_ends(backend: dict[str, str], model_dir: Callable[[str], Path]) -> None:
    if backend:
        require_ctranslate2()
    model = load(model_dir("llama"), **backend)
    whole = max(model.predict(TEXTS, max_new_tokens=12), key=len)
    text = TEXTS[model.predict(TEXTS, max_new_tokens=12).index(whole)]
    stop = whole[len(whole) // 2:len(whole) // 2 + 2]
    (cut,), (pieces,) = _stream(model, [text], stops=(stop,), max_new_tokens=12)
    assert cut.finish_reason == STOP and cut.text.strip() == whole[:whole.index(stop)].strip()
    assert stop not in "".join(pieces)
    seen: list[str] = []
    sink = RowSink(emit=seen.append, cancelled=lambda: len(seen) >= 1)
    (left,), _ = _stream(model, [text], sinks=[sink], max_new_tokens=12)
    assert left.finish_reason == CANCELLED and left.completion_tokens < 12
