"""The ``passt`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from passt.plugins import load_plugins
from passt.regress import Thresholds, compare, format_result, parse_percent
from passt.variants import describe, list_variants

SEQ_NOTE = (
    "seq lengths count the class and distillation tokens; the paper's Table 1 prints 1212 for "
    "AST, which counts patches only (1214 - 2)."
)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        load_plugins(args.plugin)
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ModuleNotFoundError) as e:
        print(f"passt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
