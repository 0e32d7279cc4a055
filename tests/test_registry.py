"""The one registry: every kind a user may add to (strategies, reductions, variants, datasets,
peers, presets, ablations) registers, looks up and reports unknown names alike, and a user's
dataset reaches the CLI through a plugin as a strategy does."""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest

import passt
from passt.cli import main
from passt.data import open_dataset
from passt.measure.ablation import ablation_settings
from passt.measure.peers import peer_settings
from passt.measure.presets import get_preset
from passt.train import METRICS_JSONL
from passt.utils.errors import UsageError
from passt.utils.registry import Registry
from tests.helpers import TINY, model_flags, registries, step_settings


class Base:
    name = ""


def test_register_get_and_names_in_order():
    r: Registry[int] = Registry("thing")
    assert r.register("b", 2) == 2 and r.register("a", 1) == 1
    assert r.names() == ["b", "a"] and list(r) == ["b", "a"] and len(r) == 2
    assert r.get("a") == 1 and "a" in r and "c" not in r
    with pytest.raises(UsageError, match=r"^unknown thing 'c'; known: b, a; add your own with a "
                                         r"plugin: --plugin FILE \(pytest bench/: --bench-plugin "
                                         r"FILE\) or \$PASST_PLUGINS$"):
        r.get("c")
    with pytest.raises(UsageError, match="needs a non-empty string name"):
        r.register("", 3)


def test_a_taken_name_is_refused_unless_it_is_the_same_definition():
    r: Registry[type] = Registry("widget")

    def define():
        class Widget(Base):
            pass
        return Widget

    first = r.register_class("w", define(), Base)
    assert first.name == "w"
    r.register_class("w", define(), Base)  # the same class again (a file imported twice)
    with pytest.raises(UsageError, match="widget 'w' is already registered"):
        r.register("w", int)
    r.register("w", int, replace=True)
    assert r.get("w") is int
    with pytest.raises(TypeError, match="expects a Base subclass"):
        r.register_class("x", int, Base)


def test_create_names_the_entry_on_a_wrong_keyword():
    r: Registry[type] = Registry("shape")
    r.register("box", dict)
    assert r.create("box", a=1) == {"a": 1}
    r.register("point", complex)
    with pytest.raises(UsageError, match=r"^shape 'point': .*'depth'"):
        r.create("point", depth=3)


@pytest.mark.parametrize(("lookup", "kind"), [
    (lambda: passt.get_patchout("x"), "patchout strategy"),
    (lambda: passt.get_block_reduction("x"), "block reduction"),
    (lambda: passt.get_variant("x"), "variant"),
    (lambda: open_dataset("x"), "dataset"),
    (lambda: peer_settings("x", step_settings()), "peer"),
    (lambda: get_preset("x"), "preset"),
    (lambda: ablation_settings("x"), "ablation"),
])
def test_every_kind_reports_an_unknown_name_alike(lookup, kind):
    with pytest.raises(UsageError, match=rf"^unknown {kind} 'x'; known: .+; add your own with "
                                         r"a plugin: --plugin FILE"):
        lookup()


def test_every_registry_is_one_registry():
    assert all(isinstance(r, Registry) for r in registries())
    assert len({r.kind for r in registries()}) == len(registries())


DATASET_PLUGIN = textwrap.dedent("""
    import numpy as np
    import passt
    from torch.utils.data import Dataset

    class Clicks(Dataset):
        '''A click train per clip; class 0 on even clips, class 1 on odd ones.'''

        def __init__(self, rate, clip_seconds, split, size=8):
            self.rate, self.n, self.size = float(rate), round(clip_seconds * 32000), size
            self.label_names = ["even", "odd"]
            self.num_classes = 2
            self.targets = np.eye(2, dtype=np.float32)[np.arange(size) % 2]

        def __len__(self):
            return self.size

        def __getitem__(self, i):
            x = np.zeros(self.n, np.float32)
            x[:: max(1, int(32000 / self.rate))] = 1.0
            return x, self.targets[i]

    def open_clicks(location: str, clip_seconds: float, split, on_bad_file, size: int = 8):
        return Clicks(location, clip_seconds, split, size=size)

    passt.register_dataset(passt.DatasetKind("clicks", open_clicks, "RATE", "click trains"))
""")


def test_a_users_dataset_is_a_plugin(tmp_path, registries):
    plugin = tmp_path / "clicks.py"
    plugin.write_text(DATASET_PLUGIN)
    out = tmp_path / "run"
    assert main(["--plugin", str(plugin), "train", "--data", "clicks:40", "--data-options",
                 "size=4", "--eval-data", "clicks:40", "--clip-seconds", "1",
                 *model_flags(TINY), "--batch-size", "2", "--max-steps", "2", "--no-progress",
                 "--out", str(out)]) == 0
    assert (out / METRICS_JSONL).exists()
    ds = open_dataset("clicks:100", clip_seconds=0.5, size=3)
    x, y = ds[1]
    assert len(ds) == 3 and x.shape == (16000,) and np.flatnonzero(x)[1] == 320
    assert y.tolist() == [0.0, 1.0]
    with pytest.raises(UsageError, match=r"known: synthetic, folder:DIR, esc50:DIR, hdf5:FILE, "
                                         r"clicks:RATE; add your own"):
        open_dataset("clack:1")
    with pytest.raises(UsageError, match=r"dataset spec 'clicks': expected the form clicks:RATE"):
        open_dataset("clicks")


def test_a_dataset_without_targets_is_named(registries):
    class NoTargets(list):
        num_classes = 2

    passt.register_dataset(passt.DatasetKind("bare", lambda location, **kw: NoTargets()))
    with pytest.raises(UsageError, match=r"dataset 'bare': its NoTargets lacks targets \(every "
                                         r"clip's target"):
        open_dataset("bare")


def test_a_users_opener_has_its_options_checked_by_its_signature(tmp_path, registries):
    plugin = tmp_path / "clicks.py"
    plugin.write_text(DATASET_PLUGIN)
    main(["--plugin", str(plugin), "variants"])
    with pytest.raises(UsageError, match=r"^dataset option size='abc': expected an integer$"):
        open_dataset("clicks:40", size="abc")
    with pytest.raises(UsageError, match=r"^unknown dataset option 'seed'; accepted: size$"):
        open_dataset("clicks:40", seed=1)


def test_a_taken_variant_name_is_refused_unless_replaced_on_purpose(registries):
    mine = passt.Variant("passt-s", ("unstructured",), {"drop": 100})
    with pytest.raises(UsageError, match=r"^variant 'passt-s' is already registered; choose "
                                         r"another name$"):
        passt.register_variant(mine)
    assert passt.get_variant("passt-s").strategy == "structured"
    passt.register_variant(passt.get_variant("passt-b"))  # the same definition again: fine
    assert passt.register_variant(mine, replace=True) is passt.get_variant("passt-s")


def test_an_ablation_names_step_settings_only(registries):
    from passt.measure.ablation import register_ablation

    with pytest.raises(UsageError, match=r"^ablation 'nope': unknown step setting 'bogus'; "
                                         r"accepted: variant, batch_size"):
        register_ablation("nope", {"bogus": 1})
    register_ablation("tiny-batch", {"batch_size": 1})
    assert ablation_settings("tiny-batch") == {"batch_size": 1}


def test_a_plugins_preset_reaches_passt_profile(registries):
    from passt.measure.presets import register_preset
    from passt.profiling.config import ProfileConfig

    with pytest.raises(UsageError, match=r"^unknown preset 'laptop'; known: auto, cpu-small"):
        ProfileConfig(preset="laptop")
    register_preset(dataclasses.replace(get_preset("cpu-quick"), name="laptop", clip_seconds=1.0))
    assert ProfileConfig(preset="laptop").benchmark_preset.clip_seconds == 1.0
