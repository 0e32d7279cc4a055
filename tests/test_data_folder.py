"""Folder datasets: formats, rates, channels, lengths, and bad files under both policies."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from passt.data import BadFileError, FolderDataset, LabelVocabulary, open_dataset
from passt.data.audio import AudioError
from passt.data.labels import split_labels
from passt.utils.errors import UsageError

SR = 32000
LABELS_FILE = "index,mid,display_name\n0,/m/0a,Speech\n1,/m/0b,Music\n2,/m/0c,Dog\n"
GOOD = {  # file -> (labels field, what it checks)
    "tone.wav": "Speech", "tone.flac": "Music", "tone.ogg": "Speech;Music", "tone.mp3": "Dog",
    "rate8k.wav": "Speech", "rate48k.flac": "/m/0c", "stereo.wav": "Music,Dog",
    "short.wav": "Speech", "long.wav": "Music",
}
BAD = {  # file -> (labels field, words of the reason)
    "empty.wav": ("Speech", "empty file"),
    "no_samples.wav": ("Speech", "empty audio"),
    "truncated.wav": ("Music", "truncated"),
    "corrupt.flac": ("Dog", "not readable audio"),
    "nan.wav": ("Music", "NaN or infinite"),
    "missing.wav": ("Speech", "file not found"),
}


def tone(seconds: float, rate: int, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int = SR, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def write_files(root: Path) -> None:
    """One file per case of `GOOD` and `BAD` (except the missing one)."""
    for ext in ("wav", "flac", "ogg", "mp3"):
        sf.write(root / f"tone.{ext}", tone(1.0, SR), SR)
    sf.write(root / "rate8k.wav", tone(1.0, 8000), 8000)
    sf.write(root / "rate48k.flac", tone(1.0, 48000), 48000)
    sf.write(root / "stereo.wav", np.stack([tone(1.0, SR), np.zeros(SR, np.float32)], 1), SR)
    sf.write(root / "short.wav", tone(0.5, SR), SR)
    sf.write(root / "long.wav", tone(12.0, SR), SR)
    sf.write(root / "cat.wav", tone(1.0, SR), SR)
    (root / "empty.wav").write_bytes(b"")
    (root / "no_samples.wav").write_bytes(wav_bytes(np.zeros(0, np.float32)))
    whole = wav_bytes(tone(1.0, SR))
    (root / "truncated.wav").write_bytes(whole[:len(whole) // 2])
    buffer = io.BytesIO()
    sf.write(buffer, tone(1.0, SR), SR, format="FLAC")
    (root / "corrupt.flac").write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    (root / "nan.wav").write_bytes(wav_bytes(np.full(SR, np.nan, np.float32), subtype="FLOAT"))


def write_csv(path: Path, rows: dict[str, str], splits: dict[str, str] | None = None) -> Path:
    header = "filename,labels" + (",split" if splits else "")
    lines = [f'{name},"{labels}"' + (f",{splits[name]}" if splits else "")
             for name, labels in rows.items()]
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    write_files(root)
    (root / "class_labels_indices.csv").write_text(LABELS_FILE)
    write_csv(root / "labels.csv", GOOD | {name: labels for name, (labels, _) in BAD.items()})
    return root


def test_skip_policy_keeps_the_good_files_and_names_the_bad(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="passt.data"):
        ds = FolderDataset(folder, clip_seconds=1.0,
                           labels_file=folder / "class_labels_indices.csv")
    assert ds.names == list(GOOD)
    assert ds.label_names == ["Speech", "Music", "Dog"] and ds.num_classes == 3
    assert ds.targets.shape == (len(GOOD), 3) and ds.targets.dtype == np.float32
    assert ds.targets[ds.names.index("tone.ogg")].tolist() == [1, 1, 0]
    assert ds.targets[ds.names.index("rate48k.flac")].tolist() == [0, 0, 1]  # by mid
    assert ds.targets[ds.names.index("stereo.wav")].tolist() == [0, 1, 1]  # ','-separated
    reasons = dict(ds.bad_files)
    assert list(reasons) == list(BAD)
    for name, (_, words) in BAD.items():
        assert words in reasons[name], (name, reasons[name])
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == len(BAD)
    assert any(f"skipped {len(BAD)} of {len(GOOD) + len(BAD)}" in r.getMessage()
               for r in caplog.records)


def test_every_good_file_becomes_a_32k_mono_clip(folder):
    ds = FolderDataset(folder, clip_seconds=1.0, labels_file=folder / "class_labels_indices.csv")
    assert len(ds) == len(GOOD) and ds.clip_samples == SR
    clips = {name: ds[i][0] for i, name in enumerate(ds.names)}
    for name, x in clips.items():
        assert x.dtype == np.float32 and x.shape == (SR,), name
        spectrum = np.abs(np.fft.rfft(x))
        assert abs(np.argmax(spectrum) - 1000) <= 2, name  # 1 Hz bins: the tone survives
    for name in ("tone.wav", "rate8k.wav", "long.wav"):
        peak = np.abs(clips[name][1000:-1000]).max()
        assert peak == pytest.approx(0.5, abs=0.03), name
    assert np.abs(clips["stereo.wav"]).max() == pytest.approx(0.25, abs=0.01)  # mixed to mono
    assert np.abs(clips["short.wav"][:SR // 2]).max() > 0.4
    assert not clips["short.wav"][SR // 2:].any()  # zero-padded


@pytest.mark.parametrize("bad", list(BAD))
def test_error_policy_raises_naming_the_file_and_reason(folder, tmp_path, bad):
    labels, words = BAD[bad]
    csv = write_csv(tmp_path / "one_bad.csv", {"tone.wav": "Speech", bad: labels})
    with pytest.raises(BadFileError, match=f"{bad}: .*{words}"):
        FolderDataset(folder, csv=csv, clip_seconds=1.0, on_bad_file="error",
                      labels_file=folder / "class_labels_indices.csv")


def test_header_validation_defers_decoding_but_never_fails_silently(folder, tmp_path):
    csv = write_csv(tmp_path / "nan.csv", {"tone.wav": "Speech", "nan.wav": "Music"})
    ds = FolderDataset(folder, csv=csv, clip_seconds=1.0, validate="header")
    assert ds.names == ["tone.wav", "nan.wav"]
    assert ds[0][0].shape == (SR,)
    with pytest.raises(AudioError, match="nan.wav: contains NaN"):
        ds[1]


def test_split_column_selects_rows_and_vocabulary_spans_all(folder, tmp_path):
    rows = {"tone.wav": "Speech", "tone.flac": "Music", "tone.ogg": "Dog"}
    csv = write_csv(tmp_path / "split.csv", rows,
                    {"tone.wav": "train", "tone.flac": "train", "tone.ogg": "eval"})
    train = open_dataset(f"folder:{folder}", clip_seconds=1.0, csv=csv)
    evaluation = open_dataset(f"folder:{folder}", clip_seconds=1.0, split="eval", csv=csv)
    assert train.names == ["tone.wav", "tone.flac"] and evaluation.names == ["tone.ogg"]
    assert train.label_names == evaluation.label_names == ["Dog", "Music", "Speech"]
    assert evaluation.targets.tolist() == [[1, 0, 0]]
    with pytest.raises(ValueError, match="no rows of split 'test'"):
        open_dataset(f"folder:{folder}", split="test", csv=csv)
    assert train.has_splits and evaluation.has_splits
    unsplit = write_csv(tmp_path / "unsplit.csv", rows)
    whole = open_dataset(f"folder:{folder}", split="eval", csv=unsplit)
    assert len(whole) == 3 and not whole.has_splits  # all rows: training then needs eval data


def test_a_label_not_in_the_class_list_is_an_error_under_either_policy(folder, tmp_path):
    csv = write_csv(tmp_path / "cat.csv", {"tone.wav": "Speech", "cat.wav": "Speech;Cat"})
    for policy in ("skip", "error"):
        with pytest.raises(UsageError, match=r"cat.csv: line 3 \(cat.wav\): label\(s\) \['Cat'\] "
                                             r"not in the class list .*class_labels_indices.csv"):
            FolderDataset(folder, csv=csv, clip_seconds=1.0, on_bad_file=policy,
                          labels_file=folder / "class_labels_indices.csv")


def test_label_fields_split_on_semicolons_first():
    assert split_labels("Male speech, man speaking; Dog") == ("Male speech, man speaking", "Dog")
    assert split_labels("Male speech, man speaking;") == ("Male speech, man speaking",)
    assert split_labels("/m/09x0r,/m/05zppz") == ("/m/09x0r", "/m/05zppz")
    assert split_labels("") == ()


def test_csv_and_vocabulary_errors_are_clear(folder, tmp_path):
    (tmp_path / "bad.csv").write_text("file,label\ntone.wav,Speech\n")
    with pytest.raises(ValueError, match="missing column"):
        FolderDataset(folder, csv=tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="label CSV"):
        FolderDataset(folder, csv=tmp_path / "absent.csv")
    (tmp_path / "classes.csv").write_text("index,mid,display_name\n1,/m/x,X\n")
    with pytest.raises(ValueError, match="indices must be"):
        LabelVocabulary.from_file(tmp_path / "classes.csv")


def test_open_dataset_rejects_unknown_specs_and_policies():
    with pytest.raises(ValueError, match="unknown dataset 'audioset'; known: synthetic, "
                                         "folder:DIR, esc50:DIR, hdf5:FILE; add your own"):
        open_dataset("audioset")
    with pytest.raises(ValueError, match="dataset spec 'folder': expected the form folder:DIR"):
        open_dataset("folder")
    with pytest.raises(ValueError, match="expected the form synthetic"):
        open_dataset("synthetic:x")
    with pytest.raises(ValueError, match="on_bad_file"):
        open_dataset("synthetic", on_bad_file="ignore")
