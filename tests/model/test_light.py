"""The light flow (waveglow.light): exactness, layout, checkpoints, synthesis, training, the sample loss."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_AUDIO

from waveglow import Config, ConfigError, LightWaveGlow, ModelConfig, list_pretrained
from waveglow.checkpoints import CheckpointError, load_model, model_from_payload, model_payload, save_model
from waveglow.model.architectures import build_flow
from waveglow.model.lapped import MDCTSqueeze
from waveglow.model.light import gated_unit
from waveglow.stft_loss import MultiResolutionSTFTLoss
from waveglow.synth.vocoder import Vocoder
from waveglow.train.objective import FlowObjective, SampleLoss

TINY_LIGHT = ModelConfig(
    architecture="light",
    n_mel_channels=8,
    n_flows=4,
    n_group=8,  # TINY_AUDIO's hop is 16: two z steps per frame, as the published light config
    n_early_every=2,
    n_early_size=2,
    n_layers=2,
    n_channels=16,
    kernel_size=3,
)


def make_light(seed: int = 0, scale: float = 0.1, model_cfg: ModelConfig = TINY_LIGHT) -> LightWaveGlow:
    """A tiny light flow whose couplings are not identities (random ``end`` weights)."""
    torch.manual_seed(seed)
    model = LightWaveGlow(model_cfg, TINY_AUDIO)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.copy_(torch.randn(wn.end.weight.shape, generator=gen) * scale)
            wn.end.bias.copy_(torch.randn(wn.end.bias.shape, generator=gen) * scale)
    return model.eval()


def test_reverse_inverts_forward():
    model = make_light()
    gen = torch.Generator().manual_seed(1)
    audio = 0.3 * torch.randn(3, 96, generator=gen)
    mel = torch.randn(3, 8, 6, generator=gen)
    out = model(audio, mel)
    assert out.z.shape == (3, 8, 12) and out.log_det.shape == (3,)
    assert (model.reverse(out.z, mel) - audio).abs().max().item() < 1e-5
    double = make_light().double()
    out64 = double(audio.double(), mel.double())
    assert (double.reverse(out64.z, mel.double()) - audio.double()).abs().max().item() < 1e-12


def test_log_det_equals_the_jacobian_of_every_example():
    model = make_light(scale=0.3).double()
    gen = torch.Generator().manual_seed(2)
    audio = 0.5 * torch.randn(2, 48, generator=gen, dtype=torch.float64)
    mel = torch.randn(2, 8, 3, generator=gen, dtype=torch.float64)
    got = model(audio, mel).log_det
    for b in range(2):

        def flat_z(x: torch.Tensor, b: int = b) -> torch.Tensor:
            return model(x[None], mel[b : b + 1]).z.reshape(-1)

        jac = torch.autograd.functional.jacobian(flat_z, audio[b])
        sign, expected = torch.linalg.slogdet(jac)
        assert sign.item() != 0 and abs(got[b].item() - expected.item()) < 1e-9
    assert abs(got[0].item()) > 0.1 and abs(got[0].item() - got[1].item()) > 1e-6  # per example, not shared


TINY_MDCT = ModelConfig(**{**TINY_LIGHT.__dict__, "squeeze": "mdct"})


def test_mdct_squeeze_is_orthogonal_and_its_inverse_exact():
    n, length = 8, 64
    squeeze = MDCTSqueeze(n).double()
    eye = torch.eye(length, dtype=torch.float64)
    matrix = squeeze(eye).reshape(length, length)  # row t: the coefficients of a unit impulse at sample t
    assert (matrix @ matrix.T - eye).abs().max().item() < 1e-12
    audio = torch.randn(3, length, dtype=torch.float64)
    coefficients = squeeze(audio)
    assert coefficients.shape == (3, length // n, n)
    assert (squeeze.inverse(coefficients) - audio).abs().max().item() < 1e-12
    single = MDCTSqueeze(n)
    assert (single.inverse(single(audio.float())) - audio.float()).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="not a multiple of n_group=8"):
        squeeze(torch.zeros(1, 60, dtype=torch.float64))


def test_mdct_squeeze_is_local_and_inverts_padded_batches_per_item():
    """A block's coefficients depend on the samples within N/2 of it and on nothing across the signal's
    ends; an item padded into a longer batch inverts to its own audio when its length is given."""
    n = 8
    squeeze = MDCTSqueeze(n).double()
    audio = torch.randn(1, 80, dtype=torch.float64)
    changed = audio.clone()
    changed[0, 48 + n // 2 :] += 1.0  # from half a block after block 5 (samples 40-47) onwards
    assert torch.equal(squeeze(audio)[:, :6], squeeze(changed)[:, :6])
    assert not torch.equal(squeeze(audio)[:, 6], squeeze(changed)[:, 6])
    assert torch.equal(squeeze(audio[:, :40])[:, :4], squeeze(audio)[:, :4])  # the end folds only block 4
    padded = torch.cat([squeeze(audio[:, :40]), torch.randn(1, 5, n, dtype=torch.float64)], dim=1)
    both = torch.cat([padded, squeeze(audio)])
    restored = squeeze.inverse(both, torch.tensor([5, 10]))
    assert (restored[0, :40] - audio[0, :40]).abs().max().item() < 1e-12
    assert (restored[1] - audio[0]).abs().max().item() < 1e-12
    assert (squeeze.inverse(padded)[0, :40] - audio[0, :40]).abs().max().item() > 1e-3  # without lengths


def test_an_mdct_channel_is_the_band_of_its_frequency():
    """A sinusoid at the centre of band k (k + 1/2) * sr / (2N) puts nearly all its energy in channel k and
    its neighbours, where blocks of samples spread it over every channel."""
    n, length = 32, 4096
    t = torch.arange(length, dtype=torch.float64)
    for k in (3, 12, 25):
        tone = torch.sin(math.pi * (k + 0.5) / n * t + 0.3)
        energy = MDCTSqueeze(n).double()(tone[None])[0].pow(2).sum(dim=0)  # (N,)
        assert energy[k - 1 : k + 2].sum() / energy.sum() > 0.97
        assert energy.argmax().item() == k
        blocks = tone.reshape(-1, n).pow(2).sum(dim=0)  # the blocks squeeze: every channel holds the tone
        assert blocks.min() / blocks.max() > 0.3


def test_light_flow_with_mdct_squeeze_is_exact():
    model = make_light(model_cfg=TINY_MDCT, scale=0.3).double()
    gen = torch.Generator().manual_seed(3)
    audio = 0.5 * torch.randn(2, 48, generator=gen, dtype=torch.float64)
    mel = torch.randn(2, 8, 3, generator=gen, dtype=torch.float64)
    out = model(audio, mel)
    assert (model.reverse(out.z, mel) - audio).abs().max().item() < 1e-12
    blocks_model = make_light(model_cfg=TINY_LIGHT, scale=0.3).double()  # same weights, blocks squeeze
    assert (blocks_model(audio, mel).z - out.z).abs().max().item() > 1e-3
    for b in range(2):

        def flat_z(x: torch.Tensor, b: int = b) -> torch.Tensor:
            return model(x[None], mel[b : b + 1]).z.reshape(-1)

        jac = torch.autograd.functional.jacobian(flat_z, audio[b])
        assert abs(out.log_det[b].item() - torch.linalg.slogdet(jac)[1].item()) < 1e-9
    assert model.receptive_field().columns == blocks_model.receptive_field().columns + 1


def test_mdct_flows_start_with_alternating_permutations_that_condition_every_channel():
    """Each 1x1 mixing of an MDCT light flow starts as a signed permutation with det +1 (every channel one
    band), and with trained couplings every z channel, early outputs included, depends on the mel (each
    was transformed by a mel-conditioned coupling); with plain random permutations some do not."""
    model_cfg = ModelConfig(**{**TINY_MDCT.__dict__, "n_flows": 6, "n_group": 16, "n_early_size": 4})
    torch.manual_seed(0)
    mdct = LightWaveGlow(model_cfg, TINY_AUDIO)
    for conv in mdct.convinv:
        weight = conv.conv.weight.detach().squeeze(-1)
        assert torch.equal(weight.abs().sum(0), torch.ones(len(weight)))
        assert torch.equal(weight.abs().sum(1), torch.ones(len(weight)))
        assert torch.det(weight).item() == pytest.approx(1.0)

    def mel_reach(model: LightWaveGlow) -> torch.Tensor:
        """(g,) bool: which z channels the mel changes, with random coupling outputs."""
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for wn in model.WN:
                wn.end.weight.copy_(torch.randn(wn.end.weight.shape, generator=gen) * 0.1)
        audio = 0.3 * torch.randn(1, 64, generator=gen)
        mel = torch.randn(1, 8, 4, generator=gen)
        changed = model(audio, mel + 1.0).z - model(audio, mel).z  # (1, g, L)
        return changed.abs().amax(dim=(0, 2)) > 0

    assert mel_reach(mdct).all()
    shuffled = LightWaveGlow(model_cfg, TINY_AUDIO)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for conv in shuffled.convinv:  # random permutations instead
            channels = conv.conv.weight.shape[0]
            conv.conv.weight.copy_(torch.eye(channels)[torch.randperm(channels, generator=gen)].unsqueeze(-1))
    assert not mel_reach(shuffled).all()
    torch.manual_seed(0)
    blocks = LightWaveGlow(TINY_LIGHT, TINY_AUDIO)
    for conv in blocks.convinv:  # the blocks squeeze keeps WaveGlow's random rotations
        weight = conv.conv.weight.detach().squeeze(-1)
        assert (weight.abs() > 1e-3).sum().item() > 2 * len(weight)
        assert torch.det(weight).item() == pytest.approx(1.0, abs=1e-5)


def test_z_layout_early_outputs_first():
    """z (B, g, L): channel j at step t of the first early output is the input's sample g*t + j after the
    first 1x1 mixing and coupling, i.e. the early outputs leave in order, before the remaining channels."""
    model = make_light()
    audio = 0.3 * torch.randn(1, 64)
    mel = torch.randn(1, 8, 4)
    z = model(audio, mel).z
    x = audio.reshape(1, 8, 8)  # (B, L, g)
    x = model._mix(x, 0)
    out = model.WN[0](x[..., :4], mel.transpose(1, 2), model.repeat)
    x_b = torch.exp(out[..., 4:]) * x[..., 4:] + out[..., :4]
    first = model._mix(torch.cat([x[..., :4], x_b], dim=2), 1)  # flow 1 (no early output before it)
    n_half = 4
    out = model.WN[1](first[..., :n_half], mel.transpose(1, 2), model.repeat)
    second = torch.cat(
        [first[..., :n_half], torch.exp(out[..., n_half:]) * first[..., n_half:] + out[..., :n_half]], 2
    )
    assert torch.allclose(z[:, :2], second[..., :2].transpose(1, 2), atol=1e-6)


def test_mel_frames_condition_the_steps_they_cover():
    """Step t is conditioned by frame t // (hop / n_group): changing frame 2 changes steps 4 and 5 of the
    first coupling's output only."""
    model = make_light()
    x_a = torch.randn(1, 12, 4)
    mel = torch.randn(1, 6, 8)
    other = mel.clone()
    other[:, 2] += 1.0
    wn = model.WN[0]
    wn.in_layers[0].depthwise.weight.data.zero_()  # no mixing over time: the test isolates the frame map
    wn.in_layers[1].depthwise.weight.data.zero_()
    diff = (wn(x_a, other, 2) - wn(x_a, mel, 2)).abs().sum(dim=2)[0]
    assert diff[4] > 0 and diff[5] > 0
    assert diff[[0, 1, 2, 3, 6, 7, 8, 9, 10, 11]].max().item() == 0.0


def test_light_config_validation():
    with pytest.raises(ConfigError, match="architecture must be one of"):
        ModelConfig(architecture="squeeze").validate()
    cfg = Config(model=ModelConfig(architecture="light", n_group=96), audio=TINY_AUDIO.__class__())
    cfg.data.segment_length = 96 * 100
    with pytest.raises(ConfigError, match="hop_length .256. to be a multiple of model.n_group .96."):
        cfg.validate()
    assert isinstance(build_flow(TINY_LIGHT, TINY_AUDIO), LightWaveGlow)
    with pytest.raises(ConfigError, match="model.squeeze must be one of blocks, mdct, got 'dct'"):
        ModelConfig(architecture="light", squeeze="dct").validate()
    with pytest.raises(ConfigError, match="model.squeeze 'mdct' needs model.architecture light"):
        ModelConfig(squeeze="mdct").validate()


def test_checkpoint_records_the_architecture_and_refuses_the_other(tmp_path):
    model = make_light()
    cfg = Config(model=TINY_LIGHT, audio=TINY_AUDIO)
    save_model(model, cfg, tmp_path / "light.pt")
    loaded, loaded_cfg = load_model(tmp_path / "light.pt")
    assert isinstance(loaded, LightWaveGlow) and loaded_cfg.model.architecture == "light"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    payload = model_payload(model, cfg)
    assert payload["architecture"] == "light"
    # a light flow's weights under a WaveGlow config: refused, naming both
    payload["config"]["model"]["architecture"] = "waveglow"
    with pytest.raises(CheckpointError, match="holds a 'light' flow but its config says 'waveglow'"):
        model_from_payload(payload, source="x.pt")
    payload["architecture"] = "waveglow"
    with pytest.raises(CheckpointError, match="weights do not fit the model"):
        model_from_payload(payload, source="x.pt")


@pytest.mark.parametrize("model_cfg", [TINY_LIGHT, TINY_MDCT], ids=["blocks", "mdct"])
def test_vocoder_batches_of_mixed_lengths_equal_single_items(tmp_path, model_cfg):
    cfg = Config(model=model_cfg, audio=TINY_AUDIO)
    save_model(make_light(model_cfg=model_cfg), cfg, tmp_path / "light.pt")
    vocoder = Vocoder.from_checkpoint(tmp_path / "light.pt", device="cpu")
    assert vocoder.engine == "eager"  # the light flow runs its own time-major reverse pass
    gen = torch.Generator().manual_seed(0)
    mels = [torch.randn(8, 7, generator=gen) - 6, torch.randn(8, 12, generator=gen) - 6]
    batch = vocoder(mels, sigma=0.6, seeds=[1, 2])
    single = [vocoder([mel], sigma=0.6, seeds=[seed])[0] for mel, seed in zip(mels, (1, 2))]
    assert [a.shape[0] for a in batch] == [7 * 16, 12 * 16]
    for a, b in zip(batch, single):
        # equal to float rounding: bit for bit on AVX2 and AVX-512 EPYC CPUs, 2e-7 apart on an AMX Xeon
        # (oneDNN picks its matrix-product kernels by shape there, and a batch has another shape)
        assert (a - b).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="not the light flow"):
        Vocoder.from_checkpoint(tmp_path / "light.pt", device="cpu", compile=True)


def test_unknown_pretrained_name_lists_what_ships():
    with pytest.raises(ValueError, match="no shipped model named 'nope'"):
        Vocoder.from_pretrained("nope")
    assert isinstance(list_pretrained(), list)


def test_stft_distance_is_zero_for_identical_signals_and_grows_with_noise():
    loss = MultiResolutionSTFTLoss(((64, 16, 32), (128, 32, 64)))
    time_axis = torch.arange(2048) / 8000
    tone = torch.sin(2 * math.pi * 220 * time_axis)[None]
    same = loss(tone, tone.clone())
    assert same.spectral_convergence.item() == 0.0 and same.log_magnitude.item() == 0.0
    gen = torch.Generator().manual_seed(0)
    small = loss(tone + 0.01 * torch.randn(tone.shape, generator=gen), tone).total.item()
    large = loss(tone + 0.3 * torch.randn(tone.shape, generator=gen), tone).total.item()
    assert 0 < small < large


def test_sample_loss_trains_the_reverse_pass_towards_the_recording():
    """A few steps on the MR-STFT distance alone, through the differentiable reverse pass, make the samples'
    spectra closer to the recording's; the noise is the same for the same (seed, step, rank)."""
    torch.manual_seed(0)
    model = make_light(scale=0.0)
    objective = FlowObjective(model)
    sample_loss = SampleLoss(1.0, 0.6, seed=3)
    sample_loss.stft = MultiResolutionSTFTLoss(((64, 16, 32), (128, 32, 64)))
    time_axis = torch.arange(512) / 8000
    audio = (0.5 * torch.sin(2 * math.pi * 300 * time_axis))[None].repeat(2, 1)
    mel = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(0)) - 4
    z = sample_loss.noise(audio, 8, step=0, rank=0)
    assert torch.equal(z, sample_loss.noise(audio, 8, step=0, rank=0))
    assert not torch.equal(z, sample_loss.noise(audio, 8, step=1, rank=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    distances = []
    for _ in range(60):
        _, synthesis = objective(audio, mel, z)
        distance = sample_loss(synthesis, audio).total
        optimizer.zero_grad()
        distance.backward()
        optimizer.step()
        distances.append(distance.item())
    first, last = sum(distances[:10]) / 10, sum(distances[-10:]) / 10
    assert last < 0.85 * distances[0] and last < 0.85 * first  # seen over 4 seeds: 7.8 -> 5.3-6.0


def test_odd_step_counts_and_the_synthesis_inverse_cache_never_go_stale():
    """L not a whole number of frames takes the repeat path; without autograd the 1x1 inverses are reused
    until a weight changes in place, then recomputed."""
    model = make_light()
    gen = torch.Generator().manual_seed(4)
    audio = 0.3 * torch.randn(2, 88, generator=gen)  # L = 11 steps, 5.5 frames
    mel = torch.randn(2, 8, 6, generator=gen)
    out = model(audio, mel)
    assert (model.reverse(out.z, mel) - audio).abs().max().item() < 1e-5
    z = torch.randn(1, 8, 12, generator=gen)
    with torch.no_grad():
        first = model.reverse(z, mel[:1])
        assert len(model._inverse_cache) == TINY_LIGHT.n_flows
        model.convinv[0].conv.weight.mul_(1.5)  # an in-place update bumps the version counter
        second = model.reverse(z, mel[:1])
    with torch.enable_grad():
        fresh = model.reverse(z, mel[:1])  # autograd: computed anew, no cache
    assert not torch.allclose(first, second)
    assert torch.allclose(second, fresh.detach(), atol=1e-6)


def test_gated_unit_equals_tanh_times_sigmoid():
    acts = 4 * torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scale = torch.cat([torch.full((16,), 2.0), torch.ones(16)]).double()
    expected = torch.tanh(acts[..., :16]) * torch.sigmoid(acts[..., 16:])
    assert (gated_unit(acts, scale) - expected).abs().max().item() < 1e-12


def test_init_from_a_light_checkpoint_copies_its_weights(tmp_path):
    """Fine-tuning (train.py --init-from) a light flow from a light checkpoint: the light flow has no weight
    norm to put back, and every weight arrives unchanged."""
    from waveglow.train.setup import build_model

    source = make_light(seed=5)
    cfg = Config(model=TINY_LIGHT, audio=TINY_AUDIO)
    save_model(source, cfg, tmp_path / "light.pt")
    model = build_model(cfg, init_from=tmp_path / "light.pt")
    assert isinstance(model, LightWaveGlow)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), model.state_dict().values()))


def test_intra_op_threads_lowers_the_count_for_a_block_and_restores_it():
    from waveglow.device import intra_op_threads

    torch.set_num_threads(2)
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    with intra_op_threads(8):  # never raises the count
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2


def test_the_shipped_voice_loads_by_name_and_synthesises():
    """allison-light ships in the package: listed, loaded by name (Vocoder and load_model), a light flow at
    22.05 kHz with hop 256, float16 weights run in float32, and it makes finite audio of the right length."""
    assert "allison-light" in list_pretrained()
    model, cfg = load_model("allison-light")
    assert (
        isinstance(model, LightWaveGlow) and cfg.audio.sampling_rate == 22050 and cfg.audio.hop_length == 256
    )
    assert all(p.dtype == torch.float32 for p in model.parameters())
    vocoder = Vocoder.from_pretrained("allison-light", device="cpu")
    mel = torch.full((80, 20), -8.0)
    audio = vocoder(mel, seeds=[0])[0]
    assert audio.shape == (20 * 256,) and torch.isfinite(audio).all() and audio.abs().max() <= 1.0


def test_export_writes_a_shipped_model_in_float16_and_list_shows_its_record(tmp_path, monkeypatch, capsys):
    from waveglow.pretrained import __main__ as pretrained_cli

    cfg = Config(model=TINY_LIGHT, audio=TINY_AUDIO)
    source = make_light(seed=2)
    save_model(source, cfg, tmp_path / "run.pt")
    monkeypatch.setattr(pretrained_cli, "FOLDER", tmp_path / "shipped")
    args = ["export", str(tmp_path / "run.pt"), "tiny-voice", "--cpu-hours", "0.25", "--data", "tones"]
    assert pretrained_cli.main(args) == 0
    data = torch.load(tmp_path / "shipped/tiny-voice.pt", weights_only=True)
    assert data["pretrained"] == {"step": 0, "cpu_hours": 0.25, "data": "tones"}
    assert data["architecture"] == "light" and all(v.dtype == torch.float16 for v in data["model"].values())
    loaded, _ = load_model(tmp_path / "shipped/tiny-voice.pt")
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-3 * max(1.0, a.abs().max().item()))  # float16 rounding
    assert pretrained_cli.main(["export", str(tmp_path / "missing.pt"), "x", "--cpu-hours", "1"]) == 2
    # a run continued from exported weights restarts its step count: --steps records the total
    assert pretrained_cli.main([*args, "--steps", "1500"]) == 0
    assert torch.load(tmp_path / "shipped/tiny-voice.pt", weights_only=True)["pretrained"]["step"] == 1500
    assert pretrained_cli.main([*args, "--steps", "-1"]) == 2
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err
