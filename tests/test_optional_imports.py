"""The model, the measurement library and the CLI's light commands work without the optional
packages; the paths that need one name it and its pip install."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import passt
from passt.utils.optional import require

MISSING = ("h5py", "soundfile", "torchaudio", "tqdm", "sklearn", "pandas", "matplotlib", "fvcore",
           "scipy")

# run in a fresh interpreter where the MISSING packages cannot be imported, as if not installed
SCRIPT = textwrap.dedent("""
    import contextlib, io, sys, wave

    for name in sys.argv[1].split(","):
        sys.modules[name] = None  # import raises ModuleNotFoundError, find_spec gives None

    import numpy as np
    import torch

    import passt
    import passt.cli
    import passt.measure
    from passt.data.audio import decode, resample

    model = passt.create_model("passt-s", embed_dim=64, depth=1, num_heads=4).eval()
    frontend = passt.create_frontend().eval()
    with torch.inference_mode():
        logits = model(frontend(torch.randn(2, 32000)))
    assert logits.shape == (2, 527), logits.shape

    # a benchmark's FLOPs without fvcore: its field is null and a note says why
    tiny = dict(embed_dim=64, depth=1, num_heads=4, time=2, freq=1)
    flops = passt.measure.count_flops(
        passt.measure.StepSettings(model_overrides=tiny, clip_seconds=1.0), "train")
    assert flops.forward_fvcore is None and flops.forward_torch > 0, flops
    assert flops.notes == ("fvcore FLOPs not counted: counting FLOPs with fvcore needs "
                           "fvcore: pip install fvcore",), flops.notes

    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert passt.cli.main(["variants"]) == 0
    assert "passt-s" in out.getvalue()
    for argv in (["train", "--help"], ["--help"]):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                passt.cli.main(argv)
        except SystemExit as e:
            assert e.code == 0, (argv, e.code)
        else:
            raise AssertionError(f"{argv} did not exit")

    def error(call, *args):
        try:
            call(*args)
        except ModuleNotFoundError as e:
            return str(e)
        raise AssertionError(f"{call.__name__} ran without its package")

    path = sys.argv[2]
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(bytes(3200))
    assert error(decode, path) == "decoding audio needs soundfile: pip install soundfile"
    assert error(resample, np.zeros(160, np.float32), 16000) == (
        "resampling audio needs torchaudio: pip install torchaudio")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert passt.cli.main(["report", "bench.json"]) == 2
    assert "needs pandas: pip install pandas" in err.getvalue(), err.getvalue()
""")


@pytest.mark.integration
def test_import_model_and_cli_without_optional_packages(tmp_path):
    root = Path(passt.__file__).parents[1]  # the interpreter imports this test's passt
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(MISSING), str(tmp_path / "clip.wav")],
        cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_require_names_the_pip_package(monkeypatch):
    for name in ("sklearn", "sklearn.linear_model"):  # as if never installed, even if imported
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModuleNotFoundError) as e:
        require("sklearn.linear_model", "the baseline")
    assert str(e.value) == "the baseline needs sklearn: pip install scikit-learn"
    assert e.value.name == "sklearn"
    assert require("json", "reading JSON") is json
