"""Does the suite tell noise from a regression on this machine? Five runs of the suite:

1. a quiet run, and 2. a second one right after it: each median should lie inside the other's
   95% interval, or its row be marked unstable;
3. a baseline of passt-s's training step with more replicas (a precise one, as a saved
   baseline should be);
4. a run of passt-s whose step itself starts a bounded busy loop on one core during part of
   its timed rounds (a plugin); the row should be unstable or wider, and ``passt check``
   against the baseline should say inconclusive (3), not regressed (1);
5. a run whose passt-s does extra work in every training step (a plugin: 15% of the
   baseline's step), measured as precisely as the baseline, as a candidate for a verdict
   should be; ``passt check`` should say regressed (1).

Each check runs at ``--max-slowdown`` 5% and at the default 10%: a 15% slowdown is shown
beyond 10% only when the interval of the ratio lies within about +-4%, which the suite's
default three replicas do not reach on a shared 2-core CPU (their t interval has 2 degrees
of freedom).

    python bench/noise_check.py --out DIR [--variants passt-s,passt-b] [-- more pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
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
                                         paper_row=old.paper_row), replace=True)
''')
LOAD_PLUGIN = textwrap.dedent('''
    """passt-s whose training step starts a busy loop on one core, once, at its START-th
    call, for SECONDS: load that lands on part of the timed rounds, stopped by itself."""
    import os
    import subprocess
    import sys

    import torch

    import passt
    from passt.patchout import StructuredPatchout

    START = int(os.environ["PASST_LOAD_START"])
    SECONDS = float(os.environ["PASST_LOAD_SECONDS"])
    LOOP = f"import time\\nend = time.time() + {SECONDS}\\nwhile time.time() < end: pass\\n"


    class LoadedStructured(StructuredPatchout, name="structured-loaded"):
        """Structured patchout; the START-th training call starts the busy loop."""

        calls = 0

        def forward(self, x, grid, generator=None):
            if self.training and not torch.compiler.is_compiling():
                LoadedStructured.calls += 1
                if LoadedStructured.calls == START:
                    subprocess.Popen([sys.executable, "-c", LOOP])
            return super().forward(x, grid, generator)


    old = passt.variants.get_variant("passt-s")
    passt.register_variant(passt.Variant("passt-s", ("structured-loaded",), old.patchout_args,
                                         paper_row=old.paper_row), replace=True)
''')
THRESHOLDS = ("5%", "10%")
TRAIN = "bench/test_passt.py::test_step[passt-s-train]"
SLOWDOWN = 0.15


def bench(out: Path, name: str, args: list[str], env: dict[str, str] | None = None) -> Path:
    """One run of the suite into ``out/name.json``."""
    path = out / f"{name}.json"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "bench"), "--benchmark-only", "-q",
           "-p", "no:cacheprovider", f"--rootdir={ROOT}", "--bench-journal=",
           f"--benchmark-json={path}", *args]
    if subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"{name}: pytest failed ({' '.join(cmd)})")
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
                     f"{y.record.median_ci_high_s:.4g}]; probe {_ms(x.record.probe_median_s)} "
                     f"vs {_ms(y.record.probe_median_s)} ms")
    return lines


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def describe(path: Path) -> str:
    """passt-s's training row: median, interval, stability, replicas."""
    r = load_bench_file(path).benchmarks[TRAIN]
    rec = r.record
    return (f"{r.median_s:.4g} s [{rec.median_ci_low_s:.4g}, {rec.median_ci_high_s:.4g}]"
            f"{' unstable' if rec.unstable else ''}, replicas "
            f"{[round(m, 4) for m in rec.replica_medians_s or ()]}, probe "
            f"{_ms(rec.probe_median_s)} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default=None, help="--bench-variants of every run")
    p.add_argument("--load-start", type=int, default=12,
                   help="the training call of passt-s that starts the busy loop (after the "
                        "replicas' warm-up)")
    p.add_argument("--load-seconds", type=float, default=6.0)
    p.add_argument("--baseline-replicas", type=int, default=6)
    p.add_argument("pytest_args", nargs="*")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = ([f"--bench-variants={args.variants}"] if args.variants else []) + args.pytest_args
    summary: dict = {}
    quiet = bench(args.out, "quiet", common)
    again = bench(args.out, "again", common)
    summary["back_to_back"] = agreement(quiet, again)
    passt_s = [*args.pytest_args, "--bench-variants=passt-s", "-k", "train"]
    precise = ["--bench-replicas", str(args.baseline_replicas), "--bench-max-seconds", "60"]
    baseline = bench(args.out, "baseline", [*passt_s, *precise])
    plugins = {"load_plugin.py": LOAD_PLUGIN, "slow_plugin.py": SLOW_PLUGIN}
    for name, text in plugins.items():
        (args.out / name).write_text(text)
    loaded = bench(args.out, "loaded", [*passt_s, f"--bench-plugin={args.out / 'load_plugin.py'}"],
                   env={**os.environ, "PASST_LOAD_START": str(args.load_start),
                        "PASST_LOAD_SECONDS": str(args.load_seconds)})
    summary["loaded_check_exit"] = check(baseline, loaded)
    extra = SLOWDOWN * load_bench_file(baseline).benchmarks[TRAIN].median_s
    summary["slow_extra_seconds"] = extra
    slow = bench(args.out, "slow", [*passt_s, *precise,
                                    f"--bench-plugin={args.out / 'slow_plugin.py'}"],
                 env={**os.environ, "PASST_EXTRA_SECONDS": str(extra)})
    summary["slow_check_exit"] = check(baseline, slow)
    summary["rows"] = {n: describe(p) for n, p in (("baseline", baseline), ("loaded", loaded),
                                                   ("slow", slow))}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(summary["back_to_back"]))
    for name, row in summary["rows"].items():
        print(f"{name:8} passt-s train {row}")
    print(f"injected load: passt check exit by threshold {summary['loaded_check_exit']} "
          "(3 expected)")
    print(f"passt-s {SLOWDOWN:.0%} slower: passt check exit by threshold "
          f"{summary['slow_check_exit']} (1 expected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
