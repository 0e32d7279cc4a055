"""Peers: other implementations measured under the same `StepSettings` as our model.

``official`` is hear21passt's PaSST with its own frontend, ``AugmentMelSTFT``, trained as
released (`peer_settings`: fp16 AMP, eager, its matmul-softmax attention, unfused AdamW);
``official-sdpa`` is the same model with our levers (SDPA bound into its attention modules and
the benchmark's precision, compilation and fused AdamW); ``hf-ast`` is transformers'
``ASTForAudioClassification``. AST's feature extractor is
numpy code run on the host, not part of a training step, so ``hf-ast`` uses our frontend. AST
has no patchout: for a patchout variant it is the unpatched equivalent. Each peer step runs
the loss, optimizer, precision, compilation and synthetic data of `build_step`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import json
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from passt.factory import create_model
from passt.frontend import create_frontend
from passt.measure.bench_record import BenchRecord
from passt.measure.compiled import reset_compiler
from passt.measure.flops import torch_flops
from passt.measure.memory import fit_line, saved_activation_bytes
from passt.measure.record import step_record
from passt.measure.step import (
    KINDS,
    Step,
    StepSettings,
    make_forward,
    make_optimizer,
    place_batch,
)
from passt.model import PaSST, PaSSTConfig, grid_size
from passt.patchout import NoPatchout, StructuredPatchout, UnstructuredPatchout
from passt.utils.errors import UsageError, check_choice
from passt.utils.registry import Registry
from passt.variants import get_variant


@dataclass(frozen=True)
class PeerModel:
    """What a peer builds for one step: its model on ``[B, n_mels, T]`` log-mels (with a
    ``token_module`` whose output is the transformer's input sequence) and how it runs."""

    model: nn.Module
    frontend: nn.Module | None  # None: ours
    implementation: str  # package and version, e.g. "hear21passt 0.0.26"
    attention_path: str  # the attention it runs: "math" or "sdpa"
    patchout_args: dict[str, Any]  # what it drops, in our strategies' names


# (our model's config, the clip's frames, the benchmark's settings, our patchout) -> its model
PeerBuilder = Callable[[PaSSTConfig, int, StepSettings, nn.Module], PeerModel]


@dataclass(frozen=True)
class Peer:
    """Another implementation measured under the same `StepSettings` as our model."""

    name: str
    requires: tuple[str, ...]  # the modules its model is built from (importing them proves its
    # whole stack imports)
    build: PeerBuilder
    # what it runs in a benchmark of the given settings (default: those settings)
    settings: Callable[[StepSettings], StepSettings] | None = None
    # variants with the same key give the same model, measured once (None: one per variant)
    configuration: Callable[[StepSettings], tuple] | None = None
    drops_patches: bool = True  # whether it runs our variant's patchout
    note: str | None = None  # how its step differs from ours, said with every row
    label: str = "{name}, {impl}"  # its rows' name in Table 1 ({impl}: package and version)


PEERS: Registry[Peer] = Registry("peer")


def register_peer(peer: Peer) -> Peer:
    """Make ``peer`` measurable beside our model (``--bench-peers``, `passt profile`)."""
    return PEERS.register(peer.name, peer)


def peer_settings(name: str, settings: StepSettings) -> StepSettings:
    """What peer ``name`` runs in a benchmark of ``settings``."""
    peer = PEERS.get(name)
    return settings if peer.settings is None else peer.settings(settings)


def _as_released(settings: StepSettings) -> StepSettings:
    """The official code as released trains eager, with its own attention and
    ``torch.optim.AdamW`` as the PaSST repository builds it (not fused), in fp16 AMP on a GPU
    (PyTorch Lightning's 16-bit precision, which Lightning has only there; fp32 on the CPU)."""
    dtype = "fp16" if settings.torch_device.type == "cuda" else "fp32"
    return dataclasses.replace(settings, dtype=dtype, attention="math", compile=False,
                               compile_mode=None, fused_adamw=False)


def ast_configuration(settings: StepSettings) -> tuple:
    """What ``hf-ast`` builds for a benchmark of ``settings``: variants with the same key (e.g.
    passt-b, passt-u and passt-s, which differ only in patchout, which AST has not) give the
    same AST, measured once."""
    with torch.device("meta"):
        cfg = create_model(settings.variant, **settings.model_kwargs).cfg
    frontend = create_frontend()
    architecture = (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.patch_size,
                    cfg.stride, cfg.n_mels, cfg.num_classes, cfg.drop_rate, cfg.attn_drop_rate,
                    frontend.frames(settings.num_samples(frontend)))
    step = {k: v for k, v in dataclasses.asdict(settings).items()
            if k not in ("variant", "model_overrides")}
    return architecture, json.dumps(step, sort_keys=True)


DEFAULT_PEER_VARIANTS = ("passt-s", "passt-b")  # the rows of the headline comparison


def peer_variants(name: str, variants: list[str],
                  settings_of: Callable[[str], StepSettings]) -> dict[str, str | None]:
    """For each of ``variants`` (those chosen for peers, in order), why peer ``name`` is not
    measured for it (None: it is): once per distinct configuration where the peer has one."""
    peer = PEERS.get(name)
    if peer.configuration is None:
        return dict.fromkeys(variants)
    first: dict[tuple, str] = {}
    reasons: dict[str, str | None] = {}
    for variant in variants:
        key = peer.configuration(settings_of(variant))
        reasons[variant] = (None if key not in first else
                            f"the same model as for {first[key]} ({name} has no patchout)")
        first.setdefault(key, variant)
    return reasons


def peer_unavailable_reason(name: str) -> str | None:
    """Why peer ``name`` cannot be built here (a module that fails to import), or None."""
    for module in PEERS.get(name).requires:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                importlib.import_module(module)
        except Exception as e:  # a missing or broken dependency (timm, torchvision, ...)
            return f"import {module} failed: {type(e).__name__}: {e}"
    return None


def peer_unsupported_reason(cfg: PaSSTConfig) -> str | None:
    """Why no peer can run a model of ``cfg`` (None: they can): the peers know the paper's
    reductions only, not block reductions nor a resized patch embedding."""
    if cfg.reduction != "none":
        return f"the peers have no block reduction ({cfg.reduction})"
    if cfg.embed_patch != (cfg.patch_size, cfg.stride):
        return "the peers cannot run a resized patch embedding (flex)"
    return None


def peer_available(name: str) -> bool:
    """Whether the modules peer ``name`` is built from import."""
    return peer_unavailable_reason(name) is None


@dataclass(eq=False)
class PeerStep(Step):
    """A `Step` of a peer: ``model`` maps ``[B, n_mels, T]`` log-mels to ``[B, classes]``."""

    peer: str
    implementation: str  # package and version, e.g. "hear21passt 0.0.26"
    attention_path: str  # the attention the peer runs: "math" or "sdpa"
    patchout_args: dict[str, Any]  # what the peer drops, in our strategies' names


class OfficialLogits(nn.Module):
    """hear21passt's PaSST on ``[B, n_mels, T]`` log-mels, returning only its logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def token_module(self) -> nn.Module:
        """The module whose output is the transformer's input sequence."""
        return self.net.pos_drop

    def forward(self, mel: Tensor) -> Tensor:
        return self.net(mel.unsqueeze(1))[0]


class ASTLogits(nn.Module):
    """transformers' AST on ``[B, n_mels, T]`` log-mels (it wants ``[B, T, n_mels]``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def token_module(self) -> nn.Module:
        """The module whose output is the transformer's input sequence."""
        return self.net.audio_spectrogram_transformer.embeddings

    def forward(self, mel: Tensor) -> Tensor:
        return self.net(input_values=mel.transpose(1, 2)).logits


def _sdpa_attention_forward(self: nn.Module, x: Tensor) -> Tensor:
    """hear21passt's ``Attention.forward`` with its matmul-softmax replaced by SDPA."""
    B, N, C = x.shape
    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    drop = self.attn_drop.p if self.training else 0.0
    x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, scale=self.scale)
    return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, C)))


def use_sdpa(net: nn.Module) -> None:
    """Bind SDPA into the forward of every hear21passt ``Attention`` instance in ``net``."""
    from hear21passt.models.passt import Attention

    modules = [m for m in net.modules() if isinstance(m, Attention)]
    if not modules:
        raise UsageError(f"no hear21passt Attention module in {type(net).__name__}")
    for m in modules:
        m.forward = types.MethodType(_sdpa_attention_forward, m)


def official_patchout(patchout: nn.Module, grid: tuple[int, int]) -> dict[str, int]:
    """Our patchout on a ``(F, T)`` grid as hear21passt's ``PaSST`` counts (shared by the batch)."""
    if isinstance(patchout, NoPatchout):
        return {}
    if patchout.per_sample:
        raise UsageError("the official code draws one patchout for the whole batch; "
                         "per_sample=True has no official equivalent")
    if isinstance(patchout, StructuredPatchout):
        rows, cols = patchout.kept_shape(grid)
        return {"s_patchout_f": grid[0] - rows, "s_patchout_t": grid[1] - cols}
    if isinstance(patchout, UnstructuredPatchout):
        return {"u_patchout": grid[0] * grid[1] - patchout.num_kept(grid)}
    raise UsageError(f"patchout strategy {patchout.name!r} has no equivalent in the official "
                     "code (it has none, structured and unstructured)")


def _official(cfg: PaSSTConfig, frames: int, settings: StepSettings, ours: nn.Module,
              sdpa: bool) -> PeerModel:
    from hear21passt.models.passt import PaSST as OfficialPaSST

    patchout = official_patchout(ours, (cfg.grid[0], grid_size(frames, cfg.patch_size, cfg.stride)))
    net = OfficialPaSST(
        img_size=(cfg.n_mels, cfg.frames), patch_size=cfg.patch_size, stride=cfg.stride,
        in_chans=1, num_classes=cfg.num_classes, embed_dim=cfg.embed_dim, depth=cfg.depth,
        num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=True, distilled=True,
        drop_rate=cfg.drop_rate, attn_drop_rate=cfg.attn_drop_rate,
        drop_path_rate=cfg.drop_path_rate, **patchout,
    )
    # Its time embedding spans cfg.frames and is cut to the clip, as ours; img_size only feeds
    # a per-call warning about shorter inputs, so it is set to the clip's size.
    net.patch_embed.img_size = (cfg.n_mels, frames)
    if sdpa:
        use_sdpa(net)
    names = {"s_patchout_t": "time", "s_patchout_f": "freq", "u_patchout": "drop"}
    return PeerModel(OfficialLogits(net), _official_frontend(),
                     f"hear21passt {version('hear21passt')}", "sdpa" if sdpa else "math",
                     {names[k]: v for k, v in patchout.items()})


def _official_frontend() -> nn.Module:
    from hear21passt.models.preprocess import AugmentMelSTFT

    # hear21passt.base.get_basic_model's frontend; fmax=None resolves to 15000 Hz, as ours.
    return AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024,
                          freqm=48, timem=192, htk=False, fmin=0.0, fmax=None, norm=1,
                          fmin_aug_range=10, fmax_aug_range=2000)


def _hf_ast(cfg: PaSSTConfig, frames: int, settings: StepSettings, ours: nn.Module
            ) -> PeerModel:
    from transformers import ASTConfig, ASTForAudioClassification

    attention = {"sdpa": "sdpa", "math": "eager"}[settings.attention]
    config = ASTConfig(
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
        intermediate_size=int(cfg.embed_dim * cfg.mlp_ratio), hidden_dropout_prob=cfg.drop_rate,
        attention_probs_dropout_prob=cfg.attn_drop_rate, patch_size=cfg.patch_size,
        frequency_stride=cfg.stride, time_stride=cfg.stride, max_length=frames,
        num_mel_bins=cfg.n_mels, num_labels=cfg.num_classes, attn_implementation=attention,
    )
    return PeerModel(ASTLogits(ASTForAudioClassification(config)), None,
                     f"transformers {version('transformers')}", settings.attention, {})


def _seq_len(model: nn.Module, mel: Tensor) -> int:
    """Tokens entering the first block on one dry forward of ``model`` in its current mode."""
    seen: list[int] = []
    handle = model.token_module.register_forward_hook(lambda m, a, out: seen.append(out.shape[1]))
    try:
        with torch.no_grad():
            model(mel)
    finally:
        handle.remove()
    return seen[0]


def build_peer_step(name: str, settings: StepSettings, kind: str = "train") -> PeerStep:
    """Build peer ``name``'s step of ``settings`` as `build_step` builds ours.

    Seeds torch's global RNG with ``settings.seed``; the peer's architecture is our variant's
    (depth, width, stride, input frames) with our patchout counts resolved for the clip.
    """
    PEERS.get(name)
    check_choice("step kind", kind, KINDS)
    reason = peer_unavailable_reason(name)
    if reason is not None:
        raise ModuleNotFoundError(f"peer {name!r} is not available: {reason}")
    device = settings.torch_device
    training = kind == "train"
    if settings.compile:
        reset_compiler()
    with torch.device("meta"):
        ours: PaSST = create_model(settings.variant, **settings.model_kwargs)
    cfg = ours.cfg
    unsupported = peer_unsupported_reason(cfg)
    if unsupported is not None:
        raise UsageError(f"peer {name!r} cannot run {settings.variant}: {unsupported}")
    ours_frontend = create_frontend()
    num_samples = settings.num_samples(ours_frontend)
    frames = ours_frontend.frames(num_samples)  # the official STFT frames alike
    torch.manual_seed(settings.seed)
    with contextlib.redirect_stdout(io.StringIO()):  # AugmentMelSTFT announces its fmax
        built = PEERS.get(name).build(cfg, frames, settings, ours.patchout)
    model, frontend = built.model, built.frontend or ours_frontend
    model.to(device).train(training)
    frontend.to(device).train(training)
    inputs, targets = place_batch(settings, num_samples, device)
    with contextlib.redirect_stdout(io.StringIO()):  # hear21passt prints on its first forward
        seq_len = _seq_len(model, torch.zeros(1, cfg.n_mels, frames, device=device))
    optimizer, scaler = make_optimizer(model, settings) if training else (None, None)
    return PeerStep(
        settings=settings, kind=kind, frames=frames, seq_len=seq_len,
        seq_len_per_block=(seq_len,) * cfg.depth, model=model,
        frontend=frontend,
        # the model alone: hear21passt's frontend draws its fmin/fmax on the host every call
        forward_fn=make_forward(model, frontend, kind, settings, compile_scope="model"),
        inputs=inputs, targets=targets, optimizer=optimizer, scaler=scaler,
        peer=name, implementation=built.implementation, attention_path=built.attention_path,
        patchout_args=built.patchout_args,
    )


def profile_peer(step: PeerStep) -> BenchRecord:
    """`passt.measure.record.step_record` of a peer step, with its name, implementation and
    how it differs from ours; FLOPs by torch's counter only, on batch-1 eager steps."""
    s = dataclasses.replace(step.settings, batch_size=1, compile=False)
    variant = get_variant(s.variant)
    one = build_peer_step(step.peer, s, step.kind)
    with torch.no_grad():
        mel = one.frontend(one.inputs)
        forward = torch_flops(lambda: one.model(mel))
    activation = None
    if step.kind == "train":
        sizes = [1, 2]
        counts = [saved_activation_bytes(build_peer_step(step.peer, dataclasses.replace(s,
                  batch_size=b))) for b in sizes]
        activation = fit_line(sizes, counts)[0]
    peer = PEERS.get(step.peer)
    record = step_record(step, strategy=variant.strategy if peer.drops_patches else "none",
                         attention=step.attention_path, patchout_args=dict(step.patchout_args),
                         forward_gflops=forward / 1e9, step_gflops=torch_flops(one) / 1e9,
                         activation_bytes=activation)
    note = peer.note
    if note is not None and not peer.drops_patches and variant.strategy != "none":
        note += f", so this is the unpatched equivalent of {s.variant}"
    return dataclasses.replace(record, peer=step.peer, implementation=step.implementation,
                               note=note)


register_peer(Peer("official", ("hear21passt.models.passt", "hear21passt.models.preprocess"),
                   functools.partial(_official, sdpa=False), settings=_as_released,
                   label="official {impl}"))
register_peer(Peer("official-sdpa", ("hear21passt.models.passt", "hear21passt.models.preprocess"),
                   functools.partial(_official, sdpa=True), label="official {impl} + SDPA"))
register_peer(Peer("hf-ast", ("transformers.models.audio_spectrogram_transformer",), _hf_ast,
                   configuration=ast_configuration, drops_patches=False,
                   note="frontend: ours (AST's feature extractor is host-side numpy); AST has no "
                        "patchout", label="HF AST, {impl}"))
