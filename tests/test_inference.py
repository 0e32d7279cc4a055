"""Tagging and embedding files: formats, rates, channels, lengths, windows, bad inputs, outputs."""

from __future__ import annotations

import csv
import io
import json
import math

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

import passt
from passt.cli import main
from passt.data.audio import decode
from passt.inference.outputs import format_tags, save_embeddings
from passt.inference.run import Windowing, load_model
from tests.helpers import SMALL, overrides_arg, save_train_checkpoint

TINY = SMALL
OVERRIDES = overrides_arg(SMALL)
CLASSES = 10
# name: (seconds, sample rate, channels); the 5-minute file lies in a subdirectory
CORPUS = {
    "a_short.wav": (0.5, 8000, 1),
    "b_clip.ogg": (10.0, 16000, 2),
    "c_long.flac": (37.0, 44100, 2),
    "d_clip.mp3": (10.0, 48000, 1),
    "e_long.wav": (37.0, 48000, 3),
    "f_short.aiff": (2.5, 22050, 2),
    "sub/g_five_minutes.wav": (300.0, 8000, 1),
}


def signal(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Quiet noise with loud bursts at random times, so that windows differ."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    audio = 0.02 * rng.standard_normal((n, channels))
    for start in rng.integers(0, n, size=max(1, int(seconds))):
        audio[start:start + rate // 4] *= 20
    return audio.astype(np.float32)


def expected_windows(duration: float, window: float = 10.0, hop: float = 5.0) -> int:
    return 1 if duration <= window else 1 + math.ceil((duration - window) / hop - 1e-9)


@pytest.fixture(scope="module")
def model() -> passt.PaSST:
    torch.manual_seed(0)
    return passt.create_model("passt-s", num_classes=CLASSES, **TINY).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for i, (name, (seconds, rate, channels)) in enumerate(CORPUS.items()):
        (root / name).parent.mkdir(exist_ok=True)
        sf.write(root / name, signal(seconds, rate, channels, seed=i), rate)
    return root


@pytest.fixture(scope="module")
def tagged(corpus, model):
    """The whole corpus tagged once, batches spanning files."""
    report = passt.tag(corpus, model, frame_scores=True, batch_size=6, progress=False)
    assert report.ok, report.failures
    return {r.path.removeprefix(f"{corpus}/"): r for r in report.results}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--model-overrides", OVERRIDES, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_every_format_rate_channel_count_and_length_is_tagged(tagged):
    assert list(tagged) == sorted(CORPUS)  # directories searched recursively, sorted
    for name, (seconds, _, _) in CORPUS.items():
        r = tagged[name]
        slack = 0.15 if name.endswith(".mp3") else 1e-4  # mp3 adds encoder padding
        assert r.duration == pytest.approx(seconds, abs=slack)
        windows = expected_windows(r.duration)
        assert r.scores.shape == (CLASSES,) and r.window_scores.shape == (windows, CLASSES)
        assert r.window_starts.shape == r.window_ends.shape == (windows,)
        assert len(r.window_top) == windows and len(r.top) == 5
        assert np.allclose(r.scores, r.window_scores.mean(0), atol=1e-6)
        assert [label.index for label in r.top] == np.argsort(-r.scores)[:5].tolist()
    assert len(tagged["c_long.flac"].window_starts) == 7
    assert len(tagged["sub/g_five_minutes.wav"].window_starts) == 59


@pytest.mark.slow
def test_windows_cover_a_five_minute_file(tagged):
    r = tagged["sub/g_five_minutes.wav"]
    assert r.window_starts[0] == 0 and r.window_ends[-1] == r.duration == 300
    assert np.all(r.window_starts[1:] <= r.window_ends[:-1])  # no gaps
    assert np.allclose(r.window_ends - r.window_starts, 10)
    assert np.allclose(np.diff(r.window_starts), 5)


@pytest.mark.slow
def test_last_window_ends_with_the_file_and_short_files_are_one_window(tagged):
    long = tagged["c_long.flac"]
    assert long.window_starts.tolist() == [0, 5, 10, 15, 20, 25, 27]
    assert long.window_ends[-1] == pytest.approx(37)
    short = tagged["a_short.wav"]
    assert short.window_starts.tolist() == [0] and short.window_ends.tolist() == [0.5]


@pytest.mark.slow
def test_short_file_equals_its_zero_padded_ten_seconds(tagged, corpus, model, tmp_path):
    audio = decode(corpus / "a_short.wav")
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.pad(audio, (0, 320000 - len(audio))), 32000, subtype="FLOAT")
    report = passt.tag(padded, model, progress=False)
    np.testing.assert_allclose(report.results[0].scores, tagged["a_short.wav"].scores,
                               atol=1e-5)


@pytest.mark.slow
def test_batching_does_not_change_scores_and_max_aggregates(tagged, corpus, model):
    names = ["b_clip.ogg", "c_long.flac"]
    report = passt.tag([corpus / n for n in names], model, batch_size=1, aggregate="max",
                       frame_scores=True, device="cpu", progress=False)
    for name, r in zip(names, report.results, strict=True):
        np.testing.assert_allclose(r.window_scores, tagged[name].window_scores, atol=1e-5)
        np.testing.assert_allclose(r.scores, r.window_scores.max(0))


def test_time_shift_by_hops_shifts_frame_scores(model, tmp_path):
    base = signal(62.5, 32000, seed=7)[:, 0]
    prefix = signal(5.0, 32000, seed=8)[:, 0]  # exactly one hop
    sf.write(tmp_path / "a.wav", base, 32000, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", np.concatenate([prefix, base]), 32000, subtype="FLOAT")
    orig, shifted = passt.tag([tmp_path / "a.wav", tmp_path / "b.wav"], model, batch_size=5,
                              frame_scores=True, progress=False).results
    assert len(orig.window_starts) == 12 and len(shifted.window_starts) == 13
    np.testing.assert_allclose(shifted.window_starts[1:], orig.window_starts + 5)
    np.testing.assert_allclose(shifted.window_scores[1:], orig.window_scores, atol=1e-4)
    # the check has teeth: windows differ from each other
    assert np.abs(shifted.window_scores[:-1] - orig.window_scores).max() > 1e-3


def test_bad_inputs_are_reported_by_name_and_the_rest_tagged(checkpoint, tmp_path, capsys):
    sf.write(tmp_path / "good.wav", signal(1.0, 16000), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    buf = io.BytesIO()
    sf.write(buf, signal(3.0, 16000), 16000, format="FLAC")
    (tmp_path / "corrupt.flac").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (tmp_path / "notes.wav").write_text("not audio at all\n")
    sf.write(tmp_path / "nan.wav", np.full(1600, np.nan, dtype=np.float32), 16000,
             subtype="FLOAT")
    (tmp_path / "no_audio").mkdir()
    (tmp_path / "no_audio" / "readme.txt").write_text("nothing here")
    bad = {"empty.wav": "empty audio", "corrupt.flac": "not readable audio",
           "notes.wav": "not readable audio", "nan.wav": "NaN", "no_audio": "no audio files",
           "missing.ogg": "no such file"}
    paths = [str(tmp_path / n) for n in ["good.wav", *bad]]
    code, out, err = cli(capsys, "tag", *paths, "--checkpoint", str(checkpoint),
                         "--format", "json")
    assert code == 1
    assert [r["file"] for r in json.loads(out)] == [str(tmp_path / "good.wav")]
    for name, reason in bad.items():
        line = next(ln for ln in err.splitlines() if ln.startswith(str(tmp_path / name) + ":"))
        assert reason in line
    assert "6 input(s) failed" in err


def test_label_names_from_audioset_csv(checkpoint, corpus, tmp_path, capsys):
    names = [f"Class {i}, with comma" for i in range(CLASSES)]
    labels = tmp_path / "class_labels_indices.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerows([i, f"/m/{i}", n] for i, n in enumerate(names))
    short = str(corpus / "a_short.wav")
    code, out, _ = cli(capsys, "tag", short, "--checkpoint", str(checkpoint), "--labels",
                       str(labels), "--format", "csv", "--top-k", "3", "--frame-scores")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["window"], r["rank"]) for r in rows] == [(w, str(k)) for w in ("clip", "0")
                                                        for k in (1, 2, 3)]
    assert all(r["label"] == names[int(r["index"])] for r in rows)

    labels.write_text("index,mid,display_name\n0,/m/0,Speech\n")
    code, _, err = cli(capsys, "tag", short, "--checkpoint", str(checkpoint), "--labels",
                       str(labels))
    assert code == 2 and "1 label names for a model of 10 classes" in err


@pytest.mark.slow
def test_embed_writes_npy_and_h5(checkpoint, corpus, model, tmp_path, capsys):
    files = [corpus / "a_short.wav", corpus / "c_long.flac"]
    report = passt.embed(files, model, batch_size=4, progress=False)
    assert [r.window_embeddings.shape for r in report.results] == [(1, 64), (7, 64)]
    for r in report.results:
        np.testing.assert_allclose(r.embedding, r.window_embeddings.mean(0), rtol=1e-6)

    npy, windows, index = save_embeddings(report, tmp_path / "emb.npy")
    assert np.load(npy).shape == (2, 64) and np.load(windows).shape == (8, 64)
    meta = json.loads(index.read_text())
    assert meta["paths"] == [str(f) for f in files] and meta["window_file"] == [0] + [1] * 7
    assert meta["window_starts"][-1] == 27 and meta["hop_seconds"] == 5.0

    code, out, _ = cli(capsys, "embed", *map(str, files), "--checkpoint", str(checkpoint),
                       "--out", str(tmp_path / "emb.h5"), "--batch-size", "3")
    assert code == 0 and "2 files (8 windows)" in out
    with h5py.File(tmp_path / "emb.h5") as f:
        assert f["embeddings"].shape == (2, 64) and f["window_embeddings"].shape == (8, 64)
        assert [p.decode() for p in f["paths"][:]] == [str(p) for p in files]
        assert f["window_ends"][-1] == 37 and f.attrs["window_seconds"] == 10
        np.testing.assert_allclose(f["embeddings"][:], np.load(npy), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "emb.h5", "emb.json", "emb.npy", "emb.windows.npy"]  # no temporary files left


def test_plain_and_train_checkpoints_load(model, checkpoint, tmp_path):
    plain = load_model(checkpoint, **TINY)
    trained = load_model(save_train_checkpoint(model, tmp_path / "train.pt"))
    assert plain.label_names is None and plain.clip_seconds is None
    assert trained.label_names[3] == "c3" and trained.clip_seconds == 4.0
    for loaded in (plain.model, trained.model):
        assert loaded.cfg.num_classes == CLASSES and not loaded.training
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(passt.CheckpointMismatchError, match="missing keys: blocks.1"):
        load_model(checkpoint, **{**TINY, "depth": 2})
    with pytest.raises(ValueError, match="num_classes=527 contradicts"):
        load_model(checkpoint, num_classes=527, **TINY)


def test_train_checkpoint_gives_label_names_and_window(model, tmp_path):
    train = save_train_checkpoint(model, tmp_path / "train.pt")
    sf.write(tmp_path / "x.wav", signal(9.0, 16000), 16000)
    r = passt.tag(tmp_path / "x.wav", train, frame_scores=True, progress=False).results[0]
    assert r.window_starts.tolist() == [0, 2, 4, 5] and r.window_ends[0] == 4
    assert all(label.name == f"c{label.index}" for label in r.top)


@pytest.mark.parametrize("num_samples, starts", [
    (3, [0]), (10, [0]), (15, [0, 5]), (17, [0, 5, 7]), (20, [0, 5, 10]),
])
def test_window_starts(num_samples, starts):
    assert Windowing(10, 5, sample_rate=1).starts(num_samples) == starts


def test_hop_longer_than_window_is_refused():
    with pytest.raises(ValueError, match="hop_seconds"):
        Windowing(10, 12)


@pytest.mark.slow
def test_formats(tagged):
    results = [tagged["a_short.wav"], tagged["c_long.flac"]]
    table = format_tags(results, "table").splitlines()
    assert len(table) == 1 + 2 + 1 + 7 and "25.00-35.00" in table[-2]
    data = json.loads(format_tags(results, "json"))
    assert len(data[1]["windows"]) == 7 and data[1]["windows"][-1]["start"] == 27
    assert len(format_tags(results, "csv").splitlines()) == 1 + 5 * (2 + 1 + 7)
