"""pytest-benchmark suite options: preset, variants, batch size, clip length, peers."""

from __future__ import annotations

import platform

import pytest
import torch

from passt.measure.flops import matmul_ceiling_tflops
from passt.measure.journal import Journal
from passt.measure.presets import Preset, get_preset
from passt.measure.telemetry import gpu_info
from passt.plugins import load_plugins
from passt.variants import list_variants

ON_OFF = {"on": True, "off": False}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("passt-bench")
    group.addoption("--bench-preset", default="auto",
                    help="auto (gpu with CUDA, else cpu-small), cpu-small, paper or gpu")
    group.addoption("--bench-variants", default=None,
                    help="comma-separated variants (default: every registered variant)")
    group.addoption("--bench-batch-size", type=int, default=None, help="override the preset's")
    group.addoption("--bench-clip-seconds", type=float, default=None,
                    help="override the preset's clip length")
    group.addoption("--bench-dtype", choices=("fp32", "fp16", "bf16"), default=None)
    group.addoption("--bench-attention", choices=("sdpa", "math"), default=None)
    group.addoption("--bench-compile", choices=tuple(ON_OFF), default=None)
    group.addoption("--bench-device", default=None, help="e.g. cuda:1 (default: the preset's)")
    group.addoption("--bench-peers", action="store_true",
                    help="also measure the official code and HF AST (if installed)")
    group.addoption("--bench-ablation", action="store_true",
                    help="also measure passt-s with each fast-path optimization switched off")
    group.addoption("--bench-journal", default=".benchmarks/journal.jsonl",
                    help="every finished benchmark is appended here at once, so a crash "
                         "keeps what was measured ('' to disable)")


def _overrides(config: pytest.Config) -> dict:
    out = {
        "batch_size": config.getoption("--bench-batch-size"),
        "clip_seconds": config.getoption("--bench-clip-seconds"),
        "dtype": config.getoption("--bench-dtype"),
        "attention": config.getoption("--bench-attention"),
        "compile": ON_OFF.get(config.getoption("--bench-compile")),
        "device": config.getoption("--bench-device"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _variants(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--bench-variants")
    if not chosen:
        return list_variants()
    names = [v.strip() for v in chosen.split(",") if v.strip()]
    unknown = [n for n in names if n not in list_variants()]
    if unknown:
        raise pytest.UsageError(
            f"--bench-variants: unknown variant(s) {', '.join(unknown)}; known: "
            f"{', '.join(list_variants())}"
        )
    return names


def pytest_configure(config: pytest.Config) -> None:
    """Load plugins and validate every option before anything is measured."""
    try:
        load_plugins()
        preset = get_preset(config.getoption("--bench-preset"))
        variants = _variants(config)
        for name in variants:
            preset.settings(name, **_overrides(config))
    except (ValueError, TypeError, FileNotFoundError, ModuleNotFoundError) as e:
        raise pytest.UsageError(f"passt-bench: {e}") from None
    config.stash[PRESET] = preset
    config.stash[VARIANTS] = variants


PRESET = pytest.StashKey[Preset]()
VARIANTS = pytest.StashKey[list]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", metafunc.config.stash[VARIANTS])


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
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
def ablation_enabled(pytestconfig: pytest.Config) -> bool:
    return pytestconfig.getoption("--bench-ablation")


@pytest.fixture(scope="session")
def journal(pytestconfig: pytest.Config) -> Journal | None:
    path = pytestconfig.getoption("--bench-journal")
    return Journal(path) if path else None


@pytest.fixture(scope="session")
def ceiling(preset: Preset, overrides: dict) -> float:
    """The matmul ceiling (TFLOPS) of the run's device and dtype, measured once."""
    return matmul_ceiling_tflops(overrides.get("device", preset.device),
                                 overrides.get("dtype", preset.dtype))


@pytest.fixture
def timer(benchmark, preset: Preset):
    """pytest-benchmark's pedantic mode with the preset's warm-up; returns the median."""

    def run(fn) -> float:
        benchmark.pedantic(fn, rounds=preset.rounds, warmup_rounds=preset.warmup, iterations=1)
        return benchmark.stats.stats.median

    return run


@pytest.fixture
def record(benchmark, journal: Journal | None):
    """Store a result in the benchmark's ``extra_info`` and in the journal at once."""

    def store(result: dict) -> None:
        if result["oom"]:  # keep an entry in the JSON: reports show the row as OOM
            benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        benchmark.extra_info.update(result)
        if journal is not None:
            journal.append({"benchmark": benchmark.fullname, "extra_info": result})

    return store
