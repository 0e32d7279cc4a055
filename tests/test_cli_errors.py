"""Bad input to the CLI is one line naming what was wrong and what is accepted, exit status 2;
a closed stdout ends the command quietly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import passt
from passt.cli import main
from passt.data.esc50_synthetic import Esc50Like, write_esc50_like
from passt.utils.device import resolve_device
from passt.utils.errors import UsageError
from tests.helpers import TINY, overrides_arg, save_train_checkpoint

OVERRIDES = overrides_arg(TINY)


def error_line(capsys, argv: list[str]) -> str:
    """The one line ``passt ARGV`` prints on stderr, after checking it exits with 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"passt {argv[0]}: error: "), err
    return err


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(passt.create_model("passt-s", num_classes=3, **TINY).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def train_checkpoint(tmp_path_factory):
    """A checkpoint in `passt train`'s format whose eval data is small."""
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    model = passt.create_model("passt-s", num_classes=32, **TINY)
    return save_train_checkpoint(model, path, classes=32, overrides=TINY, clip_seconds=1.0,
                                 eval_size=4)


@pytest.fixture(scope="module")
def esc50_like(tmp_path_factory):
    """A small ESC-50-layout folder: three classes, two folds."""
    root = tmp_path_factory.mktemp("esc50")
    write_esc50_like(root, Esc50Like(classes=("chord", "arpeggio-up", "hiss"), folds=2,
                                     clips_per_class=2, seconds=1.0, sample_rate=16000))
    return root


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    return path


def test_eval_of_a_file_that_is_not_a_checkpoint(capsys):
    err = error_line(capsys, ["eval", "--checkpoint", "README.md"])
    assert "README.md is not a PyTorch checkpoint (a file written by torch.save)" in err


def test_train_on_clips_longer_than_the_time_embedding(capsys, tmp_path):
    err = error_line(capsys, ["train", "--clip-seconds", "100", "--data-options", "size=16",
                              "--eval-data-options", "size=4", "--batch-size", "4",
                              "--out", str(tmp_path)])
    assert "a clip of 100.0 s gives 10000 frames, longer than the model's time embedding" in err
    assert "accepted: 16 to 998 frames (clips of 0.151 to 9.98 s)" in err


@pytest.mark.parametrize("command", ["tag", "embed"])
@pytest.mark.parametrize(("device", "message"), [
    ("foo", "unknown device 'foo'; accepted: auto, cpu, cuda, cuda:N"),
    ("cuda", "device 'cuda' requested but CUDA is not available; accepted here: auto, cpu"),
])
def test_inference_on_a_device_that_is_not_there(capsys, monkeypatch, tmp_path,
                                                 plain_checkpoint, clip, command, device,
                                                 message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = ["--out", str(tmp_path / "e.npy")] if command == "embed" else []
    err = error_line(capsys, [command, str(clip), "--checkpoint", str(plain_checkpoint),
                              "--model-overrides", OVERRIDES, "--device", device,
                              "--no-progress", *out])
    assert message in err


@pytest.mark.parametrize("device", ["foo", "cuda:x"])
def test_train_and_eval_on_an_unknown_device(capsys, tmp_path, train_checkpoint, device):
    message = f"unknown device '{device}'"
    assert message in error_line(capsys, ["train", "--device", device, "--out", str(tmp_path)])
    assert message in error_line(capsys, ["eval", "--checkpoint", str(train_checkpoint),
                                          "--device", device])


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", index=1) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="CUDA is not available"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # torch.cuda.set_device needs an index: "cuda" is this process's device
    assert resolve_device("cuda", index=1) == torch.device("cuda", 1)
    assert resolve_device("auto", index=1) == torch.device("cuda", 1)
    with pytest.raises(UsageError, match="there are 2 CUDA device"):
        resolve_device("cuda:2")


def test_window_longer_than_the_time_embedding(plain_checkpoint, clip):
    model = passt.inference.run.load_model(plain_checkpoint, **TINY)
    with pytest.raises(UsageError, match=r"a window of 20.0 s gives 2000 frames, longer than "
                                         r"the model's time embedding .* accepted: 16 to 998"):
        passt.tag(clip, model, window_seconds=20.0, progress=False)


@pytest.mark.parametrize("args, message", [
    (["no-such-run.json"], "no such file or folder: no-such-run.json"),
    (["README.md"], "README.md is not JSON"),
    (["--window", "1", "README.md"], "--window must be at least 2 (a variance needs two runs)"),
    (["--min-change-time", "five", "README.md"], "not a percentage: 'five'"),
])
def test_history_of_bad_input(capsys, tmp_path, args, message):
    assert message in error_line(capsys, ["history", *args, "--out", str(tmp_path)])


@pytest.mark.integration
def test_closed_stdout_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "passt.cli", "variants", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""


@pytest.mark.parametrize("args, message", [
    (["--data-options", "size=abc"], "dataset option size='abc': expected an integer"),
    (["--data-options", "tail_ratio=abc"], "dataset option tail_ratio='abc': expected a "
                                           "number"),
    (["--data-options", "snr_db=loud"], "dataset option snr_db='loud': expected a tuple of 2 "
                                        "numbers"),
    (["--eval-data-options", "seed=0.5"], "dataset option seed=0.5: expected an integer"),
    (["--data-options", "sise=3"], "unknown dataset option 'sise'; accepted: size, seed, "),
    (["--model-overrides", "drop_rate=high"], "model setting drop_rate='high': expected a "
                                              "number"),
    (["--model-overrides", "attention=flash"], "model setting attention='flash': expected one "
                                               "of sdpa, math"),
    (["--frontend-overrides", "n_mels=many"], "frontend option n_mels='many': expected an "
                                              "integer"),
])
def test_a_free_form_option_is_checked_against_its_type(capsys, tmp_path, args, message):
    """KEY=VALUE options reach the field they set through one check of its type hint: a
    wrong value is a usage error (exit 2) naming the option and what it accepts, never a
    TypeError from deep inside."""
    err = error_line(capsys, ["train", "--data", "synthetic", *args, "--max-steps", "1",
                              "--out", str(tmp_path / "run")])
    assert message in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "synthetic", "--folds", "1,x"],
     "--folds '1,x': expected 'all' or a comma-separated list of integers"),
    (["sweep", "--steps", "1", "--seeds", "0,-1"],
     "--seeds '0,-1': expected a comma-separated list of integers >= 0"),
    (["profile", "--clips", "5,0"], "--clips '5,0': expected a comma-separated list of "
                                    "numbers > 0"),
    (["profile", "--kinds", "train,eval"], "unknown step kind 'eval'; accepted: train, "
                                           "inference"),
])
def test_a_list_option_names_itself_and_what_it_accepts(capsys, tmp_path, argv, message):
    """Comma-separated options are parsed by one function: a wrong item is a usage error
    naming the option, the value and what it accepts."""
    assert message in error_line(capsys, [*argv, "--out", str(tmp_path / "out")])


def test_a_generated_flag_offers_its_literal_choices(capsys, tmp_path):
    """`passt profile --dtype` is made from `BenchOverrides.dtype`: argparse refuses another
    precision and lists the accepted ones (exit 2)."""
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "--dtype", "fp64", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "argument --dtype: invalid choice: 'fp64' (choose from" in capsys.readouterr().err


SWEEP = ["sweep", "--variants", "passt-s", "--steps", "1"]
BAD_RUNS = {  # a command with bad input, and what it says
    "train data": (["train", "--data-options", "size=abc"],
                   "dataset option size='abc': expected an integer"),
    "train eval data": (["train", "--data-options", "size=8", "--eval-data-options", "size=x"],
                        "dataset option size='x': expected an integer"),
    "train clips": (["train", "--clip-seconds", "100", "--data-options", "size=16",
                     "--eval-data-options", "size=4"], "longer than the model's time embedding"),
    "sweep data": ([*SWEEP, "--data-options", "size=abc"],
                   "dataset option size='abc': expected an integer"),
    "sweep eval data": ([*SWEEP, "--data-options", "size=8", "--eval-data-options", "size=x"],
                        "dataset option size='x': expected an integer"),
    "sweep clips": ([*SWEEP, "--clip-seconds", "100", "--data-options", "size=16",
                     "--eval-data-options", "size=4"], "longer than the model's time embedding"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_input_leaves_no_output_folder(capsys, tmp_path, case):
    """The inputs are checked before ``--out`` is made: a failed command leaves no folder."""
    argv, message = BAD_RUNS[case]
    out = tmp_path / "out"
    assert message in error_line(capsys, [*argv, "--out", str(out)])
    assert not out.exists(), sorted(map(str, out.rglob("*")))


@pytest.mark.parametrize("case", ["train data", "sweep clips"])
def test_bad_input_leaves_an_existing_output_folder_as_it_was(capsys, tmp_path, case):
    argv, message = BAD_RUNS[case]
    (tmp_path / "notes.txt").write_text("mine")
    assert message in error_line(capsys, [*argv, "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notes.txt"]


@pytest.mark.parametrize(("args", "message"), [
    (["--data-options", "sise=3"], "unknown dataset option 'sise'; accepted: csv, "),
    (["--clip-seconds", "100"], "longer than the model's time embedding"),
])
def test_bad_cross_validation_leaves_no_output_folder(capsys, tmp_path, esc50_like, args,
                                                      message):
    out = tmp_path / "cv"
    assert message in error_line(capsys, ["train", "--data", f"esc50:{esc50_like}", "--folds",
                                          "1,2", *args, "--out", str(out)])
    assert not out.exists(), sorted(map(str, out.rglob("*")))


def test_bad_finetuning_leaves_no_output_folder(capsys, tmp_path, plain_checkpoint):
    out = tmp_path / "run"
    assert "dataset option size='abc'" in error_line(
        capsys, ["finetune", "--init", f"checkpoint:{plain_checkpoint}", "--data-options",
                 "size=abc", "--out", str(out)])
    assert not out.exists()
