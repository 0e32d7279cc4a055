"""`passt report`: Table 1 and Figure 1 from a small benchmark JSON."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from passt.cli import main
from passt.report import Table1Row, build_table, load_paper_table, write_report

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
    text = ["variant", "peer", "paper_row", "map_proxy_text"]
    table = pd.read_csv(path, dtype=dict.fromkeys(text, str))
    table[text] = table[text].fillna("")
    return table


def row(table: pd.DataFrame, variant: str, peer: str = "") -> pd.Series:
    match = table[(table["variant"] == variant) & (table["peer"] == peer)]
    assert len(match) == 1, (variant, peer, table[["variant", "peer"]])
    return match.iloc[0]


def typed_row(rows: list[Table1Row], variant: str, peer: str = "") -> Table1Row:
    """The row of `build_table` of ``variant`` (and ``peer``)."""
    (match,) = [r for r in rows if (r.variant, r.peer) == (variant, peer)]
    return match


@pytest.mark.slow
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
        assert r["map_paper"] == 0.471 and pd.isna(r["map_proxy"]) and r["map_proxy_text"] == ""
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
                    "| - | - | train | - | 790 | - | - | - | - |")  # acts: from the variant
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
    assert "| paper mAP | speed (spec/s) | paper speed | vs B | paper vs B |" in md
    assert "proxy mAP" not in md  # no --maps
    # passt-s's inference row beside its training row; no passt-b inference row: no ratio
    line = next(x for x in md.splitlines() if x.startswith("| PaSST-S | passt-s |"))
    assert "| 2.48 | - | train | 138 | 474 | 350 |" in line


def test_inference_speed_acts_and_tokens_per_block(tmp_path):
    def edit(data):
        inference = next(b for b in data["benchmarks"]
                         if b["extra_info"]["kind"] == "inference")
        b = json.loads(json.dumps(inference))
        b["fullname"] = b["name"] = "bench/test_passt.py::test_step[passt-b-inference]"
        b["extra_info"].update(variant="passt-b", samples_per_s=0.5, unstable=True)
        data["benchmarks"].append(b)
        for bench in data["benchmarks"]:
            extra = bench["extra_info"]
            if (extra["variant"], extra["kind"], extra.get("peer")) == ("passt-s", "train", None):
                extra.update(acts="train", seq_len_per_block=[138] * 12)
    rows, meta = build_table(rewrite(tmp_path, edit))
    s, b = typed_row(rows, "passt-s"), typed_row(rows, "passt-b")
    assert s.inference_spec_per_s == pytest.approx(2.4837472027793996)
    assert s.inference_vs_b == pytest.approx(2.4837472027793996 / 0.5)
    assert b.inference_vs_b == 1.0 and b.inference_unstable
    assert (s.acts, s.seq_len_per_block, s.eval_seq_len) == ("train", "138", 350)
    assert any(n.startswith("inference: the same variant's inference step") for n in
               meta.notes)
    md = write_report(rewrite(tmp_path, edit), tmp_path / "out").markdown
    assert "| 0.5 (unstable) | 1.00 |" in md and "| 2.48 | 4.97 | train | 138 |" in md


def test_speed_and_map_of_different_models_are_said_so(tmp_path):
    rows, meta = build_table(FIXTURE, write_proxy_maps(tmp_path / "maps.csv"))
    assert meta.model_mismatch == (
        "speed and mAP come from different models: the speed of the benchmarked model "
        "(768-wide 12-deep), the proxy mAP of the sweep's (128-wide 4-deep); compare the "
        "ranking, not the pairs")
    assert f"warning: {meta.model_mismatch}." in meta.notes
    from passt.report.figure import _caption
    assert f"Note: {meta.model_mismatch[:40]}" in _caption(rows, meta).replace("\n", " ")


def test_latex_has_a_tabular(report):
    out, _, _ = report
    tex = (out / "table1.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    assert "passt-s" in tex and "\\caption{" in tex
    assert "cpu-small" in tex


def test_png_has_the_figure_size(report):
    out, _, _ = report
    assert png_size(out / "speed_vs_map.png") == (1850, 650)  # three panels: inference too


PROXY_SETTINGS = ("task,embed_dim,depth,num_heads,clip_seconds,train_clips,budget_tflops,"
                  "steps,chance_map,baseline_map")
PROXY_MAPS = (0.499, 0.511, 0.526)  # passt-s, seeds 0, 1, 2


def write_proxy_maps(path: Path, levels: bool = True) -> Path:
    """A maps.csv of passt-s over three seeds and passt-b over one, on one synthetic task;
    ``levels``: with the chance and baseline levels."""
    chance, baseline = ("0.075", "0.426") if levels else ("", "")
    common = f"synthetic,128,4,4,2.0,2000,10,900,{chance},{baseline}"
    lines = [f"variant,seed,map,{PROXY_SETTINGS}",
             *(f"passt-s,{seed},{value},{common}" for seed, value in enumerate(PROXY_MAPS)),
             f"passt-b,0,0.47,{common}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_proxy_map_column(tmp_path):
    from scipy import stats

    maps = write_proxy_maps(tmp_path / "maps.csv")
    write_report(FIXTURE, tmp_path / "out", maps_path=maps)
    table = read_csv(tmp_path / "out" / "table1.csv")
    mean = sum(PROXY_MAPS) / 3
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(PROXY_MAPS))
    expected = (f"{mean:.3f} ± {high - mean:.3f} (synthetic, 128-wide 4-deep, 2 s clips, "
                "2000 train clips, 10 TFLOPs, 3 seeds)")
    assert expected == ("0.512 ± 0.034 (synthetic, 128-wide 4-deep, 2 s clips, 2000 train "
                        "clips, 10 TFLOPs, 3 seeds)")
    r = row(table, "passt-s")
    assert r["map_proxy_text"] == expected
    assert r["map_proxy"] == pytest.approx(mean, rel=1e-12)
    assert r["map_proxy_ci_low"] == pytest.approx(low, rel=1e-12)
    assert r["map_proxy_ci_high"] == pytest.approx(high, rel=1e-12)
    assert r["map_proxy_seeds"] == 3
    b = row(table, "passt-b")
    assert b["map_proxy"] == 0.47 and pd.isna(b["map_proxy_ci_low"]) and b["map_proxy_seeds"] == 1
    assert b["map_proxy_text"].startswith("0.470 (synthetic, ") and "1 seed)" in b["map_proxy_text"]
    peer = row(table, "passt-s", "official")  # the sweep trains ours, not the peer's
    assert pd.isna(peer["map_proxy"]) and peer["map_proxy_text"] == ""
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "| paper mAP | proxy mAP | speed (spec/s) |" in md
    assert f"| PaSST-S | passt-s | 0.471 | {expected} |" in md
    assert "chance 0.075 and the mean-spectrum baseline 0.426" in md


@pytest.mark.slow
def test_paper_map_stays_the_papers_with_maps(tmp_path):
    write_report(FIXTURE, tmp_path, maps_path=write_proxy_maps(tmp_path / "maps.csv"))
    table = read_csv(tmp_path / "table1.csv")
    paper = load_paper_table()
    for _, r in table.iterrows():
        assert r["map_paper"] == paper.loc[r["paper_row"], "map"], r["model"]
    assert (table["map_proxy"].notna()).sum() == 2  # passt-s and passt-b, ours only


def test_legacy_maps_read_as_one_seed(tmp_path):
    maps = tmp_path / "maps.csv"
    maps.write_text("variant,map,task,steps\npasst-s,0.512,synthetic,200\n")
    rows, _ = build_table(FIXTURE, maps)
    r = typed_row(rows, "passt-s")
    assert r.map_proxy == 0.512 and r.map_proxy_text == "0.512 (synthetic, 200 steps, 1 seed)"
    assert r.map_paper == 0.471


def speeds_and_memory() -> dict[tuple[str, str], tuple[float, float]]:
    """The fixture's measured training rows: (speed, activation bytes) by (variant, peer)."""
    return {k: (e["samples_per_s"], e["activation_bytes_per_sample"])
            for k, e in extra_infos().items() if not e["oom"]}


@pytest.mark.slow
def test_vs_gives_ratios_to_that_variant(tmp_path):
    maps = write_proxy_maps(tmp_path / "maps.csv")
    assert main(["report", str(FIXTURE), "--maps", str(maps), "--vs", "passt-s", "--out",
                 str(tmp_path / "out")]) == 0
    table = read_csv(tmp_path / "out" / "table1.csv")
    measured = speeds_and_memory()
    s_speed, s_bytes = measured[("passt-s", "")]
    for (variant, peer), (speed, nbytes) in measured.items():
        r = row(table, variant, peer)
        assert r["speed_vs_passt-s"] == pytest.approx(speed / s_speed, rel=1e-12)
        assert r["memory_vs_passt-s"] == pytest.approx(nbytes / s_bytes, rel=1e-12)
        assert r["speed_vs_b"] == pytest.approx(speed / measured[("passt-b", "")][0])
    assert row(table, "passt-b")["map_proxy_vs_passt-s"] == pytest.approx(
        0.47 / (sum(PROXY_MAPS) / 3))
    assert table.loc[table["status"] == "paper", "speed_vs_passt-s"].isna().all()
    columns = list(table.columns)
    assert columns.index("speed_vs_passt-s") == columns.index("speed_vs_b_paper") + 1
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "| paper vs B | vs passt-s |" in md and "| paper mem vs B | mem vs passt-s |" in md
    assert "| proxy mAP vs passt-s |" in md


def test_vs_without_maps_has_no_map_ratio():
    rows, meta = build_table(FIXTURE, vs="passt-b")
    assert all(set(r.vs) == {"speed_vs_passt-b", "memory_vs_passt-b"} for r in rows)
    s = typed_row(rows, "passt-s")
    assert s.vs["speed_vs_passt-b"] == pytest.approx(s.speed_vs_b)
    assert any(n.startswith("vs passt-b: ratio to our passt-b") for n in meta.notes)


@pytest.mark.parametrize("vs", ["passt-x", "passt-u", "official"])  # unknown, OOM, a peer
def test_vs_must_be_a_measured_variant(tmp_path, capsys, vs):
    assert main(["report", str(FIXTURE), "--vs", vs, "--out", str(tmp_path / "out")]) == 2
    assert (f"passt report: error: unknown --vs variant {vs!r}; accepted: passt-b, passt-s"
            in capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_only_measured_drops_paper_only_rows(tmp_path):
    assert main(["report", str(FIXTURE), "--only-measured", "--out", str(tmp_path)]) == 0
    table = read_csv(tmp_path / "table1.csv")
    full, _ = build_table(FIXTURE)
    assert set(table["status"]) == {"measured", "OOM"}
    assert list(table["benchmark"]) == [r.benchmark for r in full
                                        if r.status in ("measured", "OOM")]
    assert "PANNS" not in (tmp_path / "table1.md").read_text()
    assert row(table, "passt-s")["speed_vs_b_paper"] == pytest.approx(88.7 / 23.1)


def test_gpu_run_uses_peak_memory(tmp_path):
    def to_gpu(data):
        for b in data["benchmarks"]:
            b["extra_info"]["device"] = "cuda:0"
            if b["extra_info"].get("activation_bytes_per_sample"):
                b["extra_info"]["peak_memory_bytes_per_sample"] = 5e8

    rows, meta = build_table(rewrite(tmp_path, to_gpu))
    assert meta.memory_measure == "peak"
    assert typed_row(rows, "passt-s").memory_gb_per_sample == pytest.approx(0.5)


def test_missing_reference_leaves_ratios_empty(tmp_path):
    def drop_b(data):
        data["benchmarks"] = [b for b in data["benchmarks"]
                              if b["extra_info"]["variant"] != "passt-b"]

    rows, meta = build_table(rewrite(tmp_path, drop_b))
    assert all(r.speed_vs_b is None and r.memory_vs_b is None for r in rows)
    assert typed_row(rows, "passt-s").speed_vs_b_paper == pytest.approx(88.7 / 23.1)
    assert any("passt-b was not measured" in n for n in meta.notes)
    assert [r.status for r in rows if r.paper_row == "passt_b"] == ["not run"]


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
    ("variant,map\npasst-s,high\n", "map should be float, got 'high'"),
    ("variant,map\npasst-s,1.5\n", r"map of passt-s is 1.5; every map must be a number in \[0, 1"),
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


def test_a_run_whose_machine_drifted_is_flagged(tmp_path):
    def drifted(data):
        for b in data["benchmarks"]:
            b["extra_info"]["machine_drift"] = 0.081

    _, meta = build_table(rewrite(tmp_path, drifted))
    assert any(n.startswith("warning: the machine's own speed") and "strayed by 8.1%" in n
               for n in meta.notes)
    _, quiet = build_table(FIXTURE)
    assert not any("machine's own speed" in n for n in quiet.notes)


def test_ratios_to_passt_b_hold_while_the_machine_drifts(tmp_path):
    """passt-s timed while the whole machine ran at half speed (its probe took twice as long,
    and so did its step): its ratio to passt-b is what it would be at the run's typical
    speed, not half of it."""
    rows, _ = build_table(FIXTURE, only_measured=True)
    steady = typed_row(rows, "passt-s").speed_vs_b

    def drift(data):
        for b in data["benchmarks"]:
            info = b["extra_info"]
            slow = 2.0 if info["variant"] == "passt-s" and not info.get("peer") else 1.0
            for key in ("probe_median_s", "probe_ci_low_s", "probe_ci_high_s"):
                info[key] = 0.025 * slow
            if info.get("samples_per_s"):  # not an OOM row
                info["samples_per_s"] /= slow

    rows, meta = build_table(rewrite(tmp_path, drift), only_measured=True)
    s, b = typed_row(rows, "passt-s"), typed_row(rows, "passt-b")
    assert s.speed_spec_per_s / b.speed_spec_per_s == pytest.approx(steady / 2)
    assert s.probe_factor == pytest.approx(2.0)
    assert s.speed_vs_b == pytest.approx(steady)
    assert any("probe factor" in note for note in meta.notes)


def test_a_metric_declared_in_the_record_reaches_table1_and_passt_check(tmp_path, capsys):
    """activation_bytes_per_token, declared and computed in BenchRecord alone, is a column of
    Table 1's CSV and a memory metric of passt check."""
    write_report(FIXTURE, tmp_path / "out")
    table = read_csv(tmp_path / "out" / "table1.csv")
    for (variant, peer), extra in extra_infos().items():
        if not extra["oom"]:
            assert row(table, variant, peer)["activation_bytes_per_token"] == pytest.approx(
                extra["activation_bytes_per_sample"] / extra["seq_len"], rel=1e-12)
    assert pd.isna(row(table, "passt-u")["activation_bytes_per_token"])  # OOM

    def fewer_tokens(data):  # passt-s's activations spread over fewer tokens: more per token
        for b in data["benchmarks"]:
            if b["name"] == "test_step[passt-s-train]":
                b["extra_info"]["seq_len"] = 131
    assert main(["check", str(FIXTURE), str(rewrite(tmp_path, fewer_tokens))]) == 1
    regressed = [line for line in capsys.readouterr().out.splitlines() if "REGRESSED" in line]
    assert len(regressed) == 1 and "test_step[passt-s-train]" in regressed[0]
    assert "activation_bytes_per_token" in regressed[0]
    assert f"{138 / 131 - 1:+.2%}" in regressed[0]
    extra = extra_infos()[("passt-s", "")]
    assert f"{extra['activation_bytes_per_sample'] / 138:.5g}" in regressed[0]
