"""passt.inference.hear against hear21passt's HEAR wrapper (the oracle: same random weights,
same audio), its errors for bad audio, any variant through it, and loading with no network."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import soundfile as sf
import torch

import passt
import passt.inference.hear as hear
from passt.utils.errors import UsageError
from tests.helpers import SMALL, overrides_arg, quiet, save_train_checkpoint

pytest.importorskip("hear21passt")
pytestmark = pytest.mark.filterwarnings("ignore")  # hear21passt's deprecated torch APIs

SR = 32000
MODES = ("all", "embed_only", "logits")
# float32 through 1-12 blocks: the two differ by ~2e-6 (official full size, |values| <= 3)
TOL = {"atol": 1e-4, "rtol": 1e-4}


def noise(sounds: int, seconds: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(sounds, round(seconds * SR), generator=gen)


def official_wrapper(net: torch.nn.Module, mode: str) -> torch.nn.Module:
    """hear21passt's wrapper as its ``get_basic_model`` builds it, around ``net``."""
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    mel = quiet(AugmentMelSTFT, n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024,
                freqm=48, timem=192, htk=False, fmin=0.0, fmax=None, norm=1,
                fmin_aug_range=10, fmax_aug_range=2000)
    return PasstBasicWrapper(mel=mel, net=net, mode=mode).eval()


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    """A narrow official PaSST (random weights: ours, so the classifier is not zero) and the
    checkpoint file it was saved to."""
    from hear21passt.models.passt import PaSST as OfficialPaSST

    torch.manual_seed(0)
    ours = passt.create_model("passt-s", **SMALL)
    net = quiet(OfficialPaSST, img_size=(128, 998), patch_size=16, stride=10, in_chans=1,
                num_classes=527, qkv_bias=True, distilled=True, **SMALL)
    net.load_state_dict(ours.state_dict())
    path = tmp_path_factory.mktemp("hear") / "small.pt"
    torch.save(net.state_dict(), path)
    return net.eval(), path


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_matches_hear21passt_in_every_mode(small_pair, mode):
    net, path = small_pair
    official = official_wrapper(net, mode)
    ours = hear.load_model(path, "passt-s", mode, device="cpu", max_batch=7, **SMALL)
    from hear21passt.base import get_scene_embeddings, get_timestamp_embeddings

    size = {"all": 527 + 64, "embed_only": 64, "logits": 527}[mode]
    assert ours.scene_embedding_size == ours.timestamp_embedding_size == size
    assert ours.sample_rate == SR
    for seconds in (3.0, 12.0):  # one pass; the mean of 5 windows of 10 s every 2.5 s
        audio = noise(2, seconds, seed=int(seconds))
        expected = quiet(get_scene_embeddings, audio, official)
        got = hear.get_scene_embeddings(audio, ours)
        assert got.shape == expected.shape == (2, size)
        torch.testing.assert_close(got, expected, **TOL)

    audio = noise(2, 3.0, seed=3)
    expected, expected_ms = quiet(get_timestamp_embeddings, audio, official)
    got, ms = hear.get_timestamp_embeddings(audio, ours)  # 2 x 61 windows in batches of 7
    assert got.shape == expected.shape == (2, 61, size)
    torch.testing.assert_close(got, expected, **TOL)
    assert ms.dtype == torch.float32
    torch.testing.assert_close(ms, expected_ms)
    assert ms[0, :3].tolist() == [0.0, 50.0, 100.0] and ms[1, -1].item() == 3000.0


@pytest.mark.slow
def test_matches_hear21passt_at_full_size(official_passt_s, tmp_path):
    """PaSST-S at full size (12 blocks of 768): 3 s scene embeddings in mode all."""
    path = tmp_path / "passt-s.pt"
    torch.save(official_passt_s.state_dict(), path)
    official = official_wrapper(official_passt_s, "all")
    ours = hear.load_model(path, device="cpu")
    audio = noise(2, 3.0)
    from hear21passt.base import get_scene_embeddings

    expected = quiet(get_scene_embeddings, audio, official)
    got = hear.get_scene_embeddings(audio, ours)
    assert got.shape == (2, 1295) and ours.scene_embedding_size == 1295
    torch.testing.assert_close(got, expected, **TOL)


@pytest.fixture(scope="module")
def small_hear(small_pair):
    return hear.load_model(small_pair[1], mode="embed_only", device="cpu", **SMALL)


@pytest.mark.parametrize("audio, kwargs, message", [
    (torch.zeros(2, 2, SR), {}, "has 2 channels; accepted: mono"),
    (torch.zeros(SR), {}, "one sound: audio[None]"),
    (torch.zeros(1, SR), {"sample_rate": 16000}, "audio at 16000 Hz, but the model takes 32000"),
    (torch.zeros(0, SR), {}, "empty audio of shape [0, 32000]"),
    (torch.zeros(2, 0), {}, "empty audio of shape [2, 0]"),
    (torch.zeros(1, SR, dtype=torch.int16), {}, "dtype torch.int16; accepted: floating"),
    (torch.full((1, SR), float("nan")), {}, "NaN or infinite"),
])
def test_bad_audio_is_named(small_hear, audio, kwargs, message):
    for fn in (hear.get_scene_embeddings, hear.get_timestamp_embeddings):
        with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
            fn(audio, small_hear, **kwargs)


def test_too_short_audio_is_named(small_hear):
    with pytest.raises(UsageError, match="reflect padding by half a window needs more than "
                                         "2560 samples"):
        hear.get_timestamp_embeddings(torch.zeros(1, 2000), small_hear)
    with pytest.raises(UsageError, match="shorter than one patch"):
        hear.get_scene_embeddings(torch.zeros(1, 3000), small_hear)


def test_one_channel_axis_and_numpy_are_accepted(small_hear):
    audio = noise(1, 1.0)
    expected = hear.get_scene_embeddings(audio, small_hear)
    torch.testing.assert_close(hear.get_scene_embeddings(audio[:, None], small_hear), expected)
    torch.testing.assert_close(hear.get_scene_embeddings(audio.numpy(), small_hear,
                                                         sample_rate=SR), expected)


def test_no_download_and_a_local_checkpoint_loads_offline(small_pair, monkeypatch):
    def blocked(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    with pytest.raises(OSError, match="blocked"):  # the block works
        socket.create_connection(("github.com", 443), timeout=1)
    with pytest.raises(UsageError, match="never downloads"):
        hear.load_model()
    model = hear.load_model(small_pair[1], device="cpu", **SMALL)
    assert hear.get_scene_embeddings(noise(1, 1.0), model).shape == (1, 591)


def test_any_variant_and_reduction(small_pair, tmp_path):
    """passt-s-n from its own checkpoint, and ToMe on passt-s's: the scene embedding of a clip
    up to 10 s is the model's pooled features of the frontend's log-mels."""
    torch.manual_seed(1)
    no_overlap = passt.create_model("passt-s-n", **SMALL).eval()
    torch.save(no_overlap.state_dict(), tmp_path / "n.pt")
    audio = noise(2, 4.0)
    mel = passt.create_frontend().eval()(audio)
    cases = [(tmp_path / "n.pt", "passt-s-n", {}, no_overlap),
             (small_pair[1], "passt-s-tome", {"r": 2}, None)]
    for path, variant, extra, reference in cases:
        model = hear.load_model(path, variant, "embed_only", device="cpu", **SMALL, **extra)
        if reference is None:
            reference = passt.create_model(variant, checkpoint=path, **SMALL, **extra).eval()
        with torch.no_grad():
            expected = reference.forward_features(mel)
        torch.testing.assert_close(hear.get_scene_embeddings(audio, model), expected)
        got, ms = hear.get_timestamp_embeddings(audio, model)
        assert got.shape == (2, 81, 64) and torch.isfinite(got).all() and ms[0, -1] == 4000


def test_train_checkpoint_brings_its_clip_length_and_frontend(tmp_path):
    torch.manual_seed(0)
    model = passt.create_model("passt-s", num_classes=10, **SMALL)
    path = save_train_checkpoint(model, tmp_path / "train.pt")  # trained on 4 s clips
    loaded = hear.load_model(path, mode="logits", device="cpu")
    assert loaded.scene_embedding_size == 10 and loaded.scene_windows.window_seconds == 4.0
    assert hear.get_scene_embeddings(noise(1, 9.0), loaded).shape == (1, 10)


def test_passt_embed_shares_the_embedding(small_pair, tmp_path, capsys):
    """``passt embed --mode all`` of a 10 s file (one window) gives hear's scene embedding."""
    audio = noise(1, 10.0)
    sf.write(tmp_path / "clip.wav", audio[0].numpy(), SR, subtype="FLOAT")
    out = tmp_path / "emb.npy"
    from passt.cli import main

    code = main(["embed", str(tmp_path / "clip.wav"), "--checkpoint", str(small_pair[1]),
                 "--model-overrides", overrides_arg(SMALL), "--mode", "all",
                 "--device", "cpu", "--no-progress", "--out", str(out)])
    assert code == 0
    model = hear.load_model(small_pair[1], device="cpu", **SMALL)
    expected = hear.get_scene_embeddings(audio, model).numpy()
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
