"""Settings declared once: `TrainConfig`'s fields make the training commands' flags, each
command offers the settings it uses, plugins load before defaults, the commands of README.md
and docs/ parse."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from passt.cli.commands import COMMANDS
from passt.cli.parser import BASELINE_SETTINGS, SWEEP_SETTINGS, TRAIN_SETTINGS, build_parser
from passt.data import AugmentConfig
from passt.measure.overrides import BENCH_PREFIX, BenchOverrides
from passt.measure.presets import get_preset
from passt.sweep.run import SWEPT, Budget, run_config
from passt.train import TrainConfig
from passt.utils.errors import UsageError
from passt.utils.settings import add_flags, flag_names, parse_overrides, read_flags
from passt.utils.values import check_int, check_number, parse_list, parse_number
from tests.doc_pages import PAGES, ROOT, commands

COMMAND_SETTINGS = {"train": TRAIN_SETTINGS, "sweep": SWEEP_SETTINGS,
                    "baseline": BASELINE_SETTINGS}


def subparser(command: str):
    parser = build_parser(COMMANDS)
    return next(a for a in parser._actions if a.dest == "command").choices[command]


def settings_of(command: str, *flags: str) -> dict:
    args = build_parser(COMMANDS).parse_args([command, *flags])
    return read_flags(TrainConfig, args, COMMAND_SETTINGS[command])


def test_every_train_setting_is_a_flag():
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert flag_names(TrainConfig) == fields == list(TRAIN_SETTINGS)


@pytest.mark.parametrize("command", COMMAND_SETTINGS)
def test_each_setting_has_one_flag_whose_default_is_the_field_default(command):
    names = COMMAND_SETTINGS[command]
    actions = subparser(command)._actions
    setting_flags = {name: [a for a in actions if a.dest == name] for name in names}
    assert all(len(found) == 1 for found in setting_flags.values()), setting_flags
    defaults = TrainConfig(**settings_of(command))
    assert all(getattr(defaults, n) == getattr(TrainConfig(), n) for n in names)


def test_flags_reach_their_fields():
    cfg = TrainConfig(**settings_of(
        "train", "--variant", "passt-s-n", "--model-overrides", "depth=3,time=2",
        "--embed-dim", "32", "--depth", "2", "--on-bad-file", "error", "--data-options",
        "size=8", "--uniform", "--no-augment", "gain", "--no-augment", "roll", "--schedule",
        "constant", "--dtype", "bf16", "--epochs", "3", "--out", "runs/x"))
    assert cfg.variant == "passt-s-n" and cfg.out_dir == "runs/x" and cfg.epochs == 3
    assert cfg.model_overrides == {"depth": 2, "time": 2, "embed_dim": 32}  # its own flag wins
    assert cfg.data_options == {"size": 8, "on_bad_file": "error"}
    assert not cfg.balanced and (cfg.schedule, cfg.dtype) == ("constant", "bf16")
    assert cfg.augment == AugmentConfig(gain_db=0.0, roll=False)
    assert TrainConfig(**settings_of("train", "--no-augment", "all")).augment == \
        AugmentConfig.off()


@pytest.mark.parametrize(("flags", "message"), [
    (["--schedule", "cosine"], "invalid choice: 'cosine'"),
    (["--dtype", "fp8"], "invalid choice: 'fp8'"),
    (["--on-bad-file", "ignore"], "invalid choice: 'ignore'"),
])
def test_literal_settings_offer_their_choices(capsys, flags, message):
    with pytest.raises(SystemExit) as e:
        build_parser(COMMANDS).parse_args(["train", *flags])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--lr", "--resume", "--variant", "--epochs", "--seed",
                                  "--batch-size", "--dtype", "--no-progress", "--uniform"])
def test_baseline_offers_no_training_only_flag(capsys, flag):
    with pytest.raises(SystemExit):
        build_parser(COMMANDS).parse_args(["baseline", "--help"])
    assert flag not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        build_parser(COMMANDS).parse_args(["baseline", flag, "1"])
    assert e.value.code == 2


def test_sweep_offers_no_flag_for_what_it_sets_per_variant(tmp_path):
    base = TrainConfig()
    swept = run_config(base, "passt-s-n", 1, tmp_path, Budget(steps=5, minutes=2.0, tflops=1.0))
    changed = {f.name for f in dataclasses.fields(TrainConfig)
               if getattr(swept, f.name) != getattr(base, f.name)}
    assert changed == set(SWEPT)  # epochs 10 -> None, max_steps None -> 5, ...
    assert not set(SWEPT) & set(SWEEP_SETTINGS)
    for flag in ("--epochs", "--max-steps", "--max-minutes", "--max-tflops", "--variant",
                 "--seed"):
        assert flag not in subparser("sweep")._option_string_actions


@pytest.mark.integration
def test_plugin_variant_is_in_the_sweep_default(tmp_path):
    plugin = tmp_path / "my_variant.py"
    plugin.write_text(textwrap.dedent("""
        import passt
        passt.register_variant(passt.Variant("passt-plugged", ("structured",),
                                             {"time": 4, "freq": 1}))
    """))
    out = subprocess.run([sys.executable, "-m", "passt.cli", "--plugin", str(plugin), "sweep",
                          "--help"], capture_output=True, text=True, check=True).stdout
    default = re.search(r"every registered variant\s+\(([^)]*)\)", out).group(1)
    assert "passt-plugged" in re.sub(r"\s+", "", default)


DOCUMENTED = [(page, command) for page in PAGES for command in commands(page.read_text())]


def test_the_docs_show_the_main_commands():
    assert {shlex.split(c)[1] for _, c in DOCUMENTED} >= {"train", "sweep", "eval", "tag", "embed",
                                                          "finetune", "report", "check"}


@pytest.mark.parametrize("page, command", DOCUMENTED,
                         ids=[f"{p.relative_to(ROOT)}:{c[:40]}" for p, c in DOCUMENTED])
def test_documented_command_parses(page, command):
    args = build_parser(COMMANDS).parse_args(shlex.split(command, comments=True)[1:])
    if args.command in COMMAND_SETTINGS:
        TrainConfig(**read_flags(TrainConfig, args, args.settings))


def test_parse_overrides():
    assert parse_overrides("a=1, b=0.5,c=true,d=math,") == {"a": 1, "b": 0.5, "c": True,
                                                            "d": "math"}
    with pytest.raises(ValueError, match="'a' is not KEY=VALUE"):
        parse_overrides("a")


def test_check_int_and_check_number_name_the_setting_and_what_it_accepts():
    assert check_int("jobs", 3, minimum=1) == 3 and check_int("offset", -2) == -2
    for bad in (0, 1.0, True, "2"):
        with pytest.raises(UsageError, match=f"^jobs must be an integer >= 1, got "
                                             f"{re.escape(repr(bad))}$"):
            check_int("jobs", bad, minimum=1)
    assert check_number("lr", 2, above=0) == 2 and check_number("gain", 0.0, minimum=0) == 0
    for bad in (0, -1.0, math.inf, math.nan, True, "1"):
        with pytest.raises(UsageError, match="^lr must be a number > 0, got "):
            check_number("lr", bad, above=0)


def test_parse_number_names_where_the_text_came_from():
    assert parse_number(" 7 ", "x.csv: line 2: fold") == 7
    assert parse_number("2.5", "--hop", float, above=0) == 2.5
    with pytest.raises(UsageError, match="^x.csv: line 2: fold '1.5': expected an integer$"):
        parse_number("1.5", "x.csv: line 2: fold")
    for bad in ("nan", "0", "", None):
        with pytest.raises(UsageError, match="^--hop .*: expected a number > 0$"):
            parse_number(bad, "--hop", float, above=0)


def test_parse_list():
    assert parse_list(" a, b,,c ", "--variants") == ("a", "b", "c")
    assert parse_list("", "--peers") == ()
    assert parse_list("16,32, 64", "--sizes", int, minimum=1) == (16, 32, 64)
    assert parse_list("2.5,5", "--clips", float, above=0) == (2.5, 5.0)
    assert parse_list(" all ", "--folds", int, allow_all=True) is None
    assert parse_list("b", "--v", choices=["a", "b"]) == ("b",)
    for text, wanted in [
            ("1,x", "expected 'all' or a comma-separated list of integers >= 1"),
            ("1,0", "expected 'all' or a comma-separated list of integers >= 1"),
            ("1.5", "expected 'all' or a comma-separated list of integers >= 1"),
            ("", "expected 'all' or a comma-separated list of integers >= 1")]:
        with pytest.raises(UsageError, match=f"^--folds '{re.escape(text)}': {wanted}$"):
            parse_list(text, "--folds", int, minimum=1, allow_all=True)
    with pytest.raises(UsageError, match=r"^--clips '5,0': expected a comma-separated list of "
                                         r"numbers > 0$"):
        parse_list("5,0", "--clips", float, above=0)
    with pytest.raises(UsageError, match=r"^--v: unknown variant\(s\) x, y; known: a, b$"):
        parse_list("a,x,y", "--v", choices=["a", "b"], noun="variant")
    with pytest.raises(UsageError, match=r"known: all, a, b$"):
        parse_list("x", "--v", choices=["a", "b"], noun="variant", allow_all=True)
    with pytest.raises(UsageError, match="^--seeds: seeds named more than once in '1, 1'$"):
        parse_list("1, 1", "--seeds", int, unique=True, noun="seed")


class OptionGroup:
    """A pytest option group: ``addoption`` with argparse's keywords."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(exit_on_error=False)

    def addoption(self, *names: str, **spec) -> None:
        self.parser.add_argument(*names, **spec)


def test_bench_overrides_are_flags_behind_a_prefix_in_a_pytest_option_group():
    group = OptionGroup()
    add_flags(group, BenchOverrides, flag_names(BenchOverrides), prefix=BENCH_PREFIX)
    args = group.parser.parse_args(["--bench-batch-size", "3", "--bench-compile", "off",
                                    "--bench-memory-batch-sizes", "1,2, 4",
                                    "--bench-rounds", "9", "--bench-dtype", "bf16"])
    overrides = BenchOverrides.from_flags(args, prefix=BENCH_PREFIX)
    assert overrides == BenchOverrides(batch_size=3, compile=False, dtype="bf16", rounds=9,
                                       memory_batch_sizes=(1, 2, 4))
    assert overrides.step == {"batch_size": 3, "dtype": "bf16", "compile": False}
    preset = overrides.apply(get_preset("cpu-quick"))  # timed 6 rounds at most
    assert (preset.batch_size, preset.rounds, preset.max_rounds,
            preset.memory_batch_sizes) == (2, 9, 9, (1, 2, 4))
    assert BenchOverrides().apply(preset) is preset
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'fp64'"):
        group.parser.parse_args(["--bench-dtype", "fp64"])
    with pytest.raises(UsageError, match="^--bench-memory-batch-sizes '1,x': expected a "
                                         "comma-separated list of integers >= 1$"):
        BenchOverrides.from_flags(group.parser.parse_args(["--bench-memory-batch-sizes", "1,x"]),
                                  prefix=BENCH_PREFIX)
