"""`passt report`'s Figure 1: the paper's panel and this run's (training, inference), labels
that never overlap, the proxy mAP's interval and levels, faint unstable rows, a warning when
speed and mAP come from different models, and a title inside the figure."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from test_report import FIXTURE, rewrite, write_proxy_maps

from passt.report import build_table
from passt.report.figure import _stack, plot

ROOT = Path(__file__).resolve().parents[1]


def render(bench: Path, maps: Path | None = None):
    """Figure 1 of a run, drawn, and its renderer."""
    fig = plot(*build_table(bench, maps))
    fig.canvas.draw()
    return fig, fig.canvas.get_renderer()


def label_boxes(fig, renderer) -> list[list]:
    """Per panel, the display boxes of its point labels' texts (not their leader lines)."""
    from matplotlib.text import Text

    return [[Text.get_window_extent(t, renderer) for t in ax.texts] for ax in fig.axes]


def same_point(data):
    """Five variants measured at one speed and memory: their labels start on top of each
    other in the right panel."""
    template = next(b for b in data["benchmarks"]
                    if b["extra_info"]["variant"] == "passt-s" and not b["extra_info"].get("peer")
                    and b["extra_info"]["kind"] == "train")
    for variant in ("passt-s-l", "passt-s-n", "ast", "ast-n"):
        row = json.loads(json.dumps(template))
        row["fullname"] = row["fullname"].replace("passt-s", variant)
        row["extra_info"]["variant"] = variant
        data["benchmarks"].append(row)


@pytest.fixture(params=["fixture", "proxy", "same point", "committed"])
def figure(request, tmp_path):
    if request.param == "fixture":
        return render(FIXTURE)
    if request.param == "proxy":
        return render(FIXTURE, write_proxy_maps(tmp_path / "maps.csv"))
    if request.param == "same point":
        return render(rewrite(tmp_path, same_point))
    return render(ROOT / "reports" / "bench.json", ROOT / "reports/sweep/equal-compute/maps.csv")


def test_three_panels(figure):
    # every run here has inference rows: the third panel plots their speed
    fig, _ = figure
    assert len(fig.axes) == 3
    left, right, inference = fig.axes
    assert left.get_title() == "The paper (Nvidia Titan RTX, AudioSet mAP)"
    assert right.get_title().startswith("This run, training (")
    assert inference.get_title().startswith("This run, inference (")
    assert left.get_ylabel() == "AudioSet mAP (the paper's)"
    assert "throughput" in left.get_xlabel() and "measured training" in right.get_xlabel()
    assert "measured inference" in inference.get_xlabel()


@pytest.mark.slow
def test_no_label_overlaps_another(figure):
    fig, renderer = figure
    per_panel = label_boxes(fig, renderer)
    assert all(per_panel)  # each panel has labels
    boxes = [b for panel in per_panel for b in panel]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)


def test_title_is_inside_the_figure(figure):
    fig, renderer = figure
    title = fig.get_suptitle()
    assert title.startswith("Throughput vs mAP")
    box = fig._suptitle.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height, box
    tops = [ax.title.get_window_extent(renderer).y1 for ax in fig.axes]
    assert max(tops) <= box.y0  # the panels' titles stay below it


def test_same_point_labels_were_moved(tmp_path):
    fig, renderer = render(rewrite(tmp_path, same_point))
    right = fig.axes[1]
    moved = [t for t in right.texts if t.arrow_patch.get_visible()]
    assert len(moved) >= 3  # five labels on one point: most move, with a leader line


def levels(ax) -> dict[str, float]:
    """The horizontal reference lines of a panel by legend label."""
    return {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_right_panel_shows_proxy_map_with_levels(tmp_path):
    fig, _ = render(FIXTURE, write_proxy_maps(tmp_path / "maps.csv"))
    right = fig.axes[1]
    assert right.get_ylabel() == "proxy mAP (passt sweep, mean and 95% CI)"
    assert levels(right) == {"chance 0.075": 0.075, "mean-spectrum baseline 0.426": 0.426}
    assert len(right.containers) == 1  # passt-s's interval (passt-b has one seed)
    assert sorted(t.get_text() for t in right.texts) == ["passt-b", "passt-s"]  # no peer
    assert levels(fig.axes[0]) == {}


@pytest.mark.slow
def test_no_levels_without_them(tmp_path):
    fig, _ = render(FIXTURE, write_proxy_maps(tmp_path / "maps.csv", levels=False))
    assert levels(fig.axes[1]) == {}
    fig, _ = render(FIXTURE)  # the paper's mAP: no proxy levels
    right = fig.axes[1]
    assert right.get_ylabel() == "AudioSet mAP (the paper's, not measured)"
    assert levels(right) == {} and right.containers == []
    assert sorted(t.get_text() for t in right.texts) == ["passt-b", "passt-s",
                                                         "passt-s (official)"]


def test_stacking_separates_labels_pushing_left_overlapping():
    from matplotlib.transforms import Bbox

    boxes = [Bbox([[0, 0], [40, 10]]), Bbox([[10, 0], [50, 10]]), Bbox([[20, 5], [60, 15]]),
             Bbox([[100, 0], [140, 10]])]  # the last stands apart
    shift = [0.0] * len(boxes)
    _stack(boxes, shift)
    moved = [b.translated(0, dy) for b, dy in zip(boxes, shift, strict=True)]
    for a, b in itertools.combinations(moved, 2):
        assert not a.overlaps(b), (a, b)
    assert shift[0] == 0 and shift[3] == 0


@pytest.mark.slow
def test_unstable_speeds_are_faint_and_model_mismatch_is_said(tmp_path):
    def unstable(data):
        for b in data["benchmarks"]:
            if b["extra_info"]["variant"] == "passt-b":
                b["extra_info"]["unstable"] = True

    from matplotlib.offsetbox import AnchoredText

    fig, _ = render(rewrite(tmp_path, unstable), write_proxy_maps(tmp_path / "maps.csv"))
    right = fig.axes[1]
    assert sorted(t.get_text() for t in right.texts) == ["passt-b (unstable)", "passt-s"]
    from matplotlib.collections import PathCollection

    faint = [c.get_alpha() for c in right.collections if isinstance(c, PathCollection)]
    assert sorted(faint) == [0.3, 0.8]
    notes = [a for a in right.artists if isinstance(a, AnchoredText)]
    assert len(notes) == 1 and "different models" in notes[0].txt._text.get_text()
    fig, _ = render(FIXTURE)  # without maps, the paper's mAP: nothing to warn about
    assert not [a for a in fig.axes[1].artists if isinstance(a, AnchoredText)]


def test_log_axis_tick_labels_do_not_run_together(tmp_path):
    """Speeds over 10x apart put the run's panel on a log axis: its labelled ticks (1, 2 and 5
    times a power of ten) never overlap, and minor ticks carry no label."""
    def spread(data):
        for b in data["benchmarks"]:
            if b["extra_info"]["variant"] == "passt-s":
                b["extra_info"]["samples_per_s"] *= 40

    fig, renderer = render(rewrite(tmp_path, spread))
    run = fig.axes[1]
    assert run.get_xscale() == "log"
    shown = [t for t in run.get_xticklabels() if t.get_text()
             and run.get_xlim()[0] <= t.get_position()[0] <= run.get_xlim()[1]]
    assert len(shown) >= 2
    boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in itertools.pairwise(boxes))
    assert not [t for t in run.get_xticklabels(minor=True) if t.get_text()]


def test_a_report_made_again_writes_the_same_figure_bytes(tmp_path):
    """The committed figures stay unchanged when the README's report command runs again: no
    date in the SVG, its ids drawn from a fixed salt."""
    from passt.report import write_report

    first, again = tmp_path / "a", tmp_path / "b"
    write_report(FIXTURE, first)
    write_report(FIXTURE, again)
    for name in ("speed_vs_map.svg", "speed_vs_map.png"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert b"<dc:date>" not in (first / "speed_vs_map.svg").read_bytes()
