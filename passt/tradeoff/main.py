"""`run`: the whole of ``passt tradeoff`` on one config: the grid measured, its files written."""

from __future__ import annotations

from pathlib import Path

from passt.measure.timing import RoundPlan
from passt.tradeoff.config import TradeoffConfig
from passt.tradeoff.grid import parse_grid
from passt.tradeoff.outputs import MARKDOWN_FILE, write_tradeoff
from passt.tradeoff.run import eval_clips, load, run_tradeoff


def run(cfg: TradeoffConfig) -> Path:
    """``passt tradeoff``: measure the grid of ``cfg`` and write its files; returns the
    markdown summary's path."""
    points = parse_grid(cfg.grid)  # bad grids fail before anything is loaded
    loaded = load(cfg.checkpoint, cfg.variant, cfg.model_overrides, cfg.clip_seconds)
    dataset = eval_clips(loaded, cfg.data, cfg.data_options, cfg.split)
    plan = RoundPlan(cfg.rounds, max(cfg.rounds, 200), cfg.max_seconds)
    rows = run_tradeoff(loaded, dataset, points, device=cfg.device, dtype=cfg.dtype,
                        batch_size=cfg.batch_size, resamples=cfg.bootstrap, seed=cfg.seed,
                        warmup=cfg.warmup, plan=plan)
    write_tradeoff(rows, cfg.out, Path(cfg.checkpoint).name)
    return Path(cfg.out) / MARKDOWN_FILE
