"""The Vocoder API and the denoiser on a tiny checkpoint made here."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math

import numpy as np
import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model

from waveglow import Config, MelSpectrogram, Vocoder, WaveGlowLoss
from waveglow.device import check_precision
from waveglow.synth.denoiser import Denoiser, bias_mel
from waveglow.synth.inputs import InputError, bucket_frames, validate_mel

HOP = TINY_AUDIO.hop_length
N_MEL = TINY_AUDIO.n_mel_channels


@pytest.fixture(scope="module")
def vocoder(checkpoint) -> Vocoder:
    return Vocoder.from_checkpoint(checkpoint, device="cpu")


def natural_mel(frames: int, seed: int = 0) -> torch.Tensor:
    """A plausible natural-log mel (n_mel, F): speech-like levels around -8, floored at log(1e-5)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(N_MEL, frames, generator=gen) - 8.0).clamp(min=math.log(1e-5))


def test_from_checkpoint_prepares_model(vocoder):
    assert vocoder.device == torch.device("cpu")
    assert not vocoder.model.has_weight_norm
    assert not vocoder.model.training
    assert vocoder.sampling_rate == TINY_AUDIO.sampling_rate and vocoder.hop_length == HOP
    with pytest.raises(ValueError, match="precision"):
        Vocoder(make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO), device="cpu", precision="fp8")


def test_shapes_for_every_input_form(vocoder):
    mel = natural_mel(20)
    single = vocoder(mel, seeds=[1])
    assert single.shape == (1, 20 * HOP) and single.dtype == torch.float32
    assert single.abs().max() <= 1.0
    from_numpy = vocoder(np.stack([mel.numpy(), natural_mel(20, 1).numpy()]), seeds=[1, 2])
    assert from_numpy.shape == (2, 20 * HOP)
    assert torch.allclose(from_numpy[0], single[0], atol=1e-5)
    as_list = vocoder([mel, natural_mel(7)[None]], seeds=[1, 2])
    assert [a.shape for a in as_list] == [(20 * HOP,), (7 * HOP,)]
    padded = torch.zeros(2, N_MEL, 20)
    padded[0], padded[1, :, :7] = mel, natural_mel(7)
    out = vocoder(padded, lengths=[20, 7], seeds=[1, 2])
    assert out.shape == (2, 20 * HOP)
    assert torch.allclose(out[1, : 7 * HOP], as_list[1], atol=1e-5)
    assert torch.count_nonzero(out[1, 7 * HOP :]) == 0
    with pytest.raises(ValueError, match="lengths"):
        vocoder(padded, lengths=[21, 7])
    with pytest.raises(InputError, match="mel bins"):
        vocoder(torch.zeros(N_MEL + 1, 5) - 8)


def test_seed_reproducible_and_equal_to_model_reverse(vocoder):
    mel = natural_mel(16)
    first = vocoder(mel, sigma=0.3, generator=torch.Generator().manual_seed(5))
    again = vocoder(mel, sigma=0.3, generator=torch.Generator().manual_seed(5))
    other = vocoder(mel, sigma=0.3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-3
    # The documented noise: blocks of 64 columns, each randn(64, n_group) transposed, drawn in order from
    # Generator().manual_seed(seed), cut to L columns, times sigma (here L < 64: one block).
    block = torch.randn(64, TINY_MODEL.n_group, generator=torch.Generator().manual_seed(9)).T
    z = block[:, : 16 * HOP // TINY_MODEL.n_group]
    expected = vocoder.model.reverse((z * 0.3)[None], mel[None]).clamp(-1, 1)
    assert torch.allclose(vocoder(mel, sigma=0.3, seeds=[9]), expected, atol=1e-6)


def test_batch_of_different_lengths_equals_one_by_one(vocoder):
    mels = [natural_mel(frames, seed) for seed, frames in enumerate((25, 9, 17, 25))]
    batch = vocoder(mels, sigma=0.3, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    for mel, audio in zip(mels, batch):
        alone = vocoder([mel], sigma=0.3, generator=gen)[0]
        assert audio.shape == alone.shape
        assert (audio - alone).abs().max() < 1e-5  # tail included: the padding is masked exactly
    # Without the mask, the padded frames leak into the short item's last samples: the mask matters.
    seeds = [11, 12]
    zs = [vocoder.noise(s, m.shape[1]) * 0.3 for s, m in zip(seeds, mels[:2])]
    z_batch = torch.zeros(2, TINY_MODEL.n_group, zs[0].shape[1])
    z_batch[0], z_batch[1, :, : zs[1].shape[1]] = zs[0], zs[1]
    mel_batch = torch.zeros(2, N_MEL, 25)
    mel_batch[0], mel_batch[1, :, :9] = mels[0], mels[1]
    with torch.no_grad():
        unmasked = vocoder.model.reverse(z_batch, mel_batch)[1, : 9 * HOP]
    masked = vocoder(mels[:2], sigma=0.3, seeds=seeds)[1]
    alone = vocoder(mels[1], sigma=0.3, seeds=[12])[0]
    assert (masked - alone).abs().max() < 1e-5
    assert (unmasked.clamp(-1, 1) - alone).abs()[-HOP:].max() > 1e-3


def test_batch_is_exact_when_hop_is_not_a_multiple_of_n_group():
    audio_cfg = dataclasses.replace(TINY_AUDIO, hop_length=12)  # 9 frames = 108 samples = 13.5 groups
    vocoder = Vocoder(make_tiny_model(audio_cfg=audio_cfg), Config(model=TINY_MODEL, audio=audio_cfg), "cpu")
    mels = [natural_mel(frames, seed) for seed, frames in enumerate((25, 9, 17))]
    batch = vocoder(mels, sigma=0.3, seeds=[1, 2, 3])
    for mel, seed, audio in zip(mels, [1, 2, 3], batch):
        alone = vocoder(mel, sigma=0.3, seeds=[seed])[0]
        assert audio.shape == (mel.shape[1] * 12,)
        assert (audio - alone).abs().max() < 1e-5


def test_fast_engine_equals_the_eager_engine(checkpoint):
    """The fast engine (waveglow.synth.fast) gives the eager model's audio: one length, mixed lengths, sigma 0."""
    vocoder = Vocoder.from_checkpoint(checkpoint, device="cpu", engine="fast")
    eager = Vocoder.from_checkpoint(checkpoint, device="cpu", engine="eager")
    assert vocoder.engine == "fast" and vocoder.fast is not None and eager.fast is None
    mels = [natural_mel(frames, seed) for seed, frames in enumerate((21, 6, 13, 21))]
    for sigma in (0.0, 0.6):
        fast_out = vocoder(mels, sigma=sigma, seeds=[5, 6, 7, 8])
        eager_out = eager(mels, sigma=sigma, seeds=[5, 6, 7, 8])
        for a, b in zip(fast_out, eager_out):
            assert a.shape == b.shape and b.abs().max() > 0.05
            assert (a - b).abs().max() < 1e-4
    same_length = torch.stack([mels[0], mels[3]])
    fast_out = vocoder(same_length, sigma=0.6, seeds=[1, 2])
    assert (fast_out - eager(same_length, sigma=0.6, seeds=[1, 2])).abs().max() < 1e-4
    bf16_fast = Vocoder.from_checkpoint(checkpoint, device="cpu", precision="bf16", engine="fast")
    bf16_eager = Vocoder.from_checkpoint(checkpoint, device="cpu", precision="bf16", engine="eager")
    for reduced in (bf16_fast, bf16_eager):
        assert 0 < (reduced(same_length, sigma=0.6, seeds=[1, 2]) - fast_out).abs().max() < 0.05
    with pytest.raises(ValueError, match="engine"):
        Vocoder.from_checkpoint(checkpoint, device="cpu", engine="turbo")
    with pytest.raises(ValueError, match="engine='fast'"):
        Vocoder.from_checkpoint(checkpoint, device="cpu", engine="eager", compile=True)


def test_precisions_on_cpu(checkpoint, vocoder):
    mel = natural_mel(12)
    reference = vocoder(mel, sigma=0.3, seeds=[4])
    bf16 = Vocoder.from_checkpoint(checkpoint, device="cpu", precision="bf16")
    out = bf16(mel, sigma=0.3, seeds=[4])
    assert out.dtype == torch.float32
    assert 0 < (out - reference).abs().max() < 0.05
    try:
        fp16 = Vocoder.from_checkpoint(checkpoint, device="cpu", precision="fp16")
    except ValueError as exc:  # builds whose CPU convolutions lack float16 get a clear error
        assert "fp16" in str(exc)
    else:
        assert (fp16(mel, sigma=0.3, seeds=[4]) - reference).abs().max() < 0.02


def test_chunked_synthesis_matches_one_pass_away_from_edges(checkpoint):
    vocoder = Vocoder.from_checkpoint(checkpoint, device="cpu", overlap_frames=24)
    mel = natural_mel(300)
    bounds = vocoder.chunk_bounds(300, 100)
    assert bounds[0][0] == 0 and bounds[-1][1] == 300 and all(e - s <= 100 for s, e in bounds)
    near_edge = torch.zeros(300, dtype=torch.bool)
    for start, end in bounds:  # the receptive field of this model is < 8 frames
        near_edge[max(start - 8, 0) : start + 8] = True
        near_edge[max(end - 8, 0) : end + 8] = True
    near_edge[:8] = near_edge[-8:] = False
    for sigma in (0.0, 0.6):
        one_pass = vocoder(mel, sigma=sigma, seeds=[7])[0]
        chunked = vocoder(mel, sigma=sigma, seeds=[7], max_frames=100)[0]
        frame_error = (one_pass - chunked).abs().reshape(300, HOP).max(dim=1).values
        assert frame_error[~near_edge].max() < 1e-5
        assert frame_error.max() < 0.05
    with pytest.raises(ValueError, match="twice overlap"):
        vocoder(mel, max_frames=40)


def test_denoiser_removes_a_constant_tone():
    rate, freq = TINY_AUDIO.sampling_rate, 1000.0
    t = torch.arange(4000) / rate
    tone = 0.1 * torch.sin(2 * math.pi * freq * t)
    denoiser = Denoiser(tone, TINY_AUDIO)
    noise = 0.02 * torch.randn(4000, generator=torch.Generator().manual_seed(0))

    def tone_energy(audio: torch.Tensor) -> float:
        core = slice(200, 3800)
        basis = torch.stack([torch.sin(2 * math.pi * freq * t), torch.cos(2 * math.pi * freq * t)])[:, core]
        return float(((basis @ audio[core]) ** 2).sum())

    mixed = tone + noise
    cleaned = denoiser(mixed, strength=1.0)
    assert cleaned.shape == mixed.shape
    assert tone_energy(cleaned) < 0.05 * tone_energy(mixed)
    # The broadband noise is mostly kept: only the few bins under the tone lose energy.
    assert 0.7 * noise.pow(2).mean() < cleaned.pow(2).mean() < 1.3 * noise.pow(2).mean()
    assert torch.allclose(denoiser(mixed, strength=0.0), mixed)
    assert torch.allclose(bias_mel(N_MEL), torch.zeros(1, N_MEL, 88))


def test_vocoder_denoise_uses_the_model_bias(vocoder):
    mel = natural_mel(20)
    plain = vocoder(mel, sigma=0.3, seeds=[1])
    denoised = vocoder(mel, sigma=0.3, seeds=[1], denoise=0.5)
    assert denoised.shape == plain.shape
    assert 1e-4 < (denoised - plain).abs().max()
    bias = vocoder._synthesize_zero_noise(bias_mel(N_MEL))
    assert torch.allclose(vocoder.denoiser.bias_spec, Denoiser(bias, TINY_AUDIO).bias_spec)


def test_score_is_the_exact_log_likelihood(vocoder):
    gen = torch.Generator().manual_seed(0)
    audio = 0.3 * torch.sin(torch.arange(2, 4005).unsqueeze(0) * torch.tensor([[0.05], [0.11]]))
    audio = audio + 0.01 * torch.randn(audio.shape, generator=gen)
    result = vocoder.score(audio)
    assert result.n_samples == 4000 and result.sigma == 1.0
    assert torch.allclose(result.bits_per_sample, result.nats_per_sample / math.log(2))
    for b in range(2):
        cut = audio[b : b + 1, :4000]
        mel = MelSpectrogram(TINY_AUDIO)(cut)
        with torch.no_grad():
            nll = WaveGlowLoss(1.0)(vocoder.model(cut, mel))
        assert abs(result.nats_per_sample[b].item() + nll.item()) < 1e-5
        assert (
            abs(vocoder.score(audio[b]).nats_per_sample[0].item() - result.nats_per_sample[b].item()) < 1e-5
        )


def test_copy_synthesis_and_mel(vocoder):
    audio = 0.2 * torch.sin(torch.arange(1000) * 0.07)
    assert vocoder.mel(audio).shape == (1, N_MEL, 1 + 1000 // HOP)
    assert torch.allclose(vocoder.mel(audio.numpy()), MelSpectrogram(TINY_AUDIO)(audio))
    out = vocoder.copy_synthesis(audio, sigma=0.3, seeds=[2])
    assert out.shape == (1, 1000)
    assert torch.equal(out, vocoder(vocoder.mel(audio), sigma=0.3, seeds=[2])[:, :1000])


def test_mel_convention_check_rejects_other_conventions(caplog):
    audio = 0.3 * torch.randn(1, 4000, generator=torch.Generator().manual_seed(0))
    audio[:, 2000:] *= 1e-4
    natural = MelSpectrogram(TINY_AUDIO)(audio)[0]
    assert torch.equal(validate_mel(natural, TINY_AUDIO, "ok.npy"), natural)
    predicted = natural.clone()
    predicted[0, :3] = -12.3  # a TTS model's output may undershoot the floor a little: a warning only
    with caplog.at_level(logging.WARNING, logger="waveglow.synth.inputs"):
        assert torch.equal(validate_mel(predicted, TINY_AUDIO, "tts.npy"), predicted)
    assert "tts.npy" in caplog.text and "below the floor" in caplog.text
    others = {
        "dB": natural * 20 / math.log(10),  # 20*log10(magnitude)
        "log10": natural / math.log(10),
        "normalised": (natural - natural.min()) / (natural.max() - natural.min()),
    }
    for name, mel in others.items():
        with pytest.raises(InputError, match=rf"x\.npy: .*{name}"):
            validate_mel(mel, TINY_AUDIO, "x.npy")
        assert torch.equal(validate_mel(mel, TINY_AUDIO, "x.npy", strict_convention=False), mel)  # warns


def test_validate_mel_reasons():
    with pytest.raises(InputError, match=r"x\.npy: shape \(2, 8, 5\)"):
        validate_mel(np.zeros((2, 8, 5)) - 8, TINY_AUDIO, "x.npy")
    with pytest.raises(InputError, match="transposed"):
        validate_mel(np.zeros((5, 8)) - 8, TINY_AUDIO, "x.npy")
    with pytest.raises(InputError, match="3 NaN or infinite"):
        mel = natural_mel(5)
        mel[0, :2], mel[1, 0] = float("nan"), float("inf")
        validate_mel(mel, TINY_AUDIO, "x.pt")
    with pytest.raises(InputError, match="no frames"):
        validate_mel(torch.zeros(N_MEL, 0), TINY_AUDIO)
    assert validate_mel(natural_mel(5)[None].double(), TINY_AUDIO).shape == (N_MEL, 5)


@pytest.mark.gpu
def test_cuda_matches_cpu_and_batches_exactly(checkpoint, vocoder):
    cuda = Vocoder.from_checkpoint(checkpoint, device="cuda")
    mels = [natural_mel(frames, seed) for seed, frames in enumerate((30, 11, 19))]
    batch = cuda(mels, sigma=0.3, seeds=[1, 2, 3])
    for mel, seed, audio in zip(mels, [1, 2, 3], batch):
        assert audio.device.type == "cuda"
        alone = cuda(mel, sigma=0.3, seeds=[seed])[0]
        assert (audio - alone).abs().max() < 5e-3  # TF32 convolutions may pick other kernels per shape
        on_cpu = vocoder(mel, sigma=0.3, seeds=[seed])[0]  # the same z on every device
        assert (audio.cpu() - on_cpu).abs().max() < 2e-2
    for precision, tolerance in (("bf16", 0.05), ("fp16", 0.02)):
        reduced = Vocoder.from_checkpoint(checkpoint, device="cuda", precision=precision)
        assert (reduced(mels[0], sigma=0.3, seeds=[1])[0] - batch[0]).abs().max() < tolerance


@pytest.mark.gpu
def test_fast_engine_keeps_one_copy_of_the_weights_on_the_gpu(checkpoint, vocoder):
    cuda = Vocoder.from_checkpoint(checkpoint, device="cuda")
    assert next(cuda.model.parameters()).device.type == "cpu"  # only the fast engine's weights on the GPU
    audio = vocoder(natural_mel(20), sigma=0.0)[0]
    on_gpu = cuda.score(audio.cuda()).nats_per_sample  # score moves the plain model to the GPU
    assert next(cuda.model.parameters()).device.type == "cuda"
    assert (on_gpu - vocoder.score(audio).nats_per_sample).abs().max() < 1e-3
    assert cuda.denoiser.bias_spec.device.type == "cuda"


def test_precision_check_probes_what_the_engine_runs(monkeypatch):
    """A build whose autocast leaves CPU convolutions in float32 (simulated here) cannot run the eager engine
    in fp16, but the fast engine, which casts its own weights and multiplies matrices, still can."""
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    with pytest.raises(ValueError, match="does not run convolutions"):
        check_precision(torch.device("cpu"), torch.float16, "eager")
    check_precision(torch.device("cpu"), torch.float16, "fast")  # no error
    model, cfg = make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO)
    fast = Vocoder(model, cfg, device="cpu", precision="fp16")
    assert fast.fast is not None and fast.fast.compute_dtype == torch.float16
    with pytest.raises(ValueError, match="engine='fast'"):
        Vocoder(make_tiny_model(), cfg, device="cpu", precision="fp16", engine="eager")


def test_bucket_sizes_are_few_aligned_and_wasteful_by_at_most_a_quarter():
    sizes = sorted({bucket_frames(frames) for frames in range(1, 3001)})
    assert sizes[:4] == [16, 32, 48, 64] and sizes[-1] >= 3000
    assert len(sizes) < 30  # against 3000 shapes without buckets
    assert all(b <= max(a + 16, a * 1.25 + 16) for a, b in zip(sizes, sizes[1:]))
    assert all(bucket_frames(size) == size for size in sizes)
    assert all(bucket_frames(f, align=3) % 3 == 0 and bucket_frames(f, align=3) >= f for f in range(1, 500))
    with pytest.raises(ValueError):
        bucket_frames(0)


def test_bucketed_batches_give_each_item_its_own_audio(checkpoint, monkeypatch):
    """bucket_lengths (on with compile or cuda_graphs) pads batches to a few fixed lengths: the engine sees
    only those, and every item's audio is what it is without the padding."""
    plain = Vocoder.from_checkpoint(checkpoint, device="cpu", engine="fast")
    bucketed = Vocoder.from_checkpoint(checkpoint, device="cpu", engine="fast", bucket_lengths=True)
    shapes = []
    reverse = bucketed.fast.reverse
    monkeypatch.setattr(
        bucketed.fast,
        "reverse",
        lambda z, mel, lengths: shapes.append(mel.shape[2]) or reverse(z, mel, lengths),
    )
    for frames in ([30, 11, 19], [7], [16, 16]):
        mels = [natural_mel(n, seed) for seed, n in enumerate(frames)]
        seeds = list(range(len(frames)))
        for a, b in zip(bucketed(mels, sigma=0.6, seeds=seeds), plain(mels, sigma=0.6, seeds=seeds)):
            assert a.shape == b.shape and (a - b).abs().max() < 1e-5
    assert shapes == [32, 16, 16]
    assert not Vocoder.from_checkpoint(checkpoint, device="cpu").bucket_lengths  # off by default
    eager = Vocoder.from_checkpoint(checkpoint, device="cpu", engine="eager", bucket_lengths=True)
    mels = [natural_mel(n, seed) for seed, n in enumerate([30, 11])]  # padded to 32 frames, both masked
    for a, b in zip(eager(mels, sigma=0.6, seeds=[0, 1]), plain(mels, sigma=0.6, seeds=[0, 1])):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-5
