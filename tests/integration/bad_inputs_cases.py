"""The catalogue of bad inputs that ``test_bad_inputs.py`` runs: data files, options, config files, model directories.

Each case builds its input in a fresh temporary folder (:class:`Env`) and names the
command line that meets it, the words its one error line must contain, and the paths
that must not exist afterwards (no run directory, no predictions or metrics file).
Inputs that look wrong but are accepted (a UTF-8 byte-order mark, CRLF line ends) are
in :data:`HANDLED`; HTTP requests are in ``bad_requests_cases.py``.

Importable as ``bad_inputs_cases`` (pytest puts this folder on sys.path: it has no __init__.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"
FAST = ("--max-steps", "2", "--batch-size", "4", "--no-progress-bar", "--max-eval-samples", "4")
ROW = {"document": "A tool that converts images between formats.", "summary": "image converter"}


@dataclass
class Env:
    """A private folder for one case, the tiny backbones and a saved (servable) summarization model."""

    tmp: Path
    backbone: Callable[[str], Path]  # tiny_model_dir: shared, read-only
    saved: Path  # a texttune model directory (T5): shared, read-only (copy it to damage it)
    causal: Path  # the same for a decoder-only model (Llama, 512 learned positions)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def jsonl(self, name: str, records: Sequence[Any]) -> Path:
        return self.write(name, "".join(json.dumps(r) + "\n" for r in records))

    def train(self, *extra: str | Path, task: str = "summarization", data: Path | None = None,
              kind: str = "t5", out: Path | None = None) -> list[str]:
        """``texttune train TASK`` on a tiny backbone into ``tmp/run`` (which must never appear)."""
        default = {"token-classification": "ner.jsonl", "question-answering": "squad.jsonl"}.get(task, "summarization.jsonl")
        return ["-q", "train", task, "--backbone", str(self.backbone(kind)), "--train-file", str(data or DATA / default),
                "--output-dir", str(out or self.tmp / "run"), *FAST, *map(str, extra)]

    def tagger(self, *extra: str | Path, data: Path | None = None) -> list[str]:
        return self.train(*extra, task="token-classification", data=data, kind="bert")

    def reader(self, *extra: str | Path, data: Path | None = None) -> list[str]:
        return self.train(*extra, task="question-answering", data=data, kind="bert")

    def model_copy(self, name: str = "model") -> Path:
        return Path(shutil.copytree(self.saved, self.tmp / name))

    def predict(self, model: Path | None = None, *extra: str | Path, inputs: Path | None = None) -> list[str]:
        """``texttune predict`` writing to ``tmp/out.jsonl`` (which must never appear)."""
        return ["-q", "predict", str(model or self.saved), "--input-file", str(inputs or DATA / "summarization-val.jsonl"),
                "--output-file", str(self.tmp / "out.jsonl"), *map(str, extra)]

    def evaluate(self, *extra: str | Path, data: Path | None = None, model: Path | None = None) -> list[str]:
        """``texttune evaluate`` writing ``tmp/metrics.json`` and ``tmp/predictions.jsonl`` (never to appear)."""
        return ["-q", "evaluate", str(model or self.saved), "--data-file", str(data or DATA / "summarization-val.jsonl"),
                "--metrics-file", str(self.tmp / "metrics.json"), "--predictions-file", str(self.tmp / "predictions.jsonl"),
                *map(str, extra)]


@dataclass(frozen=True)
class Case:
    """One bad input: the command that meets it and what its answer must say."""

    name: str
    area: str  # data | options | config file | model dir
    argv: Callable[[Env], Sequence[str | Path]]
    needles: tuple[str, ...]
    absent: tuple[str, ...] = ("run",)  # paths under Env.tmp that must not exist afterwards
    usage: bool = False  # refused by argparse: usage lines, then one "error:" line
    stdin: str | None = None  # what the command reads on stdin (predict without --input-file)
    failed_run: bool = False  # the run directory exists by design, marked failed, without a model (docs/runs.md)


def _squad(**changes: Any) -> dict[str, Any]:
    row = {"id": "q1", "title": "T", "context": "The stadium opened in 2014 and cost $1.2 billion.",
           "question": "How much did it cost?", "answers": {"text": ["$1.2 billion"], "answer_start": [36]}}
    return row | changes


NER = {"tokens": ["EU", "rejects", "German", "call"], "ner_tags": ["B-ORG", "O", "B-MISC", "O"]}
OUTPUTS = ("out.jsonl", "metrics.json", "predictions.jsonl")

DATA_CASES = [
    Case("latin-1 CSV", "data", lambda e: e.train(data=e.write("latin1.csv", "document,summary\ncaf\xe9 "
                                                                             "cr\xe8me,short\n".encode("latin-1"))),
         ("latin1.csv line 2", "not UTF-8", "re-save the file as UTF-8")),
    Case("UTF-16 JSONL", "data", lambda e: e.train(data=e.write("utf16.jsonl", (json.dumps(ROW) + "\n").encode("utf-16"))),
         ("utf16.jsonl", "UTF-16", "re-save it as UTF-8")),
    Case("binary file named .jsonl", "data", lambda e: e.train(data=e.write("random.jsonl", bytes(range(256)) * 8)),
         ("random.jsonl line", "not UTF-8")),
    Case("empty file", "data", lambda e: e.train(data=e.write("empty.jsonl", b"")), ("empty.jsonl", "the file is empty")),
    Case("blank lines only", "data", lambda e: e.train(data=e.write("blank.jsonl", "\n  \n\t\n")), ("blank.jsonl", "no data rows")),
    Case("header-only CSV", "data", lambda e: e.train(data=e.write("header.csv", "document,summary\n")), ("header.csv", "no data rows")),
    Case("duplicate CSV columns", "data",
         lambda e: e.train(data=e.write("dup.csv", "document,summary,document\na b c,a,d e f\n")),
         ("dup.csv", "duplicate column names", "'document'")),
    Case("duplicate JSON keys", "data",
         lambda e: e.train(data=e.write("dupkey.jsonl", json.dumps(ROW) + '\n{"document": "x y", "summary": "a", "summary": "b"}\n')),
         ("dupkey.jsonl line 2", "'summary' twice")),
    Case("missing column", "data", lambda e: e.train(data=e.jsonl("body.jsonl", [{"body": "a b c", "summary": "a"}])),
         ("body.jsonl", "no text column", "available columns: 'body', 'summary'", "--text-column")),
    Case("column flag naming no column", "data", lambda e: e.train("--summary-column", "headline"),
         ("no column 'headline' (from --summary-column)", "available columns: 'document', 'summary'")),
    Case("one column for two roles", "data", lambda e: e.train("--text-column", "summary"),
         ("one column is used for two roles",)),
    Case("comma-separated file named .tsv", "data",
         lambda e: e.train(data=e.write("commas.tsv", "document,summary\nsome text here,text\n")),
         ("commas.tsv", "'document,summary'", "is the separator right?")),
    Case("ragged CSV row", "data", lambda e: e.train(data=e.write("ragged.csv", "document,summary\na b,a\nc d,c,extra\n")),
         ("ragged.csv: not a valid CSV file", "Expected 2 fields in line 3, saw 3")),
    Case("unterminated CSV quote", "data", lambda e: e.train(data=e.write("quote.csv", 'document,summary\n"a b,a\nc d,c\n')),
         ("quote.csv: not a valid CSV file", "EOF inside string")),
    Case("malformed JSONL line", "data",
         lambda e: e.train(data=e.write("bad.jsonl", json.dumps(ROW) + '\n{"document": "c d", "summary": \n')),
         ("bad.jsonl line 2: invalid JSON", "column")),
    Case("3 MB line cut short", "data",
         lambda e: e.train(data=e.write("huge.jsonl", '{"document": "' + "x" * 3_000_000 + '", "summary": \n')),
         ("huge.jsonl line 1: invalid JSON", "at column 3000029")),
    Case("JSONL line that is a list", "data", lambda e: e.train(data=e.write("list.jsonl", json.dumps(ROW) + '\n["a", "b"]\n')),
         ("list.jsonl line 2", "expected a JSON object, got list")),
    Case("JSON file holding a number", "data", lambda e: e.train(data=e.write("number.json", "42")),
         ("number.json", "expected a list of objects", "got int")),
    Case("JSON nested 100,000 deep", "data", lambda e: e.train(data=e.write("deep.json", "[" * 100_000 + "]" * 100_000)),
         ("deep.json", "nested too deeply")),
    Case("numbers in a text column", "data",
         lambda e: e.train(data=e.jsonl("numbers.jsonl", [{"document": 3, "summary": "a"}, {"document": 4, "summary": "b"}])),
         ("numbers.jsonl line 1", "column 'document' is not text", "2 bad cells")),
    Case("text and numbers mixed in a column", "data",
         lambda e: e.train(data=e.jsonl("mixed.jsonl", [ROW, {"document": 7.5, "summary": "b"}])),
         ("mixed.jsonl line 2", "column 'document' holds a number", "line 1 holds text")),
    Case("list in a text column", "data",
         lambda e: e.train(data=e.jsonl("listcell.jsonl", [ROW, {"document": ["a", "b"], "summary": "b"}])),
         ("listcell.jsonl line 2", "column 'document'", "list")),
    Case("null in a text column", "data",
         lambda e: e.train(data=e.jsonl("null.jsonl", [ROW, {"document": "x y", "summary": None}])),
         ("null.jsonl line 2", "column 'summary' is empty (missing/NaN)")),
    Case("NaN in a text column", "data",
         lambda e: e.train(data=e.write("nan.jsonl", json.dumps(ROW) + '\n{"document": NaN, "summary": "b"}\n')),
         ("nan.jsonl line 2", "column 'document' is empty (missing/NaN)")),
    Case("Infinity in a text column", "data",
         lambda e: e.train(data=e.write("inf.jsonl", '{"document": Infinity, "summary": "b"}\n')),
         ("inf.jsonl line 1", "column 'document' is not text (float: 'inf')")),
    Case("whitespace-only text", "data", lambda e: e.train(data=e.jsonl("space.jsonl", [ROW, {"document": " \t ", "summary": "b"}])),
         ("space.jsonl line 2", "column 'document' is an empty string")),
    Case("empty CSV cell", "data", lambda e: e.train(data=e.write("cell.csv", "document,summary\nsome text,first\nmore text,\n")),
         ("cell.csv row 2 (after the header)", "column 'summary' is empty")),
    Case("unknown file type", "data", lambda e: e.train(data=e.write("data.xlsx", b"PK\x03\x04")),
         ("data.xlsx", "unknown file type '.xlsx'", "'.jsonl'")),
    Case("not a Parquet file", "data", lambda e: e.train(data=e.write("fake.parquet", b"PAR1 but not really")),
         ("fake.parquet", "not a readable Parquet file")),
    Case("directory that is not a dataset", "data", lambda e: e.train(data=e.write("somedir/notes.txt", "x").parent),
         ("somedir", "not a dataset saved with datasets.save_to_disk")),
    Case("saved dataset with a truncated Arrow file", "data",
         lambda e: e.train(data=_saved_dataset(e, lambda d: _truncate(next(d.glob("*.arrow"))))),
         ("saved", "a damaged datasets.save_to_disk directory", "ArrowInvalid")),
    Case("saved dataset with a broken dataset_info.json", "data",
         lambda e: e.train(data=_saved_dataset(e, lambda d: (d / "dataset_info.json").write_text("{", encoding="utf-8"))),
         ("saved", "a damaged datasets.save_to_disk directory", "JSONDecodeError")),
    Case("a device instead of a file", "data", lambda e: e.train(data=Path("/dev/null")), ("/dev/null is not a regular file",)),
    Case("validation file without the target column", "data",
         lambda e: e.train("--validation-file", e.jsonl("val.jsonl", [{"document": "x y z"}])),
         ("val.jsonl", "no summary column", "available columns: 'document'")),
    Case("CoNLL line without a tag", "data", lambda e: e.tagger(data=e.write("notag.conll", "EU B-ORG\nrejects\n\n")),
         ("notag.conll line 2", "expected a token and a tag")),
    Case("CoNLL lines with different column counts", "data",
         lambda e: e.tagger(data=e.write("cols.conll", "EU NNP B-ORG\nrejects O\n\n")),
         ("cols.conll line 2", "2 columns", "line 1 has 3")),
    Case("more tokens than tags", "data",
         lambda e: e.tagger(data=e.jsonl("short.jsonl", [NER, NER | {"ner_tags": ["B-ORG", "O"]}])),
         ("short.jsonl line 2", "4 tokens but 2 tags")),
    Case("tag outside --label-list", "data", lambda e: e.tagger("--label-list", "O,B-ORG,I-ORG", data=e.jsonl("ner.jsonl", [NER])),
         ("ner.jsonl line 1", "tag 'B-MISC' is not in --label-list", "known labels")),
    Case("validation tag never seen in training", "data",
         lambda e: e.tagger("--validation-file", e.jsonl("nerval.jsonl", [NER | {"ner_tags": ["B-ORG", "O", "B-FOOD", "O"]}]),
                            data=e.jsonl("nertrain.jsonl", [NER, NER])),
         ("nerval.jsonl line 1", "tag 'B-FOOD' is not in the training data", "--label-list")),
    Case("tokens given as one "
         "string", "data", lambda e: e.tagger(data=e.jsonl("string.jsonl", [NER | {"tokens": "EU rejects German call"}])),
         ("string.jsonl line 1", "tokens cell must be a non-empty list of words")),
    Case("integer tags without label names", "data", lambda e: e.tagger(data=e.jsonl("ids.jsonl", [NER | {"ner_tags": [1, 0, 2, 0]}])),
         ("ids.jsonl line 1", "tags are integer ids but no label names are known", "--label-list")),
    Case("tag id beyond the label list", "data",
         lambda e: e.tagger("--label-list", "O,B-ORG", data=e.jsonl("bigid.jsonl", [NER | {"ner_tags": [1, 0, 5, 0]}])),
         ("bigid.jsonl line 1", "tag id 5 is outside the 2 labels")),
    Case("answer_start beyond the context", "data",
         lambda e: e.reader(data=e.jsonl("far.jsonl", [
             _squad(), _squad(id="q2", answers={"text": ["$1.2 billion"], "answer_start": [900]})])),
         ("1 of 2 rows have answer spans that do not match the context", "far.jsonl line 2", "at character 900")),
    Case("answer text not where answer_start says", "data",
         lambda e: e.reader(data=e.jsonl("shift.jsonl", [_squad(answers={"text": ["$1.2 billion"], "answer_start": [0]})])),
         ("shift.jsonl line 1", "answer '$1.2 billion' at character 0, but the context there reads 'The stadium '")),
    Case("answers cell that is not JSON", "data",
         lambda e: e.reader(data=e.write("answers.csv", "id,context,question,answers\nq1,Some context.,What?,the answer\n")),
         ("answers.csv row 1 (after the header)", "column 'answers'", "is not JSON")),
    Case("question without answers", "data",
         lambda e: e.reader(data=e.jsonl("none.jsonl", [_squad(answers={"text": [], "answer_start": []})])),
         ("none.jsonl line 1", "no answers", "--version-2")),
    Case("negative answer_start", "data",
         lambda e: e.reader(data=e.jsonl("neg.jsonl", [_squad(answers={"text": ["$1.2 billion"], "answer_start": [-4]})])),
         ("neg.jsonl line 1", "character offset >= 0")),
    Case("SQuAD file whose paragraphs are not a list", "data",
         lambda e: e.reader(data=e.write("squad.json", json.dumps({"data": [{"title": "T", "paragraphs": {"context": "x"}}]}))),
         ("squad.json article 1 ('T')", "'paragraphs' must be a list")),
]

OPTION_CASES = [
    Case("unknown task", "options", lambda e: ["train", "summarise", "--train-file", str(DATA / "summarization.jsonl")],
         ("invalid choice: 'summarise'", "summarization"), usage=True),
    Case("unknown option", "options", lambda e: e.train("--learning-rte", "1e-4"), ("unrecognized arguments: --learning-rte",),
         usage=True),
    Case("value outside the choices", "options", lambda e: e.train("--lr-schedule", "cos"), ("invalid choice: 'cos'", "'cosine'"),
         usage=True),
    Case("text for a number", "options", lambda e: e.train("--learning-rate", "fast"),
         ("option 'learning_rate' needs a finite number or 'auto', got 'fast'",)),
    Case("NaN learning rate", "options", lambda e: e.train("--learning-rate", "nan"),
         ("option 'learning_rate' needs a finite number or 'auto', got 'nan'",)),
    Case("negative learning rate", "options", lambda e: e.train("--learning-rate=-1e-4"), ("option 'learning_rate' must be > 0",)),
    Case("fractional step count", "options", lambda e: e.train("--max-steps", "2.5"), ("option 'max_steps' needs an integer, got '2.5'",)),
    Case("warmup ratio of "
         "1.5", "options", lambda e: e.train("--warmup-ratio", "1.5"), ("option 'warmup_ratio' must be in [0, 1), got 1.5",)),
    Case("validation fraction of 1", "options", lambda e: e.train("--validation-fraction", "1"),
         ("option 'validation_fraction' must be in (0, 1), got 1.0",)),
    Case("batch size 0", "options", lambda e: e.train("--batch-size", "0"), ("option 'batch_size' must be > 0, got 0",)),
    Case("batch size that is a word", "options", lambda e: e.train("--batch-size", "big"),
         ("option 'batch_size' needs an integer or 'auto', got 'big'",)),
    Case("negative gradient clipping", "options", lambda e: e.train("--gradient-clip-val", "-1"),
         ("option 'gradient_clip_val' must be >= 0, got -1.0",)),
    Case("effective batch size with a fixed batch size", "options", lambda e: e.train("--effective-batch-size", "32"),
         ("effective_batch_size needs --batch-size auto",)),
    Case("auto batch with both accumulation options", "options",
         lambda e: e.train("--batch-size", "auto", "--effective-batch-size", "32", "--accumulate-grad-batches", "2"),
         ("give either effective_batch_size or accumulate_grad_batches",)),
    Case("min_new_tokens above max_new_tokens", "options", lambda e: e.train("--min-new-tokens", "9", "--max-new-tokens", "3"),
         ("min_new_tokens (9) is larger than max_new_tokens (3)",)),
    Case("top_p above 1", "options", lambda e: e.train("--top-p", "1.5"), ("option 'top_p' must be in (0, 1], got 1.5",)),
    Case("head learning rate for a task without a new head", "options", lambda e: e.train("--head-learning-rate", "1e-3"),
         ("option 'head_learning_rate' does not apply to summarization", "--learning-rate")),
    Case("negative head learning rate", "options", lambda e: e.tagger("--head-learning-rate=-1e-3"),
         ("option 'head_learning_rate' must be > 0",)),
    Case("a head learning rate of one's own with learning rate auto", "options",
         lambda e: e.tagger("--learning-rate", "auto", "--head-learning-rate", "1e-3"),
         ("option 'head_learning_rate' (0.001) cannot be combined with --learning-rate auto", "leave --head-learning-rate out")),
    Case("unknown ROUGE tokenizer", "options", lambda e: e.train("--rouge-tokenizer", "spaces"),
         ("invalid choice: 'spaces'", "'auto', 'default', 'unicode', 'cjk'"), usage=True),
    Case("metric language that is no language code", "options", lambda e: e.train("--metric-language", "fr!!"),
         ("metric_language 'fr!!' is not a language code", "'zh'")),
    Case("checkpoint metric the task does not report", "options", lambda e: e.train("--checkpoint-metric", "bleu"),
         ("checkpoint_metric 'bleu' is not reported by task 'summarization'", "rougeL")),
    Case("--from-scratch with a backbone", "options",
         lambda e: ["-q", "train", "causal-lm", "--from-scratch", "tiny", "--backbone", "smollm2-135m",
                    "--train-file", str(DATA / "summarization.jsonl"), "--output-dir", str(e.tmp / "run")],
         ("--from-scratch tiny trains a new model; it cannot be combined with --backbone",)),
    Case("repeated label in --label-list", "options", lambda e: e.tagger("--label-list", "O,B-PER,O"),
         ("option 'label_list' repeats 'O'",)),
    Case("QA stride longer than the window", "options", lambda e: e.reader("--stride", "1000"),
         ("option 'stride' must be in [0, ", "got 1000")),
    Case("mask probability above 1", "options",
         lambda e: e.train("--mlm-probability", "1.5", task="masked-lm", data=DATA / "summarization.jsonl", kind="bert"),
         ("option 'mlm_probability' must be in (0, 1), got 1.5",)),
    Case("resume without a checkpoint", "options", lambda e: e.train("--resume", e.tmp / "nothing.ckpt"),
         ("cannot resume: no checkpoint at", "nothing.ckpt")),
    Case("output directory that is a file", "options",
         lambda e: e.train(out=e.write("taken.txt", "x")),
         ("output directory", "taken.txt is a file"), absent=()),
    Case("training data not given", "options",
         lambda e: ["-q", "train", "summarization", "--backbone", str(e.backbone("t5")), "--output-dir", str(e.tmp / "run")],
         ("no training data: pass --train-file",)),
]

CONFIG_FILE_CASES = [
    Case("invalid YAML", "config file", lambda e: e.train("--config", e.write("bad.yaml", "max_steps: [1, 2\nseed: 3\n")),
         ("bad.yaml line 2 column 5: not valid YAML",)),
    Case("tab-indented YAML", "config file", lambda e: e.train("--config", e.write("tab.yaml", "max_steps: 3\n\tseed: 3\n")),
         ("tab.yaml line 2 column 1: not valid YAML", "'\\t'")),
    Case("YAML list instead of a mapping", "config file", lambda e: e.train("--config", e.write("list.yaml", "- max_steps\n- 3\n")),
         ("list.yaml: expected a mapping of option names to values, got list",)),
    Case("unknown key in the config file", "config file", lambda e: e.train("--config", e.write("typo.yaml", "warmup_ration: 0.1\n")),
         ("unknown option 'warmup_ration' (did you mean 'warmup_ratio'?)",)),
    Case("nested section in the config file", "config file",
         lambda e: e.train("--config", e.write("nested.yaml", "train:\n  max_steps: 3\n")),
         ("nested.yaml: option 'train' must be a single value, got a dict",)),
    Case("key given twice in the config file", "config file",
         lambda e: e.train("--config", e.write("twice.yaml", "seed: 1\nlearning_rate: 1e-4\nseed: 2\n")),
         ("twice.yaml line 3 column 1", "option 'seed' is given twice")),
    Case("latin-1 config "
         "file", "config file", lambda e: e.train("--config", e.write("l1.yaml", "prefix: r\xe9sum\xe9\n".encode("latin-1"))),
         ("l1.yaml: not UTF-8 text", "re-save the file as UTF-8")),
    Case("config file for another task", "config file", lambda e: e.train("--config", e.write("task.yaml", "task: translation\n")),
         ("config says task 'translation' but the command is for task 'summarization'",)),
    Case("wrong type in the config file", "config file", lambda e: e.train("--config", e.write("bool.yaml", "seed: yes\n")),
         ("option 'seed' needs an integer, got True",)),
    Case("config file not found", "config file", lambda e: e.train("--config", e.tmp / "missing.yaml"),
         ("config file not found", "missing.yaml")),
]


def _saved_dataset(env: Env, damage: Callable[[Path], object]) -> Path:
    """A ``datasets.save_to_disk`` directory of two rows, then ``damage(directory)``."""
    from datasets import Dataset, disable_progress_bar

    disable_progress_bar()
    path = env.tmp / "saved"
    Dataset.from_list([ROW, ROW]).save_to_disk(str(path))
    damage(path)
    return path


def _damaged(env: Env, change: Callable[[Path], object]) -> Path:
    model = env.model_copy()
    change(model)
    return model


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_json(path: Path, **changes: Any) -> None:
    """Set keys of a JSON file (None: remove the key)."""
    data = json.loads(path.read_text(encoding="utf-8")) | changes
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}), encoding="utf-8")


MODEL_DIR_CASES = [
    Case("backbone directory without config.json", "model dir", lambda e: e.train("--backbone", e.write("empty/README", "x").parent),
         ("empty is not a model directory (no config.json in it)",)),
    Case("backbone whose config.json is not JSON", "model dir",
         lambda e: e.train("--backbone", _damaged(e, lambda m: (m / "config.json").write_text("{not json", encoding="utf-8"))),
         ("model", "config")),
    Case("backbone config.json without model_type", "model dir",
         lambda e: e.train("--backbone", _damaged(e, lambda m: (m / "config.json").write_text('{"hidden_size": 8}', encoding="utf-8"))),
         ("model", "config")),
    Case("backbone that is a file", "model dir", lambda e: e.train("--backbone", e.write("weights.bin", b"\0" * 64)),
         ("weights.bin' is a file; pass the model directory that contains config.json",)),
    Case("backbone with truncated safetensors", "model dir",
         lambda e: e.train("--backbone", _damaged(e, lambda m: _truncate(m / "model.safetensors"))),
         ("safetensors", "damaged or truncated"), absent=(), failed_run=True),
    Case("predict from a directory that is not a model", "model dir",
         lambda e: e.predict(e.write("plain/notes.txt", "x").parent), ("plain is not a texttune model directory",), absent=OUTPUTS),
    Case("evaluate a run that never finished", "model dir",
         lambda e: e.evaluate(model=e.write("unfinished/config.yaml", "task: summarization\n").parent),
         ("unfinished is a run directory without a saved model",), absent=OUTPUTS),
    Case("texttune.json that is not JSON", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: (m / "texttune.json").write_text("{", encoding="utf-8"))),
         ("texttune.json: not valid JSON",), absent=OUTPUTS),
    Case("texttune.json without a task", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: (m / "texttune.json").write_text("{}", encoding="utf-8"))),
         ("texttune.json: missing the 'task' entry",), absent=OUTPUTS),
    Case("texttune.json naming an unknown task", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "texttune.json", task="poetry"))),
         ("task 'poetry' is not known",), absent=OUTPUTS),
    Case("texttune.json without auto_class", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "texttune.json", auto_class=None))),
         ("texttune.json: 'auto_class' must name a transformers AutoModel class, got None",), absent=OUTPUTS),
    Case("texttune.json naming a class transformers lacks", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "texttune.json", auto_class="AutoModelForPoetry"))),
         ("got 'AutoModelForPoetry'",), absent=OUTPUTS),
    Case("texttune.json with a list for task_state", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "texttune.json", task_state=[1, 2]))),
         ("texttune.json: 'task_state' must be an object, got list",), absent=OUTPUTS),
    Case("config.json with text for a number", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "config.json", vocab_size="big"))),
         ("cannot read the model config", "'vocab_size'"), absent=OUTPUTS),
    Case("config.json with a negative size", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "config.json", d_model=-8))),
         ("cannot be loaded as AutoModelForSeq2SeqLM", "negative dimension"), absent=OUTPUTS),
    Case("config.json naming an unknown architecture", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _edit_json(m / "config.json", model_type="nonesuch"))),
         ("cannot read the model config", "`nonesuch`"), absent=OUTPUTS),
    Case("broken tokenizer.json", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: (m / "tokenizer.json").write_text("{", encoding="utf-8"))),
         ("cannot load its tokenizer",), absent=OUTPUTS),
    Case("saved model with truncated safetensors", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: _truncate(m / "model.safetensors"))),
         ("safetensors", "damaged or truncated"), absent=OUTPUTS),
    Case("saved model without its tokenizer", "model dir",
         lambda e: e.predict(_damaged(e, lambda m: [p.unlink() for p in m.iterdir() if "token" in p.name or p.suffix == ".model"])),
         ("tokenizer",), absent=OUTPUTS),
    Case("predict with num_beams 0", "options", lambda e: e.predict(None, "--num-beams", "0"),
         ("option 'num_beams' must be >= 1, got 0",), absent=OUTPUTS),
    Case("predict with a negative temperature", "options", lambda e: e.predict(None, "--do-sample", "--temperature", "-1"),
         ("option 'temperature' must be in [0.01, 100], got -1.0",), absent=OUTPUTS),
    Case("evaluate with top_p 0", "options", lambda e: e.evaluate("--top-p", "0"),
         ("option 'top_p' must be in (0, 1], got 0.0",), absent=OUTPUTS),
    Case("max_new_tokens beyond the model's positions", "options", lambda e: e.predict(e.causal, "--max-new-tokens", "100000000"),
         ("max_new_tokens 100000000 is more than this model can generate", "512 positions"), absent=OUTPUTS),
    Case("predict input without the text column", "data", lambda e: e.predict(None, inputs=DATA / "translation.jsonl"),
         ("translation.jsonl", "available columns: 'en', 'fr'"), absent=OUTPUTS),
    Case("predict input that is latin-1", "data",
         lambda e: e.predict(None, inputs=e.write("in.csv", "document\ncaf\xe9\n".encode("latin-1"))),
         ("in.csv line 2", "not UTF-8"), absent=OUTPUTS),
    Case("evaluate data without references", "data",
         lambda e: e.evaluate(data=e.jsonl("noref.jsonl", [{"document": "x y z"}])),
         ("noref.jsonl", "no summary column"), absent=OUTPUTS),
]

OTHER_COMMAND_CASES = [
    Case("stdin with nothing on it", "data", lambda e: ["-q", "predict", str(e.saved)], ("stdin: no input", "--input-file"), stdin=""),
    Case("stdin with a broken JSON line", "data", lambda e: ["-q", "predict", str(e.saved)],
         ("stdin line 2: invalid JSON",), stdin='{"document": "a b c"}\n{"document": \n'),
    Case("predict with --threads 0", "options", lambda e: e.predict(None, "--threads", "0"), ("option 'threads' must be > 0, got 0",),
         absent=OUTPUTS),
    Case("compute type without the ctranslate2 backend", "options", lambda e: e.predict(None, "--compute-type", "int8"),
         ("compute_type applies to the ctranslate2 backend",), absent=OUTPUTS),
    Case("serve on port 70000", "options", lambda e: ["-q", "serve", str(e.saved), "--port", "70000"],
         ("option 'port' must be in [0, 65535], got 70000",)),
    Case("serve queue smaller than one request", "options",
         lambda e: ["-q", "serve", str(e.saved), "--max-queue", "2", "--max-inputs-per-request", "8"],
         ("max_queue (2) is smaller than max_inputs_per_request (8)",)),
    Case("export to an unknown format", "options",
         lambda e: ["-q", "export", str(e.saved), "--format", "tflite", "--output", str(e.tmp / "export")],
         ("--format 'tflite' is not supported", "'ctranslate2'"), absent=("export",)),
    Case("export with an unknown quantization", "options",
         lambda e: ["-q", "export", str(e.saved), "--format", "ctranslate2", "--quantization", "int3", "--output", str(e.tmp / "export")],
         ("quantization 'int3' is not valid", "'int8'"), absent=("export",)),
    Case("report on a directory that is not a run", "model dir", lambda e: ["-q", "report", str(e.write("notarun/x.txt", "x").parent)],
         ("notarun is not a texttune run directory",), absent=("notarun/report.html",)),
    Case("runs compare with one run", "options", lambda e: ["-q", "runs", "compare", str(e.tmp)],
         ("runs compare needs at least two run directories, got 1",)),
]

CASES: list[Case] = [*DATA_CASES, *OPTION_CASES, *CONFIG_FILE_CASES, *MODEL_DIR_CASES, *OTHER_COMMAND_CASES]


@dataclass(frozen=True)
class Handled:
    """An input that looks odd but is valid: it must load, with these columns and this first row."""

    name: str
    file: str
    content: bytes
    columns: list[str]
    first: dict[str, Any]


HANDLED = [
    Handled("UTF-8 byte-order mark, CSV", "bom.csv", "\ufeffdocument,summary\nsome text,sum\n".encode(), ["document", "summary"],
            {"document": "some text", "summary": "sum"}),
    Handled("UTF-8 byte-order mark, TSV", "bom.tsv", "\ufeffdocument\tsummary\nsome text\tsum\n".encode(), ["document", "summary"],
            {"document": "some text", "summary": "sum"}),
    Handled("UTF-8 byte-order mark, JSONL", "bom.jsonl", ("\ufeff" + json.dumps(ROW) + "\n").encode(), ["document", "summary"], ROW),
    Handled("UTF-8 byte-order mark, JSON", "bom.json", ("\ufeff" + json.dumps([ROW])).encode(), ["document", "summary"], ROW),
    Handled("CRLF line ends", "crlf.csv", b"document,summary\r\nsome text,sum\r\n", ["document", "summary"],
            {"document": "some text", "summary": "sum"}),
    Handled("a real column named like a pandas duplicate", "dotted.csv", b"summary,summary.1\na,b\n", ["summary", "summary.1"],
            {"summary": "a", "summary.1": "b"}),
    Handled("a 3 MB cell", "long.jsonl", json.dumps({"document": "word " * 600_000, "summary": "s"}).encode(),
            ["document", "summary"], {"document": "word " * 600_000, "summary": "s"}),
    Handled("NUL byte inside a cell", "nul.csv", b"document,summary\nab\x00c,d\n", ["document", "summary"],
            {"document": "ab\x00c", "summary": "d"}),
    Handled("U+2028 inside a JSONL string", "sep.jsonl", (json.dumps({"document": "a\u2028b", "summary": "c"}, ensure_ascii=False)
            + "\n").encode(), ["document", "summary"], {"document": "a\u2028b", "summary": "c"}),
]
