"""The ``passt`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passt.baseline import mean_spectrum_baseline
from passt.data import AugmentConfig, open_dataset, pack_hdf5
from passt.errors import UsageError
from passt.evaluate import evaluate
from passt.inference import (
    AGGREGATES,
    EMBED_SUFFIXES,
    FORMATS,
    Failure,
    embed,
    format_tags,
    load_labels,
    load_model,
    parse_overrides,
    resolve_device,
    save_embeddings,
    tag,
)
from passt.plugins import load_plugins
from passt.precision import DTYPES
from passt.regress import Thresholds, compare, format_result, parse_percent
from passt.sweep import MAPS_COLUMNS, MAPS_FILE, run_sweep
from passt.train import (
    SCHEDULES,
    TrainConfig,
    load_trained_model,
    open_eval_set,
    open_train_set,
    train,
)
from passt.variants import describe, list_variants

SEQ_NOTE = (
    "seq lengths count the class and distillation tokens; the paper's Table 1 prints 1212 for "
    "AST, which counts patches only (1214 - 2)."
)
AUGMENT_OFF = {"gain": {"gain_db": 0.0}, "roll": {"roll": False},
               "waveform-mixup": {"waveform_mixup_rate": 0.0},
               "spectrogram-mixup": {"spectrogram_mixup_alpha": 0.0}}


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
        r["patchout"] = ",".join(f"{k}={v}" for k, v in r["patchout_args"].items()) or "-"
    print(format_table(rows, [
        ("name", "name"), ("reductions", "reductions"), ("patchout", "patchout"),
        ("stride", "stride"), ("depth", "depth"), ("frames", "frames"),
        ("train_seq_len", "train seq"), ("eval_seq_len", "eval seq"), ("params_m", "params (M)"),
    ]))
    print(f"\n{SEQ_NOTE}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    limits = Thresholds(memory=parse_percent(args.max_memory_growth),
                        flops=parse_percent(args.max_flops_growth),
                        slowdown=parse_percent(args.max_slowdown))
    result = compare(args.baseline, args.current, limits)
    print(format_result(result, only_regressions=args.only_regressions))
    return 0 if result.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from passt.report import write_report  # needs pandas: imported by this command only

    report = write_report(args.bench, args.out, maps_path=args.maps)
    print(report.markdown)
    print("wrote " + ", ".join(str(p) for p in report.paths), file=sys.stderr)
    return 0


def _windowed_run(args: argparse.Namespace) -> dict:
    """The model and the windowing, batching and device settings shared by tag and embed."""
    model = load_model(args.checkpoint, args.variant, **parse_overrides(args.model_overrides))
    return {"model": model, "window_seconds": args.window_seconds,
            "hop_seconds": args.hop_seconds, "batch_size": args.batch_size,
            "device": args.device, "progress": False if args.no_progress else None}


def _report_failures(command: str, failures: Sequence[Failure]) -> int:
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        print(f"passt {command}: {len(failures)} input(s) failed", file=sys.stderr)
    return 1 if failures else 0


def cmd_tag(args: argparse.Namespace) -> int:
    labels = load_labels(args.labels) if args.labels else None
    report = tag(args.paths, top_k=args.top_k, aggregate=args.aggregate, label_names=labels,
                 frame_scores=args.frame_scores, **_windowed_run(args))
    print(format_tags(report.results, args.format))
    return _report_failures(args.command, report.failures)


def cmd_embed(args: argparse.Namespace) -> int:
    if Path(args.out).suffix not in EMBED_SUFFIXES:
        raise UsageError(f"--out {args.out}: accepted suffixes {', '.join(EMBED_SUFFIXES)}")
    report = embed(args.paths, **_windowed_run(args))
    if report.results:
        written = save_embeddings(report, args.out)
        windows = sum(len(r.window_starts) for r in report.results)
        print(f"{len(report.results)} files ({windows} windows): "
              + ", ".join(map(str, written)))
    return _report_failures(args.command, report.failures)


def _training_config(args: argparse.Namespace, **changes: Any) -> TrainConfig:
    """The `TrainConfig` of the shared training options, with ``changes``."""
    model = parse_overrides(args.model_overrides)
    for key in ("embed_dim", "depth", "num_heads"):
        if getattr(args, key) is not None:
            model[key] = getattr(args, key)
    off = {k: v for name in args.no_augment if name != "all" for k, v in AUGMENT_OFF[name].items()}
    augment = AugmentConfig.off() if "all" in args.no_augment else AugmentConfig(**off)
    return TrainConfig(
        data=args.data,
        data_options={"on_bad_file": args.on_bad_file, **parse_overrides(args.data_options)},
        eval_data=args.eval_data, eval_split=args.eval_split,
        eval_data_options=parse_overrides(args.eval_data_options), model_overrides=model,
        init=args.init, frontend_overrides=parse_overrides(args.frontend_overrides),
        clip_seconds=args.clip_seconds, batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size, steps_per_epoch=args.steps_per_epoch, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        decay_start=args.decay_start, min_lr_ratio=args.min_lr_ratio, dtype=args.dtype,
        device=args.device, augment=augment, balanced=not args.uniform,
        num_workers=args.num_workers, seed=args.seed,
        log_every=args.log_every, checkpoint_every=args.checkpoint_every, **changes,
    )


def _print_metrics(metrics: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    print(f"mAP {metrics['map']:.4f} (chance {metrics['chance_map']:.4f}), "
          f"ROC-AUC {metrics['roc_auc']:.4f}, d-prime {metrics['d_prime']:.3f} "
          f"({metrics['samples']} clips, {metrics['scored_classes']} classes scored)")


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _training_config(args, variant=args.variant, epochs=args.epochs,
                           max_steps=args.max_steps, max_minutes=args.max_minutes,
                           out_dir=args.out)
    result = train(cfg, resume=args.resume, progress=False if args.no_progress else None)
    if result.metrics is not None:
        print(f"step {result.step}, epoch {result.epochs}: ", end="")
        _print_metrics(result.metrics, as_json=False)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    model, frontend, cfg = load_trained_model(args.checkpoint)
    if args.data is None:
        dataset = open_eval_set(dataclasses.replace(cfg, eval_split=args.split))
    else:
        dataset = open_dataset(args.data, clip_seconds=cfg.clip_seconds, split=args.split,
                               **parse_overrides(args.data_options))
    if dataset.num_classes != model.cfg.num_classes:
        raise UsageError(f"the data has {dataset.num_classes} classes, the checkpoint "
                         f"{model.cfg.num_classes}")
    device = resolve_device(args.device, model)
    metrics = evaluate(model.to(device), frontend.to(device), dataset, device=device,
                       batch_size=args.batch_size, dtype=args.dtype or cfg.dtype,
                       num_workers=args.num_workers)
    if metrics is not None:  # None only on ranks other than 0 of a process group
        _print_metrics(metrics.as_dict(), args.json)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    base = _training_config(args, out_dir=args.out)
    rows = run_sweep(variants, base, args.out, steps=args.steps, minutes=args.minutes,
                     resume=args.resume, progress=False if args.no_progress else None)
    print(format_table(rows, [(c, c) for c in MAPS_COLUMNS]))
    print(f"\nwrote {Path(args.out) / MAPS_FILE}", file=sys.stderr)
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    cfg = _training_config(args)
    metrics = mean_spectrum_baseline(open_train_set(cfg), open_eval_set(cfg), c=args.c)
    _print_metrics(metrics.as_dict(), args.json)
    return 0


def _add_training_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig
    p.add_argument("--data", default=d.data,
                   help="synthetic | folder:DIR | hdf5:FILE; default: %(default)s")
    p.add_argument("--on-bad-file", choices=["skip", "error"], default="skip",
                   help="a bad audio file or CSV row is skipped and counted, or an error; "
                        "default: %(default)s")
    p.add_argument("--data-options", default="", metavar="KEY=VALUE,...",
                   help="dataset options of both splits, e.g. size=2000,seed=0 (synthetic)")
    p.add_argument("--eval-data-options", default="", metavar="KEY=VALUE,...",
                   help="the eval split's options over --data-options, e.g. size=500")
    p.add_argument("--eval-data", default=None,
                   help="the eval data's spec, e.g. hdf5:eval.h5; default: --data")
    p.add_argument("--eval-split", default=d.eval_split, help="default: %(default)s")
    p.add_argument("--embed-dim", type=int, default=None, help="override the variant's width")
    p.add_argument("--depth", type=int, default=None, help="override the variant's depth")
    p.add_argument("--num-heads", type=int, default=None, help="override the variant's heads")
    p.add_argument("--model-overrides", default="", metavar="KEY=VALUE,...",
                   help="any other model setting, e.g. time=10,freq=2,drop_path_rate=0.1")
    p.add_argument("--frontend-overrides", default="", metavar="KEY=VALUE,...",
                   help="log-mel frontend settings, e.g. freq_mask=0,time_mask=0 (no "
                        "SpecAugment); the time mask scales with clips shorter than 10 s")
    p.add_argument("--init", default=None, metavar="imagenet:PATH|checkpoint:PATH",
                   help="start from ImageNet DeiT/ViT weights or an official PaSST checkpoint")
    p.add_argument("--clip-seconds", type=float, default=d.clip_seconds,
                   help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process; "
                   "default: %(default)s")
    p.add_argument("--eval-batch-size", type=int, default=None, help="default: --batch-size")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="default: one pass over the training clips")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate; "
                   "default: %(default)s (the paper's; try 1e-3 for a small model from scratch)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="default: %(default)s")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="paper: warm-up, constant, linear decay to --min-lr-ratio; constant: "
                        "warm-up then constant; default: %(default)s")
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of the steps")
    p.add_argument("--decay-start", type=int, default=None, help="default: half the steps")
    p.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio,
                   help="default: %(default)s")
    p.add_argument("--dtype", choices=DTYPES, default=d.dtype,
                   help="fp16 and bf16 use autocast (fp16 with gradient scaling); "
                        "default: %(default)s")
    p.add_argument("--device", default=d.device,
                   help="cpu, cuda, cuda:1, ...; default: %(default)s (each rank's GPU when "
                        "available)")
    p.add_argument("--no-augment", action="append", default=[], choices=[*AUGMENT_OFF, "all"],
                   help="turn an augmentation off (repeatable); by default all are on, as in "
                        "the paper (SpecAugment and mel jitter are the frontend's, always on)")
    p.add_argument("--uniform", action="store_true",
                   help="sample clips uniformly instead of class-balanced")
    p.add_argument("--num-workers", type=int, default=d.num_workers,
                   help="data-loading processes; default: %(default)s")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--log-every", type=int, default=d.log_every,
                   help="steps per metrics row; default: %(default)s")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between mid-epoch checkpoints (each epoch ends with one)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the output folder from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_inference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                   help="audio files (any format soundfile reads) or directories, searched "
                        "recursively for audio extensions")
    p.add_argument("--checkpoint", required=True,
                   help="an official PaSST state_dict or a `passt train` checkpoint")
    p.add_argument("--variant", default=None,
                   help="architecture of a plain state_dict (default passt-s); a `passt train` "
                        "checkpoint names its own")
    p.add_argument("--model-overrides", default="", metavar="KEY=VALUE,...",
                   help="model settings on top of the variant's, e.g. embed_dim=64,depth=1")
    p.add_argument("--window-seconds", type=float, default=None,
                   help="default: the training clip length of a `passt train` checkpoint, "
                        "else 10")
    p.add_argument("--hop-seconds", type=float, default=None,
                   help="window hop (the last window ends with the file); default: half a "
                        "window")
    p.add_argument("--batch-size", type=int, default=8,
                   help="windows per forward pass; default: %(default)s")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:1, ...; default: %(default)s (CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_data_pack(args: argparse.Namespace) -> int:
    summary = pack_hdf5(args.folder, args.csv, args.out, clip_seconds=args.clip_seconds,
                        on_bad_file=args.on_bad_file, labels_file=args.labels_file)
    print(f"wrote {summary.clips} clips, {summary.num_classes} classes to {summary.path}")
    if summary.bad_files:
        print(f"skipped {len(summary.bad_files)} bad file(s):")
        for name, reason in summary.bad_files:
            print(f"  {name}: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passt", description=__doc__)
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="import a file or module that registers strategies or variants "
                             "(repeatable; also read from $PASST_PLUGINS)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("variants", help="list the model variants (Table 1 rows)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("check", help="compare two pytest-benchmark JSON files for regressions "
                                     "in speed, memory and FLOPs (exit 1 if any)")
    p.add_argument("baseline", help="baseline JSON (e.g. reports/baselines/<device>.json)")
    p.add_argument("current", help="JSON of the current run (pytest --benchmark-json=FILE)")
    p.add_argument("--max-memory-growth", default="2%", help="default: %(default)s")
    p.add_argument("--max-flops-growth", default="0%", help="default: %(default)s")
    p.add_argument("--max-slowdown", default="10%",
                   help="growth of the median step time; default: %(default)s")
    p.add_argument("--only-regressions", action="store_true", help="list regressed rows only")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("report", help="the paper's Table 1 and Figure 1 from a benchmark run: "
                                      "table1.md/.csv/.tex and speed_vs_map.png/.svg")
    p.add_argument("bench", help="JSON of a run (pytest bench/ --benchmark-json=FILE)")
    p.add_argument("--maps", default=None, metavar="MAPS.csv",
                   help="measured mAPs, columns variant,map (optional: task, steps); they "
                        "replace the paper's for those variants and are marked")
    p.add_argument("--out", default="reports", help="output folder; default: %(default)s")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tag", help="label audio files of any length (sliding windows); "
                                   "exit 1 if any input failed")
    _add_inference_args(p)
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="class names: an AudioSet class_labels_indices.csv "
                        "(index,mid,display_name); default: those of a `passt train` "
                        "checkpoint, else class indices")
    p.add_argument("--top-k", type=int, default=5, help="default: %(default)s")
    p.add_argument("--format", choices=FORMATS, default="table", help="default: %(default)s")
    p.add_argument("--aggregate", choices=AGGREGATES, default="mean",
                   help="clip score from the window scores; default: %(default)s")
    p.add_argument("--frame-scores", action="store_true",
                   help="also the top labels of every window")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("embed", help="pooled embeddings per file and per window; "
                                     "exit 1 if any input failed")
    _add_inference_args(p)
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.h5",
                   help=".h5: one file; .npy: FILE.npy, FILE.windows.npy and FILE.json")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("data", help="prepare training and evaluation data")
    data = p.add_subparsers(dest="data_command", required=True)
    p = data.add_parser("pack", help="write a folder of audio files and its label CSV as an "
                                     "AudioSet-layout HDF5 file (mp3 clips, packed targets)")
    p.add_argument("folder", help="folder holding the audio files")
    p.add_argument("csv", help="CSV with columns filename,labels[,split] (labels separated by "
                               "';' or ',' inside the field)")
    p.add_argument("out", help="HDF5 file to write (atomically)")
    p.add_argument("--clip-seconds", type=float, default=10.0, help="default: %(default)s")
    p.add_argument("--on-bad-file", choices=["skip", "error"], default="skip",
                   help="skip bad files with a warning, or stop at the first; "
                        "default: %(default)s")
    p.add_argument("--labels-file", help="class_labels_indices.csv-style vocabulary "
                                         "(index,mid,display_name); default: the CSV's labels")
    p.set_defaults(func=cmd_data_pack)

    p = sub.add_parser("train", help="train a variant (AdamW, warm-up and decay, AMP, mAP "
                                     "every epoch, checkpoints, --resume; runs under torchrun)")
    p.add_argument("--variant", default=TrainConfig.variant, help="default: %(default)s")
    _add_training_args(p)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="default: %(default)s")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this much training time")
    p.add_argument("--out", default=TrainConfig.out_dir,
                   help="run folder: last.pt, metrics.jsonl, metrics.csv; default: %(default)s")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="mAP, ROC-AUC and d-prime of a `passt train` checkpoint")
    p.add_argument("--checkpoint", required=True, help="a `passt train` checkpoint (last.pt)")
    p.add_argument("--data", default=None,
                   help="synthetic | folder:DIR | hdf5:FILE; default: the checkpoint's eval "
                        "data")
    p.add_argument("--data-options", default="", metavar="KEY=VALUE,...",
                   help="dataset options (with --data); default: the checkpoint's")
    p.add_argument("--split", default="eval", help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="default: the checkpoint's")
    p.add_argument("--device", default="auto", help="default: %(default)s")
    p.add_argument("--num-workers", type=int, default=0, help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sweep", help="train every variant with the same budget and seed and "
                                     "write maps.csv for `passt report --maps`")
    p.add_argument("--variants", default=",".join(list_variants()), metavar="NAME,...",
                   help="default: every registered variant")
    _add_training_args(p)
    p.add_argument("--steps", type=int, default=None, help="steps per variant")
    p.add_argument("--minutes", type=float, default=None,
                   help="training minutes per variant (slower variants take fewer steps)")
    p.add_argument("--out", default="reports",
                   help="maps.csv here, runs in OUT/runs/VARIANT; default: %(default)s")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("baseline", help="the mAP of a logistic regression on each clip's mean "
                                        "log-mel spectrum (same data options as train)")
    _add_training_args(p)
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength; default: 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_baseline)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        load_plugins(args.plugin)
        return args.func(args)
    except (UsageError, FileNotFoundError, ModuleNotFoundError) as e:  # else a bug: traceback
        print(f"passt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
