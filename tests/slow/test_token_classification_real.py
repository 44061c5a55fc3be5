"""Slow tier: NER on real CoNLL-2003 sentences with the offline MiniLM encoder.

Fine-tunes ``minilm`` for 80 steps of 16 sentences on 600 training sentences and
checks that entity F1 on 200 validation sentences rises far above the untrained
head's, that the saved model reloads, and that it finds entities in raw text.
Skipped when ../shared/datasets is absent. About 2-3 minutes on 2 busy CPU cores.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ner" / "conll2003"

pytestmark = pytest.mark.slow


def _first(src: Path, dst: Path, n: int) -> Path:
    with src.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in itertools.islice(handle, n)]
    dst.write_text("".join(json.dumps({"tokens": r["tokens"], "ner_tags": r["ner_tags"]}) + "\n" for r in rows), encoding="utf-8")
    return dst


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not beside the checkout")
def test_minilm_ner_beats_the_untrained_head(tmp_path: Path, one_torch_thread: None) -> None:
    from texttune import TokenClassification, load

    train = _first(SHARED / "train.jsonl", tmp_path / "train.jsonl", 600)
    val = _first(SHARED / "validation.jsonl", tmp_path / "val.jsonl", 200)
    tagger = TokenClassification(backbone="minilm", options={"learning_rate": 5e-4, "warmup_ratio": 0.1, "progress_bar": False})
    result = tagger.fit(train=train, validation=val, max_steps=80, batch_size=16, output_dir=tmp_path / "run")
    before, after = result.metrics["zero_shot"]["f1"], result.metrics["fine_tuned"]["f1"]
    assert after > max(40.0, before + 30.0), (before, after)
    assert result.metrics["fine_tuned"]["accuracy"] > result.metrics["baselines"]["majority_tag"]["accuracy"]
    again = load(tmp_path / "run")
    text = "Helmut Kohl met Boris Yeltsin in Moscow."
    entities = again.predict([text])[0]["entities"]
    assert {e["entity_group"] for e in entities} & {"PER", "LOC"}
    assert all(text[e["start"]:e["end"]].strip() for e in entities)  # offsets point into the text
