"""`TrainConfig`: every setting of a training run, each with its help (and so its flag), and
their validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from passt.data import AugmentConfig
from passt.data.bad_files import POLICIES
from passt.data.factory import data_help
from passt.eval.tasks import TASKS, Task
from passt.patchout import get_patchout
from passt.train.schedule import SCHEDULES, Schedule
from passt.utils.device import DEVICE_FORMS
from passt.utils.errors import UsageError, check_choice
from passt.utils.precision import DTYPES, Dtype
from passt.utils.settings import KeyFlag, parse_overrides, setting
from passt.utils.values import check_int, check_number
from passt.variants import get_variant

INIT_KINDS = ("imagenet", "checkpoint")
# --no-augment NAME: the AugmentConfig fields that turn NAME off ("all": AugmentConfig.off())
AUGMENT_OFF = {"gain": {"gain_db": 0.0}, "roll": {"roll": False},
               "waveform-mixup": {"waveform_mixup_rate": 0.0},
               "spectrogram-mixup": {"spectrogram_mixup_alpha": 0.0}}
# settings that may change when a run is resumed; every other one must match the checkpoint's
RUNTIME_FIELDS = ("out_dir", "num_workers", "device")
# the settings that bound a run; it ends at the first reached
BUDGETS = ("epochs", "max_steps", "max_minutes", "max_tflops")
OPTIONS = "KEY=VALUE,..."
PAPER_CLIP_SECONDS = 10.0  # AudioSet's clips
ESC50_CLIP_SECONDS = 5.0


def augment_without(names: Sequence[str]) -> AugmentConfig:
    """The paper's augmentations without ``names`` (keys of `AUGMENT_OFF`, or ``"all"``)."""
    if "all" in names:
        return AugmentConfig.off()
    return AugmentConfig(**{k: v for name in names for k, v in AUGMENT_OFF[name].items()})


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in its checkpoints."""

    variant: str = setting("passt-s", help="the model (see `passt variants`); default: "
                           "%(default)s")
    task: Task | None = setting(None, help="multi-label: sigmoid scores, binary "
                                "cross-entropy, mAP (AudioSet, OpenMIC); single-label: one "
                                "class per clip, softmax cross-entropy (mixup on one-hot "
                                "targets), accuracy, macro F1 and a confusion matrix (ESC-50); "
                                "default: single-label for esc50:DIR, else multi-label")
    patchout: str | None = setting(None, metavar="STRATEGY", help="the training patchout, "
                                   "replacing the variant's: none | unstructured | structured "
                                   "(or a plugin's), its settings in --model-overrides (e.g. "
                                   "drop=200, or time=10,freq=2; default: the strategy's, "
                                   "scaled to the clip length): Table 2's B, U and S rows; "
                                   "default: the variant's")
    data: str = setting("synthetic", help=f"{data_help()}; default: %(default)s")
    data_options: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar=OPTIONS,
        help="dataset options of both splits, e.g. size=2000,seed=0 (synthetic)",
        keys={"on_bad_file": KeyFlag("a bad audio file or CSV row is skipped and counted, or "
                                     "an error; default: skip", choices=POLICIES)})
    eval_data: str | None = setting(None, help="the eval data's spec, e.g. hdf5:eval.h5 (an "
                                    "HDF5 file is a split); default: --data")
    eval_split: str = setting("eval", help="default: %(default)s")
    eval_fold: int | None = setting(None, help="cross-validation: train on every other fold of "
                                    "the data's fold column (esc50:DIR, or a folder CSV's fold "
                                    "column) and evaluate on this one (passt finetune --folds "
                                    "runs them all)")
    labels: str | None = setting(None, metavar="CSV", help="the class list of folder and HDF5 "
                                 "data: an AudioSet class_labels_indices.csv (index,mid,"
                                 "display_name); its names and count go into the checkpoints "
                                 "(and so to passt tag); default: the data's own (a folder "
                                 "CSV's labels, sorted; an HDF5 file's label_names, or "
                                 "AudioSet's 527 classes for 66 target bytes)")
    eval_data_options: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar=OPTIONS,
        help="the eval split's options over --data-options, e.g. size=500")
    model_overrides: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar=OPTIONS,
        help="any other model setting, e.g. time=10,freq=2,drop_path_rate=0.1",
        keys={"embed_dim": KeyFlag("override the variant's width", int),
              "depth": KeyFlag("override the variant's depth", int),
              "num_heads": KeyFlag("override the variant's heads", int)})
    init: str | None = setting(None, metavar="imagenet:PATH|checkpoint:PATH",
                               help="start from ImageNet DeiT/ViT weights or an official PaSST "
                                    "checkpoint")
    frontend_overrides: dict[str, Any] = setting(
        default_factory=dict, parse=parse_overrides, metavar=OPTIONS,
        help="log-mel frontend settings, e.g. freq_mask=0,time_mask=0 (no SpecAugment); the "
             "time mask scales with clips shorter than 10 s")
    clip_seconds: float | None = setting(None, help="seconds of audio per clip (shorter clips "
                                         "are zero-padded, longer ones cropped); default: 5 "
                                         "for esc50:DIR (ESC-50's clips), else 10")
    batch_size: int = setting(12, help="per process; default: %(default)s")
    eval_batch_size: int | None = setting(None, help="default: --batch-size")
    epochs: int | None = setting(10, help="default: %(default)s")
    max_steps: int | None = setting(None, help="stop after this many steps")
    steps_per_epoch: int | None = setting(None, help="default: one pass over the training "
                                          "clips")
    max_minutes: float | None = setting(None, help="stop (evaluate, checkpoint) after this much "
                                        "training time")
    max_tflops: float | None = setting(None, help="stop after this much training compute: the "
                                       "model's forward and backward FLOPs (FlopCounterMode) "
                                       "per step, summed; device-independent")
    eval_points: int | None = setting(None, help="evaluate (and checkpoint) at this many evenly "
                                      "spaced steps instead of at each epoch's end: a learning "
                                      "curve; needs a step count (epochs, --max-steps or "
                                      "--max-tflops)")
    lr: float = setting(1e-5, help="peak learning rate; default: %(default)s (the paper's; try "
                        "1e-3 for a small model from scratch)")
    weight_decay: float = setting(1e-4, help="default: %(default)s")
    schedule: Schedule = setting("paper", help="paper: warm-up, constant, linear decay to "
                                 "--min-lr-ratio; constant: warm-up then constant; default: "
                                 "%(default)s")
    warmup_steps: int | None = setting(None, help="default: 5%% of the steps")
    decay_start: int | None = setting(None, help="default: half the steps")
    min_lr_ratio: float = setting(0.01, help="the decay's floor, relative to --lr; default: "
                                  "%(default)s")
    dtype: Dtype = setting("fp32", help="fp16 and bf16 use autocast (fp16 with gradient "
                           "scaling); default: %(default)s")
    device: str = setting("auto", help=f"{', '.join(DEVICE_FORMS)}; default: %(default)s "
                          "(each rank's GPU when available)")
    augment: AugmentConfig = setting(
        default_factory=AugmentConfig, name="--no-augment", repeat=True,
        choices=[*AUGMENT_OFF, "all"], parse=augment_without,
        help="turn an augmentation off (repeatable); by default all are on, as in the paper "
             "(SpecAugment and mel jitter are the frontend's, always on)")
    balanced: bool = setting(True, name="--uniform",
                             help="sample clips uniformly instead of class-balanced")
    num_workers: int = setting(0, help="data-loading processes; default: %(default)s")
    seed: int = setting(0, help="default: %(default)s")
    log_every: int = setting(10, help="steps per metrics row; default: %(default)s")
    checkpoint_every: int | None = setting(None, help="steps between mid-epoch checkpoints "
                                           "(each epoch ends with one)")
    out_dir: str = setting("runs/train", name="--out", help="run folder: last.pt, "
                           "metrics.jsonl, metrics.csv; default: %(default)s")

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        esc50 = self.data.startswith("esc50:")
        if self.task is None:
            self.task = "single-label" if esc50 else "multi-label"
        if self.clip_seconds is None:
            self.clip_seconds = ESC50_CLIP_SECONDS if esc50 else PAPER_CLIP_SECONDS
        for name in ("batch_size", "log_every"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("eval_batch_size", "epochs", "max_steps", "steps_per_epoch",
                     "checkpoint_every", "eval_points"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "decay_start"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=0)
        check_int("num_workers", self.num_workers, minimum=0)
        for name in ("clip_seconds", "lr", "max_minutes", "max_tflops"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), above=0)
        if self.weight_decay < 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise UsageError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("task", self.task, TASKS)
        if self.patchout is not None:
            get_patchout(self.patchout)
        if all(getattr(self, b) is None for b in BUDGETS):
            raise UsageError(f"an unbounded run: set {', '.join(BUDGETS)} (one at least)")
        if self.eval_fold is not None and self.eval_data is not None:
            raise UsageError("eval_fold evaluates on a fold of the data; it takes no eval_data")
        if self.labels is not None and "labels_file" in self.data_options:
            raise UsageError("the class list is given twice (labels and the data option "
                             "labels_file); keep labels")
        if "num_classes" in self.model_overrides:
            raise UsageError("num_classes comes from the dataset; remove it from the model "
                             "overrides")
        if self.init is not None:
            parse_init(self.init)
        get_variant(self.variant)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown training setting(s) {unknown}; accepted: "
                             f"{', '.join(sorted(known))}")
        return cls(**values)

    def check_resumable(self, stored: TrainConfig) -> None:
        """Raise unless this run may continue a checkpoint of ``stored``: only
        `RUNTIME_FIELDS` may differ."""
        ours, theirs = self.to_dict(), stored.to_dict()
        changed = sorted(k for k in ours if k not in RUNTIME_FIELDS and ours[k] != theirs[k])
        if changed:
            diffs = ", ".join(f"{k}: {theirs[k]!r} -> {ours[k]!r}" for k in changed)
            raise UsageError(f"cannot resume with changed settings ({diffs}); only "
                             f"{', '.join(RUNTIME_FIELDS)} may change")


def parse_init(init: str) -> tuple[str, str]:
    """``"imagenet:PATH"`` or ``"checkpoint:PATH"`` as ``(kind, path)``."""
    kind, sep, path = init.partition(":")
    if not sep or kind not in INIT_KINDS or not path:
        raise UsageError(f"init must be 'imagenet:PATH' or 'checkpoint:PATH', got {init!r}")
    return kind, path
