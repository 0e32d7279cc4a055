"""A ``passt train`` checkpoint (``last.pt``) as a typed, versioned record, written and read here
only: the trained model's own arguments (its `PaSSTConfig` and `FrontendConfig`, as nanoGPT's
``model_args``), its classes and task, so that inference rebuilds it without the training code,
and the training state a resumed run continues from."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from passt.checkpoints import load_torch_file
from passt.frontend import FrontendConfig, MelFrontend
from passt.model import PaSST, PaSSTConfig
from passt.utils.atomic import atomic_path
from passt.utils.errors import UsageError
from passt.variants import variant_config

FORMAT = "passt-train/2"
# format 1 (before model_args and frontend_args): its model is rebuilt from its TrainConfig
FORMATS = ("passt-train/1", FORMAT)
# the PaSSTConfig fields the weights depend on: kept when another variant's reductions are asked
ARCHITECTURE = ("num_classes", "n_mels", "frames", "patch_size", "stride", "embed_dim", "depth",
                "num_heads", "mlp_ratio")


@dataclass(frozen=True)
class RunCheckpoint:
    """Everything ``last.pt`` holds; ``model_args`` and ``frontend_args`` are None in a
    checkpoint of format 1."""

    config: dict[str, Any]  # the run's TrainConfig, as `TrainConfig.to_dict` gives it
    num_classes: int
    model: dict[str, Any]  # the model's state_dict
    label_names: list[str] = field(default_factory=list)
    # the training state a resumed run continues from (a model for inference needs none)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None  # fp16 only
    progress: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    rng: list[Any] = field(default_factory=list)  # each rank's RNG states
    metrics: dict[str, Any] | None = None  # the last evaluation
    model_args: dict[str, Any] | None = None  # the PaSSTConfig the model was built with
    frontend_args: dict[str, Any] | None = None  # the FrontendConfig it was trained with
    format: str = FORMAT

    @property
    def task(self) -> str:
        """What the model was trained to do (`passt.eval.tasks`)."""
        return self.config.get("task", "multi-label")

    @property
    def clip_seconds(self) -> float:
        """The training clips' length."""
        return self.config["clip_seconds"]

    def save(self, path: str | Path) -> None:
        """Write over ``path`` in one step."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        with atomic_path(Path(path)) as tmp:
            torch.save(data, tmp)

    @classmethod
    def read(cls, data: Any, source: str = "the checkpoint") -> RunCheckpoint:
        """The record of loaded contents; a `UsageError` for anything else."""
        if not is_run_checkpoint(data):
            raise UsageError(f"{source} is not a training checkpoint of `passt train` "
                             f"(format {' or '.join(FORMATS)})")
        missing = [name for name in ("config", "num_classes", "model") if name not in data]
        if missing:
            raise UsageError(f"{source}: a training checkpoint without {', '.join(missing)}")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    @classmethod
    def load(cls, path: str | Path) -> RunCheckpoint:
        """A checkpoint file (tensors and plain values only: loaded safely)."""
        return cls.read(load_torch_file(path), str(path))

    def build(self, variant: str | None = None, **overrides: Any
              ) -> tuple[PaSST, MelFrontend]:
        """The trained model (eval mode, CPU, its weights loaded) and frontend; ``variant``:
        that variant's reductions on the trained architecture; ``overrides`` win. Needs
        ``model_args`` (format 2)."""
        if self.model_args is None or self.frontend_args is None:
            raise UsageError(f"a checkpoint of format {self.format} does not record its model's "
                             "arguments: `passt.train.load_trained_model` rebuilds it")
        if variant is None:
            cfg = PaSSTConfig(**{**self.model_args, **overrides})
        else:
            shape = {k: self.model_args[k] for k in ARCHITECTURE}
            cfg = variant_config(variant, **{**shape, **overrides})
        model = PaSST(cfg)
        model.load_state_dict(self.model)
        return model.eval(), MelFrontend(FrontendConfig(**self.frontend_args)).eval()


def is_run_checkpoint(data: Any) -> bool:
    """Whether loaded contents are a checkpoint of `passt train` (of any format)."""
    return isinstance(data, Mapping) and data.get("format") in FORMATS
