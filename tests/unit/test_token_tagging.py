"""Token classification building blocks: label order, label lists, CoNLL files, sub-token alignment.

Why: these are the places where a tagger silently learns the wrong thing (a
label on the wrong sub-token, a B- tag repeated inside a word, a CoNLL line with
a missing tag shifting every later tag), so each is pinned down on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from texttune.config import RunConfig
from texttune.data import load_table
from texttune.data.conll import parse_conll
from texttune.errors import ConfigError, DataError
from texttune.tasks.registry import run_config
from texttune.tasks.token_classification import TokenClassificationOptions, TokenClassificationTask, parse_label_list, sort_labels


def test_labels_sorted_o_first_then_by_type_with_partners() -> None:
    tags = ["I-PER", "O", "B-ORG", "B-PER", "B-LOC", "I-ORG"]
    assert sort_labels(tags) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]  # I-LOC added
    assert sort_labels(["VB", "NN", "DT", "NN"]) == ["DT", "NN", "VB"]
    assert sort_labels(["S-X", "E-X", "B-X", "O"]) == ["O", "B-X", "I-X", "E-X", "S-X"]


def test_label_list_option() -> None:
    assert parse_label_list(" O, B-PER ,I-PER") == ["O", "B-PER", "I-PER"]
    with pytest.raises(ConfigError, match="repeats 'O'"):
        parse_label_list("O,B-PER,O")
    with pytest.raises(ConfigError, match="empty label"):
        parse_label_list("O,,B-PER")
    with pytest.raises(ConfigError, match="'max_length' must be >= 4"):
        run_config("token-classification", {"max_length": 2})


def test_conll_reader(tmp_path: Path) -> None:
    path = tmp_path / "x.iob2"
    path.write_text("-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n",
                    encoding="utf-8")
    table = load_table(path)
    assert table.rows.column_names == ["tokens", "tags", "col2"]
    assert table.rows["tokens"][:] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert table.rows["tags"][:] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert table.rows["col2"][:] == [["NNP", "VBZ"], ["NNP", "NNP"]]
    assert table.locate(1) == f"{path} line 7"
    with pytest.raises(DataError, match=r"x.conll line 3: 3 columns .* but line 1 has 2"):
        parse_conll("a O\nb O\nc d O\n", "x.conll")
    with pytest.raises(DataError, match="no sentences"):
        parse_conll("-DOCSTART- O\n\n", "x.conll")


@pytest.fixture(scope="module")
def bound(tiny_model_dir: Callable[[str], Path]) -> Callable[..., TokenClassificationTask]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("bert"))

    def make(**options: object) -> TokenClassificationTask:
        task = TokenClassificationTask(TokenClassificationOptions(**options))  # type: ignore[arg-type]
        backbone = SimpleNamespace(name="tiny", model_type="bert", family="encoder", tokenizer=tokenizer,
                                   config=SimpleNamespace(max_position_embeddings=512))
        task.bind(backbone, RunConfig(task=task.name))  # type: ignore[arg-type]
        return task

    return make


def _aligned(task: TokenClassificationTask, words: list[str], tags: list[str]) -> list[tuple[str, str | None]]:
    """(sub-token, label name or None for ignored) for one sentence."""
    from datasets import Dataset

    rows = Dataset.from_dict({"tokens": [words], "tags": [tags]})
    task.learn(rows)
    features, _ = task.encode(rows)
    ids, labels = features[0]["input_ids"], features[0]["labels"]
    pieces = task.tokenizer.convert_ids_to_tokens(ids)
    return [(p, None if label == -100 else task.labels[label]) for p, label in zip(pieces, labels)]


def test_first_sub_token_gets_the_label(bound: Callable[..., TokenClassificationTask]) -> None:
    task = bound()
    aligned = _aligned(task, ["Blackburnshire", "."], ["B-PER", "O"])
    assert aligned[0] == ("[CLS]", None) and aligned[-1] == ("[SEP]", None)
    inner = aligned[1:-1]
    assert len(inner) > 2  # the long word is split into several sub-tokens
    assert inner[0][1] == "B-PER" and all(label is None for _, label in inner[1:-1]) and inner[-1][1] == "O"


def test_label_all_tokens_turns_b_into_i(bound: Callable[..., TokenClassificationTask]) -> None:
    task = bound(label_all_tokens=True)
    inner = _aligned(task, ["Blackburnshire", "."], ["B-PER", "O"])[1:-1]
    assert inner[0][1] == "B-PER" and {label for _, label in inner[1:-1]} == {"I-PER"} and inner[-1][1] == "O"


def test_truncation_is_counted(bound: Callable[..., TokenClassificationTask]) -> None:
    from datasets import Dataset

    task = bound(max_length=6)
    rows = Dataset.from_dict({"tokens": [["a", "b"], ["one", "two", "three", "four", "five", "six"]],
                              "tags": [["O", "O"], ["O"] * 6]})
    task.learn(rows)
    features, stats = task.encode(rows)
    assert stats["inputs_truncated"] == 1 and stats["input_tokens_max"] == 6
