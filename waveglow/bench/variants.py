"""What the benchmark measures: the model sizes (random weights) and the synthesis variants built from them.

A variant is named ``eager[-inference-mode|-tf32|-autocast-<precision>]`` (``WaveGlow`` with weight norm
removed) or ``fast-<precision>[-all-flows][-fold][-compile][-graphs]`` (``prepare_for_inference`` with those
options). Everything runs in true float32 unless its name says otherwise (``tf32`` lets CUDA convolutions and
matrix products use TF32, which cuDNN does by default on Ampere and later GPUs).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch

from waveglow.bench.flops import fast_flops_per_sample, light_flops_per_sample, model_flops_per_sample
from waveglow.config import AudioConfig, Config, ModelConfig
from waveglow.device import tf32
from waveglow.model.architectures import Flow, build_flow
from waveglow.synth.fast import PRECISIONS, prepare_for_inference
from waveglow.synth.vocoder import PRECISION_CHOICES, Vocoder

# configs/light.yaml: the SqueezeWave-style light flow, 5.7M parameters
LIGHT = ModelConfig(
    architecture="light", n_group=128, n_early_every=2, n_early_size=16, n_layers=8, n_channels=112
)
MODELS: dict[str, ModelConfig] = {
    "default": ModelConfig(),  # the published model, 87.9M parameters
    "small": ModelConfig(n_flows=8, n_layers=4, n_channels=128),
    "demo": ModelConfig(n_flows=8, n_layers=4, n_channels=32),  # configs/demo.yaml, 8.1M parameters
    "light": LIGHT,
    # the bundled voice (configs/allison_light.yaml): the same flow on MDCT bands
    "light-mdct": dataclasses.replace(LIGHT, squeeze="mdct"),
}


def default_variants(device: torch.device, precisions: list[str]) -> list[str]:
    """The variants measured unless --variants says otherwise."""
    names = ["eager", "eager-inference-mode"] + (["eager-tf32"] if device.type == "cuda" else [])
    names += [f"vocoder-{precision}" for precision in precisions]
    for precision in precisions:
        names += [f"fast-{precision}", f"fast-{precision}-all-flows", f"fast-{precision}-fold"]
        if device.type == "cuda":
            if precision != "fp32":
                names.append(f"eager-autocast-{precision}")
            names += [f"fast-{precision}-fold-graphs", f"fast-{precision}-fold-compile-graphs"]
    return names


def build_model(name: str, seed: int = 0) -> Flow:
    """A randomly initialised model of the named size, weight norm kept (as after training)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return random_model(MODELS[name], seed)


def random_model(model_cfg: ModelConfig, seed: int = 0) -> Flow:
    """A randomly initialised model of this config (default audio settings), weight norm kept, with non-zero
    ``end`` convolutions so that no coupling is an identity."""
    torch.manual_seed(seed)
    model = build_flow(copy.deepcopy(model_cfg), AudioConfig())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for wn in model.WN:  # couplings that are not identities
            wn.end.weight.copy_(torch.randn(wn.end.weight.shape, generator=gen) * 0.02)
            wn.end.bias.copy_(torch.randn(wn.end.bias.shape, generator=gen) * 0.02)
    return model.eval()


def copy_model(model: Flow) -> Flow:
    """A copy through the state dict (``copy.deepcopy`` fails on weight-norm parametrised convs)."""
    clone = build_flow(copy.deepcopy(model.model_cfg), copy.deepcopy(model.audio_cfg))
    if not model.has_weight_norm:
        clone.remove_weight_norm()
    clone.load_state_dict(model.state_dict(), strict=True)
    return clone.to(next(model.parameters()).device).train(model.training)


def variants_for(model: Flow, names: list[str]) -> list[str]:
    """The variants that apply to ``model``: the fast engine is WaveGlow's; the light flow runs its own
    (time-major) reverse pass, so only the eager variants apply to it."""
    if model.model_cfg.architecture == "waveglow":
        return names
    return [name for name in names if name.startswith(("eager", "vocoder"))]


def make_variant(name: str, model: Flow, device: torch.device) -> tuple[Any, Callable, float]:
    """name -> (module, infer function (mel, sigma, generator) -> audio, preparation seconds)."""
    start = time.perf_counter()
    if name.startswith("eager"):
        eager = copy_model(model).remove_weight_norm().to(device).eval()
        if name == "eager":
            fn = eager.infer
        elif name == "eager-inference-mode":

            def fn(mel, sigma, generator):
                with torch.inference_mode():
                    return eager.infer(mel, sigma, generator)

        elif name == "eager-tf32":

            def fn(mel, sigma, generator):
                with tf32(True):
                    return eager.infer(mel, sigma, generator)

        elif name.startswith("eager-autocast-"):
            dtype = PRECISIONS[name.removeprefix("eager-autocast-")]

            def fn(mel, sigma, generator):
                with torch.autocast(device.type, dtype=dtype):
                    return eager.infer(mel, sigma, generator)

        else:
            raise ValueError(f"unknown variant {name!r}")
        return eager, fn, time.perf_counter() - start
    if name.startswith("vocoder-"):
        vocoder = default_path(model, device, name.removeprefix("vocoder-"))
        return vocoder, vocoder_infer(vocoder), time.perf_counter() - start
    parts = name.split("-")
    if parts[0] != "fast" or len(parts) < 2 or parts[1] not in PRECISIONS:
        raise ValueError(f"unknown variant {name!r} (fast-<precision>[-all-flows][-fold][-compile][-graphs])")
    options = set(parts[2:])
    known = {"all", "flows", "fold", "compile", "graphs"}
    if options - known:
        raise ValueError(f"unknown option(s) {sorted(options - known)} in variant {name!r}")
    fast = prepare_for_inference(
        model,
        device,
        precision=parts[1],
        compile="compile" in options,
        cuda_graphs="graphs" in options,
        fold_upsampler="fold" in options,
        cond_all_flows="all" in options,
    )
    return fast, fast.infer, time.perf_counter() - start


def default_path(model: Flow, device: torch.device, precision: str) -> Vocoder:
    """What a user gets: ``Vocoder(model, config, precision=...)`` with its default engine ("auto": the
    faster exact engine for this model here, timed once and cached); precision "auto" (variant
    ``vocoder-auto``) lets it choose the precision too."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r} in variant vocoder-{precision}")
    config = Config(model=model.model_cfg, audio=model.audio_cfg)
    return Vocoder(copy_model(model), config, device=device, precision=precision)


def vocoder_infer(vocoder: Vocoder) -> Callable:
    """(mel (B, n_mel, F), sigma, generator) -> audio (B, F*hop) through the Vocoder's synthesis path, with z
    drawn as ``WaveGlow.infer`` draws it (so its audio compares with the other variants' sample by sample)."""

    def fn(mel: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
        columns = vocoder.z_columns(mel.shape[2])
        z = torch.randn(mel.shape[0], vocoder.n_group, columns, generator=generator, device=mel.device)
        with torch.inference_mode():
            audio = vocoder._synthesize_batch(list(mel), list(z * sigma))
        return torch.stack(audio)

    return fn


def executed_flops(name: str, model: Flow) -> float:
    """FLOPs per output sample that the named variant executes (see ``waveglow.bench.flops``)."""
    if name.startswith(("eager", "vocoder")):
        return nominal_flops(model)
    return fast_flops_per_sample(model.model_cfg, model.audio_cfg, fold_upsampler="fold" in name.split("-"))


def nominal_flops(model: Flow) -> float:
    """FLOPs per output sample of the model's plain reverse pass (the benchmark's "model GFLOP/s")."""
    if model.model_cfg.architecture == "light":
        return light_flops_per_sample(model.model_cfg, model.audio_cfg)
    return model_flops_per_sample(model.model_cfg, model.audio_cfg)


def precision_of(name: str) -> str:
    """The precision a variant name asks for (fp32 when it names none)."""
    for precision in (*PRECISIONS, "tf32"):
        if name.endswith(f"-{precision}") or f"-{precision}-" in name:
            return precision
    return "fp32"
