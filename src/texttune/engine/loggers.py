"""Lightning's own loggers, chosen by options: CSV always, TensorBoard by default, MLflow when asked.

All of them receive the same values (train_loss, lr, examples_per_s,
tokens_per_s per logging step; val_loss and val_<metric> per evaluation) and the
resolved config as hyperparameters. A missing package is a clear error before
training starts, not a crash at the first log line.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from texttune.config import RunConfig
from texttune.errors import ConfigError
from texttune.runs import RunDir


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def make_loggers(config: RunConfig, run: RunDir) -> list[Any]:
    """The run's loggers; the CSV one first (``trainer.logger`` is the first of the list)."""
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

    t = config.train
    loggers: list[Any] = [CSVLogger(save_dir=run.root, name="", version="logs")]
    if t.tensorboard:
        if not (_installed("tensorboard") or _installed("tensorboardX")):
            raise ConfigError("TensorBoard logging needs the 'tensorboard' or 'tensorboardX' package "
                              "(pip install tensorboardX), or pass --no-tensorboard")
        loggers.append(TensorBoardLogger(save_dir=run.logs, name="", version="tensorboard", default_hp_metric=False))
    if t.mlflow:
        if not _installed("mlflow"):
            raise ConfigError("--mlflow needs MLflow: pip install mlflow (or mlflow-skinny with a tracking server)")
        # An explicit URI wins, then MLflow's own environment variable, then a SQLite file in the run.
        uri = t.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run.root / 'mlflow.db').resolve()}"
        loggers.append(MLFlowLogger(experiment_name=f"texttune-{config.task}", run_name=run.root.name, tracking_uri=uri))
    return loggers


def log_config(loggers: list[Any], flat: dict[str, Any]) -> None:
    """The resolved options as hyperparameters (TensorBoard's HPARAMS tab, MLflow's params)."""
    values = {k: v for k, v in flat.items() if v is not None}
    for logger in loggers[1:]:  # the CSV logger would write a duplicate of config.yaml
        logger.log_hyperparams(values)
