"""Class lists: official HDF5 files (527 classes), --labels, train and eval classes lined up by
name before the first step, and eval data that would be the training clips."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from passt.cli import main
from passt.data import DatasetView, Hdf5Dataset, align_classes, open_dataset
from passt.data.hdf5 import encode_mp3
from passt.inference.run import load_model
from passt.run_checkpoint import RunCheckpoint
from passt.train import LAST_CHECKPOINT, METRICS_JSONL, TrainConfig, train
from passt.utils.errors import UsageError
from tests.helpers import TINY, model_flags

SR = 32000


def chirp(seed: int, seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t * (1 + t))).astype(np.float32)


def write_official(path: Path, targets: np.ndarray) -> None:
    """An AudioSet file as the official prepare script writes it: S20 names, vlen-uint8 mp3,
    packbits of the classes, no label_names."""
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.array(
            [f"Y{i:011d}.mp3".encode() for i in range(len(targets))], dtype="S20"))
        mp3 = f.create_dataset("mp3", shape=(len(targets),), dtype=h5py.vlen_dtype(np.uint8))
        for i in range(len(targets)):
            mp3[i] = encode_mp3(chirp(i))
        f.create_dataset("target", data=np.packbits(targets.astype(bool), axis=-1))


def class_list(path: Path, names: list[str]) -> Path:
    lines = [f"{i},/m/{i:04d},{name}" for i, name in enumerate(names)]
    path.write_text("\n".join(["index,mid,display_name", *lines]) + "\n")
    return path


def multi_hot(rows: int, classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    targets = (rng.random((rows, classes)) < 0.02).astype(np.float32)
    targets[np.arange(rows), np.arange(rows) % classes] = 1.0  # every clip labelled
    return targets


def test_an_official_file_trains_a_527_class_model(tmp_path, caplog):
    path = tmp_path / "balanced_train.h5"
    write_official(path, multi_hot(8, 527))
    with caplog.at_level(logging.WARNING, logger="passt.data"):
        assert Hdf5Dataset(path).num_classes == 527
    assert "AudioSet's 527 classes" in caplog.text
    cfg = TrainConfig(data=f"hdf5:{path}", eval_data=f"hdf5:{path}", clip_seconds=1.0,
                      model_overrides=TINY, batch_size=4, max_steps=1, balanced=False,
                      out_dir=str(tmp_path / "run"))
    result = train(cfg, progress=False)
    ckpt = RunCheckpoint.load(tmp_path / "run" / LAST_CHECKPOINT)
    assert ckpt.num_classes == 527 and ckpt.model["head.1.weight"].shape[0] == 527
    assert ckpt.label_names == [] and result.metrics["samples"] == 8


def test_labels_name_the_classes_and_reach_passt_tag(tmp_path):
    path = tmp_path / "train.h5"
    write_official(path, multi_hot(8, 527))
    names = [f"class {i}" for i in range(527)]
    labels = class_list(tmp_path / "class_labels_indices.csv", names)
    assert Hdf5Dataset(path, labels_file=labels).label_names == names
    out = tmp_path / "run"
    assert main(["train", "--data", f"hdf5:{path}", "--eval-data", f"hdf5:{path}", "--labels",
                 str(labels), "--clip-seconds", "1", *model_flags(TINY), "--batch-size", "4",
                 "--max-steps", "1", "--uniform",
                 "--no-progress", "--out", str(out)]) == 0
    assert load_model(out / LAST_CHECKPOINT).label_names == names


@pytest.mark.parametrize(("bytes_", "options", "message"), [
    (2, {}, r"no label_names and targets of 2 bytes \(9 to 16 classes\): pass the class list "
            r"\(--labels class_labels_indices.csv\) or the count \(--data-options "
            r"num_classes=N\)"),
    (2, {"num_classes": 30}, "30 classes do not fit targets packed in 2 bytes"),
    (66, {"num_classes": 526, "labels": 527}, "the class counts disagree"),
])
def test_other_widths_need_a_class_list_or_count(tmp_path, bytes_, options, message):
    path = tmp_path / "x.h5"
    write_official(path, multi_hot(2, 8 * bytes_ - 3))
    if "labels" in options:
        options = {**options, "labels_file": class_list(tmp_path / "c.csv",
                                                        [str(i) for i in range(527)])}
        options.pop("labels")
    with pytest.raises(UsageError, match=message):
        Hdf5Dataset(path, **options)
    assert Hdf5Dataset(path, num_classes=8 * bytes_ - 3).num_classes == 8 * bytes_ - 3


def pack(tmp_path: Path, name: str, rows: dict[str, str]) -> Path:
    """``passt data pack`` of a folder with ``rows`` (file -> labels): its own class list."""
    root = tmp_path / name
    root.mkdir()
    for i, file in enumerate(rows):
        sf.write(root / file, chirp(i), SR)
    (root / "labels.csv").write_text("filename,labels\n" + "".join(
        f"{file},{labels}\n" for file, labels in rows.items()))
    out = tmp_path / f"{name}.h5"
    assert main(["data", "pack", str(root), str(root / "labels.csv"), str(out),
                 "--clip-seconds", "1"]) == 0
    return out


def test_separately_packed_train_and_eval_files_line_up_by_name(tmp_path):
    train_h5 = pack(tmp_path, "train", {"a.wav": "cat", "b.wav": "dog", "c.wav": "owl",
                                        "d.wav": "cat", "e.wav": "dog", "f.wav": "owl"})
    eval_h5 = pack(tmp_path, "eval", {"g.wav": "owl", "h.wav": "dog", "i.wav": "emu"})
    other = pack(tmp_path, "other", {"j.wav": "owl", "k.wav": "dog"})
    train_set = open_dataset(f"hdf5:{train_h5}", clip_seconds=1.0)
    eval_set = open_dataset(f"hdf5:{eval_h5}", clip_seconds=1.0)
    assert eval_set.label_names == ["dog", "emu", "owl"]  # its own sorted list
    with pytest.raises(UsageError, match=r"class\(es\) 'emu' not in the class list \(3 classes: "
                                         r"cat, dog, owl"):
        align_classes(eval_set, train_set.label_names, 3)
    cfg = TrainConfig(data=f"hdf5:{train_h5}", eval_data=f"hdf5:{eval_h5}", clip_seconds=1.0,
                      model_overrides=TINY, batch_size=2, max_steps=1,
                      out_dir=str(tmp_path / "run"))
    with pytest.raises(UsageError, match="'emu' not in the class list"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / METRICS_JSONL).exists()  # before the first step

    lined_up = align_classes(open_dataset(f"hdf5:{other}", clip_seconds=1.0),
                             train_set.label_names, 3)
    assert isinstance(lined_up, DatasetView) and lined_up.label_names == ["cat", "dog", "owl"]
    assert lined_up.targets.tolist() == [[0, 0, 1], [0, 1, 0]]  # owl, dog in the train order
    assert lined_up[1][1].tolist() == [0, 1, 0]


def test_unnamed_classes_of_different_counts_fail_before_the_first_step(tmp_path):
    train_h5, eval_h5 = tmp_path / "train.h5", tmp_path / "eval.h5"
    write_official(train_h5, multi_hot(4, 527))
    write_official(eval_h5, multi_hot(2, 20))
    cfg = TrainConfig(data=f"hdf5:{train_h5}", eval_data=f"hdf5:{eval_h5}",
                      eval_data_options={"num_classes": 20}, clip_seconds=1.0,
                      model_overrides=TINY, batch_size=2, max_steps=1,
                      out_dir=str(tmp_path / "run"))
    with pytest.raises(UsageError, match="the eval data has 20 classes, the training data 527"):
        train(cfg, progress=False)


def test_data_without_splits_needs_eval_data(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    for i in range(4):
        sf.write(root / f"{i}.wav", chirp(i), SR)
    (root / "labels.csv").write_text("filename,labels\n0.wav,a\n1.wav,b\n2.wav,a\n3.wav,b\n")
    cfg = TrainConfig(data=f"folder:{root}", clip_seconds=1.0, model_overrides=TINY,
                      batch_size=2, max_steps=1, out_dir=str(tmp_path / "run"))
    with pytest.raises(UsageError, match=r"has no eval split .* would score the training "
                                         r"clips; pass the eval data \(--eval-data\)"):
        train(cfg, progress=False)
    h5 = tmp_path / "x.h5"
    write_official(h5, multi_hot(4, 527))
    assert main(["baseline", "--data", f"hdf5:{h5}", "--clip-seconds", "1"]) == 2
    fine = TrainConfig(data=f"folder:{root}", eval_data=f"folder:{root}", clip_seconds=1.0,
                       model_overrides=TINY, batch_size=2, max_steps=1,
                       out_dir=str(tmp_path / "run"))
    assert train(fine, progress=False).metrics["samples"] == 4


def test_a_packed_file_read_with_a_class_list_is_mapped_by_name(tmp_path):
    packed = pack(tmp_path, "named", {"a.wav": "cat", "b.wav": "owl;dog"})
    labels = class_list(tmp_path / "classes.csv", ["owl", "emu", "cat", "dog"])
    ds = Hdf5Dataset(packed, labels_file=labels)
    assert ds.label_names == ["owl", "emu", "cat", "dog"] and ds.num_classes == 4
    assert ds.targets.tolist() == [[0, 0, 1, 0], [1, 0, 0, 1]]
    short = class_list(tmp_path / "short.csv", ["owl", "cat"])
    with pytest.raises(UsageError, match=r"label_names: class\(es\) 'dog' not in the class list"):
        Hdf5Dataset(packed, labels_file=short)
