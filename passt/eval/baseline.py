"""The reference point a transformer must beat: a logistic regression on each clip's mean
log-mel spectrum, blind to how the spectrum changes in time."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from passt.eval.metrics import TaggingMetrics, tagging_metrics
from passt.frontend import create_frontend
from passt.utils.errors import UsageError
from passt.utils.optional import require


def mean_spectra(dataset: Dataset, batch_size: int = 64, clips: int | None = None) -> np.ndarray:
    """``[clips, mel bands]``: the eval-mode log-mel of each clip (the first ``clips``; None:
    all) averaged over time."""
    frontend = create_frontend().eval()
    n = len(dataset) if clips is None else min(clips, len(dataset))
    out = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            waves = torch.stack([torch.from_numpy(dataset[i][0]) for i in range(start, stop)])
            out.append(frontend(waves).mean(-1).numpy())
    return np.concatenate(out)


def mean_spectrum_baseline(train_set: Dataset, eval_set: Dataset, c: float = 1.0,
                           train_clips: int | None = None) -> TaggingMetrics:
    """Fit a one-vs-rest logistic regression on standardised mean spectra of ``train_set``
    (its first ``train_clips``; None: all); score ``eval_set``."""
    require("sklearn", "the mean-spectrum baseline")
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if train_clips is not None and train_clips < 1:
        raise UsageError(f"train_clips must be at least 1, got {train_clips}")
    train_y = train_set.targets[:train_clips]
    trainable = train_y.any(axis=0) & ~train_y.all(axis=0)
    if not trainable.any():
        raise UsageError("no class has both positive and negative training clips")
    model = make_pipeline(StandardScaler(),
                          OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000)))
    model.fit(mean_spectra(train_set, clips=train_clips), train_y[:, trainable])
    scores = np.zeros(eval_set.targets.shape, dtype=np.float64)
    scores[:, trainable] = model.predict_proba(mean_spectra(eval_set))
    return tagging_metrics(scores, eval_set.targets)
