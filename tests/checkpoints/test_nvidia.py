"""Import of published NVIDIA WaveGlow files: fixtures with their structure, pickled under the module names
``glow`` / ``glow_old`` by stand-in classes written here, must load without those modules, give our
reference model's outputs, and match an independent re-implementation of the original algorithm."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model

from waveglow.checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_model,
    model_from_payload,
    nvidia,
    nvidia_layout,
    restricted_pickle,
    save_model,
)
from waveglow.checkpoints.__main__ import main as nvidia_main
from waveglow.config import Config
from waveglow.model.flow import WaveGlow

AUDIO_OVERRIDES = dict(sampling_rate=8000, filter_length=64, hop_length=16, mel_fmax=4000.0)

# The original code's structure and algorithm (hook-based weight norm, per-layer or fused conditioning,
# unfold-based squeezing, batch-summed log-determinants), re-implemented independently of waveglow/.
GLOW_SOURCE = textwrap.dedent(
    '''
    import torch
    from torch import nn


    def _wn(conv):
        return nn.utils.weight_norm(conv, name="weight")


    class Invertible1x1Conv(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv1d(c, c, kernel_size=1, stride=1, padding=0, bias=False)

        def forward(self, z, reverse=False):
            W = self.conv.weight.squeeze(-1)
            if reverse:
                return nn.functional.conv1d(z, torch.inverse(W.float()).unsqueeze(-1))
            return self.conv(z), z.size(0) * z.size(2) * torch.logdet(W)


    class WN(nn.Module):
        def __init__(self, n_in, n_cond, n_layers, n_channels, kernel_size, old_layout):
            super().__init__()
            self.n_layers, self.n_channels, self.old_layout = n_layers, n_channels, old_layout
            self.in_layers = nn.ModuleList()
            self.start = _wn(nn.Conv1d(n_in, n_channels, 1))
            self.end = nn.Conv1d(n_channels, 2 * n_in, 1)
            if old_layout:
                self.cond_layers, self.res_layers, self.skip_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            else:
                self.cond_layer = _wn(nn.Conv1d(n_cond, 2 * n_channels * n_layers, 1))
                self.res_skip_layers = nn.ModuleList()
            for i in range(n_layers):
                d = 2 ** i
                pad = (kernel_size * d - d) // 2
                self.in_layers.append(_wn(nn.Conv1d(n_channels, 2 * n_channels, kernel_size, dilation=d, padding=pad)))
                if old_layout:
                    self.cond_layers.append(_wn(nn.Conv1d(n_cond, 2 * n_channels, 1)))
                    if i < n_layers - 1:
                        self.res_layers.append(_wn(nn.Conv1d(n_channels, n_channels, 1)))
                    self.skip_layers.append(_wn(nn.Conv1d(n_channels, n_channels, 1)))
                else:
                    out = 2 * n_channels if i < n_layers - 1 else n_channels
                    self.res_skip_layers.append(_wn(nn.Conv1d(n_channels, out, 1)))

        def normed(self):
            convs = [self.start, *self.in_layers]
            if self.old_layout:
                return convs + [*self.cond_layers, *self.res_layers, *self.skip_layers]
            return convs + [self.cond_layer, *self.res_skip_layers]

        def forward(self, forward_input):
            audio, spect = forward_input
            audio = self.start(audio)
            output = torch.zeros_like(audio)
            nc = self.n_channels
            fused = None if self.old_layout else self.cond_layer(spect)
            for i in range(self.n_layers):
                cond = self.cond_layers[i](spect) if self.old_layout else fused[:, 2 * nc * i : 2 * nc * (i + 1)]
                in_act = self.in_layers[i](audio) + cond
                acts = torch.tanh(in_act[:, :nc]) * torch.sigmoid(in_act[:, nc:])
                if self.old_layout:
                    if i < self.n_layers - 1:
                        audio = audio + self.res_layers[i](acts)
                    output = output + self.skip_layers[i](acts)
                else:
                    res_skip = self.res_skip_layers[i](acts)
                    if i < self.n_layers - 1:
                        audio = audio + res_skip[:, :nc]
                        output = output + res_skip[:, nc:]
                    else:
                        output = output + res_skip
            return self.end(output)


    class WaveGlow(nn.Module):
        def __init__(self, n_mel, n_flows, n_group, n_early_every, n_early_size, n_layers, n_channels,
                     kernel_size, win_length, hop_length, old_layout=False):
            super().__init__()
            self.upsample = nn.ConvTranspose1d(n_mel, n_mel, win_length, stride=hop_length)
            self.n_flows, self.n_group = n_flows, n_group
            self.n_early_every, self.n_early_size = n_early_every, n_early_size
            self.WN, self.convinv = nn.ModuleList(), nn.ModuleList()
            n_half, remaining = n_group // 2, n_group
            for k in range(n_flows):
                if k % n_early_every == 0 and k > 0:
                    n_half -= n_early_size // 2
                    remaining -= n_early_size
                self.convinv.append(Invertible1x1Conv(remaining))
                self.WN.append(WN(n_half, n_mel * n_group, n_layers, n_channels, kernel_size, old_layout))
            self.n_remaining_channels = remaining

        def _unfold(self, spect):
            g = self.n_group
            spect = spect.unfold(2, g, g).permute(0, 2, 1, 3)
            return spect.contiguous().view(spect.size(0), spect.size(1), -1).permute(0, 2, 1)

        def forward(self, forward_input):
            spect, audio = forward_input
            spect = self.upsample(spect)
            if spect.size(2) > audio.size(1):
                spect = spect[:, :, : audio.size(1)]
            spect = self._unfold(spect)
            audio = audio.unfold(1, self.n_group, self.n_group).permute(0, 2, 1)
            output_audio, log_s_list, log_det_W_list = [], [], []
            for k in range(self.n_flows):
                if k % self.n_early_every == 0 and k > 0:
                    output_audio.append(audio[:, : self.n_early_size, :])
                    audio = audio[:, self.n_early_size :, :]
                audio, log_det_W = self.convinv[k](audio)
                log_det_W_list.append(log_det_W)
                n_half = audio.size(1) // 2
                audio_0, audio_1 = audio[:, :n_half, :], audio[:, n_half:, :]
                output = self.WN[k]((audio_0, spect))
                log_s, b = output[:, n_half:, :], output[:, :n_half, :]
                audio_1 = torch.exp(log_s) * audio_1 + b
                log_s_list.append(log_s)
                audio = torch.cat([audio_0, audio_1], 1)
            output_audio.append(audio)
            return torch.cat(output_audio, 1), log_s_list, log_det_W_list

        def infer_with(self, spect, z):
            """The original infer, with the noise given (laid out as z: early outputs first)."""
            spect = self.upsample(spect)
            time_cutoff = self.upsample.kernel_size[0] - self.upsample.stride[0]
            spect = self._unfold(spect[:, :, :-time_cutoff])
            n_early = (self.n_flows - 1) // self.n_early_every
            audio = z[:, n_early * self.n_early_size :]
            for k in reversed(range(self.n_flows)):
                n_half = audio.size(1) // 2
                audio_0, audio_1 = audio[:, :n_half, :], audio[:, n_half:, :]
                output = self.WN[k]((audio_0, spect))
                s, b = output[:, n_half:, :], output[:, :n_half, :]
                audio_1 = (audio_1 - b) / torch.exp(s)
                audio = self.convinv[k](torch.cat([audio_0, audio_1], 1), reverse=True)
                if k % self.n_early_every == 0 and k > 0:
                    j = k // self.n_early_every - 1
                    audio = torch.cat([z[:, j * self.n_early_size : (j + 1) * self.n_early_size], audio], 1)
            return audio.permute(0, 2, 1).contiguous().view(audio.size(0), -1)

        def remove_weightnorm(self):
            for wn in self.WN:
                for conv in wn.normed():
                    nn.utils.remove_weight_norm(conv)
            return self
    '''
)


# ---------------------------------------------------------------------------------------------- fixtures
def _import_glow(tmp_path: Path, module_name: str):
    warnings.filterwarnings("ignore", message=".*torch.nn.utils.weight_norm.* is deprecated")
    folder = tmp_path / "nvidia_src"
    folder.mkdir(exist_ok=True)
    (folder / f"{module_name}.py").write_text(GLOW_SOURCE)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(str(folder))


def _forget(module_name: str) -> None:
    sys.modules.pop(module_name, None)
    assert module_name not in sys.modules


def _copy_conv(dst: torch.nn.Conv1d, weight_g, weight_v, bias) -> None:
    dst.weight_g.copy_(weight_g)
    dst.weight_v.copy_(weight_v)
    dst.bias.copy_(bias)


def _gvb(conv, rows=slice(None)):
    p = conv.parametrizations.weight
    return p.original0[rows], p.original1[rows], conv.bias[rows]


@torch.no_grad()
def build_nvidia_module(glow, ours: WaveGlow, old_layout: bool):
    """A module of the original structure holding the same weights as ``ours`` (which has weight norm)."""
    m, a = ours.model_cfg, ours.audio_cfg
    module = glow.WaveGlow(
        m.n_mel_channels,
        m.n_flows,
        m.n_group,
        m.n_early_every,
        m.n_early_size,
        m.n_layers,
        m.n_channels,
        m.kernel_size,
        a.win_length,
        a.hop_length,
        old_layout,
    )
    module.upsample.load_state_dict(ours.upsample.state_dict())
    nc = m.n_channels
    for k, (wn, ref) in enumerate(zip(module.WN, ours.WN)):
        module.convinv[k].conv.weight.copy_(ours.convinv[k].conv.weight)
        _copy_conv(wn.start, *_gvb(ref.start))
        wn.end.load_state_dict(ref.end.state_dict())
        for i in range(m.n_layers):
            _copy_conv(wn.in_layers[i], *_gvb(ref.in_layers[i]))
            if old_layout:
                _copy_conv(wn.cond_layers[i], *_gvb(ref.cond_layer, slice(2 * nc * i, 2 * nc * (i + 1))))
                if i < m.n_layers - 1:
                    _copy_conv(wn.res_layers[i], *_gvb(ref.res_skip_layers[i], slice(0, nc)))
                    _copy_conv(wn.skip_layers[i], *_gvb(ref.res_skip_layers[i], slice(nc, 2 * nc)))
                else:
                    _copy_conv(wn.skip_layers[i], *_gvb(ref.res_skip_layers[i]))
        if not old_layout:
            _copy_conv(wn.cond_layer, *_gvb(ref.cond_layer))
            for i in range(m.n_layers):
                _copy_conv(wn.res_skip_layers[i], *_gvb(ref.res_skip_layers[i]))
    return module.eval()


def _inputs(seed: int = 1, frames: int = 6):
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(2, TINY_MODEL.n_mel_channels, frames, generator=gen)
    audio = torch.randn(2, frames * TINY_AUDIO.hop_length, generator=gen) * 0.3
    z = torch.randn(
        2, TINY_MODEL.n_group, frames * TINY_AUDIO.hop_length // TINY_MODEL.n_group, generator=gen
    )
    return mel, audio, z


def _save_release_file(
    tmp_path: Path,
    module_name: str,
    old_layout: bool,
    legacy: bool = False,
    remove_weight_norm: bool = False,
    optimizer: bool = True,
    pickle_protocol: int = 2,
):
    """(path, in-memory original-style module, reference model) for a file like the original train.py's."""
    ours = make_tiny_model()
    glow = _import_glow(tmp_path, module_name)
    module = build_nvidia_module(glow, ours, old_layout)
    if remove_weight_norm:
        module.remove_weightnorm()
    payload = {"model": module, "iteration": 10, "learning_rate": 1e-4}
    if optimizer:  # the layout of an Adam state_dict (building a real Adam would import torch._dynamo)
        params = list(module.parameters())
        payload["optimizer"] = {
            "state": {
                i: {"step": 10, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                for i, p in enumerate(params)
            },
            "param_groups": [
                {
                    "lr": 1e-4,
                    "betas": (0.9, 0.999),
                    "eps": 1e-8,
                    "weight_decay": 0,
                    "amsgrad": False,
                    "params": list(range(len(params))),
                }
            ],
        }
    path = tmp_path / f"{module_name}_{'legacy' if legacy else 'zip'}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(payload, path, _use_new_zipfile_serialization=not legacy, pickle_protocol=pickle_protocol)
    _forget(module_name)
    return path, module, ours


def _assert_same_outputs(loaded: WaveGlow, ours: WaveGlow, module=None, tol: float = 1e-5) -> None:
    mel, audio, z = _inputs()
    with torch.no_grad():
        out, ref = loaded(audio, mel), ours(audio, mel)
        assert torch.allclose(out.z, ref.z, atol=1e-6, rtol=0)
        assert torch.allclose(out.log_det, ref.log_det, atol=1e-4, rtol=1e-6)
        back, ref_back = loaded.reverse(z, mel), ours.reverse(z, mel)
        assert torch.allclose(back, ref_back, atol=1e-6, rtol=0)
        if module is None:
            return
        # Against the original algorithm: z, the batch-summed log-det, and the synthesis from the same noise.
        z_orig, log_s_list, log_det_w_list = module((mel, audio))
        assert (out.z - z_orig).abs().max().item() < tol
        log_det_orig = sum(s.sum() for s in log_s_list) + sum(log_det_w_list)
        assert abs(out.log_det.sum().item() - log_det_orig.item()) < 1e-3 * max(1.0, abs(log_det_orig.item()))
        assert (back - module.infer_with(mel, z)).abs().max().item() < tol


# ---------------------------------------------------------------------------------------------- loading
@pytest.mark.parametrize(
    "module_name, old_layout, legacy",
    [("glow", False, False), ("glow", False, True), ("glow_old", True, False), ("glow_old", True, True)],
)
def test_release_file_loads_without_glow_and_matches(tmp_path, module_name, old_layout, legacy):
    path, module, ours = _save_release_file(tmp_path, module_name, old_layout, legacy=legacy)
    assert nvidia.is_nvidia_checkpoint(path)
    loaded = nvidia.load_nvidia_checkpoint(path, **AUDIO_OVERRIDES)
    assert module_name not in sys.modules  # nothing imported NVIDIA's module
    assert loaded.has_weight_norm and loaded.model_cfg == TINY_MODEL and loaded.audio_cfg == TINY_AUDIO
    ref_state, state = ours.state_dict(), loaded.state_dict()
    assert ref_state.keys() == state.keys()
    assert all(torch.equal(ref_state[k], state[k]) for k in state)  # fusion of rows is exact
    assert all(t.dtype == torch.float32 for t in state.values())
    _assert_same_outputs(loaded, ours, module)


def test_fused_weight_norm_rows_are_exact(tmp_path):
    """Effective weight of the fused cond_layer == the per-layer effective weights stacked, bit for bit."""
    path, module, _ = _save_release_file(tmp_path, "glow_old", old_layout=True)
    loaded = nvidia.load_nvidia_checkpoint(path, **AUDIO_OVERRIDES)
    for wn, old in zip(loaded.WN, module.WN):
        per_layer = torch.cat([torch._weight_norm(c.weight_v, c.weight_g, 0) for c in old.cond_layers])
        assert torch.equal(wn.cond_layer.weight, per_layer)
        last = len(old.skip_layers) - 1
        for i, skip in enumerate(old.skip_layers):
            parts = ([old.res_layers[i]] if i < last else []) + [skip]
            stacked = torch.cat([torch._weight_norm(c.weight_v, c.weight_g, 0) for c in parts])
            assert torch.equal(wn.res_skip_layers[i].weight, stacked)


@pytest.mark.parametrize("module_name, old_layout", [("glow", False), ("glow_old", True)])
def test_weight_norm_removed_file(tmp_path, module_name, old_layout):
    path, module, ours = _save_release_file(
        tmp_path, module_name, old_layout, remove_weight_norm=True, optimizer=False
    )
    loaded = nvidia.load_nvidia_checkpoint(path, **AUDIO_OVERRIDES)
    assert not loaded.has_weight_norm
    assert not any("parametrizations" in k for k in loaded.state_dict())
    _assert_same_outputs(loaded, ours, module)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_plain_state_dict(tmp_path, prefix):
    path, module, ours = _save_release_file(tmp_path, "glow", old_layout=False)
    plain = tmp_path / "plain.pt"
    torch.save({prefix + k: v for k, v in module.state_dict().items()}, plain)
    assert nvidia.is_nvidia_checkpoint(plain)
    loaded = nvidia.load_nvidia_checkpoint(plain, **AUDIO_OVERRIDES)
    assert loaded.has_weight_norm
    _assert_same_outputs(loaded, ours, module)


def test_partly_weight_normed_file_is_folded(tmp_path):
    """A file where some convs still have weight_g/weight_v and others not: all are folded, outputs kept."""
    path, module, ours = _save_release_file(tmp_path, "glow_old", old_layout=True)
    state = module.state_dict()
    for name in ("WN.0.cond_layers.1", "WN.1.skip_layers.0", "WN.2.start"):
        g, v = state.pop(f"{name}.weight_g"), state.pop(f"{name}.weight_v")
        state[f"{name}.weight"] = torch._weight_norm(v, g, 0)
    mixed = tmp_path / "mixed.pt"
    torch.save(state, mixed)
    loaded = nvidia.load_nvidia_checkpoint(mixed, **AUDIO_OVERRIDES)
    assert not loaded.has_weight_norm
    _assert_same_outputs(loaded, ours, module)


@pytest.mark.parametrize(
    "drop, message",
    [
        ("WN.1.cond_layers.0.bias", "incomplete"),
        ("convinv.3.conv.weight", "convinv"),
        ("upsample.weight", "upsample"),
    ],
)
def test_incomplete_file_is_an_error_naming_it(tmp_path, drop, message):
    path, module, _ = _save_release_file(tmp_path, "glow_old", old_layout=True)
    state = module.state_dict()
    del state[drop]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(CheckpointError, match=f"broken.pt.*{message}"):
        nvidia.load_nvidia_checkpoint(broken, **AUDIO_OVERRIDES)


def test_own_checkpoint_is_refused_by_nvidia_loader(tmp_path):
    path = tmp_path / "ours.pt"
    save_model(make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO), path)
    with pytest.raises(CheckpointError, match="one of our checkpoints"):
        nvidia.load_nvidia_checkpoint(path)


def test_deep_learning_examples_fp16_state_dict(tmp_path):
    """{'state_dict' (module. prefix, per-layer cond_layers, fused res_skip, fp16), 'config'} -> float32."""
    ours = make_tiny_model().half().float()  # the reference holds exactly the fp16-representable weights
    glow = _import_glow(tmp_path, "glow")
    module = build_nvidia_module(glow, ours, old_layout=True)
    _forget("glow")
    state = {}
    for key, value in module.state_dict().items():
        key = key.replace("res_layers", "res_skip_layers")
        if ".skip_layers." in key:
            continue
        state["module." + key] = value.half()
    nc = TINY_MODEL.n_channels
    for k, wn in enumerate(ours.WN):  # fused res_skip rows, as in that release
        for i, layer in enumerate(wn.res_skip_layers):
            g, v, b = _gvb(layer)
            for name, t in (("weight_g", g), ("weight_v", v), ("bias", b)):
                state[f"module.WN.{k}.res_skip_layers.{i}.{name}"] = t.detach().half()
    assert nc == TINY_MODEL.n_channels
    config = {
        "n_mel_channels": 8,
        "n_flows": 4,
        "n_group": 8,
        "n_early_every": 2,
        "n_early_size": 2,
        "WN_config": {"n_layers": 2, "kernel_size": 3, "n_channels": 16},
    }
    path = tmp_path / "nvidia_waveglowpyt_fp16.pt"
    torch.save({"state_dict": state, "config": config, "epoch": 3}, path)
    assert nvidia.is_nvidia_checkpoint(path)
    loaded = nvidia.load_nvidia_checkpoint(path, **AUDIO_OVERRIDES)
    assert all(t.dtype == torch.float32 for t in loaded.state_dict().values())
    ref_state = ours.state_dict()
    assert all(torch.equal(ref_state[k], v) for k, v in loaded.state_dict().items())
    _assert_same_outputs(loaded, ours, module)


def test_load_model_dispatches_and_converter_round_trips(tmp_path):
    path, module, ours = _save_release_file(tmp_path, "glow", old_layout=False)
    model, config = load_model(path, **AUDIO_OVERRIDES)
    assert config.model == TINY_MODEL and config.audio == TINY_AUDIO
    _assert_same_outputs(model, ours, module)

    dst = tmp_path / "converted.pt"
    returned = nvidia.convert(path, dst, **AUDIO_OVERRIDES)
    assert returned.model == TINY_MODEL
    assert not nvidia.is_nvidia_checkpoint(dst)
    data = load_checkpoint(dst)  # weights_only=True
    again, again_cfg = model_from_payload(data)
    assert again_cfg.audio == TINY_AUDIO and again.has_weight_norm
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ours.state_dict().items())
    _assert_same_outputs(again, ours)

    # The CLI, with weight norm folded for inference.
    cli_dst = tmp_path / "cli.pt"
    args = [
        "convert",
        str(path),
        str(cli_dst),
        "--remove-weight-norm",
        "--sampling-rate",
        "8000",
        "--hop-length",
        "16",
        "--filter-length",
        "64",
        "--mel-fmax",
        "4000",
    ]
    assert nvidia_main(args) == 0
    folded, _ = load_model(cli_dst)
    assert not folded.has_weight_norm
    _assert_same_outputs(folded, ours)
    assert (
        nvidia_main(
            [
                "inspect",
                str(path),
                "--hop-length",
                "16",
                "--filter-length",
                "64",
                "--sampling-rate",
                "8000",
                "--mel-fmax",
                "4000",
            ]
        )
        == 0
    )


def test_vocoder_and_init_from_accept_release_files(tmp_path):
    """The other entry points (Vocoder.from_checkpoint, train.py --init-from) take NVIDIA files as they are."""
    from waveglow.synth.vocoder import Vocoder
    from waveglow.train.loop import build_model

    path, module, ours = _save_release_file(tmp_path, "glow_old", old_layout=True, legacy=True)
    mel, audio, z = _inputs()
    vocoder = Vocoder.from_checkpoint(path, device="cpu")
    assert vocoder.config.model == TINY_MODEL
    overrides = {"sampling_rate": 8000, "filter_length": 64, "hop_length": 16, "mel_fmax": 4000.0}
    retuned = Vocoder.from_checkpoint(path, device="cpu", audio_overrides=overrides)
    assert retuned.config.audio == TINY_AUDIO and retuned.sampling_rate == 8000
    finetune = build_model(Config(model=TINY_MODEL, audio=TINY_AUDIO), init_from=path)
    assert finetune.has_weight_norm
    with torch.no_grad():
        assert (vocoder.model.reverse(z, mel) - ours.reverse(z, mel)).abs().max().item() < 1e-6
        assert (finetune(audio, mel).z - ours(audio, mel).z).abs().max().item() < 1e-6


def test_infer_cli_sets_the_audio_of_release_files(tmp_path):
    """infer.py --sampling-rate/--hop-length/...: a file trained at 8 kHz with hop 16 is synthesised so."""
    import soundfile as sf

    import infer

    path, _, _ = _save_release_file(tmp_path, "glow", old_layout=False, pickle_protocol=4)
    assert nvidia.is_nvidia_checkpoint(path)  # STACK_GLOBAL (pickle protocol 4) is recognised too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_model(path)[0].model_cfg.n_flows > 0
    assert not [w for w in caught if "pickle protocol" in str(w.message)]  # torch's warning is not shown
    mel = (
        torch.randn(TINY_AUDIO.n_mel_channels, 10, generator=torch.Generator().manual_seed(0)) - 8.0
    ).clamp(min=-11.5)
    np.save(tmp_path / "utt.npy", mel.numpy())
    flags = ["--sampling-rate", "8000", "--filter-length", "64", "--hop-length", "16", "--mel-fmax", "4000"]
    common = ["--checkpoint", str(path), "--device", "cpu", "--no-progress"]
    assert infer.main([*common, *flags, "--output", str(tmp_path / "out"), str(tmp_path / "utt.npy")]) == 0
    audio, rate = sf.read(tmp_path / "out" / "utt.wav")
    assert rate == 8000 and audio.shape == (10 * 16,)
    # without the flags the file is taken as the published 22.05 kHz model, whose upsampler kernel this
    # tiny file does not have (64 samples): hop 64 // 4 = 16 is inferred, but the rate stays 22050
    assert infer.main([*common, "--output", str(tmp_path / "default"), str(tmp_path / "utt.npy")]) == 0
    assert sf.read(tmp_path / "default" / "utt.wav")[1] == 22050


def test_own_checkpoints_are_not_nvidia(tmp_path):
    ours = make_tiny_model()
    path = tmp_path / "ours.pt"
    save_model(ours, Config(model=TINY_MODEL, audio=TINY_AUDIO), path)
    assert not nvidia.is_nvidia_checkpoint(path)
    assert not nvidia.is_nvidia_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert not nvidia.is_nvidia_checkpoint(junk)
    with pytest.raises(CheckpointError, match="junk.pt"):
        nvidia.load_nvidia_checkpoint(junk)


def test_audio_defaults_and_overrides(tmp_path):
    published = nvidia_layout.infer_audio_config(80, 1024, {}, tmp_path / "x.pt")
    assert (published.sampling_rate, published.hop_length, published.win_length) == (22050, 256, 1024)
    assert published.filter_length == 1024 and published.mel_fmax == 8000.0
    custom = nvidia_layout.infer_audio_config(
        80, 1024, {"sampling_rate": 24000, "hop_length": 300}, tmp_path / "x.pt"
    )
    assert (custom.sampling_rate, custom.hop_length, custom.win_length) == (24000, 300, 1024)
    with pytest.raises(CheckpointError, match="kernel is 1024"):
        nvidia_layout.infer_audio_config(80, 1024, {"win_length": 800}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="unknown audio setting"):
        nvidia_layout.infer_audio_config(80, 1024, {"hop": 256}, tmp_path / "x.pt")


def test_model_config_without_early_outputs(tmp_path):
    cfg_in = TINY_MODEL.__class__(**{**TINY_MODEL.__dict__, "n_flows": 2, "n_early_every": 4})
    torch.manual_seed(0)
    ours = WaveGlow(cfg_in, TINY_AUDIO).eval()
    path = tmp_path / "no_early.pt"
    torch.save(
        {
            k.replace("parametrizations.weight.original0", "weight_g").replace(
                "parametrizations.weight.original1", "weight_v"
            ): v
            for k, v in ours.state_dict().items()
        },
        path,
    )
    loaded = nvidia.load_nvidia_checkpoint(path, **AUDIO_OVERRIDES)
    assert loaded.model_cfg.n_flows == 2 and loaded.model_cfg.n_early_outputs() == 0
    _assert_same_outputs(loaded, ours)


class _OldBackend:
    """Pickles as a call of torch.nn.backends.thnn._get_thnn_function_backend(), as torch 0.4 modules did."""

    def __reduce__(self):
        import torch.nn.backends.thnn as thnn

        return (thnn._get_thnn_function_backend, ())


def test_very_old_pickle_with_thnn_backend(tmp_path, monkeypatch):
    import torch.nn.backends.thnn as thnn

    def _get_thnn_function_backend():
        raise AssertionError("must never be called")

    _get_thnn_function_backend.__qualname__ = "_get_thnn_function_backend"
    _get_thnn_function_backend.__module__ = thnn.__name__
    monkeypatch.setattr(thnn, "_get_thnn_function_backend", _get_thnn_function_backend, raising=False)
    ours = make_tiny_model()
    glow = _import_glow(tmp_path, "glow_old")
    module = build_nvidia_module(glow, ours, old_layout=True)
    for sub in module.modules():
        sub.__dict__["_backend"] = _OldBackend()
    path = tmp_path / "waveglow_old.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"model": module}, path, _use_new_zipfile_serialization=False)
    for sub in module.modules():
        del sub.__dict__["_backend"]
    _forget("glow_old")
    monkeypatch.delattr(thnn, "_get_thnn_function_backend")
    assert "_get_thnn_function_backend" in {
        a.split(" ")[-1] for n, a in restricted_pickle.pickle_opcodes(path) if n == "GLOBAL"
    }
    loaded = nvidia.load_nvidia_checkpoint(path, **AUDIO_OVERRIDES)
    _assert_same_outputs(loaded, ours, module)


# ---------------------------------------------------------------------------------------------- safety
class _RunsCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WritesFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload_kind", ["system", "exec", "inside_release_file"])
def test_pickle_that_runs_code_is_refused_without_effect(tmp_path, payload_kind):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    if payload_kind == "system":
        torch.save({"model": _RunsCommand(marker)}, path)
        refused = "system"
    elif payload_kind == "exec":
        torch.save({"model": _WritesFile(marker)}, path)
        refused = "exec"
    else:  # a genuine-looking release file whose optimizer slot runs a command
        glow = _import_glow(tmp_path, "glow")
        module = build_nvidia_module(glow, make_tiny_model(), old_layout=False)
        torch.save({"model": module, "iteration": 1, "optimizer": _RunsCommand(marker)}, path)
        _forget("glow")
        refused = "system"
    with pytest.raises(UnsafeCheckpointError, match=refused) as info:
        nvidia.load_nvidia_checkpoint(path)
    assert "evil.pt" in str(info.value)
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_torchscript_archive_is_refused(tmp_path):
    """torch.load would pass these to torch.jit.load, outside the restricted unpickler."""
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    assert not nvidia.is_nvidia_checkpoint(path)
    with pytest.raises(CheckpointError, match="TorchScript"):
        nvidia.load_nvidia_checkpoint(path)


def _legacy_file(main_pickle: bytes) -> bytes:
    """A legacy-format torch.save stream around a hand-written main pickle (no storages)."""
    import io
    import pickle

    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    out = io.BytesIO()
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {}}
    for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info):
        pickle.dump(obj, out, protocol=2)
    out.write(main_pickle)
    pickle.dump([], out, protocol=2)
    return out.getvalue()


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


@pytest.mark.parametrize(
    "target",
    [
        "torch._utils\n_rebuild_tensor_v2",
        "glow\nWaveGlow",
        "collections\nOrderedDict",
        "torch.nn.backends.thnn\n_get_thnn_function_backend",
    ],
)
def test_pickle_cannot_alter_allowed_globals(tmp_path, monkeypatch, target):
    """BUILD on an allowed global (to set dump_patches), then a legacy 'module' id naming it: torch's legacy
    loader would write <name>.patch into the working directory. Refused, nothing written or altered."""
    main = (
        b"\x80\x02c"
        + target.encode()
        + b"\nq\x00N}"
        + _unicode("dump_patches")
        + b"\x88s\x86b0"
        + b"("
        + _unicode("module")
        + b"h\x00"
        + _unicode("f.py")
        + _unicode("other source")
        + b"tQ."
    )
    path = tmp_path / "evil_legacy.pt"
    path.write_bytes(_legacy_file(main))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="evil_legacy.pt"):
        nvidia.load_nvidia_checkpoint(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil_legacy.pt"]
    assert not hasattr(torch._utils._rebuild_tensor_v2, "dump_patches")
    assert all(cls.dump_patches is False for cls in restricted_pickle._STAND_INS.values())


def test_nvidia_state_dict_with_extra_entries(tmp_path):
    path, module, ours = _save_release_file(tmp_path, "glow", old_layout=False)
    state = module.state_dict()
    torch.save({**state, "version": 1, "notes": "fine-tuned"}, tmp_path / "meta.pt")
    loaded, _ = load_model(tmp_path / "meta.pt", **AUDIO_OVERRIDES)  # metadata is ignored
    _assert_same_outputs(loaded, ours, module)
    torch.save({**state, "upsample.num_batches_tracked": torch.tensor(0)}, tmp_path / "int.pt")
    with pytest.raises(CheckpointError, match="non-floating-point tensors among the weights .upsample.num_"):
        load_model(tmp_path / "int.pt")
    torch.save({**state, "extra.weight": torch.zeros(2)}, tmp_path / "extra.pt")
    with pytest.raises(
        CheckpointError, match=r"weights do not fit .* Unexpected key\(s\) in state_dict: .extra.weight"
    ):
        load_model(tmp_path / "extra.pt")


def test_load_model_reads_a_files_format_once(tmp_path, monkeypatch):
    """load_model classifies a file once: one format read for an NVIDIA file (not one per reader), and
    sniff names the kind of ours, NVIDIA's and unreadable files."""
    path, module, ours = _save_release_file(tmp_path, "glow", old_layout=False)
    own = tmp_path / "ours.pt"
    save_model(make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO), own)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert nvidia.sniff(path) == nvidia.Sniffed("zip", "nvidia")
    assert nvidia.sniff(own) == nvidia.Sniffed("zip", "ours")
    assert nvidia.sniff(junk) == nvidia.Sniffed(None, "unknown")

    calls = []
    real = restricted_pickle.file_format
    for module_ in (restricted_pickle, nvidia):
        monkeypatch.setattr(module_, "file_format", lambda p, real=real: calls.append(p) or real(p))
    loaded, _ = load_model(path, **AUDIO_OVERRIDES)
    assert calls == [path]
    _assert_same_outputs(loaded, ours, module)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_model(junk)
