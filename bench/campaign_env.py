"""The campaign's first step (at most 30 s): what the machine has, and whether the paths the
later steps take can work there. ``python bench/campaign_env.py cuda|cpu ENV.json``

Checks: the imports the steps need, a C compiler (inductor compiles its kernels' host code
with one), and on a GPU its facts, one NVML energy-counter and power reading, and that a
CUDA-graph replay draws new random numbers (dropout and patchout draw in compiled steps).
Exit 1, with each failure on stderr, when a check fails; the facts go to ENV.json either way.
"""

from __future__ import annotations

import importlib
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

# module -> what needs it; a missing one fails the step (the steps after it would lose it)
IMPORTS = {
    "passt": "everything", "numpy": "everything", "fvcore": "the fvcore FLOPs field",
    "soundfile": "passt tag", "pytest_benchmark": "the benchmarks",
    "hear21passt.models.passt": "the official peer", "transformers": "the hf-ast peer",
    "pynvml": "energy and clocks (nvidia-ml-py)", "matplotlib": "the report's figures",
    "pandas": "the report",
}


def cuda_graph_replays_redraw() -> bool:
    """Whether replays of a CUDA graph captured by torch.compile draw new random numbers."""
    import torch

    draw = torch.compile(lambda x: x + torch.rand(8, device="cuda"), mode="reduce-overhead")
    zeros = torch.zeros(8, device="cuda")
    outs = [draw(zeros).clone() for _ in range(5)]  # warm-up, record, then replays
    return not torch.equal(outs[3], outs[4])


def probe(device: str) -> tuple[dict[str, Any], list[str]]:
    """The machine's facts and the checks that failed."""
    import torch

    facts: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda": torch.version.cuda, "imports": {}}
    failures = []
    for module, needed_by in IMPORTS.items():
        try:
            importlib.import_module(module)
            facts["imports"][module] = "ok"
        except Exception as e:  # a missing or broken dependency
            facts["imports"][module] = f"{type(e).__name__}: {e}"
            failures.append(f"import {module} failed ({needed_by}): {type(e).__name__}: {e}")
    compiler = next((shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    facts["c_compiler"] = compiler
    if compiler is None:
        failures.append("no C compiler (cc, gcc or clang): torch.compile's inductor needs one")
    if device != "cuda":
        return facts, failures
    if not torch.cuda.is_available():
        return facts, [*failures, "CUDA is not available"]
    from passt.measure.telemetry import energy_and_power, gpu_state

    p = torch.cuda.get_device_properties(0)
    facts["gpu"] = {"name": p.name, "memory_bytes": p.total_memory,
                    "multiprocessors": p.multi_processor_count,
                    "capability": f"{p.major}.{p.minor}"}
    state = gpu_state(0)
    facts["nvml"] = None if state is None else {
        "driver": state.driver, "sm_clock_mhz": state.sm_clock_mhz,
        "max_sm_clock_mhz": state.max_sm_clock_mhz, "power_limit_w": state.power_limit_w,
        "processes": None if state.processes is None else len(state.processes)}
    reading = energy_and_power(0)
    facts["energy_j"], facts["power_w"] = reading or (None, None)
    if reading is None or reading[0] is None:
        failures.append("NVML reports no energy counter: J/sample will be null")
    facts["cuda_graph_replays_redraw"] = cuda_graph_replays_redraw()
    if not facts["cuda_graph_replays_redraw"]:
        failures.append("CUDA-graph replays repeat their random draws: the cuda-graphs "
                        "ablation would train on frozen patchout and dropout")
    return facts, failures


def main(argv: list[str]) -> int:
    device, path = argv
    facts, failures = probe(device)
    Path(path).write_text(json.dumps({**facts, "failures": failures}, indent=1) + "\n")
    print(json.dumps(facts, indent=1))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
