"""Training a PaSST for audio tagging, as in the paper, on one process or under ``torchrun``.

AdamW (weight decay 1e-4) with a linear warm-up, a constant phase and a linear decay to 1% of
the peak learning rate; AMP (bf16, or fp16 with gradient scaling); a class-balanced sampler;
waveform and spectrogram augmentations; mAP on the eval split after every epoch. The whole
training state is checkpointed atomically every epoch (and every ``checkpoint_every`` steps),
so ``resume=True`` continues a crashed run at the same step and in the same sampler order.
Metrics are appended to ``metrics.jsonl`` and ``metrics.csv`` in the run's folder.

One job a module: `config` (the settings), `schedule` (the learning rate), `distributed` (the
process group), `plan` (model, frontend, data and steps of a config), `run_files` (checkpoint
and metrics files), `trainer` (the loop), `finetune` (the paper's fine-tuning recipe on a
config) and `crossval` (a run per fold, ``folds.csv`` and ``summary.json``).
"""

from passt.train.config import RUNTIME_FIELDS, TrainConfig, augment_without, parse_init
from passt.train.crossval import cross_validate
from passt.train.distributed import Cluster
from passt.train.finetune import FINETUNE_DEFAULTS, finetune_config
from passt.train.plan import (
    DATA_SETTINGS,
    build_model,
    clip_frames,
    model_overrides,
    open_eval_set,
    open_train_set,
    plan_steps,
    train_frontend,
)
from passt.train.run_files import (
    CSV_COLUMNS,
    LAST_CHECKPOINT,
    METRICS_CSV,
    METRICS_JSONL,
    MetricsLog,
    load_trained_model,
)
from passt.train.schedule import SCHEDULES, Schedule, WarmupLinearDecay, make_schedule
from passt.train.trainer import Progress, StepHook, Trainer, TrainResult, train

__all__ = [
    "CSV_COLUMNS",
    "DATA_SETTINGS",
    "FINETUNE_DEFAULTS",
    "LAST_CHECKPOINT",
    "METRICS_CSV",
    "METRICS_JSONL",
    "RUNTIME_FIELDS",
    "SCHEDULES",
    "Cluster",
    "MetricsLog",
    "Progress",
    "Schedule",
    "StepHook",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WarmupLinearDecay",
    "augment_without",
    "build_model",
    "clip_frames",
    "cross_validate",
    "finetune_config",
    "load_trained_model",
    "make_schedule",
    "model_overrides",
    "open_eval_set",
    "open_train_set",
    "parse_init",
    "plan_steps",
    "train",
    "train_frontend",
]
