"""Streaming synthesis (waveglow.synth.stream, ``Vocoder.stream``), length-stable noise and the receptive field."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model, randomize_end

from waveglow import Config, LightWaveGlow, ModelConfig, Vocoder
from waveglow.config import AudioConfig
from waveglow.model.flow import ReceptiveField, WaveGlow
from waveglow.synth.inputs import InputError
from waveglow.synth.vocoder import NOISE_BLOCK_COLUMNS

HOP = TINY_AUDIO.hop_length
N_MEL = TINY_AUDIO.n_mel_channels
TINY_LIGHT = dataclasses.replace(TINY_MODEL, architecture="light")  # n_group 8, hop 16: 2 z steps per frame
TINY_MDCT = dataclasses.replace(TINY_LIGHT, squeeze="mdct")  # a block's audio reaches one block further
AUDIO_HOP_12 = dataclasses.replace(TINY_AUDIO, hop_length=12)  # 3 frames = 36 samples = 4.5 z columns


def make_light(model_cfg: ModelConfig = TINY_LIGHT, audio_cfg: AudioConfig = TINY_AUDIO) -> LightWaveGlow:
    torch.manual_seed(0)
    return randomize_end(LightWaveGlow(model_cfg, audio_cfg), scale=0.1).eval()


def make_model(kind: str):
    if kind == "light":
        return make_light(), Config(model=TINY_LIGHT, audio=TINY_AUDIO)
    if kind == "light-mdct":
        return make_light(TINY_MDCT), Config(model=TINY_MDCT, audio=TINY_AUDIO)
    if kind == "hop12":
        return make_tiny_model(audio_cfg=AUDIO_HOP_12), Config(model=TINY_MODEL, audio=AUDIO_HOP_12)
    return make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO)


@pytest.fixture(scope="module", params=["waveglow", "light", "light-mdct", "hop12"])
def vocoder(request) -> Vocoder:
    return Vocoder(*make_model(request.param), device="cpu")


def natural_mel(frames: int, seed: int = 0) -> torch.Tensor:
    """A plausible natural-log mel (n_mel, F) around -6, floored at log(1e-5)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(N_MEL, frames, generator=gen) - 6.0).clamp(min=math.log(1e-5))


def split(mel: torch.Tensor, chunking: str, seed: int = 0) -> list[torch.Tensor]:
    frames = mel.shape[1]
    if chunking == "ones":
        sizes = [1] * frames
    elif chunking == "whole":
        sizes = [frames]
    else:  # random sizes 1..9
        rng = np.random.default_rng(seed)
        sizes = []
        while sum(sizes) < frames:
            sizes.append(min(int(rng.integers(1, 10)), frames - sum(sizes)))
    return list(torch.split(mel, sizes, dim=1))


def streamed(vocoder: Vocoder, chunks, **options) -> torch.Tensor:
    pieces = list(vocoder.stream(chunks, **options))
    return torch.cat(pieces) if pieces else torch.zeros(0)


# ---------------------------------------------------------------------------------------------- noise
def test_noise_of_a_prefix_is_the_prefix_of_the_noise(vocoder):
    whole = vocoder.noise(5, 300)
    assert whole.shape == (vocoder.n_group, vocoder.z_columns(300))
    for frames in (1, 3, 7, 37, 64, 129, 299):  # across block edges (64 columns)
        prefix = vocoder.noise(5, frames)
        assert prefix.shape[1] == vocoder.z_columns(frames)
        assert torch.equal(prefix, whole[:, : prefix.shape[1]])
    blocks = vocoder.noise_blocks(5)
    first = torch.cat([next(blocks) for _ in range(2)], dim=1)
    assert first.shape == (vocoder.n_group, 2 * NOISE_BLOCK_COLUMNS)
    assert torch.equal(first[:, : whole.shape[1]], whole[:, : 2 * NOISE_BLOCK_COLUMNS])
    # N(0, 1), and another seed gives other noise
    assert abs(whole.mean().item()) < 0.05 and abs(whole.std().item() - 1) < 0.05
    assert not torch.equal(vocoder.noise(6, 300), whole)


# ---------------------------------------------------------------------------------------------- receptive field
RF_CASES = {
    "waveglow": (TINY_MODEL, TINY_AUDIO),
    "waveglow-hop12": (TINY_MODEL, AUDIO_HOP_12),
    "waveglow-k5-3layers-hop20": (
        dataclasses.replace(TINY_MODEL, kernel_size=5, n_layers=3),
        dataclasses.replace(TINY_AUDIO, hop_length=20, win_length=48),
    ),
    "light": (TINY_LIGHT, TINY_AUDIO),
    "light-mdct": (TINY_MDCT, TINY_AUDIO),
    # n_group 4 without early outputs: with them, one coupling's input half would be the early channels alone
    # and the reach would stay below the bound (which holds, but is then not tight)
    "light-k5-3layers-g4": (
        dataclasses.replace(TINY_LIGHT, kernel_size=5, n_layers=3, n_group=4, n_early_every=4),
        TINY_AUDIO,
    ),
}


@pytest.mark.parametrize("case", list(RF_CASES))
def test_receptive_field_bounds_the_measured_reach_and_is_tight(case):
    model_cfg, audio_cfg = RF_CASES[case]
    if model_cfg.architecture == "light":
        model = make_light(model_cfg, audio_cfg)
    else:
        model = make_tiny_model(model_cfg=model_cfg, audio_cfg=audio_cfg)
    model = model.double()
    field = model.receptive_field()
    hop, g = audio_cfg.hop_length, model_cfg.n_group
    frames = 2 * (field.left + field.right) + 3 * g
    columns = -(-frames * hop // g)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1, g, columns, generator=gen, dtype=torch.float64, requires_grad=True)
    mel = torch.randn(1, model_cfg.n_mel_channels, frames, generator=gen, dtype=torch.float64) - 5
    mel.requires_grad_(True)

    def inputs_reaching(first: int, last: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z columns, mel frames) with a nonzero gradient of the audio samples [first, last): exactly those
        the samples depend on (a product of nonzero weights, so a far reach is tiny but not 0 in float64)."""
        z.grad = mel.grad = None
        model.reverse(z, mel)[0, first:last].sum().backward()
        z_columns = (z.grad[0].abs().amax(0) > 0).nonzero().flatten()
        mel_frames = (mel.grad[0].abs().amax(0) > 0).nonzero().flatten()
        return z_columns, mel_frames

    # The samples of column c depend on exactly the z columns c - columns .. c + columns (with the MDCT
    # squeeze, a block's first half reaches one column further left, its second half one further right).
    c0 = columns // 2
    z_columns, _ = inputs_reaching(c0 * g, c0 * g + g)
    assert (z_columns.min().item() - c0, z_columns.max().item() - c0) == (-field.columns, field.columns)
    # The audio of frame f depends on mel frames f - left .. f + right at most: measured over one period of the
    # frame/column alignment, the farthest frame it depends on is at that bound or one frame nearer.
    reach_left = reach_right = 0
    for f0 in range(frames // 2 - g // 2, frames // 2 + g // 2):
        z_columns, mel_frames = inputs_reaching(f0 * hop, (f0 + 1) * hop)
        reach_left = max(reach_left, f0 - mel_frames.min().item())
        reach_right = max(reach_right, mel_frames.max().item() - f0)
        z_frames = torch.cat(
            [z_columns * g // hop, ((z_columns + 1) * g - 1) // hop]
        )  # the frames they cover
        assert f0 - field.left <= z_frames.min().item() and z_frames.max().item() <= f0 + field.right
    assert field.left - 1 <= reach_left <= field.left
    assert field.right - 1 <= reach_right <= field.right


def test_receptive_field_of_the_published_and_the_light_configuration():
    # The field depends on the layout, not the widths: the published layout with 2 channels (fast to build).
    published = WaveGlow(ModelConfig(n_channels=2), AudioConfig()).receptive_field()
    assert published == ReceptiveField(left=99, right=96, columns=3060)
    light_cfg = ModelConfig(architecture="light", n_group=128, n_early_every=2, n_early_size=16, n_channels=2)
    assert LightWaveGlow(light_cfg, AudioConfig()).receptive_field() == ReceptiveField(48, 48, 96)


# ---------------------------------------------------------------------------------------------- stream
@pytest.mark.parametrize("chunking", ["ones", "random", "whole"])
@pytest.mark.parametrize("frames", [1, 7, 33, 61])
def test_stream_equals_one_pass(vocoder, chunking, frames):
    mel = natural_mel(frames, seed=frames)
    one_pass = vocoder(mel, sigma=0.6, seeds=[11])[0]
    for min_chunk in (1, 4):
        audio = streamed(
            vocoder, split(mel, chunking, seed=frames), sigma=0.6, seed=11, min_chunk_frames=min_chunk
        )
        assert audio.shape == one_pass.shape == (frames * vocoder.hop_length,)
        assert (audio - one_pass).abs().max().item() < 1e-5


def test_stream_chunks_are_whole_frames_clamped_and_wait_for_the_look_ahead(vocoder):
    mel = natural_mel(40)
    pulled = []

    def arriving():
        for index, chunk in enumerate(split(mel, "ones")):
            pulled.append(index)
            yield chunk.numpy()  # arrays are accepted too

    right = vocoder.receptive_field.right
    pieces = []
    for piece in vocoder.stream(arriving(), sigma=2.0, seed=1, min_chunk_frames=3):
        pieces.append((len(pulled), piece))
    assert pieces[0][0] == right + 3  # the first audio needs 3 frames plus the look-ahead
    assert all(
        p.dtype == torch.float32 and p.dim() == 1 and p.shape[0] % vocoder.hop_length == 0 for _, p in pieces
    )
    assert all(p.shape[0] >= 3 * vocoder.hop_length for _, p in pieces[:-1])
    audio = torch.cat([p for _, p in pieces])
    assert audio.abs().max().item() == 1.0  # sigma 2: clamped like one pass
    assert (audio - vocoder(mel, sigma=2.0, seeds=[1])[0]).abs().max().item() < 1e-5


@pytest.mark.parametrize("kind", ["waveglow", "light", "hop12"])
def test_short_look_ahead_differs_by_a_measured_amount(kind):
    model, config = make_model(kind)
    # Couplings 2-4x stronger than in the other tests: a far frame's effect stands well above float rounding.
    vocoder = Vocoder(randomize_end(model, scale=0.2, seed=1), config, device="cpu")
    mel = natural_mel(61, seed=3)
    one_pass = vocoder(mel, sigma=0.6, seeds=[2])[0]
    right = vocoder.receptive_field.right
    errors = {}
    for lookahead in (0, right // 2, right):
        chunks = split(mel, "ones")
        audio = streamed(vocoder, chunks, sigma=0.6, seed=2, lookahead_frames=lookahead, min_chunk_frames=1)
        assert audio.shape == one_pass.shape
        errors[lookahead] = (audio - one_pass).abs().max().item()
    # Measured: no look-ahead 0.26 / 0.38 / 0.30 (waveglow / light / hop12); half the field 5.2e-5 / 4.2e-6 /
    # 3.1e-5; the whole field 0 / 0 / 1.5e-7 (rounding) on AVX2 and AVX-512 EPYC CPUs. On an AMX Xeon the
    # light flow's whole field differs by 1.1e-6 (half the field: 4.1e-6): oneDNN picks its matrix-product
    # kernels by shape there, so a window and the whole utterance round differently.
    assert all(math.isfinite(e) for e in errors.values())
    assert errors[0] > 0.1
    assert 1e-6 < errors[right // 2] < 1e-3
    assert errors[right] < min(3e-6, errors[right // 2] / 2)


def test_stream_with_denoise_equals_one_pass(vocoder):
    mel = natural_mel(45, seed=4)
    one_pass = vocoder(mel, sigma=0.6, seeds=[3], denoise=0.5)[0]
    plain = vocoder(mel, sigma=0.6, seeds=[3])[0]
    assert (one_pass - plain).abs().max() > 1e-2  # the denoiser does something
    for chunking in ("ones", "random"):
        audio = streamed(vocoder, split(mel, chunking), sigma=0.6, seed=3, denoise=0.5, min_chunk_frames=2)
        assert (audio - one_pass).abs().max().item() < 1e-5


def test_bad_chunks_are_named_and_earlier_audio_stands(vocoder):
    mel = natural_mel(30)
    good = list(torch.split(mel, 10, dim=1))
    stream = vocoder.stream([*good, torch.zeros(N_MEL + 1, 4) - 6], lookahead_frames=0, min_chunk_frames=1)
    pieces = []
    with pytest.raises(InputError, match=r"mel chunk 3: has 9 mel bins"):
        for piece in stream:
            pieces.append(piece)
    assert sum(p.shape[0] for p in pieces) == 30 * vocoder.hop_length
    broken = good[1].clone()
    broken[0, 2] = float("nan")
    with pytest.raises(InputError, match=r"mel chunk 1: contains 1 NaN"):
        list(vocoder.stream([good[0], broken]))
    with pytest.raises(InputError, match=r"mel chunk 0: has no frames"):
        list(vocoder.stream([mel[:, :0]]))
    with pytest.raises(InputError, match=r"mel chunk 1: holds NoneType"):
        list(vocoder.stream([good[0], None]))


def test_empty_input_and_bad_options(vocoder):
    assert list(vocoder.stream([])) == []
    assert list(vocoder.stream(iter([]), denoise=0.1)) == []
    for options, message in (
        ({"lookahead_frames": -1}, "lookahead_frames"),
        ({"min_chunk_frames": 0}, "min_chunk_frames"),
        ({"sigma": -0.1}, "sigma"),
        ({"denoise": float("nan")}, "denoise"),
    ):
        with pytest.raises(ValueError, match=message):
            vocoder.stream([], **options)  # at the call, before any chunk
