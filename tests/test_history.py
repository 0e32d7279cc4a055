"""`passt history`: runs ordered by commit, change points where a change was planted and
nowhere else, history.csv, and history.html as headless Chromium renders it."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from passt.cli import main
from passt.measure.history import HistoryConfig, find_shifts, history_of, load_runs
from passt.report.history_page import format_html
from passt.utils.errors import UsageError
from tests.history_runs import Bench, commit_sha, write_runs

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome", "chrome"))), None)
REQUIRED_COLUMNS = {"benchmark", "commit", "median_s", "median_ci_low_s", "median_ci_high_s",
                    "instructions", "peak_memory_bytes_per_sample", "step_gflops_per_sample",
                    "change_point"}
PLANTED = {  # 15% slower from one commit on; two other benchmarks unchanged
    "time": ([Bench("passt-s", 0.5, change_at=4), Bench("passt-b", 1.5, noise=0.03),
              Bench("passt-n", 0.3, instructions=9e8)], 8, "median_s"),
    "instructions": ([Bench("passt-s", 0.5, instructions=2.8e9, noise=0.03, change_at=6),
                      Bench("passt-b", 1.5, noise=0.03), Bench("passt-n", 0.3, noise=0.01)],
                     12, "instructions"),
}


def run_history(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["history", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_slowdown_is_found_at_its_commit_only(tmp_path, capsys, case):
    benches, runs, metric = PLANTED[case]
    planted = next(b for b in benches if b.change_at is not None)
    write_runs(tmp_path / "runs", benches, runs=runs, seed=1)
    code, out, err = run_history(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 0, err
    rows = read_csv(tmp_path / "out" / "history.csv")
    changes = [r for r in rows if r["change_point"] == "True"]
    assert [(r["benchmark"].rsplit("::")[-1], r["commit"]) for r in changes] == [
        (f"test_step[{planted.name}]", commit_sha(planted.change_at))]
    (change,) = changes
    assert change["metric"] == metric
    assert float(change["change_ratio_low"]) < 1.15 < float(change["change_ratio_high"])
    assert float(change["change_ratio_low"]) > 1.05
    assert f"at {commit_sha(planted.change_at)[:7]} (after " \
           f"{commit_sha(planted.change_at - 1)[:7]})" in out
    assert out.count("change point:") == 1


def test_no_change_gives_no_change_point(tmp_path, capsys):
    write_runs(tmp_path / "runs", [Bench("passt-s", 0.5, noise=0.03),
                                   Bench("passt-b", 1.5, instructions=2.8e9)], runs=12)
    code, out, _ = run_history(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 0 and "no change point" in out
    assert {r["change_point"] for r in read_csv(tmp_path / "out" / "history.csv")} == {"False"}
    assert find_shifts([2.8e9] * 12, min_change=0.02) == []
    assert "cannot show one" not in out  # 12 runs can


def test_too_few_runs_for_a_window_say_so(tmp_path, capsys):
    write_runs(tmp_path / "runs", [Bench("passt-s", 0.5, noise=0.03)], runs=5)
    code, out, _ = run_history(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 0
    assert "no change point (a change needs 3 runs on each side: 5 runs cannot show one)" in out


def test_false_alarms_are_rarer_than_alpha():
    """Series without a change (3% lognormal noise, 12 runs): a change point in at most 1% of
    them (alpha = 0.01; 400 series, so at most 10 allowing for chance)."""
    alarms = 0
    for seed in range(400):
        noisy = np.exp(np.random.default_rng(seed).normal(0, 0.03, 12))
        alarms += bool(find_shifts(list(noisy), alpha=0.01, min_change=0.0))
    assert alarms <= 10


def test_the_test_is_welch_s_on_log_values():
    """One candidate split (six values, three a side): p and interval are scipy's Welch test."""
    rng = np.random.default_rng(3)
    before, after = np.exp(rng.normal(0, 0.01, 3)), np.exp(rng.normal(0.2, 0.02, 3))
    (shift,) = find_shifts([*before, *after], window=3)
    ref = stats.ttest_ind(np.log(after), np.log(before), equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert shift.index == 3
    assert shift.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert shift.ratio == pytest.approx(math.exp(np.log(after).mean() - np.log(before).mean()))
    assert (shift.low, shift.high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))


def test_a_change_smaller_than_the_minimum_is_not_reported():
    counts = [1e9] * 6 + [1.01e9] * 6  # certain (no noise), but only 1%
    assert find_shifts(counts, min_change=0.02) == []
    assert [s.index for s in find_shifts(counts, min_change=0.005)] == [6]


def test_two_changes_are_both_found():
    rng = np.random.default_rng(0)
    values = np.exp(rng.normal(0, 0.01, 15)) * np.repeat([1.0, 1.2, 0.9], 5)
    assert [s.index for s in find_shifts(list(values))] == [5, 10]


def test_a_change_begins_only_between_commits():
    values = [1.0] * 4 + [1.2] * 6  # runs 3 and 4 are of the same commit
    assert [s.index for s in find_shifts(values, splits=[1, 2, 3, 5, 6, 7, 8, 9])] in ([3], [5])


def test_runs_are_ordered_by_commit_not_by_file_name(tmp_path):
    paths = write_runs(tmp_path, [Bench("passt-s", 0.5)], runs=8)
    assert sorted(paths) != paths
    runs, warnings = load_runs([tmp_path])
    assert [r.commit for r in runs] == [commit_sha(i) for i in range(8)]
    assert [r.path for r in runs] == paths and warnings == []


def test_runs_outside_git_are_ordered_by_when_they_ran(tmp_path, capsys):
    paths = write_runs(tmp_path / "runs", [Bench("passt-s", 0.5)], runs=8)
    for i, path in enumerate(paths):
        data = json.loads(path.read_text())
        data["commit_info"] = {"id": "unversioned", "time": None} if i % 2 else {}
        path.write_text(json.dumps(data))
    code, out, _ = run_history(capsys, *reversed(paths), "--out", tmp_path / "out")
    assert code == 0
    assert "8 run(s) without a commit in commit_info" in out
    assert "ordered by when it ran (datetime)" in out
    rows = read_csv(tmp_path / "out" / "history.csv")
    assert [Path(r["file"]) for r in rows] == paths


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "no benchmark runs in"),
    (lambda d: (d.mkdir(), (d / "x.json").write_text("{}")), "skipped"),
    (lambda d: d.with_suffix(".json").write_text('{"a": 1}'), "is not pytest-benchmark JSON"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, make, message):
    target = tmp_path / "runs"
    make(target)
    target = target if target.exists() else target.with_suffix(".json")
    code, _, err = run_history(capsys, target, "--out", tmp_path / "out")
    assert code == 2
    assert message in err and "passt history: error:" in err


def test_a_run_that_cannot_be_placed_is_named(tmp_path):
    paths = write_runs(tmp_path, [Bench("passt-s", 0.5)], runs=3)
    data = json.loads(paths[1].read_text())
    del data["commit_info"], data["datetime"]
    paths[1].write_text(json.dumps(data))
    with pytest.raises(UsageError, match=f"{paths[1].name} has neither a commit time"):
        load_runs(paths)
    with pytest.raises(UsageError, match="--window must be at least 2"):
        HistoryConfig(window=1)


def test_other_json_in_a_folder_is_skipped_with_a_warning(tmp_path, capsys):
    write_runs(tmp_path / "runs", [Bench("passt-s", 0.5)], runs=8)
    (tmp_path / "runs" / "notes.json").write_text('{"not": "a run"}')
    code, out, _ = run_history(capsys, tmp_path / "runs", "--out", tmp_path / "out")
    assert code == 0 and "warning: skipped" in out and "notes.json" in out


def test_the_csv_holds_every_benchmark_and_run(tmp_path, capsys):
    benches = [Bench("passt-s", 0.5), Bench("passt-b", 1.5, instructions=2.8e9)]
    paths = write_runs(tmp_path / "runs", benches, runs=8)
    assert run_history(capsys, tmp_path / "runs", "--out", tmp_path / "out")[0] == 0
    rows = read_csv(tmp_path / "out" / "history.csv")
    assert REQUIRED_COLUMNS <= set(rows[0])
    assert len(rows) == 2 * 8
    written = {(b["fullname"], json.loads(p.read_text())["commit_info"]["id"]): b
               for p in paths for b in json.loads(p.read_text())["benchmarks"]}
    for r in rows:
        bench = written.pop((r["benchmark"], r["commit"]))
        assert float(r["median_s"]) == bench["stats"]["median"]
        assert float(r["median_ci_high_s"]) == bench["extra_info"]["median_ci_high_s"]
        assert r["instructions"] == str(bench["extra_info"]["instructions"] or "")
        assert r["change_point"] == "False"
    assert written == {}
    assert {r["metric"] for r in rows} == {"median_s", "instructions"}


def chromium(page: Path, profile: Path, *flags: str) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium: the DOM after its scripts ran, and the console's
    messages (errors and uncaught exceptions included)."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
def test_the_page_renders_in_chromium_without_console_errors(tmp_path):
    write_runs(tmp_path / "runs", PLANTED["time"][0], runs=8, seed=1)
    history = history_of([tmp_path / "runs"])
    page = tmp_path / "history.html"
    page.write_text(format_html(history))
    dom, console = chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == []
    assert dom.count('<figure class="chart"') == 3
    assert dom.count('class="change-line"') == 1
    assert dom.count('aria-sort="none"') > 0  # the table's script ran
    # the detector sees a planted error
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("</body>", "<script>noSuchName();</script></body>"))
    assert any("noSuchName" in line for line in chromium(broken, tmp_path / "p2", "--dump-dom")[1])


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
def test_the_latest_run_table_sorts_on_a_click(tmp_path):
    write_runs(tmp_path / "runs", PLANTED["time"][0], runs=8, seed=1)
    page = tmp_path / "history.html"
    click = ("<script>var th = document.querySelectorAll('#latest th')[3]; th.click(); "
             "th.click();</script></body>")  # the median column, twice: descending
    page.write_text(format_html(history_of([tmp_path / "runs"])).replace("</body>", click))
    dom, console = chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == []
    body = dom.split('id="latest"')[1].split("</tbody>")[0]
    order = [name for name in ("passt-b", "passt-s", "passt-n") if name in body]
    assert sorted(order, key=body.index) == ["passt-b", "passt-s", "passt-n"]
    assert 'aria-sort="descending"' in body.split("</thead>")[0]


def test_runs_of_one_commit_sit_together_by_when_they_ran(tmp_path):
    paths = write_runs(tmp_path, [Bench("passt-s", 0.5)], runs=8)
    again = json.loads(paths[2].read_text())
    again["datetime"] = "2026-03-02T11:50:00+00:00"  # commit 2's run, 30 minutes later
    (tmp_path / "again.json").write_text(json.dumps(again))
    runs, _ = load_runs([tmp_path])
    assert [r.commit for r in runs] == [commit_sha(i) for i in (0, 1, 2, 2, 3, 4, 5, 6, 7)]
    assert runs[3].path.name == "again.json"
