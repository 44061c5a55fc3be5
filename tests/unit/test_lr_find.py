"""``--learning-rate auto``: the pick on synthetic loss curves, divergence, the flat-curve fallback, exact restoration
of the model, random state and data order, and the choice recorded in lr_find.json and read back instead of probing."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from texttune.config_resume import resumed_options
from texttune.engine import lr_find
from texttune.engine.loader import ResumableLoader
from texttune.engine.lr_find import RangeTest, divergence, pick, rates_of
from texttune.errors import ConfigError
from texttune.files import read_json
from texttune.runs import RunDir
from texttune.tasks.registry import run_config

CPU = torch.device("cpu")
RATES = rates_of()  # 40 rates, 1e-6 .. 1


def sigmoid_curve(*, centre: float, explode: float, start: float = 2.0, end: float = 0.4, noise: float = 0.0,
                  seed: int = 0) -> list[float]:
    """A range-test curve: flat at ``start``, falling fastest (in log rate) at ``centre`` towards ``end``, then
    exploding beyond ``explode``; optional multiplicative noise."""
    rng = random.Random(seed)
    losses = []
    for rate in RATES:
        x = (math.log10(rate) - math.log10(centre)) * 2.5
        loss = end + (start - end) / (1 + math.exp(x))
        if rate > explode:
            loss *= (rate / explode) ** 2
        losses.append(loss * (1 + noise * (2 * rng.random() - 1)))
    return losses


def test_the_steepest_descent_is_found() -> None:
    found = pick(RATES, sigmoid_curve(centre=1e-4, explode=3e-2))
    assert found.by == "steepest descent"
    assert 1e-4 / 1.5 <= found.rate <= 1e-4 * 1.5  # the grid steps by x1.43
    assert found.rate == float(f"{found.rate:.3g}")  # 3 significant digits
    assert RATES[found.minimum] > 1e-2  # the minimum is where the explosion begins


def test_the_steepest_descent_survives_noise() -> None:
    found = pick(RATES, sigmoid_curve(centre=1e-4, explode=3e-2, noise=0.03, seed=7))
    assert found.by == "steepest descent" and 1e-4 / 2.1 <= found.rate <= 1e-4 * 2.1


def test_a_descent_right_before_the_divergence_is_capped_at_a_third_of_the_minimum() -> None:
    found = pick(RATES, sigmoid_curve(centre=5e-3, explode=1e-2))
    assert found.by == "minimum / 3"
    assert found.rate == pytest.approx(RATES[found.minimum] / 3, rel=1e-2) and found.rate < RATES[found.steepest]


def test_divergence_is_cut_off_before_the_pick() -> None:
    losses = sigmoid_curve(centre=1e-4, explode=1.0)[:30] + [float("nan")] + [0.0] * 9  # nothing after NaN counts
    assert divergence(losses[:31]).startswith("the loss became nan at step 31")
    found = pick(RATES, losses)
    assert len(found.smoothed) == 30 and 1e-4 / 1.5 <= found.rate <= 1e-4 * 1.5


@pytest.mark.parametrize(("losses", "words"), [
    ([1.0] * 6 + [5.0, 25.0], "exceeded 4x its lowest"),  # a running average: one bad batch is not enough
    ([2.0] * 5 + [1.5, 1.4, 1.5, 2.2, 2.6, 3.0], "rose back above its start"),
    ([1.0, float("inf")], "the loss became inf at step 2"),
    ([2.0] * 5 + [1.0] * 4 + [1.5] * 8, "no new low for 8 steps (its lowest 1.318 at step 9)"),  # the rate is 17x on
])
def test_divergence_says_why(losses: list[float], words: str) -> None:
    assert words in divergence(losses)
    assert divergence(losses[:-1]) == ""


def test_noise_before_any_real_descent_never_ends_the_test() -> None:
    flat = [2.0 + 0.04 * math.sin(3 * i) for i in range(40)]  # +-2%: no new low for long stretches, never 10% down
    assert not any(divergence(flat[:end]) for end in range(1, 41))


def test_a_flat_curve_gives_no_rate_and_says_why() -> None:
    found = pick(RATES, [2.0 + 0.005 * math.sin(i) for i in range(len(RATES))])
    assert found.rate is None and found.by == "fallback" and "flat" in found.reason and "less than 3%" in found.reason


def test_a_curve_that_diverges_at_once_gives_no_rate() -> None:
    found = pick(RATES, [2.0, 1.9, float("nan")])
    assert found.rate is None and "diverged after 2 steps" in found.reason


# -- the recipe's step on a small torch model ------------------------------------------------------------------------


class Tagger(torch.nn.Module):
    """A backbone, dropout (it draws from the random stream) and a ``classifier`` head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Embedding(20, 8), torch.nn.Dropout(0.3))
        self.classifier = torch.nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(ids).mean(dim=1))  # (B, 3)


class FakeTask:
    name = "fake"
    heads = ("classifier",)
    train_defaults: ClassVar[dict[str, Any]] = {"learning_rate": 3e-4, "head_learning_rate": 3e-3}

    @staticmethod
    def loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(batch["input_ids"]), batch["labels"])

    @staticmethod
    def collate(rows: list[dict]) -> dict:
        return {"input_ids": torch.tensor([r["input_ids"] for r in rows]), "labels": torch.tensor([r["label"] for r in rows])}


ROWS = [{"input_ids": [(3 * i + j) % 20 for j in range(5)], "label": i % 3} for i in range(24)]


def loader() -> ResumableLoader:
    return ResumableLoader(ROWS, batch_size=4, seed=1, collate_fn=FakeTask.collate)


def auto_config() -> Any:
    return run_config("text-classification", {"learning_rate": "auto", "accelerator": "cpu", "batch_size": 4})


def resolve(run: RunDir, model: torch.nn.Module, data: ResumableLoader, **kwargs: Any) -> Any:
    return lr_find.resolve_learning_rate(auto_config(), task=FakeTask(), model=model, loader=data, run=run,
                                         device=CPU, **{"resuming": False, **kwargs})


def test_the_probe_leaves_weights_modes_random_state_and_data_order_as_they_were(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, data = Tagger(), loader()
    model.classifier.eval()  # a mixed state, to be found again
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    random.seed(5)
    torch.manual_seed(5)
    chosen = resolve(RunDir(tmp_path / "run"), model, data)
    assert isinstance(chosen.train.learning_rate, float)
    after = (torch.rand(4), random.random())
    random.seed(5)
    torch.manual_seed(5)
    assert torch.equal(after[0], torch.rand(4)) and after[1] == random.random()  # as if no probe had run
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # bit for bit
    assert all(p.grad is None for p in model.parameters())
    assert model.body.training and not model.classifier.training
    first = [b["labels"].tolist() for b in data]
    assert first == [b["labels"].tolist() for b in loader()]  # training starts from the same first batch


def test_the_choice_is_recorded_and_the_head_keeps_the_tasks_ratio(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    chosen = resolve(run, Tagger(), loader()).train
    recorded = read_json(run.lr_find)
    assert (recorded["learning_rate"], recorded["head_learning_rate"]) == (chosen.learning_rate, chosen.head_learning_rate)
    assert chosen.head_learning_rate == float(f"{10 * chosen.learning_rate:.3g}") and recorded["head_ratio"] == 10
    assert recorded["curve"][0]["lr"] == 1e-6 and len(recorded["curve"]) <= 40
    assert recorded["picked_by"] in {"steepest descent", "minimum / 3", "fallback"} and recorded["seconds"] >= 0


def test_a_resumed_run_and_the_other_ranks_read_the_choice_and_never_probe(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.lr_find.write_text('{"learning_rate": 0.000123, "head_learning_rate": 0.00123}')

    def no_probe(**_: Any) -> RangeTest:
        raise AssertionError("the range test ran again")

    monkeypatch.setattr(lr_find, "range_test", no_probe)
    for kwargs in ({"resuming": True}, {"primary": False}):
        train = resolve(run, Tagger(), loader(), **kwargs).train
        assert (train.learning_rate, train.head_learning_rate) == (0.000123, 0.00123)


def test_a_flat_curve_falls_back_to_the_tasks_rate_and_logs_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    flat = RangeTest(rates=tuple(RATES), losses=(1.0,) * len(RATES), stopped_because="reached the last rate", seconds=0.1)
    monkeypatch.setattr(lr_find, "range_test", lambda **_: flat)
    run = RunDir(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="texttune"):
        train = resolve(run, Tagger(), loader()).train
    assert (train.learning_rate, train.head_learning_rate) == (3e-4, 3e-3)  # the task's defaults
    assert "the loss is flat" in caplog.text and "using fake's default 0.0003" in caplog.text
    recorded = read_json(run.lr_find)
    assert recorded["picked_by"] == "fallback" and "flat" in recorded["fallback"]


def test_a_number_is_kept_and_nothing_probed(tmp_path: Path) -> None:
    config = run_config("text-classification", {"learning_rate": 1e-4})
    assert lr_find.resolve_learning_rate(config, task=FakeTask(), model=Tagger(), loader=loader(),
                                         run=RunDir(tmp_path / "run"), resuming=False, device=CPU) is config
    assert not (tmp_path / "run").exists()


def test_accumulation_and_clipping_follow_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each probe step takes ``accumulate`` batches and clips the gradient as Lightning would."""
    clipped: list[float] = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, cap: clipped.append(cap))
    model, data = Tagger(), loader()
    groups = [{"params": list(model.parameters()), "lr": 1.0}]
    test = lr_find.range_test(model=model, loss=FakeTask.loss, loader=data, device=CPU, groups=groups, accumulate=3,
                              clip=0.5, rates=[1e-5, 1e-4, 1e-3])
    assert len(test.losses) == 3 and clipped == [0.5] * 3
    assert data.batches_done == 3  # 9 batches from a 6-batch epoch: the loader started over (the caller restores it)


# -- options -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["auto", "AUTO", " auto "])
def test_auto_is_accepted_as_a_learning_rate(value: str) -> None:
    assert run_config("summarization", {"learning_rate": value}).train.learning_rate == "auto"


@pytest.mark.parametrize(("options", "words"), [
    ({"learning_rate": "fast"}, "option 'learning_rate' needs a finite number or 'auto', got 'fast'"),
    ({"learning_rate": -1e-4}, "option 'learning_rate' must be > 0"),
])
def test_bad_learning_rates_are_refused(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        run_config("summarization", options)


def test_an_explicit_head_rate_contradicts_auto() -> None:
    with pytest.raises(ConfigError, match=r"'head_learning_rate' \(0.001\) cannot be combined with --learning-rate auto: "
                                          r"with auto the head trains at the chosen rate"):
        run_config("token-classification", {"learning_rate": "auto", "head_learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="the head trains at 10x the chosen rate"):
        run_config("text-classification", {"learning_rate": "auto", "head_learning_rate": 1e-3})
    # the task's own default head rate (text-classification: 3e-3) follows auto; a number for both is the user's
    assert run_config("text-classification", {"learning_rate": "auto"}).train.head_learning_rate == 3e-3
    assert run_config("text-classification", {"learning_rate": 1e-4, "head_learning_rate": 1e-3}).train.head_learning_rate == 1e-3


def test_auto_on_resume_means_the_number_the_run_chose() -> None:
    saved = run_config("summarization", {"learning_rate": 2.15e-4, "train_file": "t.jsonl", "output_dir": "r"}).flat()
    options, changes = resumed_options(task="summarization", given={"resume": "latest", "learning_rate": "auto"},
                                       saved=saved, source=Path("r/config.yaml"), build=lambda o: run_config("summarization", o))
    assert changes == {} and run_config("summarization", options).train.learning_rate == 2.15e-4
