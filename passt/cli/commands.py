"""The ``passt`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from passt.cli.parser import build_parser, global_parser
from passt.data import LabelVocabulary, align_classes, open_dataset, pack_hdf5, parse_folds
from passt.data.esc50_synthetic import Esc50Like, parse_classes, write_esc50_like
from passt.eval.baseline import mean_spectrum_baseline
from passt.eval.evaluate import evaluate
from passt.eval.metrics import format_metrics
from passt.inference.outputs import EMBED_SUFFIXES, format_tags, save_embeddings
from passt.inference.run import Failure, embed, load_model, tag
from passt.measure.history import HistoryConfig, format_history, history_of
from passt.measure.regress import Thresholds, compare, format_markdown, format_result, parse_percent
from passt.measure.rerun import remeasure
from passt.plugins import load_plugins
from passt.profiling.config import ProfileConfig
from passt.profiling.run import run_profile
from passt.run_checkpoint import RunCheckpoint
from passt.sweep.maps import MAPS_FILE, summarize
from passt.sweep.run import Budget, parse_seeds, run_sweep
from passt.tradeoff import TradeoffConfig
from passt.tradeoff import run as run_tradeoff
from passt.train import (
    Cluster,
    TrainConfig,
    TrainResult,
    load_trained_model,
    open_eval_set,
    open_train_set,
    train,
)
from passt.train.crossval import cross_validate, format_summary
from passt.train.finetune import finetune_config
from passt.train.launch import LaunchConfig, RunsFailed
from passt.utils.errors import UsageError
from passt.utils.settings import flag_names, parse_overrides, read_flags
from passt.utils.values import parse_list
from passt.variants import describe, list_variants

SEQ_NOTE = (
    "seq: tokens per block averaged over the blocks (first -> last block where they differ), "
    "class and distillation tokens included; the paper's Table 1 prints 1212 for AST, which "
    "counts patches only (1214 - 2). acts: when the sequence is reduced (train, eval, both)."
)
SIGPIPE_STATUS = 128 + 13  # a shell's status for a process ended by SIGPIPE


def format_table(rows: list[dict], columns: Sequence[tuple[str, str]]) -> str:
    """Plain-text table of ``rows`` with ``(key, header)`` columns."""
    cells = [[h for _, h in columns]] + [[str(r[k]) for k, _ in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_variants(args: argparse.Namespace) -> int:
    rows = [describe(name) for name in list_variants()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        r["patchout"] = _args(r["patchout_args"])
        r["in_block"] = _args(r["reduction_args"])
        for kind in ("train", "eval"):
            r[f"{kind}_seq"] = _seq(r[f"{kind}_seq_len"], r[f"{kind}_seq_len_per_block"])
    print(format_table(rows, [
        ("name", "name"), ("reductions", "reductions"), ("patchout", "patchout"),
        ("in_block", "in-block"), ("acts", "acts"), ("patch_size", "patch"),
        ("stride", "stride"), ("depth", "depth"), ("frames", "frames"),
        ("train_seq", "train seq"), ("eval_seq", "eval seq"), ("params_m", "params (M)"),
    ]))
    print(f"\n{SEQ_NOTE}")
    return 0


def _args(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items()) or "-"


def _seq(mean: int, per_block: list[int]) -> str:
    """``474``, or ``668 (1190->50)`` where the blocks see different lengths."""
    return str(mean) if len(set(per_block)) == 1 else f"{mean} ({per_block[0]}->{per_block[-1]})"


def cmd_check(args: argparse.Namespace) -> int:
    limits = Thresholds(memory=parse_percent(args.max_memory_growth),
                        flops=parse_percent(args.max_flops_growth),
                        slowdown=parse_percent(args.max_slowdown),
                        instructions=parse_percent(args.max_instruction_growth))
    result = compare(args.baseline, args.current, limits,
                     rerun=remeasure if args.rerun else None, time_verdict=args.time_verdict)
    fmt = format_markdown if args.format == "markdown" else format_result
    print(fmt(result, only_regressions=args.only_regressions))
    return result.exit_code


def cmd_history(args: argparse.Namespace) -> int:
    from passt.report.history_page import write_history  # the report package: pandas

    config = HistoryConfig(**read_flags(HistoryConfig, args, flag_names(HistoryConfig)))
    history = history_of(args.runs, config)
    paths = write_history(history, config.out)
    print(format_history(history))
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    summary = run_profile(ProfileConfig.from_flags(args))
    print(summary.read_text())
    print(f"wrote {summary.parent}/", file=sys.stderr)
    return 0


def cmd_tradeoff(args: argparse.Namespace) -> int:
    summary = run_tradeoff(TradeoffConfig(**read_flags(TradeoffConfig, args,
                                                       flag_names(TradeoffConfig))))
    print(summary.read_text())
    print(f"wrote {summary.parent}/", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from passt.report import write_report, write_table2  # pandas: imported by this command only

    if args.bench is None and args.table2 is None:
        raise UsageError("passt report takes a benchmark JSON, --table2 RUN..., or both")
    reports = []
    if args.bench is not None:
        reports.append(write_report(args.bench, args.out, maps_path=args.maps,
                                    profile_dir=args.profile, vs=args.vs,
                                    only_measured=args.only_measured))
    if args.table2 is not None:
        reports.append(write_table2(args.table2, args.out))
    for report in reports:
        print(report.markdown)
        print("wrote " + ", ".join(str(p) for p in report.paths), file=sys.stderr)
    return 0


def _progress(args: argparse.Namespace) -> bool | None:
    """``--no-progress``: no bar; else the library's default (a bar on a terminal)."""
    return False if args.no_progress else None


def _windowed_run(args: argparse.Namespace) -> dict:
    """The model and the windowing, batching and device settings shared by tag and embed."""
    model = load_model(args.checkpoint, args.variant, **parse_overrides(args.model_overrides))
    return {"model": model, "window_seconds": args.window_seconds,
            "hop_seconds": args.hop_seconds, "batch_size": args.batch_size,
            "device": args.device, "progress": _progress(args)}


def _report_failures(command: str, failures: Sequence[Failure]) -> int:
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        print(f"passt {command}: {len(failures)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


def cmd_tag(args: argparse.Namespace) -> int:
    labels = LabelVocabulary.from_file(args.labels).names if args.labels else None
    report = tag(args.paths, top_k=args.top_k, aggregate=args.aggregate, label_names=labels,
                 frame_scores=args.frame_scores, **_windowed_run(args))
    print(format_tags(report.results, args.format))
    return _report_failures(args.command, report.failures)


def cmd_embed(args: argparse.Namespace) -> int:
    if Path(args.out).suffix not in EMBED_SUFFIXES:
        raise UsageError(f"--out {args.out}: accepted suffixes {', '.join(EMBED_SUFFIXES)}")
    report = embed(args.paths, mode=args.mode, **_windowed_run(args))
    if report.results:
        written = save_embeddings(report, args.out)
        windows = sum(len(r.window_starts) for r in report.results)
        print(f"{len(report.results)} files ({windows} windows): "
              + ", ".join(map(str, written)))
    return _report_failures(args.command, report.failures)


def _print_metrics(metrics: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(metrics, indent=2) if as_json else format_metrics(metrics))


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` of the command's setting flags (see `passt.cli.parser`)."""
    return TrainConfig(**read_flags(TrainConfig, args, args.settings))


def _report_run(result: TrainResult) -> int:
    if result.metrics is not None:
        print(f"step {result.step}, epoch {result.epochs}: ", end="")
        _print_metrics(result.metrics, as_json=False)
    return 0


def _launcher(args: argparse.Namespace) -> LaunchConfig:
    """``--launcher``, ``--jobs``, ``--detach`` and the SLURM options."""
    return LaunchConfig(**read_flags(LaunchConfig, args, flag_names(LaunchConfig)))


def _run_or_cross_validate(cfg: TrainConfig, args: argparse.Namespace) -> int:
    """One run of ``cfg``, or with ``--folds`` one per fold and their summary."""
    launcher = _launcher(args)
    if args.folds is None:
        if launcher != LaunchConfig():
            raise UsageError("--launcher, --jobs, --detach and --slurm-* launch the runs of "
                             "--folds; one run is launched as this command (or torchrun)")
        return _report_run(train(cfg, resume=args.resume, progress=_progress(args)))
    summary = cross_validate(cfg, parse_folds(args.folds), resume=args.resume,
                             progress=_progress(args), launcher=launcher, plugins=args.plugin)
    if summary is not None:  # rank 0, waiting
        print(format_summary(summary))
    elif launcher.detach:
        print(f"the folds run in the background; {Path(cfg.out_dir) / 'folds.csv'} and "
              "summary.json fill as they finish", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    return _run_or_cross_validate(_train_config(args), args)


def cmd_finetune(args: argparse.Namespace) -> int:
    return _run_or_cross_validate(finetune_config(_train_config(args)), args)


def _eval_set(args: argparse.Namespace, cfg: TrainConfig, names: list[str] | None,
              num_classes: int) -> Dataset:
    """``--data`` (with ``--data-options``), else the checkpoint's eval data; split
    ``--split``; its classes lined up with the checkpoint's."""
    if args.data is None:
        dataset = open_eval_set(dataclasses.replace(cfg, eval_split=args.split))
    else:
        dataset = open_dataset(args.data, clip_seconds=cfg.clip_seconds, split=args.split,
                               **parse_overrides(args.data_options))
    return align_classes(dataset, names, num_classes, what="the data", model="the checkpoint")


def cmd_eval(args: argparse.Namespace) -> int:
    ckpt = RunCheckpoint.load(args.checkpoint)
    model, frontend, cfg = load_trained_model(ckpt)
    dataset = _eval_set(args, cfg, ckpt.label_names or None, model.cfg.num_classes)
    with Cluster.join(args.device) as cluster:
        metrics = evaluate(model.to(cluster.device), frontend.to(cluster.device), dataset,
                           cluster, batch_size=args.batch_size, dtype=args.dtype or cfg.dtype,
                           num_workers=args.num_workers, task=cfg.task)
    if metrics is not None:  # None only on ranks other than 0 of a process group
        _print_metrics(metrics.as_dict(), args.json)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    variants = list(parse_list(args.variants, "--variants"))
    budget = Budget(steps=args.steps, minutes=args.minutes, tflops=args.budget_tflops)
    seeds = parse_seeds(args.seeds)
    cfg = _train_config(args)
    baseline = None
    if args.baseline_clips is not None:
        train_set = open_train_set(cfg)
        baseline = mean_spectrum_baseline(train_set, open_eval_set(cfg, train_set),
                                          train_clips=args.baseline_clips).map
    launcher = _launcher(args)
    rows = run_sweep(variants, cfg, args.out, budget, seeds=seeds, baseline_map=baseline,
                     resume=args.resume, progress=_progress(args), launcher=launcher,
                     plugins=args.plugin)
    if launcher.detach:
        print(f"the runs go on in the background; {Path(args.out) / MAPS_FILE} fills as they "
              "finish", file=sys.stderr)
        return 0
    summary = [{"variant": s.variant, "map": s.describe()} for s in summarize(rows)]
    print(format_table(summary, [("variant", "variant"),
                                 ("map", "mAP mean ± 95% interval (what it was measured on)")]))
    print(f"\nwrote {Path(args.out) / MAPS_FILE} and the sweep's other files", file=sys.stderr)
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    cfg = _train_config(args)
    train_set = open_train_set(cfg)
    metrics = mean_spectrum_baseline(train_set, open_eval_set(cfg, train_set), c=args.c)
    _print_metrics(metrics.as_dict(), args.json)
    return 0


def cmd_data_pack(args: argparse.Namespace) -> int:
    summary = pack_hdf5(args.folder, args.csv, args.out, clip_seconds=args.clip_seconds,
                        on_bad_file=args.on_bad_file, labels_file=args.labels_file)
    print(f"wrote {summary.clips} clips, {summary.num_classes} classes to {summary.path}")
    if summary.bad_files:
        print(f"skipped {len(summary.bad_files)} bad file(s):")
        for name, reason in summary.bad_files:
            print(f"  {name}: {reason}")
    return 0


def cmd_data_esc50_like(args: argparse.Namespace) -> int:
    spec = Esc50Like(classes=parse_classes(args.classes), folds=args.folds,
                     clips_per_class=args.clips_per_class, seconds=args.seconds,
                     sample_rate=args.sample_rate, seed=args.seed)
    path = write_esc50_like(args.out, spec)
    print(f"wrote {len(spec.classes) * spec.clips_per_class} clips of {len(spec.classes)} "
          f"classes in {spec.folds} folds: {path}")
    return 0


COMMANDS = {"variants": cmd_variants, "check": cmd_check, "history": cmd_history,
            "profile": cmd_profile, "report": cmd_report, "tradeoff": cmd_tradeoff,
            "tag": cmd_tag, "embed": cmd_embed, "data pack": cmd_data_pack,
            "data esc50-like": cmd_data_esc50_like,
            "train": cmd_train, "finetune": cmd_finetune, "eval": cmd_eval, "sweep": cmd_sweep,
            "baseline": cmd_baseline}


def _run(argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run its command; bad input is one line on stderr and status 2."""
    first, _ = global_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if first.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    command = "passt"
    try:
        load_plugins(first.plugin)  # before the parser computes defaults from the registries
        args = build_parser(COMMANDS).parse_args(argv)
        command = f"passt {args.command}"
        status = args.func(args)
        sys.stdout.flush()  # a closed stdout fails here, not at exit
        return status
    except (UsageError, FileNotFoundError, ModuleNotFoundError) as e:  # else a bug: traceback
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except RunsFailed as e:  # each failed run's traceback is in its own log
        print(f"{command}: {e}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``passt ARGV``; returns the exit status."""
    try:
        return _run(argv)
    except BrokenPipeError:  # stdout closed early (`passt variants | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_STATUS
