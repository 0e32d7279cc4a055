"""One command that measures everything on a GPU (run it through ``bench/campaign.sh``).

Steps, each capped in time and logged under ``OUT/logs/``:
1. a smoke test of every CUDA path on a tiny variant: the benchmarks compiled (with peers and
   the memory fit), the ablation (CUDA graphs, fp16, fp32, ...), bf16 and fp16 training with
   resume, tagging;
2. the ``paper`` preset for every variant with peers;
3. the ``gpu`` preset for every variant with peers;
4. the ablation on passt-s;
5. ``passt report`` for both presets, then ``campaign.tar.gz`` of the whole folder.

A step that passed is skipped when the campaign runs again; the benchmarks share one journal
(``OUT/journal.jsonl``), so a step cut short resumes with what it had measured. The last lines
printed are PASS/FAIL per path and the key numbers.

``--quick``: the smoke test and the ``gpu`` preset for passt-s and passt-b beside the official
code with SDPA. ``--dry-run``: every step on the CPU with the tiny variant (compile on, bf16,
2 s clips), to prove the plumbing; the test suite runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from the tree, as on the GPU machine

from passt.atomic import atomic_path  # noqa: E402
from passt.measure.bench_file import load_bench_file  # noqa: E402
from passt.measure.bench_record import BenchRecord  # noqa: E402
from passt.measure.journal import Journal  # noqa: E402

TINY = "campaign-tiny"
TINY_PLUGIN = f'''"""The campaign's smoke-test variant: passt-s, narrow and shallow."""
import passt

passt.register_variant(passt.Variant(
    "{TINY}", ("structured",), {{"time": 10, "freq": 2}},
    settings={{"embed_dim": 128, "depth": 2, "num_heads": 4}}, description="a tiny passt-s"))
'''
KEY_VARIANTS = ("passt-s", "passt-b")
BUDGET_S = {"quick": 240.0, "full": 480.0, "dry-run": 900.0}  # the whole campaign's time
MIN_STEP_S = 20.0  # a step is not started with less time than this left
QUICK_SELECTION = "(test_step and train) or official-sdpa"  # pytest -k


@dataclass(frozen=True)
class Step:
    """One command of the campaign and the checks of what it wrote."""

    name: str
    command: list[str]
    timeout_s: int
    outputs: tuple[str, ...] = ()  # files (relative to OUT) the step must leave
    checks: tuple[Callable[[Path], list[str]], ...] = ()  # each returns its failures
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mode:
    """What differs between a GPU campaign, its quick part and the CPU dry run."""

    name: str
    device: str
    bench_args: tuple[str, ...]  # added to every full-size benchmark step
    variants: str | None  # --bench-variants of the full-size steps (None: all)
    ablation_variant: str
    tiny_args: tuple[str, ...]  # the smoke test's benchmark options
    quick: bool
    profile_args: tuple[str, ...] = ()  # passt profile's options (breakdown and scaling)
    clips: str = "2.5,5,10,20,30"  # passt profile --scaling's clip lengths
    profile_clip: tuple[str, ...] = ()  # the breakdown's clip length (default: the preset's)


def python() -> list[str]:
    return [sys.executable]


def bench(out: Path, json_name: str, *args: str) -> list[str]:
    return [*python(), "-m", "pytest", str(ROOT / "bench"), "--benchmark-only", "-q", "-rA",
            "-p", "no:cacheprovider", f"--rootdir={ROOT}",
            f"--bench-journal={out / 'journal.jsonl'}", "--bench-resume",
            f"--benchmark-json={out / json_name}", *args]


def passt(*args: str) -> list[str]:
    return [*python(), "-m", "passt.cli", *args]


# --- checks of a step's output ----------------------------------------------------------------


def rows(path: Path) -> list[BenchRecord]:
    return load_bench_file(path).records


def who(r: BenchRecord) -> str:
    """The row's variant and what it measured: a peer, an ablation or our step's kind."""
    return f"{r.variant} {r.peer or r.ablation or r.kind}"


def compiled_rows_ran_compiled(json_name: str) -> Callable[[Path], list[str]]:
    def check(out: Path) -> list[str]:
        bad = [f"{who(r)}: compile_graphs={r.compile_graphs}" for r in rows(out / json_name)
               if r.compile and not r.oom and not r.compile_graphs]
        return [f"compiled rows that ran no compiled graph: {'; '.join(bad)}"] if bad else []

    return check


def no_oom(json_name: str) -> Callable[[Path], list[str]]:
    def check(out: Path) -> list[str]:
        oom = [who(r) for r in rows(out / json_name) if r.oom]
        return [f"out of memory: {', '.join(oom)}"] if oom else []

    return check


def cuda_fields_filled(json_name: str) -> Callable[[Path], list[str]]:
    """On CUDA, the memory fit and the energy meter filled their fields."""

    def check(out: Path) -> list[str]:
        failures = []
        for r in rows(out / json_name):
            if r.oom or r.kind != "train" or not r.device.startswith("cuda"):
                continue
            filled = {"peak_memory_bytes_per_sample": r.peak_memory_bytes_per_sample,
                      "mfu": r.mfu, "joules_per_sample": r.joules_per_sample}
            failures += [f"{r.variant} {r.peer or ''} {name} is null"
                         for name, value in filled.items() if value is None]
        return failures

    return check


def peers_present(json_name: str, peers: tuple[str, ...]) -> Callable[[Path], list[str]]:
    def check(out: Path) -> list[str]:
        found = {r.peer for r in rows(out / json_name)}
        return [f"peer {p} was not measured (see the log)" for p in peers if p not in found]

    return check


def cuda_graphs_replayed(json_name: str) -> Callable[[Path], list[str]]:
    def check(out: Path) -> list[str]:
        found = [r for r in rows(out / json_name) if r.ablation == "cuda-graphs"]
        if not found:
            return ["no cuda-graphs row"]
        return [f"CUDA graphs skipped: {r.compile_cudagraph_skip_reasons}"
                for r in found if r.compile_cudagraph_skips]

    return check


# --- the steps ---------------------------------------------------------------------------------


def smoke_steps(out: Path, mode: Mode) -> list[Step]:
    tiny = (f"--bench-plugin={out / 'tiny_variant.py'}", f"--bench-variants={TINY}",
            f"--bench-ablation-variant={TINY}", *mode.tiny_args)
    # --quick: our training step and the official code with SDPA only
    quick_k = ("-k", QUICK_SELECTION) if mode.quick else ()
    ablation_k = "cuda-graphs" if mode.quick else "ablation"
    steps = [
        Step("env", [*python(), "-c", ENV_PROBE, mode.device], 120),
        Step("smoke-bench", bench(out, "smoke.json", "--bench-preset=gpu", "--bench-peers",
                                  *tiny, *quick_k), 240, ("smoke.json",),
             (compiled_rows_ran_compiled("smoke.json"), no_oom("smoke.json"),
              cuda_fields_filled("smoke.json"),
              peers_present("smoke.json", ("official-sdpa",) if mode.quick
                            else ("official", "official-sdpa")))),
        Step("smoke-ablation", bench(out, "smoke_ablation.json", "--bench-preset=gpu",
                                     "--bench-ablation", *tiny, "-k", ablation_k),
             240, ("smoke_ablation.json",),
             (compiled_rows_ran_compiled("smoke_ablation.json"),
              no_oom("smoke_ablation.json"))
             + ((cuda_graphs_replayed("smoke_ablation.json"),) if mode.device == "cuda" else ())),
    ]
    for dtype in ("bf16", "fp16"):
        run = out / "runs" / dtype
        train = passt("--plugin", str(out / "tiny_variant.py"), "train", "--variant", TINY,
                      "--data", "synthetic", "--data-options", "size=64",
                      "--eval-data-options", "size=16", "--clip-seconds", "2",
                      "--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "3",
                      "--dtype", dtype, "--device", mode.device, "--num-workers", "0",
                      "--no-progress", "--out", str(run))
        # trains, then resumes from its checkpoint: optimizer and scaler state back on the device
        steps.append(Step(f"train-{dtype}-resume",
                          ["bash", "-c", 'set -e; rm -rf "$1"; shift; "$@"; "$@" --resume',
                           "train", str(run), *train], 180,
                          (f"runs/{dtype}/last.pt",)))
    steps.append(Step("tag", passt("--plugin", str(out / "tiny_variant.py"), "tag",
                                   str(out / "clip.wav"), "--checkpoint",
                                   str(out / "runs" / "bf16" / "last.pt"), "--device",
                                   mode.device, "--format", "json", "--no-progress"), 120))
    return steps


def main_steps(out: Path, mode: Mode) -> list[Step]:
    variants = (f"--bench-variants={mode.variants}",) if mode.variants else ()
    if mode.variants == TINY:
        variants += (f"--bench-plugin={out / 'tiny_variant.py'}",)
    if mode.quick:
        return [Step("gpu-quick", bench(out, "gpu.json", "--bench-preset=gpu", "--bench-peers",
                                        f"--bench-variants={','.join(KEY_VARIANTS)}",
                                        *mode.bench_args, "-k", QUICK_SELECTION), 300,
                     ("gpu.json",),
                     (compiled_rows_ran_compiled("gpu.json"),)),
                report_step(out, ("gpu",))]
    return [
        Step("paper", bench(out, "paper.json", "--bench-preset=paper", "--bench-peers",
                            *variants, *mode.bench_args), 300, ("paper.json",)),
        Step("gpu", bench(out, "gpu.json", "--bench-preset=gpu", "--bench-peers", *variants,
                          *mode.bench_args), 420, ("gpu.json",),
             (compiled_rows_ran_compiled("gpu.json"), cuda_fields_filled("gpu.json"))),
        Step("ablation", bench(out, "ablation.json", "--bench-preset=gpu", "--bench-ablation",
                               f"--bench-ablation-variant={mode.ablation_variant}",
                               *variants, *mode.bench_args, "-k", "ablation"),
             300, ("ablation.json",), (compiled_rows_ran_compiled("ablation.json"),)),
        Step("profile", passt("--plugin", str(out / "tiny_variant.py"), "profile",
                              "--preset=gpu", *mode.profile_args, *mode.profile_clip,
                              f"--out={out / 'profile'}"),
             240, ("profile/profile.md", "profile/breakdown.png")),
        Step("scaling", passt("--plugin", str(out / "tiny_variant.py"), "profile", "--scaling",
                              "--preset=gpu", f"--clips={mode.clips}", *mode.profile_args,
                              f"--out={out / 'profile'}"),
             240, ("profile/scaling.md", "profile/scaling.png")),
        report_step(out, ("paper", "gpu", "ablation"), profile="gpu"),
    ]


def report_step(out: Path, presets: tuple[str, ...], profile: str | None = None) -> Step:
    """``passt report`` of each preset's JSON into ``OUT/<preset>/`` (the ``profile`` preset's
    with the breakdown and scaling of ``OUT/profile/``)."""
    commands = [" ".join([*map(_quote, passt(
        "--plugin", str(out / "tiny_variant.py"), "report", str(out / f"{p}.json"), "--out",
        str(out / p), *(("--profile", str(out / "profile")) if p == profile else ()))),
        ">/dev/null"]) for p in presets]
    return Step("report", ["bash", "-c", "set -e; " + "; ".join(commands)], 120,
                tuple(f"{p}/{'ablation.md' if p == 'ablation' else 'table1.md'}"
                      for p in presets))


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


ENV_PROBE = """
import importlib, sys, torch
from passt.measure.telemetry import gpu_info
print("torch", torch.__version__, "cuda", torch.version.cuda, "python", sys.version.split()[0])
for m in ("fvcore", "soundfile", "hear21passt.models.passt", "transformers", "pynvml", "h5py"):
    try:
        importlib.import_module(m)
        print("import", m, "ok")
    except Exception as e:
        print("import", m, "FAILED:", type(e).__name__, e)
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "CUDA is not available"
    print("gpu", torch.cuda.get_device_name(0), "nvml", gpu_info())
"""


# --- running -----------------------------------------------------------------------------------


def run_step(step: Step, out: Path, timeout_s: float) -> tuple[str, float, list[str]]:
    """Run ``step`` for at most ``timeout_s``; ``("PASS"|"FAIL", seconds, failures)``. An
    interruption (Ctrl-C, SIGTERM) stops the step's whole process group before it goes on."""
    log_path = out / "logs" / f"{step.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), **step.env}
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(step.command) + "\n")
        log.flush()
        proc = subprocess.Popen(step.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=ROOT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:  # cut, or this campaign was interrupted
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    seconds = time.monotonic() - start
    failures = []
    if rc is None:
        failures.append(f"cut after {timeout_s:.0f} s (run again to resume)")
    elif rc != 0:
        failures.append(f"exit status {rc}: {_last_error(log_path)}")
    for name in step.outputs:
        if not (out / name).is_file():
            failures.append(f"{name} was not written")
    if not failures:
        for check in step.checks:
            failures += check(out)
    return ("FAIL" if failures else "PASS"), seconds, failures


def _last_error(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if re.search(r"Error|FAILED|error:", line)]
    return (errors or lines or ["no output"])[-1][:300]


def key_numbers(out: Path) -> list[str]:
    """The numbers to read first: speed, MFU and memory of passt-s and passt-b beside the
    official code, per preset."""
    lines = []
    for preset in ("gpu", "paper"):
        path = out / f"{preset}.json"
        if not path.is_file():
            continue
        train = [r for r in rows(path) if r.kind == "train" and not r.ablation]
        for r in train:
            if r.variant not in KEY_VARIANTS and r.variant != TINY:
                continue
            name = r.variant + (f" [{r.peer}]" if r.peer else "")
            if r.oom:
                lines.append(f"{preset:6} {name:32} OOM at batch {r.batch_size}")
                continue
            peak = r.peak_memory_bytes_per_sample
            lines.append(
                f"{preset:6} {name:32} {r.samples_per_s:9.1f} spec/s  batch "
                f"{r.batch_size:3}  MFU {_fmt(r.mfu, '.1%')}  "
                f"{_fmt(peak and peak / 1e9, '.3f')} GB/sample  "
                f"{_fmt(r.joules_per_sample, '.2f')} J/sample")
    return lines


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def device_slug() -> str:
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_clip(path: Path, seconds: float = 12.0, rate: int = 32000) -> None:
    """A noise clip for the tagging smoke test."""
    import numpy as np

    samples = (np.random.default_rng(0).standard_normal(int(seconds * rate)) * 3000)
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.astype("<i2").tobytes())


def make_mode(args: argparse.Namespace) -> Mode:
    if args.dry_run:
        small = ("--bench-device=cpu", "--bench-clip-seconds=2", "--bench-batch-size=4",
                 "--bench-memory-batch-sizes=2,3,4", "--bench-warmup=1", "--bench-rounds=2",
                 "--bench-max-rounds=2")
        # The "full-size" steps measure the tiny variant too. Where their settings equal the
        # smoke test's (gpu preset: compile on, bf16), they take its rows from the journal.
        return Mode("dry-run", "cpu", small, TINY, TINY,
                    (*small, "--bench-compile=on", "--bench-dtype=bf16"), quick=False,
                    profile_args=(f"--variants={TINY}", "--device=cpu", "--batch-size=4",
                                  "--warmup=1", "--repeats=1"),
                    clips="1,2", profile_clip=("--clip-seconds=2",))
    tiny = ("--bench-clip-seconds=2", "--bench-batch-size=16", "--bench-memory-batch-sizes=4,8,16",
            "--bench-warmup=3", "--bench-rounds=6", "--bench-max-seconds=3")
    return Mode("quick" if args.quick else "full", "cuda", (), None, "passt-s", tiny,
                quick=args.quick, profile_args=("--variants=passt-b,passt-s,passt-s-n",))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/campaign.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: reports/gpu/<device>/; with --dry-run "
                        ".benchmarks/campaign-dry-run/)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true",
                       help="smoke test + gpu preset for passt-s and passt-b with the official "
                            "code")
    which.add_argument("--dry-run", action="store_true",
                       help="every step on the CPU with a tiny variant: proves the plumbing")
    budgets = ", ".join(f"{mode} {seconds:.0f}" for mode, seconds in BUDGET_S.items())
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting steps, and cut the running one, after this many "
                        f"seconds (default: {budgets}); a later run continues")
    p.add_argument("--restart", action="store_true",
                   help="forget what earlier runs into OUT did (steps and journal)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = make_mode(args)
    if mode.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("bench/campaign.sh: CUDA is not available; use --dry-run to check the "
                  "campaign on the CPU", file=sys.stderr)
            return 2
    out = (args.out or (ROOT / (".benchmarks/campaign-dry-run" if args.dry_run
                                else f"reports/gpu/{device_slug()}"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    state = Journal(out / "campaign.jsonl")
    if args.restart:
        for name in ("campaign.jsonl", "journal.jsonl"):
            (out / name).unlink(missing_ok=True)
    (out / "tiny_variant.py").write_text(TINY_PLUGIN)
    write_clip(out / "clip.wav")
    # a step passed earlier is skipped if it was the same command and its files are there
    passed = {(e["step"], tuple(e.get("command", ()))) for e in state.read()
              if e.get("status") == "PASS"}
    deadline = time.monotonic() + (args.budget_s or BUDGET_S[mode.name])
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[tuple[str, str, float, list[str]]] = []
    current = "campaign"  # what an interruption stops
    try:  # a signal may land anywhere in the loop, not only inside a step
        for step in [*smoke_steps(out, mode), *main_steps(out, mode)]:
            if ((step.name, tuple(step.command)) in passed
                    and all((out / name).is_file() for name in step.outputs)):
                results.append((step.name, "PASS", 0.0, ["(passed in an earlier run)"]))
                continue
            left = deadline - time.monotonic()
            if left < MIN_STEP_S:
                results.append((step.name, "SKIP", 0.0, ["not started: the campaign's time "
                                                         "budget is spent (run again to "
                                                         "continue)"]))
                continue
            current = step.name
            print(f"[campaign] {step.name} ...", flush=True)
            status, seconds, failures = run_step(step, out, min(step.timeout_s, left))
            state.append({"step": step.name, "mode": mode.name, "command": step.command,
                          "status": status, "seconds": round(seconds, 1),
                          "failures": failures})
            results.append((step.name, status, seconds, failures))
            current = "campaign"
    except KeyboardInterrupt:
        results.append((current, "FAIL", 0.0, ["interrupted: the step was stopped"]))
    archive = out / "campaign.tar.gz"
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(out, arcname=out.name, filter=lambda t: None if t.name.endswith(
            ("campaign.tar.gz", ".pt")) else t)
    print(f"\n== campaign summary ({mode.name}, {out}) ==")
    for name, status, seconds, failures in results:
        print(f"{status} {name:20} {seconds:6.0f} s  {'; '.join(failures)}".rstrip())
    for line in key_numbers(out):
        print(line)
    print(f"archive: {archive}")
    if results[-1][3] == ["interrupted: the step was stopped"]:
        return 130
    return 0 if all(r[1] == "PASS" for r in results) else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
