"""Lightning's own loggers, chosen by options: CSV always, TensorBoard by default, MLflow when asked.

All of them receive the same values (train_loss, lr, examples_per_s,
tokens_per_s per logging step; val_loss and val_<metric> per evaluation) and the
resolved config as hyperparameters. A missing package is a clear error before
training starts, not a crash at the first log line.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

from texttune.config import RunConfig
from texttune.errors import ConfigError
from texttune.extras import require
from texttune.runs import RunDir


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def make_loggers(config: RunConfig, run: RunDir, *, resumed_step: int | None = None) -> list[Any]:
    """The run's loggers; the CSV one first (``trainer.logger`` is the first of the list).

    ``resumed_step``: the step of the checkpoint a ``--resume`` continues from; the CSV
    log keeps its rows up to that step (the later ones will be logged again).
    """
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

    t = config.train
    csv_logger = CSVLogger(save_dir=run.root, name="", version="logs")
    if resumed_step is not None:
        _keep_csv_rows(csv_logger, upto_step=resumed_step)
    loggers: list[Any] = [csv_logger]
    if t.tensorboard:
        if not (_installed("tensorboard") or _installed("tensorboardX")):
            raise ConfigError("TensorBoard logging needs the 'tensorboard' or 'tensorboardX' package "
                              "(pip install tensorboardX), or pass --no-tensorboard")
        loggers.append(TensorBoardLogger(save_dir=run.logs, name="", version="tensorboard", default_hp_metric=False))
    if t.mlflow:
        require("mlflow", what="--mlflow")
        # An explicit URI wins, then MLflow's own environment variable, then a SQLite file in the run.
        uri = t.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run.root / 'mlflow.db').resolve()}"
        loggers.append(MLFlowLogger(experiment_name=f"texttune-{config.task}", run_name=run.root.name, tracking_uri=uri))
    return loggers


def log_config(loggers: list[Any], flat: dict[str, Any]) -> None:
    """The resolved options as hyperparameters (TensorBoard's HPARAMS tab, MLflow's params)."""
    values = {k: v for k, v in flat.items() if v is not None}
    for logger in loggers[1:]:  # the CSV logger would write a duplicate of config.yaml
        logger.log_hyperparams(values)


def _keep_csv_rows(logger: Any, *, upto_step: int) -> None:
    """Undo Lightning's CSV writer deleting ``metrics.csv`` when it finds one (it would on every resume).

    The rows up to ``upto_step`` go back into the file and the writer continues the same
    header, so the loss curve of a resumed run covers the whole run.
    """
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), [r for r in reader if _step(r) <= upto_step]
    with warnings.catch_warnings():  # its "previous log files ... will be deleted": not true here, see below
        warnings.filterwarnings("ignore", message=".*Previous log files in this directory will be deleted.*")
        writer = logger.experiment  # created now: this is where Lightning removes the file
    if not hasattr(writer, "metrics_keys") or not header:
        return  # not the process that writes logs (distributed rank > 0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.DictWriter(handle, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = sorted(header)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0
