"""The ``passt`` command line's arguments. The training commands' setting flags are made from
`TrainConfig`'s fields (`passt.utils.settings`); each command offers the settings it uses."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from passt.data.bad_files import POLICIES
from passt.data.factory import data_help
from passt.inference.outputs import FORMATS
from passt.inference.run import AGGREGATES, EMBED_MODES
from passt.measure.history import HistoryConfig
from passt.measure.regress import Thresholds
from passt.profiling.config import ProfileConfig
from passt.sweep.run import SWEPT
from passt.tradeoff.config import TradeoffConfig
from passt.train import DATA_SETTINGS, TrainConfig
from passt.train.finetune import FINETUNE_DEFAULTS
from passt.train.launch import LaunchConfig
from passt.utils.device import DEVICE_FORMS
from passt.utils.precision import DTYPES
from passt.utils.settings import add_flags, flag_names
from passt.variants import list_variants

Handler = Callable[[argparse.Namespace], int]

TRAIN_SETTINGS = tuple(flag_names(TrainConfig))
SWEEP_SETTINGS = tuple(name for name in TRAIN_SETTINGS if name not in SWEPT)
BASELINE_SETTINGS = DATA_SETTINGS
DEVICE_HELP = f"{', '.join(DEVICE_FORMS)}; default: %(default)s (CUDA when available)"


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    """The options before the command: plugins and logging."""
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="import a file or module that registers strategies or variants "
                             "(repeatable; also read from $PASST_PLUGINS)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")


def global_parser() -> argparse.ArgumentParser:
    """The global options alone, read before plugins are loaded and the full parser built."""
    parser = argparse.ArgumentParser(prog="passt", add_help=False)
    add_global_flags(parser)
    return parser


def _add_settings(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """The flags of the `TrainConfig` settings ``names``; the handler reads them back."""
    add_flags(p, TrainConfig, names)
    p.set_defaults(settings=names)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the output folder from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_folds_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--folds", default=None, metavar="K,...|all",
                   help="cross-validation over the data's fold column (esc50:DIR, a folder "
                        "CSV's fold column): a run per fold in OUT/fold-K, trained on the other "
                        "folds and evaluated on its own; OUT/folds.csv and OUT/summary.json")
    _add_launch_flags(p)


def _add_launch_flags(p: argparse.ArgumentParser) -> None:
    """How independent runs (folds, a sweep's runs) start: `LaunchConfig`'s flags."""
    group = p.add_argument_group("launching independent runs (folds, a sweep's runs)")
    add_flags(group, LaunchConfig, flag_names(LaunchConfig))


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
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_benchmark_commands(sub: argparse._SubParsersAction, commands: Mapping[str, Handler]
                            ) -> None:
    p = sub.add_parser("variants", help="list the model variants (Table 1 rows)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=commands["variants"])

    p = sub.add_parser("check", help="compare two pytest-benchmark JSON files for regressions "
                                     "in speed (instructions, where both runs counted them), "
                                     "memory and FLOPs (exit 0: none; 1: a regression; 3: "
                                     "inconclusive, the noise is wider than a limit)")
    p.add_argument("baseline", help="baseline JSON (e.g. reports/baselines/<device>.json)")
    p.add_argument("current", help="JSON of the current run (pytest --benchmark-json=FILE)")
    limits = Thresholds()
    p.add_argument("--max-memory-growth", default=f"{limits.memory:.0%}",
                   help="default: %(default)s")
    p.add_argument("--max-flops-growth", default=f"{limits.flops:.0%}",
                   help="default: %(default)s")
    p.add_argument("--max-slowdown", default=f"{limits.slowdown:.0%}",
                   help="growth of the median step time; default: %(default)s")
    p.add_argument("--max-instruction-growth", default=f"{limits.instructions:.0%}",
                   help="growth of the instructions per step (rows counted with "
                        "--bench-instructions); default: %(default)s")
    p.add_argument("--time-verdict", action="store_true",
                   help="let the time decide for rows with instruction counts too (else it "
                        "is shown as information)")
    p.add_argument("--format", choices=("text", "markdown"), default="text",
                   help="markdown: for a CI job summary ($GITHUB_STEP_SUMMARY)")
    p.add_argument("--only-regressions", action="store_true",
                   help="list the regressed and inconclusive rows only")
    p.add_argument("--rerun", action="store_true",
                   help="measure the current run's inconclusive rows once more (as they were "
                        "measured: their stored settings) and compare again")
    p.set_defaults(func=commands["check"])

    p = sub.add_parser("history", help="many runs across commits: each benchmark's series and "
                                       "where it changed (history.csv, history.html, "
                                       "history.png)")
    p.add_argument("runs", nargs="+", metavar="RUN_OR_DIR",
                   help="pytest-benchmark JSON files, or folders of them (searched "
                        "recursively), ordered by their commit_info")
    add_flags(p, HistoryConfig, flag_names(HistoryConfig))
    p.set_defaults(func=commands["history"])

    p = sub.add_parser("profile", help="where each variant's time and memory go, by "
                                       "component (or, --scaling, against clip length)")
    ProfileConfig.add_flags(p)
    p.set_defaults(func=commands["profile"])

    p = sub.add_parser("tradeoff", help="inference speed against accuracy of one checkpoint "
                                        "under token merging, pruning and larger patches: "
                                        "tradeoff.csv, tradeoff.md and tradeoff.png")
    add_flags(p, TradeoffConfig, flag_names(TradeoffConfig))
    p.set_defaults(func=commands["tradeoff"])

    p = sub.add_parser("report", help="the paper's Table 1 and Figure 1 from a benchmark run: "
                                      "table1.md/.csv/.tex and speed_vs_map.png/.svg")
    p.add_argument("bench", nargs="?", default=None,
                   help="JSON of a run (pytest bench/ --benchmark-json=FILE)")
    p.add_argument("--table2", nargs="+", default=None, metavar="RUN",
                   help="also (or only) the paper's Table 2 beside passt finetune runs (their "
                        "output folders): table2.md and table2.csv")
    p.add_argument("--maps", default=None, metavar="MAPS.csv",
                   help="proxy mAPs of passt sweep (maps.csv: a row per variant and seed, or "
                        "legacy variant,map): a column of their own beside the paper's mAP, "
                        "and the y of the figure's right panel")
    p.add_argument("--vs", default=None, metavar="VARIANT",
                   help="also the ratios of speed, memory and proxy mAP to this measured "
                        "variant of the run (beside those to PaSST-B)")
    p.add_argument("--only-measured", action="store_true",
                   help="leave the paper-only rows out of the table")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="also include a passt profile folder's breakdown and scaling tables "
                        "and figures")
    p.add_argument("--out", default="reports", help="output folder; default: %(default)s")
    p.set_defaults(func=commands["report"])


def _add_inference_commands(sub: argparse._SubParsersAction, commands: Mapping[str, Handler]
                            ) -> None:
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
    p.set_defaults(func=commands["tag"])

    p = sub.add_parser("embed", help="pooled embeddings per file and per window; "
                                     "exit 1 if any input failed")
    _add_inference_args(p)
    p.add_argument("--out", required=True, metavar="FILE.npy|FILE.h5",
                   help=".h5: one file; .npy: FILE.npy, FILE.windows.npy and FILE.json")
    p.add_argument("--mode", choices=EMBED_MODES, default="embed_only",
                   help="what an embedding holds, as in passt.inference.hear (HEAR): the pooled "
                        "features, "
                        "the logits, or all (logits then features); default: %(default)s")
    p.set_defaults(func=commands["embed"])


def _add_training_commands(sub: argparse._SubParsersAction, commands: Mapping[str, Handler]
                           ) -> None:
    p = sub.add_parser("data", help="prepare training and evaluation data")
    data = p.add_subparsers(dest="data_command", required=True)
    p = data.add_parser("pack", help="write a folder of audio files and its label CSV as an "
                                     "AudioSet-layout HDF5 file (mp3 clips, packed targets)")
    p.add_argument("folder", help="folder holding the audio files")
    p.add_argument("csv", help="CSV with columns filename,labels[,split] (labels separated by "
                               "';' or ',' inside the field)")
    p.add_argument("out", help="HDF5 file to write (atomically)")
    p.add_argument("--clip-seconds", type=float, default=10.0, help="default: %(default)s")
    p.add_argument("--on-bad-file", choices=POLICIES, default="skip",
                   help="skip bad files with a warning, or stop at the first; "
                        "default: %(default)s")
    p.add_argument("--labels-file", help="class_labels_indices.csv-style vocabulary "
                                         "(index,mid,display_name); default: the CSV's labels")
    p.set_defaults(func=commands["data pack"])
    p = data.add_parser("esc50-like", help="write a small ESC-50-layout folder of generated "
                                           "sounds (meta/esc50.csv, audio/): one class per "
                                           "clip, folds, to try fine-tuning without ESC-50")
    p.add_argument("out", help="folder to write")
    p.add_argument("--classes", default=None, metavar="NAME,...",
                   help="classes of the synthetic catalog; default: its last ten, which "
                        "--data-options num_classes=22 of the synthetic task never shows")
    p.add_argument("--folds", type=int, default=5, help="default: %(default)s")
    p.add_argument("--clips-per-class", type=int, default=40,
                   help="default: %(default)s (ESC-50's)")
    p.add_argument("--seconds", type=float, default=5.0, help="default: %(default)s")
    p.add_argument("--sample-rate", type=int, default=44100, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.set_defaults(func=commands["data esc50-like"])

    p = sub.add_parser("train", help="train a variant (AdamW, warm-up and decay, AMP, mAP "
                                     "every epoch, checkpoints, --resume; runs under torchrun)")
    _add_settings(p, TRAIN_SETTINGS)
    _add_folds_flag(p)
    _add_run_flags(p)
    p.set_defaults(func=commands["train"])

    p = sub.add_parser("finetune", help="fine-tune a pre-trained PaSST on your data (a new "
                                        "classifier, the time embedding cropped to the clip, "
                                        "--patchout, a few epochs); --folds cross-validates")
    _add_settings(p, TRAIN_SETTINGS)
    _add_folds_flag(p)
    _add_run_flags(p)
    p.set_defaults(func=commands["finetune"], **FINETUNE_DEFAULTS)

    p = sub.add_parser("eval", help="mAP, ROC-AUC and d-prime (single-label: accuracy, macro "
                                    "F1) of a `passt train` checkpoint")
    p.add_argument("--checkpoint", required=True, help="a `passt train` checkpoint (last.pt)")
    p.add_argument("--data", default=None,
                   help=f"{data_help()}; default: the checkpoint's eval data (or eval fold)")
    p.add_argument("--data-options", default="", metavar="KEY=VALUE,...",
                   help="dataset options (with --data); default: the checkpoint's")
    p.add_argument("--split", default="eval", help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="default: the checkpoint's")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--num-workers", type=int, default=0, help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=commands["eval"])

    p = sub.add_parser("sweep", help="train every variant and seed with the same budget and "
                                     "write maps.csv, maps_summary.csv, curves.csv and the "
                                     "learning curves for `passt report --maps`")
    p.add_argument("--variants", default=",".join(list_variants()), metavar="NAME,...",
                   help="default: every registered variant (%(default)s)")
    _add_settings(p, SWEEP_SETTINGS)
    p.add_argument("--budget-tflops", type=float, default=None,
                   help="training compute per run, counted on the model (forward and backward "
                        "FLOPs per step): a variant with cheaper steps takes more of them")
    p.add_argument("--steps", type=int, default=None, help="steps per run")
    p.add_argument("--minutes", type=float, default=None,
                   help="training minutes per run (slower variants take fewer steps)")
    p.add_argument("--seeds", default="0", metavar="S,...",
                   help="a run per variant and seed, e.g. 0,1,2; default: %(default)s")
    p.add_argument("--baseline-clips", type=int, default=None, metavar="N",
                   help="fit the mean-spectrum baseline on the first N training clips and "
                        "store its mAP in every row (the figures draw it); default: none")
    p.add_argument("--out", default="reports/sweep",
                   help="the sweep's files here, runs in OUT/runs/VARIANT/seed-S; default: "
                        "%(default)s")
    _add_run_flags(p)
    _add_launch_flags(p)
    p.set_defaults(func=commands["sweep"])

    p = sub.add_parser("baseline", help="the mAP of a logistic regression on each clip's mean "
                                        "log-mel spectrum (the data settings of train)")
    _add_settings(p, BASELINE_SETTINGS)
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength; default: 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=commands["baseline"])


def build_parser(commands: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The full parser; ``commands`` maps each command (``"data pack"`` for a nested one) to
    its handler. Build it after plugins are loaded: defaults list the registered variants."""
    parser = argparse.ArgumentParser(prog="passt", description="The passt command line: "
                                     "benchmark, train, evaluate and tag with PaSST models.")
    add_global_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_benchmark_commands(sub, commands)
    _add_inference_commands(sub, commands)
    _add_training_commands(sub, commands)
    return parser
