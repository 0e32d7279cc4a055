"""pytest-benchmark suite options (preset, variants, settings, rounds, peers, ablation,
journal) and the fixtures that hand passt's measurements to pytest-benchmark."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from passt.measure.bench_record import BenchRecord
from passt.measure.environment import MACHINE_INFO_KEY, Environment, capture
from passt.measure.flops import matmul_ceiling_tflops
from passt.measure.instructions import InstructionCount, count_instructions
from passt.measure.journal import Journal
from passt.measure.machine_speed import with_run_drift
from passt.measure.overrides import BENCH_PREFIX, STEP_FIELDS, BenchOverrides
from passt.measure.peers import DEFAULT_PEER_VARIANTS, PEERS
from passt.measure.presets import PRESETS, Preset, get_preset
from passt.measure.step import StepSettings
from passt.measure.suite import Measurement
from passt.measure.telemetry import gpu_info
from passt.plugins import load_plugins
from passt.profiling import profile_variants
from passt.profiling.run import check_out_dir
from passt.utils.device import resolve_device
from passt.utils.errors import UsageError
from passt.utils.settings import add_flags, flag_names
from passt.utils.values import parse_list
from passt.variants import get_variant, list_variants

log = logging.getLogger(__name__)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("passt-bench")
    group.addoption("--bench-preset", default="auto",
                    help=f"auto (gpu with CUDA, else cpu-small), {', '.join(PRESETS)}")
    group.addoption("--bench-variants", default=None,
                    help="comma-separated variants (default: every registered variant)")
    group.addoption("--bench-plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                    help="load a plugin (patchout strategies, variants) first; repeatable, "
                         "like $PASST_PLUGINS")
    add_flags(group, BenchOverrides, flag_names(BenchOverrides), prefix=BENCH_PREFIX)
    group.addoption("--bench-peers", action="store_true",
                    help="also measure the official code (as released, and with our levers) "
                         "and HF AST (if installed)")
    group.addoption("--bench-peer-variants", default=",".join(DEFAULT_PEER_VARIANTS),
                    metavar="A,B|all",
                    help="the variants the peers are measured for, among those benchmarked "
                         "(default: %(default)s; hf-ast once per distinct AST)")
    group.addoption("--bench-ablation", action="store_true",
                    help="also measure one variant with each fast-path optimization switched "
                         "off in turn")
    group.addoption("--bench-ablation-variant", default="passt-s",
                    help="the variant the ablation measures (default: passt-s)")
    group.addoption("--bench-journal", default=".benchmarks/journal.jsonl",
                    help="every finished benchmark is appended here at once, so a crash "
                         "keeps what was measured ('' to disable)")
    group.addoption("--bench-profile", default=None, metavar="DIR",
                    help="after the benchmarks, break each variant's steps down into "
                         "components under the same settings (passt profile) into DIR")
    group.addoption("--bench-instructions", action="store_true",
                    help="also count each variant's train and inference step in CPU "
                         "instructions with callgrind (valgrind): one thread, at a small fixed "
                         "size, deterministic on a busy machine (`passt check` decides on them)")
    group.addoption("--bench-resume", action="store_true",
                    help="take benchmarks already in the journal, with the same options, "
                         "from it instead of measuring them again")


def _bench_overrides(config: pytest.Config) -> BenchOverrides:
    """The preset's settings changed on the command line."""
    return BenchOverrides.from_flags(config.option, prefix=BENCH_PREFIX)


def _overrides(config: pytest.Config) -> dict[str, Any]:
    """The `StepSettings` fields set on the command line."""
    return _bench_overrides(config).step


def _preset(config: pytest.Config) -> Preset:
    """The chosen preset with the command line's warm-up, rounds and memory batch sizes."""
    with _option("--bench-preset"):
        preset = get_preset(config.getoption("--bench-preset"))
    overrides = _bench_overrides(config)
    plan = [f"--{BENCH_PREFIX}{f.replace('_', '-')}" for f in overrides.given()
            if f not in STEP_FIELDS]
    with _option("/".join(plan)):
        return overrides.apply(preset)


@contextlib.contextmanager
def _option(name: str) -> Iterator[None]:
    """Name the command-line option in the error of a value it gave."""
    try:
        yield
    except UsageError as e:
        raise UsageError(f"{name}: {e}") from None


def _variants(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--bench-variants")
    if not chosen:
        return list_variants()
    try:
        return list(parse_list(chosen, "--bench-variants", choices=list_variants(),
                               noun="variant"))
    except UsageError as e:
        raise UsageError(f"{e} (a plugin's variants need --bench-plugin or $PASST_PLUGINS)"
                         ) from None


def _peer_variants(config: pytest.Config, variants: list[str]) -> list[str]:
    """The benchmarked variants that the peers are measured for, in the run's order."""
    names = parse_list(config.getoption("--bench-peer-variants"), "--bench-peer-variants",
                       choices=list_variants(), noun="variant", allow_all=True)
    return [v for v in variants if names is None or v in names]


def pytest_configure(config: pytest.Config) -> None:
    """Load plugins and validate every option before anything is measured."""
    try:
        load_plugins(config.getoption("--bench-plugin"))
        preset = _preset(config)
        variants = _variants(config)
        peer_variants = _peer_variants(config, variants)
        overrides = _overrides(config)
        if (preset.device.startswith("cuda") and "device" not in overrides
                and not torch.cuda.is_available()):
            raise UsageError(f"preset {preset.name!r} runs on CUDA, which is not available "
                             "here; choose --bench-preset cpu-small, or add --bench-device cpu")
        for name in variants:
            preset.settings(name, **overrides)
        with _option("--bench-ablation-variant"):
            get_variant(config.getoption("--bench-ablation-variant"))
        if config.getoption("--bench-profile") is not None:
            with _option("--bench-profile"):
                check_out_dir(Path(config.getoption("--bench-profile")))
    except (UsageError, FileNotFoundError, ModuleNotFoundError) as e:
        raise pytest.UsageError(f"passt-bench: {e}") from None
    config.stash[PRESET] = preset
    config.stash[VARIANTS] = variants
    config.stash[PEER_VARIANTS] = peer_variants


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """``--bench-profile DIR``: the breakdown of every benchmarked variant, same settings."""
    config = session.config
    out = config.getoption("--bench-profile")
    if out is None or PRESET not in config.stash:
        return
    peers = PEERS.names() if config.getoption("--bench-peers") else []
    profile_variants(config.stash[VARIANTS], config.stash[PRESET], Path(out),
                     _overrides(config), peers=peers)


PRESET = pytest.StashKey[Preset]()
VARIANTS = pytest.StashKey[list]()
PEER_VARIANTS = pytest.StashKey[list]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", metafunc.config.stash[VARIANTS])


ENVIRONMENT_BEFORE = pytest.StashKey[Environment]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Capture the environment before anything is measured."""
    session.config.stash[ENVIRONMENT_BEFORE] = capture(_gpu_index(session.config))


def _gpu_index(config: pytest.Config) -> int | None:
    """The CUDA device the run measures; None for a run on the CPU."""
    device = resolve_device(_overrides(config).get("device", config.stash[PRESET].device))
    return device.index if device.type == "cuda" else None


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Versions, GPU and preset, and the environment before and after the run (written at
    its end)."""
    machine_info[MACHINE_INFO_KEY] = {"before": config.stash[ENVIRONMENT_BEFORE].to_json(),
                                      "after": capture(_gpu_index(config)).to_json()}
    info = gpu_info()
    machine_info.update({
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": info.name if info else None,
        "gpu_driver": info.driver if info else None,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "passt_preset": config.stash[PRESET].name,
    })


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list,
                                 output_json: dict) -> None:
    """Every row with the run's machine drift: unstable where it exceeds the row's precision
    (`passt.measure.machine_speed`)."""
    rows = [b for b in output_json["benchmarks"] if b.get("extra_info")]
    records = with_run_drift([BenchRecord.from_json(b["extra_info"]) for b in rows])
    for row, record in zip(rows, records, strict=True):
        row["extra_info"] = record.to_json()


@pytest.fixture(scope="session")
def preset(pytestconfig: pytest.Config) -> Preset:
    return pytestconfig.stash[PRESET]


@pytest.fixture(scope="session")
def overrides(pytestconfig: pytest.Config) -> dict:
    """Command-line overrides of the preset's settings."""
    return _overrides(pytestconfig)


@pytest.fixture(scope="session")
def peers_enabled(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.getoption("--bench-peers")


@pytest.fixture(scope="session")
def peer_variants(pytestconfig: pytest.Config) -> list[str]:
    """The variants the peers are measured for (--bench-peer-variants)."""
    return pytestconfig.stash[PEER_VARIANTS]


@pytest.fixture(scope="session")
def ablation_enabled(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.getoption("--bench-ablation")


@pytest.fixture(scope="session")
def ablation_variant(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("--bench-ablation-variant")


@pytest.fixture(scope="session")
def journal(pytestconfig: pytest.Config) -> Journal | None:
    path = pytestconfig.getoption("--bench-journal")
    return Journal(path) if path else None


@pytest.fixture(scope="session")
def finished(pytestconfig: pytest.Config, journal: Journal | None) -> dict[str, list[dict]]:
    """With --bench-resume, the journal's entries, by benchmark."""
    if journal is None or not pytestconfig.getoption("--bench-resume"):
        return {}
    entries: dict[str, list[dict]] = {}
    for e in journal.read():
        if "times_s" in e and "run" in e:
            entries.setdefault(e["benchmark"], []).append(e)
    return entries


@pytest.fixture(scope="session")
def ceilings(preset: Preset, overrides: dict) -> Callable[[str], float]:
    """The matmul ceiling (TFLOPS) of the run's device for a dtype, measured once per dtype."""
    return functools.cache(functools.partial(
        matmul_ceiling_tflops, overrides.get("device", preset.device)))


@pytest.fixture(scope="session")
def instructions(request: pytest.FixtureRequest
                 ) -> Callable[[str, str], InstructionCount] | None:
    """With --bench-instructions on the CPU, ``(variant, kind) -> count``: every step the
    session's `test_step` benchmarks run is counted in one valgrind process, at the first
    call."""
    config = request.config
    if not config.getoption("--bench-instructions"):
        return None
    if _gpu_index(config) is not None:
        log.warning("--bench-instructions counts CPU steps: GPU rows are left without")
        return None
    jobs = [(item.callspec.params["variant"], item.callspec.params["kind"])
            for item in request.session.items
            if getattr(item, "originalname", None) == "test_step"]

    @functools.cache
    def counts() -> dict[tuple[str, str], InstructionCount]:
        return count_instructions(jobs, plugins=config.getoption("--bench-plugin"))

    return lambda variant, kind: counts()[(variant, kind)]


@pytest.fixture
def measured(benchmark, preset: Preset, journal: Journal | None,
             finished: dict[str, list[dict]]):
    """Run a measurement (or, with --bench-resume, take it from the journal), journal it at
    once, and hand its timed steps and row to pytest-benchmark."""

    def run(measure: Callable[[], Measurement], settings: StepSettings,
            counted: InstructionCount | None = None, **labels: str) -> Measurement:
        """``measure`` measures ``settings``; ``labels`` are set on the row, OOM rows included
        (``ablation=``, ``peer=``), and the fields of ``counted`` (its instruction count)."""
        # What makes a journal entry reusable: the same benchmark, settings and measuring
        # plan (as JSON gives them back, so that they compare equal to a journal entry's)
        key = json.loads(json.dumps({"settings": dataclasses.asdict(settings),
                                     "plan": preset.plan_record(), "labels": labels}))
        entry = next((e for e in reversed(finished.get(benchmark.fullname, []))
                      if e["run"] == key), None)
        if entry is not None:
            result = Measurement(BenchRecord.from_json(entry["extra_info"]), entry["times_s"])
        else:
            result = measure()
            result = dataclasses.replace(
                result, record=dataclasses.replace(result.record, **labels))
            if journal is not None:
                journal.append({"benchmark": benchmark.fullname,
                                "run": key,
                                "extra_info": result.record.to_json(),
                                "times_s": result.times_s})
        if counted is not None:
            record = result.record
            fields = counted.fields()
            notes = (*record.notes, *fields.pop("notes", ()))
            result = dataclasses.replace(
                result, record=dataclasses.replace(record, **fields, notes=notes))
        _hand_over(benchmark, result)
        return result

    return run


def _hand_over(benchmark, result: Measurement) -> None:
    """Give pytest-benchmark the steps that passt timed, so its statistics, JSON and
    comparisons work unchanged.

    pytest-benchmark has no API for rounds timed elsewhere, so its clock replays ours: each
    round starts where the last ended and lasts one timed step. An OOM row gets one round of
    0 s: a benchmark needs a round to stay in the JSON (its ``oom`` field says what happened).
    """
    times = result.times_s or [0.0]
    ticks = itertools.accumulate(itertools.chain.from_iterable((0.0, t) for t in times))

    def replayed_clock() -> float:
        return next(ticks)

    benchmark._timer = replayed_clock
    benchmark.pedantic(lambda: None, rounds=len(times), iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(result.record.to_json())
