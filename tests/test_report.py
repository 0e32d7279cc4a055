"""`passt report`: Table 1 and Figure 1 from a small benchmark JSON."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from passt.cli import main
from passt.report import build_table, load_paper_table, write_report

FIXTURE = Path(__file__).parent / "fixtures" / "bench_small.json"
OUTPUTS = ("table1.md", "table1.csv", "table1.tex", "speed_vs_map.png", "speed_vs_map.svg")


def extra_infos() -> dict[tuple[str, str], dict]:
    """The fixture's training benchmarks by (variant, peer)."""
    benchmarks = json.loads(FIXTURE.read_text())["benchmarks"]
    return {(b["extra_info"]["variant"], b["extra_info"].get("peer", "")): b["extra_info"]
            for b in benchmarks if b["extra_info"]["kind"] == "train"}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def rewrite(tmp_path: Path, edit) -> Path:
    """A copy of the fixture changed by ``edit(data)``."""
    data = json.loads(FIXTURE.read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = write_report(FIXTURE, out)
    return out, result, read_csv(out / "table1.csv")


def read_csv(path: Path) -> pd.DataFrame:
    """table1.csv with empty text cells as ``""``."""
    table = pd.read_csv(path)
    text = ["variant", "peer", "paper_row", "map_source"]
    table[text] = table[text].fillna("")
    return table


def row(table: pd.DataFrame, variant: str, peer: str = "") -> pd.Series:
    match = table[(table["variant"] == variant) & (table["peer"] == peer)]
    assert len(match) == 1, (variant, peer, table[["variant", "peer"]])
    return match.iloc[0]


def test_writes_every_output(report):
    out, result, _ = report
    assert [p.name for p in result.paths] == list(OUTPUTS)
    assert all((out / name).stat().st_size > 0 for name in OUTPUTS)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files
    assert (out / "speed_vs_map.svg").read_text().lstrip().startswith("<?xml")


def test_numbers_equal_the_json(report):
    _, _, table = report
    for (variant, peer), extra in extra_infos().items():
        if extra["oom"]:
            continue
        r = row(table, variant, peer)
        assert r["speed_spec_per_s"] == extra["samples_per_s"]
        assert r["memory_gb_per_sample"] == pytest.approx(
            extra["activation_bytes_per_sample"] / 1e9, rel=1e-12)
        assert r["seq_len"] == extra["seq_len"]
        assert r["gflops_per_sample"] == extra["train_gflops_per_sample"]
        assert r["memory_measure"] == "activation"
    assert row(table, "passt-s-l")["status"] == "not run"  # registered, not in the run


def test_paper_values_and_ratios(report):
    _, _, table = report
    infos, paper = extra_infos(), load_paper_table()
    b_speed = infos[("passt-b", "")]["samples_per_s"]
    b_mem = infos[("passt-b", "")]["activation_bytes_per_sample"]
    for peer in ("", "official"):
        extra, r = infos[("passt-s", peer)], row(table, "passt-s", peer)
        assert r["speed_vs_b"] == pytest.approx(extra["samples_per_s"] / b_speed)
        assert r["memory_vs_b"] == pytest.approx(extra["activation_bytes_per_sample"] / b_mem)
        assert r["speed_spec_per_s_paper"] == 88.7
        assert r["memory_gb_per_sample_paper"] == 0.513
        assert r["speed_vs_b_paper"] == pytest.approx(88.7 / 23.1)
        assert r["memory_vs_b_paper"] == pytest.approx(0.513 / 2.33)
        assert r["map"] == 0.471 and r["map_source"] == "paper"
    assert row(table, "passt-b")["speed_vs_b"] == pytest.approx(1.0)
    # the paper's other rows carry the paper's values
    panns = table[table["paper_row"] == "panns"].iloc[0]
    assert panns["status"] == "paper" and panns["speed_spec_per_s_paper"] == 131.0
    assert pd.isna(panns["speed_spec_per_s"])
    assert set(table["paper_row"]) == set(paper.index)


def test_oom_row(report):
    out, _, table = report
    r = row(table, "passt-u")
    assert r["status"] == "OOM" and pd.isna(r["speed_spec_per_s"])
    assert r["speed_spec_per_s_paper"] == 43.2  # the paper's columns stay
    md = (out / "table1.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| PaSST-U |"))
    assert line == ("| PaSST-U | passt-u | 0.466 | OOM | 43.2 | - | 1.87 | OOM | 1.14 | - | 0.49 "
                    "| - | 790 | - | - | - |")
    assert "out of memory at batch size 2: PaSST-U" in md


def test_markdown_header_and_peer(report):
    out, result, _ = report
    md = (out / "table1.md").read_text()
    assert md == result.markdown
    assert ("Measured on **CPU AMD EPYC (2 threads)**, dtype **fp32**, batch size **2**, "
            "preset **cpu-small**") in md
    assert "activation GB/sample (CPU: saved for backward)" in md
    assert "| PaSST-S (official hear21passt 0.0.26) | passt-s |" in md
    assert "| 1.25 | 88.7 |" in md  # the peer's speed beside the paper's
    assert "| mAP | speed (spec/s) | paper speed | vs B | paper vs B |" in md
    assert md.count("inference") == 0


def test_latex_has_a_tabular(report):
    out, _, _ = report
    tex = (out / "table1.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    assert "passt-s" in tex and "\\caption{" in tex
    assert "cpu-small" in tex


def test_png_has_the_figure_size(report):
    out, _, _ = report
    assert png_size(out / "speed_vs_map.png") == (900, 600)


def test_maps_mark_measured_map(tmp_path):
    maps = tmp_path / "maps.csv"
    maps.write_text("variant,map,task,steps\npasst-s,0.512,synthetic,200\n")
    write_report(FIXTURE, tmp_path / "out", maps_path=maps)
    table = read_csv(tmp_path / "out" / "table1.csv")
    r = row(table, "passt-s")
    assert r["map"] == 0.512 and r["map_source"] == "measured, synthetic, 200 steps"
    assert r["map_paper"] == 0.471
    assert row(table, "passt-s", "official")["map_source"] == "paper"
    assert row(table, "passt-b")["map_source"] == "paper"
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "0.512 (measured, synthetic, 200 steps)" in md


def test_gpu_run_uses_peak_memory(tmp_path):
    def to_gpu(data):
        for b in data["benchmarks"]:
            b["extra_info"]["device"] = "cuda:0"
            if b["extra_info"].get("activation_bytes_per_sample"):
                b["extra_info"]["peak_memory_bytes_per_sample"] = 5e8

    table, meta = build_table(rewrite(tmp_path, to_gpu))
    assert meta["memory_measure"] == "peak"
    assert row(table, "passt-s")["memory_gb_per_sample"] == pytest.approx(0.5)


def test_missing_reference_leaves_ratios_empty(tmp_path):
    def drop_b(data):
        data["benchmarks"] = [b for b in data["benchmarks"]
                              if b["extra_info"]["variant"] != "passt-b"]

    table, meta = build_table(rewrite(tmp_path, drop_b))
    assert table["speed_vs_b"].isna().all() and table["memory_vs_b"].isna().all()
    assert row(table, "passt-s")["speed_vs_b_paper"] == pytest.approx(88.7 / 23.1)
    assert any("passt-b was not measured" in n for n in meta["notes"])
    assert table.loc[table["paper_row"] == "passt_b", "status"].item() == "not run"


def drop_field(data):
    del data["benchmarks"][0]["extra_info"]["samples_per_s"]
    del data["benchmarks"][0]["extra_info"]["seq_len"]


def duplicate_b(data):
    again = json.loads(json.dumps(data["benchmarks"][0]))
    again["fullname"] += "-again"
    data["benchmarks"].append(again)


@pytest.mark.parametrize(("edit", "match"), [
    (drop_field, r"edited.json: benchmark bench/test_passt.py::test_step\[passt-b-train\] lacks "
                 r"fields samples_per_s, seq_len \(was it written by pytest bench/ of passt-bench"),
    (lambda d: [b["extra_info"].clear() for b in d["benchmarks"]], "lacks fields variant"),
    (lambda d: d.update(benchmarks=[b for b in d["benchmarks"]
                                    if b["extra_info"]["kind"] != "train"]),
     "has no training benchmarks"),
    (duplicate_b, "both measure training of passt-b"),
    (lambda d: d.pop("benchmarks"), "is not pytest-benchmark JSON"),
])
def test_bad_bench_files(tmp_path, edit, match):
    with pytest.raises(ValueError, match=match):
        build_table(rewrite(tmp_path, edit))


def test_not_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("not json")
    with pytest.raises(ValueError, match="is not JSON"):
        build_table(path)


@pytest.mark.parametrize(("text", "match"), [
    ("name,score\npasst-s,0.5\n", "lacks column"),
    ("variant,map\npasst-x,0.5\n", r"not in the benchmark run: passt-x; the run's: passt-b"),
    ("variant,map\npasst-s,high\n", r"a number in \[0, 1\]"),
    ("variant,map\npasst-s,0.5\npasst-s,0.6\n", "several mAPs for passt-s"),
])
def test_bad_maps(tmp_path, text, match):
    maps = tmp_path / "maps.csv"
    maps.write_text(text)
    with pytest.raises(ValueError, match=match):
        build_table(FIXTURE, maps)


def test_cli(tmp_path, capsys):
    assert main(["report", str(FIXTURE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| PaSST-S | passt-s |" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)


def test_cli_bad_input(tmp_path, capsys):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"results": []}))
    assert main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "not pytest-benchmark JSON" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
