"""Scoring a dataset with a model: the task's scores (sigmoid or softmax), then its metrics (mAP,
ROC-AUC and d-prime; or accuracy, macro F1 and the confusion matrix).

In a distributed run (a `Cluster` of several ranks) every rank scores its share of the clips
and rank 0 gathers them; the metrics do not depend on the order of the clips.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from passt.eval.tasks import Metrics, Task, task_metrics, task_scores
from passt.utils.modes import module_mode
from passt.utils.precision import autocast

if TYPE_CHECKING:
    from passt.train.distributed import Cluster

log = logging.getLogger(__name__)


def predict(
    model: nn.Module,
    frontend: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    dtype: str = "fp32",
    num_workers: int = 0,
    indices: Sequence[int] | None = None,
    task: Task = "multi-label",
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (`task_scores`) and targets, both ``[clips, classes]``, of ``dataset`` (or its
    ``indices``), with model and frontend in eval mode (their modes are restored after)."""
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers,
        sampler=list(range(len(dataset))) if indices is None else list(indices),
        generator=torch.Generator(),  # leaves the global RNG, and so training, untouched
        pin_memory=device.type == "cuda",
    )
    scores, targets = [], []
    with module_mode(model, frontend, training=False), torch.inference_mode():
        for waves, target in loader:
            mel = frontend(waves.to(device, non_blocking=True))
            with autocast(dtype, device.type):
                logits = model(mel)
            scores.append(task_scores(task, logits.float()).cpu().numpy())
            targets.append(target.numpy())
    classes = getattr(dataset, "num_classes", 0)
    if not scores:
        return np.zeros((0, classes), np.float32), np.zeros((0, classes), np.float32)
    return np.concatenate(scores), np.concatenate(targets)


def evaluate(
    model: nn.Module,
    frontend: nn.Module,
    dataset: Dataset,
    cluster: Cluster,
    *,
    batch_size: int,
    dtype: str = "fp32",
    num_workers: int = 0,
    task: Task = "multi-label",
) -> Metrics | None:
    """The metrics of ``task`` for ``model`` on ``dataset``, on ``cluster.device``.

    Every rank of ``cluster`` must call it; rank 0 gets the metrics, the others None.
    """
    share = range(cluster.rank, len(dataset), cluster.world_size)
    scores, targets = predict(model, frontend, dataset, device=cluster.device,
                              batch_size=batch_size, dtype=dtype, num_workers=num_workers,
                              indices=share, task=task)
    parts = cluster.gather((scores, targets))
    if parts is None:
        return None
    return task_metrics(task, np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]))
