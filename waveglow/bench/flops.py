"""FLOP counts of WaveGlow synthesis: the plain ``WaveGlow.reverse`` and what ``FastWaveGlow`` executes.

Both count matrix products only (a multiply-add is 2 FLOPs), per output sample; the benchmark divides them
by measured time to report GFLOP/s and the fraction of the device's peak.
"""

from __future__ import annotations

import math

from waveglow.config import AudioConfig, ModelConfig


def model_flops_per_sample(model_cfg: ModelConfig, audio_cfg: AudioConfig) -> float:
    """FLOPs (multiply-add = 2) per output sample of the plain ``WaveGlow.reverse``.

    Counts every matrix product: the upsampler (each output sample receives win/hop frames), and per flow
    the 1x1 inverse, ``start``, ``cond_layer``, the dilated ``in_layers``, ``res_skip_layers`` and ``end``.
    About 20.3 MFLOP for the default model; elementwise work (tanh, sigmoid, exp) is not counted.
    """
    cfg, C, g = model_cfg, model_cfg.n_channels, model_cfg.n_group
    per_step = 0.0  # per time step (g samples)
    for remaining in cfg.flow_channels():
        n_in = remaining // 2  # channels entering the flow's WN
        per_step += 2 * remaining * remaining  # 1x1 inverse
        per_step += 2 * n_in * C  # start
        per_step += 2 * cfg.n_mel_channels * g * 2 * C * cfg.n_layers  # cond_layer
        per_step += cfg.n_layers * 2 * C * 2 * C * cfg.kernel_size  # in_layers
        per_step += (cfg.n_layers - 1) * 2 * C * 2 * C + 2 * C * C  # res_skip_layers
        per_step += 2 * C * 2 * n_in  # end
    upsample = 2 * cfg.n_mel_channels**2 * audio_cfg.win_length / audio_cfg.hop_length
    return per_step / g + upsample


def fast_flops_per_sample(
    model_cfg: ModelConfig, audio_cfg: AudioConfig, fold_upsampler: bool = False
) -> float:
    """FLOPs per output sample that ``FastWaveGlow`` executes (for batch 1; batches add the zero rows
    between utterances, ``(B-1) * pad`` rows per layer)."""
    cfg, C, g = model_cfg, model_cfg.n_channels, model_cfg.n_group
    n_mel, n_cond_out = cfg.n_mel_channels, 2 * C * cfg.n_layers
    n_taps = math.ceil(audio_cfg.win_length / audio_cfg.hop_length)
    foldable = audio_cfg.hop_length % g == 0
    per_step = 0.0
    for remaining in cfg.flow_channels():
        n_in = remaining // 2  # channels entering the flow's WN
        n_out = 2 * n_in
        per_step += 2 * remaining * remaining + 2 * n_in * C
        cond_in = n_taps * n_mel if (fold_upsampler and foldable) else n_mel * g
        per_step += 2 * cond_in * n_cond_out
        per_step += 2 * cfg.kernel_size * (n_in + 1) * 2 * C  # first in_layer with start folded in
        per_step += (cfg.n_layers - 1) * 2 * C * 2 * C * cfg.kernel_size
        per_step += (cfg.n_layers - 1) * 2 * C * (C + n_out) + 2 * C * n_out  # residual + folded skips
    upsample = 0.0 if (fold_upsampler and foldable) else 2 * n_mel * n_taps * n_mel
    return per_step / g + upsample / g


def light_flops_per_sample(model_cfg: ModelConfig, audio_cfg: AudioConfig) -> float:
    """FLOPs (multiply-add = 2) per output sample of ``LightWaveGlow.reverse``: per flow the 1x1 inverse,
    ``start``, the pointwise and residual maps of every layer and ``end`` at every z step, and
    ``cond_layer`` once per mel frame, and with ``squeeze: mdct`` the inverse DCT-IV of each block (2*g per
    sample). The depthwise convolutions (elementwise, 2*k*C per step and layer) and the MDCT's folds are not
    counted, like the other elementwise work. About 74 kFLOP (0.82 GMAC per second of audio) for
    configs/light.yaml.
    """
    cfg, C, g = model_cfg, model_cfg.n_channels, model_cfg.n_group
    steps_per_frame = audio_cfg.hop_length // g
    per_step = 0.0
    for remaining in cfg.flow_channels():
        n_in = remaining // 2  # channels entering the flow's WN
        per_step += 2 * remaining * remaining + 2 * n_in * C + 2 * C * 2 * n_in  # 1x1, start, end
        per_step += cfg.n_layers * (2 * C * 2 * C + 2 * C * C)  # pointwise, residual
        per_step += 2 * cfg.n_mel_channels * 2 * C * cfg.n_layers / steps_per_frame  # cond at frame rate
    if cfg.squeeze == "mdct":
        per_step += 2 * g * g  # the DCT-IV of the block
    return per_step / g
