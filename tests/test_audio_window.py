"""The one crop/tile helper of audio windows (vssl_helpers.models.audio_frontends.crop_or_tile),
against windows written out by hand, and the windows built on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vssl_helpers.models.audio_frontends import centred_window, crop_or_tile, first_seconds


def clip(t: int) -> torch.Tensor:
    """Two rows whose samples name their position: 1..t and -1..-t."""
    x = torch.arange(1, t + 1, dtype=torch.float32)
    return torch.stack([x, -x])


@pytest.mark.parametrize(
    "t, n, centre, expected",
    [
        # from the start: longer clips are cut, shorter ones tiled from their first sample
        (7, 4, False, [1, 2, 3, 4]),
        (8, 4, False, [1, 2, 3, 4]),
        (3, 8, False, [1, 2, 3, 1, 2, 3, 1, 2]),
        (4, 8, False, [1, 2, 3, 4, 1, 2, 3, 4]),
        (5, 5, False, [1, 2, 3, 4, 5]),
        (1, 3, False, [1, 1, 1]),
        # centred: start floor(t/2) - floor(n/2), for every parity of t and n
        (10, 4, True, [4, 5, 6, 7]),  # 5 - 2 = 3
        (9, 4, True, [3, 4, 5, 6]),  # 4 - 2 = 2
        (10, 3, True, [5, 6, 7]),  # 5 - 1 = 4
        (9, 3, True, [4, 5, 6]),  # 4 - 1 = 3
        (6, 6, True, [1, 2, 3, 4, 5, 6]),
        # centred but shorter than the window: the whole clip from its start, tiled
        (3, 7, True, [1, 2, 3, 1, 2, 3, 1]),
        (4, 7, True, [1, 2, 3, 4, 1, 2, 3]),
        (5, 6, True, [1, 2, 3, 4, 5, 1]),
    ],
)
def test_crop_or_tile_matches_hand_written_windows(t: int, n: int, centre: bool, expected: list[int]) -> None:
    out = crop_or_tile(clip(t), n, centre=centre)
    assert out.shape == (2, n)
    assert out[0].tolist() == expected
    assert out[1].tolist() == [-v for v in expected], "every row gets the same window"


def test_crop_or_tile_is_the_official_loaders_np_tile() -> None:
    """From the start it is ``np.tile(audio, int(n / T) + 1)[:n]`` of the official loaders."""
    rng = np.random.default_rng(0)
    for t, n in [(1, 5), (7, 7), (7, 20), (16000, 48000), (47999, 48000), (48001, 48000), (160000, 48000)]:
        x = rng.standard_normal(t).astype(np.float32)
        expected = np.tile(x, int(n / t) + 1)[:n]
        np.testing.assert_array_equal(crop_or_tile(torch.from_numpy(x)[None], n)[0].numpy(), expected)


def test_centred_crop_keeps_the_demo_models_former_centre() -> None:
    """The demo models cut ``(T - n) // 2`` samples from the start before the helpers were merged;
    for their even window (2 s at 16 kHz) that is the same start as ``T // 2 - n // 2``."""
    n = 32000
    for t in (32001, 32002, 47999, 48000, 160000):
        x = torch.randn(3, t, generator=torch.Generator().manual_seed(t))
        s = (t - n) // 2
        assert torch.equal(crop_or_tile(x, n, centre=True), x[:, s : s + n])


def test_crop_or_tile_refuses_an_empty_clip() -> None:
    with pytest.raises(ValueError, match="crop_or_tile: empty waveform"):
        crop_or_tile(torch.zeros(2, 0), 4)


def test_windows_built_on_it() -> None:
    sr = 10
    x = clip(35)  # 3.5 s at 10 Hz
    assert first_seconds(x, sr, 2.0)[0].tolist() == list(range(1, 21))
    assert first_seconds(x, sr, 5.0)[0].tolist() == list(range(1, 36)) + list(range(1, 16))
    # 3 s centred on the 3.5 s clip: start 17 - 15 = 2
    assert centred_window(x, sr, 3.0)[0].tolist() == list(range(3, 33))


def test_demo_front_end_reads_the_centred_window() -> None:
    from vssl_helpers.models.demo import LogMel

    frontend = LogMel()
    n = frontend.n_samples
    x = torch.randn(2, n + 4001, generator=torch.Generator().manual_seed(1))
    s = (n + 4001) // 2 - n // 2
    assert torch.equal(frontend(x), frontend(x[:, s : s + n].contiguous()))
    short = x[:, : n // 3]
    assert torch.equal(frontend(short), frontend(torch.cat([short, short, short, short], 1)[:, :n]))
