"""Fine-tuning a pre-trained PaSST (``passt finetune``): the paper's recipe on top of a
`TrainConfig`.

From ``--init checkpoint:CKPT`` (an official checkpoint or a ``passt train`` one, whose width,
depth and heads are taken), the model is built for the clip length: its time positional
embedding is the checkpoint's first columns, the frequency embedding is kept, a new classifier
is sized to the data's classes (`passt.checkpoints.load_checkpoint`), and ``--patchout``
chooses the fine-tuning patchout.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from passt.checkpoints import load_torch_file
from passt.run_checkpoint import RunCheckpoint, is_run_checkpoint
from passt.train.config import TrainConfig, parse_init
from passt.train.plan import clip_frames, train_frontend
from passt.utils.errors import UsageError

log = logging.getLogger(__name__)

# `passt finetune`'s defaults where they differ from `passt train`'s: a few epochs
FINETUNE_DEFAULTS: dict[str, Any] = {"epochs": 5, "out_dir": "runs/finetune"}
# the model settings that shape the parameters, taken from a `passt train` checkpoint
ARCHITECTURE = ("n_mels", "patch_size", "stride", "embed_dim", "depth", "num_heads",
                "mlp_ratio")


def finetune_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` as a fine-tuning run: the model's time embedding sized to the clip (``frames``
    of the model overrides, unless given) and, from a ``passt train`` checkpoint, its
    architecture settings (the given overrides win)."""
    if cfg.init is None or parse_init(cfg.init)[0] != "checkpoint":
        given = "none was given" if cfg.init is None else f"got {cfg.init!r}"
        raise UsageError(f"fine-tuning starts from a PaSST checkpoint: pass --init "
                         f"checkpoint:CKPT (an official one or a passt train last.pt); {given}")
    path = parse_init(cfg.init)[1]
    raw = load_torch_file(path, mmap=True)  # the settings only
    trained = RunCheckpoint.read(raw).config if is_run_checkpoint(raw) else None
    arch: dict[str, Any] = {}
    if trained is not None:
        arch = {k: v for k, v in trained["model_overrides"].items() if k in ARCHITECTURE}
        clash = {k: v for k, v in cfg.model_overrides.items() if k in arch and arch[k] != v}
        if clash:
            raise UsageError(f"{path} was trained with " + ", ".join(
                f"{k}={arch[k]}" for k in clash) + "; its architecture is taken from it: drop "
                + ", ".join(f"{k}={v}" for k, v in clash.items()) + " (--model-overrides or "
                "--embed-dim, --depth, --num-heads)")
        if trained["variant"] != cfg.variant:
            log.warning("the checkpoint was trained as %s; fine-tuning it as %s (--variant)",
                        trained["variant"], cfg.variant)
    frames = clip_frames(cfg.clip_seconds, train_frontend(cfg))
    overrides = {**arch, "frames": frames, **cfg.model_overrides}
    return dataclasses.replace(cfg, model_overrides=overrides)
