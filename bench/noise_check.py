"""Does the suite tell noise from a regression on this machine? Four runs of the suite:

1. a quiet run (the baseline), and 2. a second one right after it: each median should lie
   inside the other's 95% interval, or its row be marked unstable;
3. a run of passt-s with injected load: a bounded busy loop on one core during part of its
   timed rounds; ``passt check`` against the quiet run should say inconclusive (3), not
   regressed (1);
4. a run whose passt-s does extra work in every training step (a plugin: 15% of the quiet
   run's passt-s training step); ``passt check`` should say regressed (1).

Each check runs at ``--max-slowdown`` 5% and at the default 10%: a 15% slowdown is shown
beyond 10% only when both intervals are within about +-2%.

    python bench/noise_check.py --out DIR [--variants passt-s,passt-b] [-- more pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from passt.measure.bench_file import load_bench_file  # noqa: E402

SLOW_PLUGIN = textwrap.dedent('''
    """passt-s with extra work in every training forward: a regression to be caught."""
    import time

    import torch

    import passt
    from passt.patchout import StructuredPatchout

    EXTRA = float(__import__("os").environ["PASST_EXTRA_SECONDS"])


    class SlowStructured(StructuredPatchout, name="structured-slow"):
        """Structured patchout after EXTRA seconds of host work (no FLOPs, no memory)."""

        def forward(self, x, grid, generator=None):
            if self.training and not torch.compiler.is_compiling():
                end, n = time.perf_counter() + EXTRA, 0
                while time.perf_counter() < end:
                    n += 1
            return super().forward(x, grid, generator)


    old = passt.variants.get_variant("passt-s")
    passt.register_variant(passt.Variant("passt-s", ("structured-slow",), old.patchout_args,
                                         paper_row=old.paper_row))
''')
THRESHOLDS = ("5%", "10%")
SLOWDOWN = 0.15
BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


def bench(out: Path, name: str, args: list[str], env: dict[str, str] | None = None,
          load_after_s: float | None = None, load_s: float = 0.0) -> Path:
    """One run of the suite into ``out/name.json``; with ``load_after_s``, a busy loop on one
    core runs ``load_s`` seconds from that many seconds after the start."""
    path = out / f"{name}.json"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "bench"), "--benchmark-only", "-q",
           "-p", "no:cacheprovider", f"--rootdir={ROOT}", "--bench-journal=",
           f"--benchmark-json={path}", *args]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    load = None
    if load_after_s is not None:
        time.sleep(load_after_s)
        load = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=load_s)])
    if proc.wait() != 0:
        raise SystemExit(f"{name}: pytest failed ({' '.join(cmd)})")
    if load is not None:
        load.wait()
    return path


def check(baseline: Path, current: Path) -> dict[str, int]:
    """``passt check``'s exit status at each threshold."""
    return {limit: subprocess.run([sys.executable, "-m", "passt.cli", "check", str(baseline),
                                   str(current), "--only-regressions", "--max-slowdown", limit],
                                  cwd=ROOT).returncode
            for limit in THRESHOLDS}


def agreement(a: Path, b: Path) -> list[str]:
    """Per benchmark: whether each median lies in the other's interval, or a row is
    unstable."""
    first, second = load_bench_file(a).benchmarks, load_bench_file(b).benchmarks
    lines = []
    for name in sorted(first.keys() & second.keys()):
        x, y = first[name], second[name]
        inside = all(r.record.median_ci_low_s is not None
                     and r.record.median_ci_low_s <= o.median_s <= r.record.median_ci_high_s
                     for r, o in ((x, y), (y, x)))
        unstable = x.record.unstable or y.record.unstable
        verdict = "inside" if inside else "unstable" if unstable else "OUTSIDE"
        lines.append(f"{verdict:9} {name.rsplit('::', 1)[-1]:32} {x.median_s:.4g} "
                     f"[{x.record.median_ci_low_s:.4g}, {x.record.median_ci_high_s:.4g}] vs "
                     f"{y.median_s:.4g} [{y.record.median_ci_low_s:.4g}, "
                     f"{y.record.median_ci_high_s:.4g}]")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default=None, help="--bench-variants of every run")
    p.add_argument("--load-after", type=float, default=15.0,
                   help="seconds into the loaded run when the busy loop starts")
    p.add_argument("--load-seconds", type=float, default=10.0)
    p.add_argument("pytest_args", nargs="*")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = ([f"--bench-variants={args.variants}"] if args.variants else []) + args.pytest_args
    summary = {}
    quiet = bench(args.out, "quiet", common)
    again = bench(args.out, "again", common)
    summary["back_to_back"] = agreement(quiet, again)
    # the loaded run measures passt-s alone, so that the load lands on its rounds
    loaded = bench(args.out, "loaded", [*args.pytest_args, "--bench-variants=passt-s"],
                   load_after_s=args.load_after, load_s=args.load_seconds)
    summary["loaded_check_exit"] = check(quiet, loaded)
    plugin = args.out / "slow_plugin.py"
    plugin.write_text(SLOW_PLUGIN)
    quiet_s = load_bench_file(quiet).benchmarks["bench/test_passt.py::test_step[passt-s-train]"]
    extra = SLOWDOWN * quiet_s.median_s
    summary["slow_extra_seconds"] = extra
    slow = bench(args.out, "slow", [*args.pytest_args, "--bench-variants=passt-s",
                                    f"--bench-plugin={plugin}", "-k", "train"],
                 env={**os.environ, "PASST_EXTRA_SECONDS": str(extra)})
    summary["slow_check_exit"] = check(quiet, slow)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(summary["back_to_back"]))
    print(f"injected load: passt check exit by threshold {summary['loaded_check_exit']} "
          "(3 expected)")
    print(f"passt-s {SLOWDOWN:.0%} slower: passt check exit by threshold "
          f"{summary['slow_check_exit']} (1 expected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
