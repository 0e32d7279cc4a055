"""AudioSet-layout HDF5: `passt data pack` round trip, the official layout, bad clips."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from passt.cli import main
from passt.data import BadFileError, Hdf5Dataset, open_dataset, pack_hdf5
from passt.data.audio import AudioError
from passt.data.hdf5 import encode_mp3
from passt.utils.errors import UsageError

SR = 32000
ROWS = {"a.wav": "dog;bark", "b.flac": "music", "c.ogg": "dog", "d.wav": "speech,music"}


def sound(seed: int, seconds: float, rate: int = SR) -> np.ndarray:
    """A few seconds of tones with a slow envelope: mp3 keeps its shape well."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    freqs = rng.uniform(200, 3000, 3)
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in freqs)
    return (0.2 * x * (1.2 + np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "audio"
    root.mkdir()
    for i, name in enumerate(ROWS):
        sf.write(root / name, sound(i, 1.5), SR)
    (root / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    lines = [f'{name},"{labels}"' for name, labels in ROWS.items()]
    (root / "labels.csv").write_text("\n".join(["filename,labels", *lines,
                                                'broken.wav,"dog"']) + "\n")
    return root


def test_pack_round_trip_keeps_names_targets_and_audio(folder, tmp_path, capsys):
    out = tmp_path / "packed" / "train.hdf"
    assert main(["data", "pack", str(folder), str(folder / "labels.csv"), str(out),
                 "--clip-seconds", "1.0"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote 4 clips, 4 classes to {out}" in printed and "broken.wav" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.hdf"]  # no temp left

    with h5py.File(out, "r") as f:
        assert f["target"].dtype == np.uint8 and f["target"].shape == (4, 1)
        assert f["mp3"].dtype == h5py.vlen_dtype(np.dtype("uint8"))
    original = open_dataset(f"folder:{folder}", clip_seconds=1.0)
    packed = open_dataset(f"hdf5:{out}", clip_seconds=1.0)
    assert packed.names == original.names == list(ROWS)
    assert packed.label_names == original.label_names == ["bark", "dog", "music", "speech"]
    np.testing.assert_array_equal(packed.targets, original.targets)
    assert packed.clip_samples == SR and packed.bad_files == []
    for i in range(len(packed)):
        x, y = packed[i]
        reference = original[i][0]
        assert x.dtype == np.float32 and x.shape == (SR,)
        np.testing.assert_array_equal(y, original.targets[i])
        assert np.corrcoef(x, reference)[0, 1] > 0.9  # mp3 is lossy, and aligned here
        assert np.std(x) == pytest.approx(np.std(reference), rel=0.1)


def test_pack_error_policy_stops_and_writes_nothing(folder, tmp_path, capsys):
    out = tmp_path / "train.hdf"
    assert main(["data", "pack", str(folder), str(folder / "labels.csv"), str(out),
                 "--on-bad-file", "error"]) == 2
    assert "broken.wav: not readable audio" in capsys.readouterr().err
    assert list(tmp_path.glob("*.hdf*")) == [] and not out.exists()
    with pytest.raises(BadFileError, match="broken.wav"):
        pack_hdf5(folder, folder / "labels.csv", out, on_bad_file="error")


def write_official(path: Path, clips: list[bytes], targets: np.ndarray) -> None:
    """The layout of the released AudioSet files: fixed-width names, no label_names."""
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.array(
            [f"Y{i:011d}.mp3".encode() for i in range(len(clips))], dtype="S20"))
        mp3 = f.create_dataset("mp3", shape=(len(clips),), dtype=h5py.vlen_dtype(np.uint8))
        for i, clip in enumerate(clips):
            mp3[i] = np.frombuffer(clip, dtype=np.uint8)
        f.create_dataset("target", data=np.packbits(targets.astype(bool), axis=-1))


def test_reads_the_official_layout_and_handles_bad_clips(tmp_path):
    targets = np.zeros((3, 527), dtype=np.float32)
    targets[0, [0, 526]] = targets[1, 137] = targets[2, 300] = 1
    good = encode_mp3(sound(0, 0.5)).tobytes()
    path = tmp_path / "eval.h5"
    write_official(path, [good, b"not an mp3 at all", good], targets)

    ds = Hdf5Dataset(path, clip_seconds=1.0, num_classes=527)
    assert len(ds) == 3 and ds.label_names is None and not ds.has_splits
    np.testing.assert_array_equal(ds.targets, targets)
    x, y = ds[2]
    assert x.shape == (SR,) and not x[SR // 2 + 2000:].any()  # padded
    with pytest.raises(AudioError, match="Y00000000001.mp3: not readable"):
        ds[1]

    for level in ("header", "full"):
        checked = Hdf5Dataset(path, clip_seconds=1.0, num_classes=527, validate=level)
        assert checked.names == ["Y00000000000.mp3", "Y00000000002.mp3"]
        assert [name for name, _ in checked.bad_files] == ["Y00000000001.mp3"]
        np.testing.assert_array_equal(checked.targets, targets[[0, 2]])
    with pytest.raises(BadFileError, match="Y00000000001.mp3"):
        Hdf5Dataset(path, num_classes=527, validate="full", on_bad_file="error")
    with pytest.raises(ValueError, match="do not fit"):
        Hdf5Dataset(path, num_classes=600)
    ds.close()
    with h5py.File(path, "a") as f:
        f.attrs["label_names"] = [f"class {i}" for i in range(527)]
    assert Hdf5Dataset(path).label_names[526] == "class 526"


@pytest.mark.parametrize("kind", ["not HDF5", "the validation level"])
def test_bad_inputs_name_what_is_accepted(tmp_path, kind):
    if kind == "not HDF5":
        readme = tmp_path / "README.md"
        readme.write_text("# not an HDF5 file\n")
        with pytest.raises(UsageError, match=r"README.md is not an HDF5 file .*hdf5:FILE takes "
                                             r"a file in the official AudioSet layout"):
            Hdf5Dataset(readme)
    else:
        path = tmp_path / "x.h5"
        write_official(path, [], np.zeros((0, 527), np.float32))
        with pytest.raises(UsageError, match=r"unknown validation level 'quick'; accepted: "
                                             r"none, header, full"):
            Hdf5Dataset(path, validate="quick")
