"""The GPU campaign: what this project measures on a GPU, in one call of a GPU machine lent for
minutes (run it through ``bench/campaign.sh``; docs/gpu.md).

Steps in the order of their value, each capped in time (``--plan`` prints them):
(a) ``env``: the machine's facts and the checks the later steps rely on (bench/campaign_env.py);
(b) ``key``: the key numbers: the ``gpu`` preset's passt-s and passt-b training steps beside
    the official code as released and the official code with our levers;
(c) ``paper-key``: the ``paper`` preset for passt-s and passt-b beside the official code;
(d) ``cuda-graphs``, ``train-fp16-resume``, ``tag``: a tiny smoke of the other CUDA paths;
(e) ``gpu``, ``paper``, ``ablation``, ``profile``, ``scaling``: the rest, as the budget allows;
then ``report``: Table 1 and Figure 1 of every preset whose JSON exists, the ablation table.

A step is cut at its cap or when the budget runs out (pytest first gets an interrupt, so it
writes the rows it finished), and a step that is not reached is a SKIP. After every step the
return folder ($OUT, or ``--return``) gets summary.json, summary.md, journal.jsonl,
campaign.jsonl and campaign.tar.gz (bench/campaign_files.py). A step's processes die with the
campaign, also when it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # run from the tree, as on the GPU machine

from campaign_files import (  # noqa: E402
    RETURNED,
    StepStatus,
    hand_back,
    key_lines,
    key_numbers,
    write_archive,
    write_summary,
)

from passt.measure.bench_file import load_bench_file  # noqa: E402
from passt.measure.bench_record import BenchRecord  # noqa: E402
from passt.measure.journal import Journal  # noqa: E402
from passt.utils.atomic import atomic_path  # noqa: E402
from passt.utils.errors import UsageError  # noqa: E402
from passt.utils.values import parse_list  # noqa: E402

TINY = "campaign-tiny"
TINY_PLUGIN = f'''"""The campaign's smoke-test variant: passt-s, narrow and shallow."""
import passt

passt.register_variant(passt.Variant(
    "{TINY}", ("structured",), {{"time": 10, "freq": 2}},
    settings={{"embed_dim": 128, "depth": 2, "num_heads": 4}}, description="a tiny passt-s"))
'''
KEY_VARIANTS = ("passt-s", "passt-b")
GROUPS = {"a": "environment", "b": "key numbers", "c": "paper preset, key variants",
          "d": "smoke of the other CUDA paths", "e": "the rest, as the budget allows",
          "report": "tables and figures"}
# Seconds each step may take on the GPU, in run order. No campaign has run on a GPU yet: these
# are estimates (H100 anchors of the official code, inductor compile times of a 12-block ViT
# of about 40 s cold), to be replaced by the wall times a run records in campaign.jsonl
# (`--caps-from` reads them: 1.5x the measured time, at least 15 s).
GPU_CAPS_S = {"env": 20, "key": 200, "paper-key": 80, "cuda-graphs": 40,
              "train-fp16-resume": 35, "tag": 15, "gpu": 150, "paper": 120, "ablation": 150,
              "profile": 90, "scaling": 90, "report": 30}
DRY_RUN_CAPS_S = {"env": 30, "key": 200, "paper-key": 120, "cuda-graphs": 120,
                  "train-fp16-resume": 120, "tag": 60, "gpu": 200, "paper": 150,
                  "ablation": 240, "profile": 120, "scaling": 120, "report": 120}
BUDGET_S = {"gpu": 500.0, "dry-run": 1500.0}  # the whole campaign, report included
MIN_STEP_S = 10.0  # a step is not started with less time than this left
INTERRUPT_GRACE_S = 10.0  # after its interrupt, a cut step has this long to write its rows
CAP_FROM_MEASURED = 1.5


# --- checks of a step's output ----------------------------------------------------------------

Check = Callable[[Path], list[str]]  # a step's output folder -> its failures


def rows(path: Path) -> list[BenchRecord]:
    return load_bench_file(path).records


def who(r: BenchRecord) -> str:
    """The row's variant and what it measured: a peer, an ablation or our step's kind."""
    return f"{r.variant} {r.peer or r.ablation or r.kind}"


def compiled_rows_ran_compiled(json_name: str) -> Check:
    def check(out: Path) -> list[str]:
        bad = [f"{who(r)}: compile_graphs={r.compile_graphs}" for r in rows(out / json_name)
               if r.compile and not r.oom and not r.compile_graphs]
        return [f"compiled rows that ran no compiled graph: {'; '.join(bad)}"] if bad else []

    return check


def cuda_fields_filled(json_name: str) -> Check:
    """On CUDA: every row metered its energy, and has J/sample where it was metered (unless
    NVML has no energy counter, which its note says); MFU; training rows their memory fit."""

    def check(out: Path) -> list[str]:
        failures = []
        for r in rows(out / json_name):
            if r.oom or not r.device.startswith("cuda"):
                continue
            if r.energy_steps is None:
                failures.append(f"{who(r)}: energy was not metered")
            elif r.joules_per_sample is None and not any("energy counter" in n
                                                          for n in r.notes):
                failures.append(f"{who(r)}: metered, but joules_per_sample is null")
            filled = {"mfu": r.mfu}
            if r.kind == "train":
                filled["peak_memory_bytes_per_sample"] = r.peak_memory_bytes_per_sample
            failures += [f"{who(r)}: {name} is null" for name, value in filled.items()
                         if value is None]
        return failures

    return check


def peers_present(json_name: str, peers: tuple[str, ...]) -> Check:
    def check(out: Path) -> list[str]:
        found = {r.peer for r in rows(out / json_name)}
        return [f"peer {p} was not measured (see the log)" for p in peers if p not in found]

    return check


def cuda_graphs_replayed(json_name: str) -> Check:
    def check(out: Path) -> list[str]:
        found = [r for r in rows(out / json_name) if r.ablation == "cuda-graphs"]
        if not found:
            return ["no cuda-graphs row"]
        return [f"CUDA graphs skipped: {r.compile_cudagraph_skip_reasons}"
                for r in found if r.compile_cudagraph_skips]

    return check


# --- the steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One command of the campaign, its group (a-e, report), its cap and its checks."""

    name: str
    group: str
    command: list[str]
    cap_s: float
    outputs: tuple[str, ...] = ()  # files (relative to OUT) the step must leave
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Mode:
    """What differs between the GPU campaign and its dry run on the CPU."""

    name: str  # "gpu" or "dry-run"
    device: str
    key_variants: tuple[str, ...]
    variants: str | None  # --bench-variants of the (e) steps (None: all)
    ablation_variant: str
    bench_args: tuple[str, ...]  # added to every benchmark step
    tiny_args: tuple[str, ...]  # the smoke steps' benchmark options
    caps: dict[str, float]
    profile_args: tuple[str, ...] = ()  # passt profile's options (breakdown and scaling)
    clips: str = "2.5,5,10,20,30"  # passt profile --scaling's clip lengths
    profile_clip: tuple[str, ...] = ()  # the breakdown's clip length (default: the preset's)
    plugins: tuple[str, ...] = field(default=())  # --bench-plugin of every benchmark step


def python() -> list[str]:
    return [sys.executable]


def bench(out: Path, json_name: str, mode: Mode, *args: str) -> list[str]:
    return [*python(), "-m", "pytest", str(ROOT / "bench"), "--benchmark-only", "-q", "-rA",
            "-p", "no:cacheprovider", f"--rootdir={ROOT}",
            f"--bench-journal={out / 'journal.jsonl'}", "--bench-resume",
            f"--benchmark-json={out / json_name}", *mode.plugins, *mode.bench_args, *args]


def passt(out: Path, *args: str) -> list[str]:
    return [*python(), "-m", "passt.cli", "--plugin", str(out / "tiny_variant.py"), *args]


def steps(out: Path, mode: Mode) -> list[Step]:
    """Every step, in run order."""
    key = ",".join(mode.key_variants)
    cap = mode.caps
    variants = (f"--bench-variants={mode.variants}",) if mode.variants else ()
    tiny = (f"--bench-plugin={out / 'tiny_variant.py'}", f"--bench-variants={TINY}",
            f"--bench-ablation-variant={TINY}", *mode.tiny_args)
    train = passt(out, "train", "--variant", TINY, "--data", "synthetic", "--data-options",
                  "size=64", "--eval-data-options", "size=16", "--clip-seconds", "2",
                  "--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "3", "--dtype",
                  "fp16", "--device", mode.device, "--num-workers", "0", "--no-progress",
                  "--out", str(out / "runs" / "fp16"))
    return [
        Step("env", "a", [*python(), str(ROOT / "bench" / "campaign_env.py"), mode.device,
                          str(out / "env.json")], cap["env"], ("env.json",)),
        Step("key", "b", bench(out, "gpu-key.json", mode, "--bench-preset=gpu", "--bench-peers",
                               f"--bench-variants={key}", f"--bench-peer-variants={key}",
                               "-k", "(test_step and train) or (test_peer and official)"),
             cap["key"], ("gpu-key.json",),
             (compiled_rows_ran_compiled("gpu-key.json"), cuda_fields_filled("gpu-key.json"),
              peers_present("gpu-key.json", ("official", "official-sdpa")))),
        Step("paper-key", "c", bench(out, "paper-key.json", mode, "--bench-preset=paper",
                                     "--bench-peers", f"--bench-variants={key}",
                                     f"--bench-peer-variants={key}", "-k",
                                     "(test_step and train) or (official and not sdpa)"),
             cap["paper-key"], ("paper-key.json",),
             (cuda_fields_filled("paper-key.json"),
              peers_present("paper-key.json", ("official",)))),
        Step("cuda-graphs", "d", bench(out, "cuda_graphs.json", mode, "--bench-preset=gpu",
                                       "--bench-ablation", *tiny, "-k", "cuda-graphs or all-on"),
             cap["cuda-graphs"], ("cuda_graphs.json",),
             (cuda_graphs_replayed("cuda_graphs.json"),) if mode.device == "cuda" else ()),
        # fp16 with GradScaler trains, then resumes: optimizer and scaler state back on the GPU
        Step("train-fp16-resume", "d",
             ["bash", "-c", 'set -e; rm -rf "$1"; shift; "$@"; "$@" --resume', "train",
              str(out / "runs" / "fp16"), *train], cap["train-fp16-resume"],
             ("runs/fp16/last.pt",)),
        Step("tag", "d", passt(out, "tag", str(out / "clip.wav"), "--checkpoint",
                               str(out / "runs" / "fp16" / "last.pt"), "--device", mode.device,
                               "--format", "json", "--no-progress"), cap["tag"]),
        Step("gpu", "e", bench(out, "gpu.json", mode, "--bench-preset=gpu", "--bench-peers",
                               *variants, f"--bench-peer-variants={key}"),
             cap["gpu"], ("gpu.json",),
             (compiled_rows_ran_compiled("gpu.json"), cuda_fields_filled("gpu.json"))),
        Step("paper", "e", bench(out, "paper.json", mode, "--bench-preset=paper",
                                 "--bench-peers", *variants, f"--bench-peer-variants={key}"),
             cap["paper"], ("paper.json",), (cuda_fields_filled("paper.json"),)),
        Step("ablation", "e", bench(out, "ablation.json", mode, "--bench-preset=gpu",
                                    "--bench-ablation",
                                    f"--bench-ablation-variant={mode.ablation_variant}",
                                    *variants, "-k", "ablation"),
             cap["ablation"], ("ablation.json",), (compiled_rows_ran_compiled("ablation.json"),)),
        Step("profile", "e", passt(out, "profile", "--preset=gpu", *mode.profile_args,
                                   *mode.profile_clip, f"--out={out / 'profile'}"),
             cap["profile"], ("profile/profile.md", "profile/breakdown.png")),
        Step("scaling", "e", passt(out, "profile", "--scaling", "--preset=gpu",
                                   f"--clips={mode.clips}", *mode.profile_args,
                                   f"--out={out / 'profile'}"),
             cap["scaling"], ("profile/scaling.md", "profile/scaling.png")),
        Step("report", "report", [*python(), "-c", REPORT, str(out)], cap["report"]),
    ]


# Table 1 and Figure 1 of each preset whose JSON exists (the whole run's, else the key rows'),
# the ablation table, and the profile beside the gpu preset's; fails if any report fails.
REPORT = """
import sys
from pathlib import Path
from passt.cli import main
out = Path(sys.argv[1])
plugin = ["--plugin", str(out / "tiny_variant.py")]
jobs = {"gpu": ("gpu.json", "gpu-key.json"), "paper": ("paper.json", "paper-key.json"),
        "ablation": ("ablation.json",)}
failed, done = [], []
for preset, names in jobs.items():
    path = next((out / n for n in names if (out / n).is_file()), None)
    if path is None:
        continue
    profile = ["--profile", str(out / "profile")] if (
        preset == "gpu" and (out / "profile" / "profile.csv").is_file()) else []
    try:
        code = main([*plugin, "report", str(path), "--out", str(out / preset), *profile])
    except Exception as e:
        code = f"{type(e).__name__}: {e}"
    (done if code == 0 else failed).append(f"{preset} ({path.name}): {code}")
print("reported:", "; ".join(done) or "nothing")
if failed or not done:
    sys.exit("report failed: " + ("; ".join(failed) or "no benchmark JSON was written"))
"""


# --- running -----------------------------------------------------------------------------------

# Runs in the step's process group: kills the group when the campaign is gone (a SIGKILL of
# the campaign leaves no process of its steps behind to keep the GPU busy). It outlives the
# interrupt that a cut step gets.
GUARD = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
campaign, group = int(sys.argv[1]), int(sys.argv[2])
while os.getppid() == campaign:
    time.sleep(0.2)
os.killpg(group, signal.SIGKILL)
"""


class Interrupts:
    """SIGINT and SIGTERM as KeyboardInterrupt, except while a step's processes are started:
    an interrupt then waits until they can be stopped (a process started but not yet known
    would outlive the campaign)."""

    def __init__(self) -> None:
        self.held = False
        self.pending: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.held:
            self.pending = signum
            return
        raise KeyboardInterrupt(f"signal {signum}")

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.held = True
        try:
            yield
        finally:
            self.held = False

    def check(self) -> None:
        """Raise the interrupt that came while held."""
        if self.pending is not None:
            raise KeyboardInterrupt(f"signal {self.pending}")


def run_step(step: Step, out: Path, timeout_s: float,
             interrupts: Interrupts | None = None) -> StepStatus:
    """Run ``step`` for at most ``timeout_s``: then (or when the campaign is interrupted) its
    process group gets SIGINT, `INTERRUPT_GRACE_S` to write what it finished, and SIGKILL."""
    interrupts = interrupts or Interrupts()
    log_path = out / "logs" / f"{step.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), "PYTHONUNBUFFERED": "1"}
    rc, cut = None, False
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(step.command) + "\n")
        log.flush()
        with interrupts.hold():
            # a process group of its own (in this session, so that the guard can join it)
            proc = subprocess.Popen(step.command, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=ROOT, process_group=0)
            guard = subprocess.Popen([*python(), "-c", GUARD, str(os.getpid()), str(proc.pid)],
                                     process_group=proc.pid, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            interrupts.check()
            try:
                rc = proc.wait(timeout=max(1.0, timeout_s - INTERRUPT_GRACE_S))
            except subprocess.TimeoutExpired:
                cut = True
                _signal_group(proc.pid, signal.SIGINT)
                rc = proc.wait(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        finally:  # done, cut, or this campaign was interrupted: nothing of the step stays
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            guard.wait()
    seconds = time.monotonic() - start
    failures = []
    if cut:
        failures.append(f"cut after {seconds:.0f} s (its cap or the budget)")
    elif rc != 0:
        failures.append(f"exit status {rc}: {_last_error(log_path)}")
    for name in step.outputs:
        if not (out / name).is_file():
            failures.append(f"{name} was not written")
    if not failures:
        for check in step.checks:
            try:
                failures += check(out)
            except Exception as e:  # a check that cannot read the output fails the step
                failures.append(f"check {getattr(check, '__qualname__', check)} raised "
                                f"{type(e).__name__}: {e}")
    status = "CUT" if cut else ("FAIL" if failures else "PASS")
    return StepStatus(step.name, step.group, step.cap_s, status, round(seconds, 1),
                      "; ".join(failures))


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _last_error(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if re.search(r"Error|FAILED|error:", line)]
    return (errors or lines or ["no output"])[-1][:300]


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


def measured_caps(path: Path) -> dict[str, float]:
    """Caps from the wall times of the steps that passed in a campaign.jsonl: 1.5x each."""
    caps: dict[str, float] = {}
    for entry in Journal(path).read():
        if entry.get("status") == "PASS" and entry.get("seconds"):
            caps[entry["step"]] = max(15.0, round(CAP_FROM_MEASURED * entry["seconds"]))
    return caps


def make_mode(args: argparse.Namespace) -> Mode:
    if args.dry_run:
        # fp32: inductor's bf16 kernels run this CPU's training step 15x slower than fp32;
        # the smoke of CUDA graphs keeps the gpu preset's bf16
        small = ("--bench-device=cpu", "--bench-clip-seconds=2", "--bench-batch-size=4",
                 "--bench-memory-batch-sizes=2,3,4", "--bench-warmup=1", "--bench-rounds=2",
                 "--bench-max-rounds=2", "--bench-dtype=fp32")
        mode = Mode("dry-run", "cpu", (TINY,), TINY, TINY, small, ("--bench-dtype=bf16",),
                    dict(DRY_RUN_CAPS_S),
                    profile_args=(f"--variants={TINY}", "--device=cpu", "--batch-size=4",
                                  "--warmup=1", "--repeats=1"),
                    clips="1,2", profile_clip=("--clip-seconds=2",),
                    plugins=(f"--bench-plugin={args.out / 'tiny_variant.py'}",))
    else:
        tiny = ("--bench-clip-seconds=2", "--bench-batch-size=16",
                "--bench-memory-batch-sizes=4,8,16", "--bench-warmup=3", "--bench-rounds=6",
                "--bench-max-seconds=3")
        mode = Mode("gpu", "cuda", KEY_VARIANTS, None, "passt-s", (), tiny, dict(GPU_CAPS_S),
                    profile_args=("--variants=passt-b,passt-s,passt-s-n",))
    if args.caps_from is not None:
        mode = replace(mode, caps={**mode.caps, **measured_caps(args.caps_from)})
    return mode


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/campaign.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="every step on the CPU with a tiny variant: proves the plumbing")
    p.add_argument("--out", type=Path, default=None,
                   help="working folder (default: /tmp/passt-campaign/<device>; a rerun into "
                        "the same folder skips the steps that passed)")
    p.add_argument("--return", dest="back", type=Path, default=None,
                   help="folder that gets summary.json, summary.md, journal.jsonl, "
                        "campaign.jsonl and campaign.tar.gz after every step (default: $OUT "
                        "where it is set)")
    p.add_argument("--select", default=None, metavar="STEP,...",
                   help="run only these steps (and the report)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="the whole campaign's time, report included: a step is cut when it is "
                        "spent (default: " + ", ".join(f"{m} {s:.0f}" for m, s in
                                                        BUDGET_S.items()) + ")")
    p.add_argument("--caps-from", type=Path, default=None, metavar="CAMPAIGN.jsonl",
                   help="caps from the wall times of an earlier campaign's steps (1.5x)")
    p.add_argument("--plan", action="store_true",
                   help="print the steps in order with their caps and the budget; run nothing")
    p.add_argument("--json", action="store_true", help="--plan as JSON")
    p.add_argument("--restart", action="store_true",
                   help="forget what earlier runs into OUT did (steps and journal)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path("/tmp/passt-campaign") / ("dry-run" if args.dry_run else "gpu")
    args.out = args.out.resolve()
    if args.back is None and os.environ.get("OUT"):
        args.back = Path(os.environ["OUT"])
    if args.back is not None:
        args.back = args.back.resolve()
        if args.back == args.out or args.back in args.out.parents:
            p.error(f"--out {args.out} must not be inside the return folder {args.back}: it "
                    f"gets only {', '.join(RETURNED)}")
    return args


def selected(all_steps: list[Step], select: str | None) -> list[Step]:
    if select is None:
        return all_steps
    names = parse_list(select, "--select", choices=[s.name for s in all_steps], noun="step")
    return [s for s in all_steps if s.name in names or s.group == "report"]


def plan(all_steps: list[Step], mode: Mode, budget: float, as_json: bool) -> str:
    entries = [{"step": s.name, "group": s.group, "what": GROUPS[s.group], "cap_s": s.cap_s}
               for s in all_steps]
    head = {g: sum(s.cap_s for s in all_steps if s.group in g) for g in ("a", "ab", "abc")}
    data = {"mode": mode.name, "budget_s": budget, "caps_a_to_c_s": head["abc"],
            "steps": entries}
    if as_json:
        return json.dumps(data, indent=1)
    lines = [f"{e['group']:6} {e['step']:18} cap {e['cap_s']:4.0f} s  {e['what']}"
             for e in entries]
    return "\n".join([*lines, f"caps of (a)-(c): {head['abc']:.0f} s; budget {budget:.0f} s"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = make_mode(args)
    out, back = args.out, args.back
    try:
        all_steps = selected(steps(out, mode), args.select)
    except UsageError as e:
        print(f"bench/campaign.sh: {e}", file=sys.stderr)
        return 2
    budget = args.budget_s or BUDGET_S[mode.name]
    if args.plan:
        print(plan(all_steps, mode, budget, args.json))
        return 0
    if mode.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("bench/campaign.sh: CUDA is not available; use --dry-run to check the "
                  "campaign on the CPU", file=sys.stderr)
            return 2
    started = time.monotonic()
    deadline = started + budget
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
    statuses = {s.name: StepStatus(s.name, s.group, s.cap_s, "PENDING") for s in all_steps}
    info = {"device": device_slug(), "mode": mode.name, "budget_s": budget, "out": str(out)}
    sources = {"gpu": ("gpu-key.json", "gpu.json"), "paper": ("paper-key.json", "paper.json")}

    def publish() -> None:
        """Refresh the summary and the archive, and hand them back."""
        left_out = write_archive(out)
        env = out / "env.json"
        if env.is_file():
            info["env"] = json.loads(env.read_text())
        write_summary(out, {**info, "elapsed_s": round(time.monotonic() - started)},
                      list(statuses.values()), key_numbers(out, sources, mode.key_variants),
                      left_out)
        write_archive(out)  # with the summary
        if back is not None:
            hand_back(out, back)

    interrupts = Interrupts()
    interrupts.install()
    interrupted = None
    try:  # a signal may land anywhere in the loop, not only inside a step
        publish()
        for step in all_steps:
            if ((step.name, tuple(step.command)) in passed
                    and all((out / name).is_file() for name in step.outputs)):
                statuses[step.name] = replace(statuses[step.name], status="PASS",
                                              reason="(passed in an earlier run)")
                continue
            left = deadline - time.monotonic()
            if step.group != "report":  # the report's own cap is kept for it
                left -= mode.caps["report"]
            if left < MIN_STEP_S:
                statuses[step.name] = replace(statuses[step.name], status="SKIP", reason=(
                    "not started: the campaign's time budget is spent"))
                continue
            interrupted = step.name
            print(f"[campaign] {step.name} ...", flush=True)
            try:
                result = run_step(step, out, min(step.cap_s, left), interrupts)
            except OSError as e:  # the step could not be started
                result = replace(statuses[step.name], status="FAIL",
                                 reason=f"could not run: {type(e).__name__}: {e}")
            interrupted = None
            statuses[step.name] = result
            state.append({"step": step.name, "mode": mode.name, "command": step.command,
                          "status": result.status, "seconds": result.seconds,
                          "cap_s": step.cap_s, "failures": result.reason})
            publish()
    except KeyboardInterrupt:
        name = interrupted or "campaign"
        statuses[name] = replace(statuses.get(name, StepStatus(name, "-", 0, "FAIL")),
                                 status="FAIL", reason="interrupted: the step was stopped")
    finally:
        publish()
    print(f"\n== campaign summary ({mode.name}, {out}) ==")
    for s in statuses.values():
        print(f"{s.status} {s.step:18} {s.seconds:6.0f} s  {s.reason}".rstrip())
    for line in key_lines(key_numbers(out, sources, mode.key_variants)):
        print(line)
    print(f"archive: {out / 'campaign.tar.gz'}" + (f"; returned to {back}" if back else ""))
    if any(s.reason == "interrupted: the step was stopped" for s in statuses.values()):
        return 130
    return 0 if all(s.status == "PASS" for s in statuses.values()) else 1



if __name__ == "__main__":
    sys.exit(main())
