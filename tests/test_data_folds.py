"""ESC-50's layout, fold columns and the two sides of each fold, checked against hand-built
file lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from passt.cli import main
from passt.data import choose_folds, fold_sides, open_dataset, parse_folds
from passt.data.esc50_synthetic import Esc50Like, write_esc50_like
from passt.utils.errors import UsageError

SR = 44100
ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def write_esc50(root: Path, rows: list[tuple[str, int, int, str]]) -> Path:
    """An ESC-50-layout folder with a second of noise per row ``(file, fold, target,
    category)``."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rng = np.random.default_rng(0)
    for file, *_ in rows:
        sf.write(root / "audio" / file, 0.1 * rng.standard_normal(SR), SR)
    (root / "meta" / "esc50.csv").write_text(ESC50_HEADER + "".join(
        f"{file},{fold},{target},{category},False,1,A\n" for file, fold, target, category in rows))
    return root


ROWS = [("1-1-A-0.wav", 1, 0, "dog"), ("1-2-A-1.wav", 1, 1, "rooster"),
        ("2-3-A-0.wav", 2, 0, "dog"), ("2-4-A-1.wav", 2, 1, "rooster"),
        ("3-5-A-1.wav", 3, 1, "rooster"), ("3-6-A-0.wav", 3, 0, "dog")]


def test_esc50_layout_reads_categories_in_target_order_and_folds(tmp_path):
    root = write_esc50(tmp_path / "ESC-50", ROWS)
    ds = open_dataset(f"esc50:{root}", clip_seconds=1.0, split=None)
    assert ds.label_names == ["dog", "rooster"]  # target 0, 1 (not alphabetical by chance)
    assert ds.names == [r[0] for r in ROWS] and ds.folds == [1, 1, 2, 2, 3, 3]
    assert ds.targets.argmax(1).tolist() == [r[2] for r in ROWS] and not ds.has_splits
    assert ds[0][0].shape == (32000,)  # 44.1 kHz read as 32 kHz


def test_fold_sides_match_hand_built_file_lists(tmp_path):
    root = write_esc50(tmp_path / "ESC-50", ROWS)
    ds = open_dataset(f"esc50:{root}", clip_seconds=1.0, split=None)
    expected = {1: ["1-1-A-0.wav", "1-2-A-1.wav"], 2: ["2-3-A-0.wav", "2-4-A-1.wav"],
                3: ["3-5-A-1.wav", "3-6-A-0.wav"]}
    for fold, held_out in expected.items():
        train, evaluation = fold_sides(ds, fold)
        others = [f for k, files in expected.items() if k != fold for f in files]
        assert evaluation.names == held_out and train.names == others
        assert not set(train.names) & set(evaluation.names)
        np.testing.assert_array_equal(train.targets, ds.targets[[ds.names.index(f)
                                                                 for f in others]])
        assert evaluation[1][1].tolist() == ds.targets[ds.names.index(held_out[1])].tolist()
    assert choose_folds(ds, None) == [1, 2, 3]


def test_fold_errors_are_clear(tmp_path):
    root = write_esc50(tmp_path / "ESC-50", ROWS)
    ds = open_dataset(f"esc50:{root}", clip_seconds=1.0, split=None)
    with pytest.raises(UsageError, match=r"fold\(s\) 4, 6 not in esc50:X; its folds: 1, 2, 3"):
        choose_folds(ds, [1, 4, 6], "esc50:X")
    with pytest.raises(UsageError, match="--folds '1,two': expected 'all' or a comma-separated "
                                         "list of integers"):
        parse_folds("1,two")
    with pytest.raises(UsageError, match="more than once"):
        parse_folds("1,1")
    assert parse_folds("all") is None and parse_folds("3, 1") == [3, 1]
    with pytest.raises(UsageError, match="no fold column"):
        choose_folds(open_dataset("synthetic", clip_seconds=1.0, size=2), None, "synthetic")

    twice = write_esc50(tmp_path / "twice", ROWS + [("1-1-A-0.wav", 2, 0, "dog")])
    with pytest.raises(UsageError, match=r"1-1-A-0.wav are in more than one fold \(1, 2\)"):
        fold_sides(open_dataset(f"esc50:{twice}", clip_seconds=1.0, split=None), 1)
    clash = write_esc50(tmp_path / "clash", ROWS + [("3-7-A-0.wav", 3, 0, "cat")])
    with pytest.raises(UsageError, match="line 8: target 0 is 'cat' here and 'dog' above"):
        open_dataset(f"esc50:{clash}", split=None)


def test_a_folder_csv_with_a_fold_column(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    for i in range(4):
        sf.write(root / f"{i}.wav", np.zeros(SR // 2, np.float32), SR)
    (root / "labels.csv").write_text("filename,labels,fold\n0.wav,a,1\n1.wav,b,1\n2.wav,a,2\n"
                                     "3.wav,b,2\n")
    ds = open_dataset(f"folder:{root}", clip_seconds=0.5, split=None)
    assert ds.folds == [1, 1, 2, 2]
    assert fold_sides(ds, 2)[1].names == ["2.wav", "3.wav"]
    (root / "bad.csv").write_text("filename,labels,fold\n0.wav,a,first\n")
    with pytest.raises(UsageError, match=r"bad.csv: line 2: fold 'first': expected an integer"):
        open_dataset(f"folder:{root}", split=None, csv=root / "bad.csv")


def test_esc50_like_writes_an_esc50_folder(tmp_path, capsys):
    out = tmp_path / "esc"
    assert main(["data", "esc50-like", str(out), "--classes", "chord,arpeggio-up,hiss",
                 "--clips-per-class", "4", "--folds", "2", "--seconds", "1"]) == 0
    assert "wrote 12 clips of 3 classes in 2 folds" in capsys.readouterr().out
    ds = open_dataset(f"esc50:{out}", clip_seconds=1.0, split=None)
    assert ds.label_names == ["chord", "arpeggio-up", "hiss"] and len(ds) == 12
    assert sorted(ds.folds) == [1] * 6 + [2] * 6
    info = sf.info(out / "audio" / ds.names[0])
    assert (info.samplerate, info.frames, info.subtype) == (44100, 44100, "PCM_16")
    again = tmp_path / "again"
    write_esc50_like(again, Esc50Like(classes=("chord", "arpeggio-up", "hiss"), folds=2,
                                      clips_per_class=4, seconds=1.0))
    assert (again / "audio" / ds.names[5]).read_bytes() == (out / "audio" /
                                                            ds.names[5]).read_bytes()
    with pytest.raises(UsageError, match="distinct names of the synthetic catalog"):
        Esc50Like(classes=("chord", "kazoo"))
