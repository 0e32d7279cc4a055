"""passt-bench: a reference PaSST (Patchout faSt Spectrogram Transformer) and its benchmarks."""

from passt.checkpoints import CheckpointMismatchError, load_checkpoint, load_imagenet
from passt.factory import create_model
from passt.frontend import FrontendConfig, MelFrontend, create_frontend
from passt.inference import embed, tag
from passt.model import PaSST, PaSSTConfig
from passt.patchout import (
    Patchout,
    create_patchout,
    get_patchout,
    list_patchouts,
    register_patchout,
)
from passt.variants import (
    Variant,
    compose,
    describe,
    get_variant,
    list_reductions,
    list_variants,
    register_variant,
    variant_config,
    with_patchout,
)

__all__ = [
    "CheckpointMismatchError",
    "FrontendConfig",
    "MelFrontend",
    "PaSST",
    "PaSSTConfig",
    "Patchout",
    "Variant",
    "compose",
    "create_frontend",
    "create_model",
    "create_patchout",
    "describe",
    "embed",
    "get_patchout",
    "get_variant",
    "list_patchouts",
    "list_reductions",
    "list_variants",
    "load_checkpoint",
    "load_imagenet",
    "register_patchout",
    "register_variant",
    "tag",
    "variant_config",
    "with_patchout",
]
