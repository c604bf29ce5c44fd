"""FastWaveGlow: every fast path gives the plain model's audio; the FLOP count of the published model."""

from __future__ import annotations

import contextlib

import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model, randomize_end

from waveglow import AudioConfig, ModelConfig, WaveGlow
from waveglow.bench.flops import fast_flops_per_sample, model_flops_per_sample
from waveglow.synth.cuda_graphs import GraphedReverse
from waveglow.synth.fast import FastWaveGlow, prepare_for_inference

OPTIONS = [
    {},
    {"cond_all_flows": True},
    {"fold_upsampler": True},
    {"fold_upsampler": True, "cond_all_flows": True},
]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_flops_of_the_published_model_are_20_3_mflop_per_sample():
    flops = model_flops_per_sample(ModelConfig(), AudioConfig())
    # 12 flows x per time step of 8 samples: cond 640->4096, 8 dilated 256->512 k3, 7 res/skip 256->512
    # and one 256->256; the small terms (start, end, 1x1 inverse, upsampler) add about 0.3%.
    main_terms = 12 * (2 * 640 * 4096 + 8 * 2 * 256 * 512 * 3 + 7 * 2 * 256 * 512 + 2 * 256 * 256) / 8
    assert flops == pytest.approx(20.3e6, rel=0.005)
    assert main_terms < flops < main_terms * 1.005
    fast = fast_flops_per_sample(ModelConfig(), AudioConfig())
    folded = fast_flops_per_sample(ModelConfig(), AudioConfig(), fold_upsampler=True)
    # start folded into the first dilated conv, end into the skips: ~13.5% less; the upsampler fold halves
    # the conditioning (640 -> 4*80 inputs): ~33% less in all
    assert fast == pytest.approx(17.56e6, rel=0.005)
    assert folded == pytest.approx(13.62e6, rel=0.005)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o) or "plain")
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_infer_matches_plain_infer(tiny_model: WaveGlow, options: dict, batch: int):
    fast = FastWaveGlow.from_model(tiny_model, **options)
    mel = torch.randn(batch, 8, 9, generator=torch.Generator().manual_seed(batch))
    for sigma in (0.0, 0.7):
        plain = tiny_model.infer(mel, sigma, torch.Generator().manual_seed(3))
        quick = fast.infer(mel, sigma, torch.Generator().manual_seed(3))
        assert quick.shape == plain.shape == (batch, 9 * TINY_AUDIO.hop_length)
        assert plain.abs().max() > 0.1  # not a trivial output
        assert _max_diff(quick, plain) < 1e-4


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o) or "plain")
def test_fast_reverse_matches_plain_reverse_up_to_the_covered_length(tiny_model: WaveGlow, options: dict):
    fast = FastWaveGlow(tiny_model, **options)
    mel = torch.randn(2, 8, 5)
    covered = (5 - 1) * TINY_AUDIO.hop_length + TINY_AUDIO.win_length  # 128 samples > 5 * hop
    z = torch.randn(2, 8, covered // 8)
    assert _max_diff(fast.reverse(z, mel), tiny_model.reverse(z, mel)) < 1e-4
    with pytest.raises(ValueError, match="fewer than"):
        fast.reverse(torch.randn(2, 8, covered // 8 + 1), mel)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o) or "plain")
def test_mixed_lengths_in_one_batch_equal_each_utterance_alone(tiny_model: WaveGlow, options: dict):
    """Per-item lengths: each utterance's audio is what it gets alone, even with NaN in the padding."""
    fast = FastWaveGlow(tiny_model, **options)
    hop, g = TINY_AUDIO.hop_length, TINY_MODEL.n_group
    frames = [9, 4, 7]
    lengths = [-(-n * hop // g) for n in frames]
    gen = torch.Generator().manual_seed(11)
    mels = [torch.randn(8, n, generator=gen) for n in frames]
    zs = [0.7 * torch.randn(g, n, generator=gen) for n in lengths]
    mel_batch = torch.zeros(3, 8, max(frames))
    z_batch = torch.full((3, g, max(lengths)), float("nan"))
    for i, (mel, z) in enumerate(zip(mels, zs)):
        mel_batch[i, :, : frames[i]] = mel
        z_batch[i, :, : lengths[i]] = z
    batch = fast.reverse(z_batch, mel_batch, lengths=lengths)
    assert batch.shape == (3, g * max(lengths))
    for i, (mel, z) in enumerate(zip(mels, zs)):
        alone = tiny_model.reverse(z[None], mel[None])[0]
        assert alone.abs().max() > 0.1
        assert _max_diff(batch[i, : g * lengths[i]], alone) < 1e-4
    with pytest.raises(ValueError, match="do not fit"):
        fast.reverse(z_batch, mel_batch, lengths=[9, 4])


def test_published_layer_sizes_match_on_a_short_model():
    """The default WN width (8 layers x 256 channels, 80 mels, hop 256) on 4 flows and 0.05 s. The upsampler
    fold costs ~54 GFLOP per flow to build at this width, so it is checked here on the tiny model only and
    on the full model in the benchmark's output (max diff at sigma 0)."""
    torch.manual_seed(0)
    model = randomize_end(WaveGlow(ModelConfig(n_flows=4, n_early_every=2), AudioConfig()), scale=0.02).eval()
    model.remove_weight_norm()
    mel = torch.randn(1, 80, 4) - 5.0
    plain = model.infer(mel, 0.0)
    for options in OPTIONS[:2]:
        fast = prepare_for_inference(model, "cpu", **options)
        assert _max_diff(fast.infer(mel, 0.0), plain) < 1e-4
    gen_plain, gen_fast = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert _max_diff(fast.infer(mel, 0.6, gen_fast), model.infer(mel, 0.6, gen_plain)) < 1e-4


def test_model_with_weight_norm_is_left_unchanged():
    model = make_tiny_model(seed=1)
    assert model.has_weight_norm
    before = {name: value.clone() for name, value in model.state_dict().items()}
    fast = prepare_for_inference(model, "cpu")
    assert model.has_weight_norm
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    mel = torch.randn(1, 8, 6)
    assert _max_diff(fast.infer(mel, 0.0), model.infer(mel, 0.0)) < 1e-4


def test_hop_not_a_multiple_of_n_group_uses_the_transposed_conv():
    audio_cfg = AudioConfig(
        sampling_rate=8000, filter_length=64, hop_length=12, win_length=64, n_mel_channels=8, mel_fmax=4000.0
    )
    model = make_tiny_model(model_cfg=TINY_MODEL, audio_cfg=audio_cfg)
    fast = FastWaveGlow(model, cond_all_flows=True)
    mel = torch.randn(2, 8, 7)  # 84 samples, the flow runs on 88
    for sigma in (0.0, 0.8):
        plain = model.infer(mel, sigma, torch.Generator().manual_seed(0))
        quick = fast.infer(mel, sigma, torch.Generator().manual_seed(0))
        assert quick.shape == (2, 84)
        assert _max_diff(quick, plain) < 1e-4
    with pytest.raises(ValueError, match="multiple of n_group"):
        FastWaveGlow(model, fold_upsampler=True)


def test_bad_inputs_and_options_are_named(tiny_model: WaveGlow):
    fast = FastWaveGlow(tiny_model)
    with pytest.raises(ValueError, match="z must be"):
        fast.reverse(torch.randn(1, 6, 10), torch.randn(1, 8, 10))
    with pytest.raises(ValueError, match="mel must be"):
        fast.reverse(torch.randn(1, 8, 10), torch.randn(1, 7, 10))
    with pytest.raises(ValueError, match="precision"):
        FastWaveGlow(tiny_model, precision="int8")
    with pytest.raises(ValueError, match="cuda_graphs needs"):
        prepare_for_inference(tiny_model, "cpu", cuda_graphs=True)


def test_compiled_synthesis_on_cpu_matches_plain(tiny_model: WaveGlow):
    """torch.compile of the synthesis (the code path `--compile` takes on any device): same audio, for one
    utterance and for a batch of mixed lengths, and a recompile for a new shape still matches."""
    fast = prepare_for_inference(tiny_model, "cpu", compile=True)
    assert fast._reverse_fn is not fast._reverse  # the compiled function is what runs
    mel = torch.randn(2, 8, 9, generator=torch.Generator().manual_seed(4))
    for sigma in (0.0, 0.7):
        plain = tiny_model.infer(mel, sigma, torch.Generator().manual_seed(1))
        quick = fast.infer(mel, sigma, torch.Generator().manual_seed(1))
        assert plain.abs().max() > 0.1
        assert _max_diff(quick, plain) < 1e-4
    hop, g = TINY_AUDIO.hop_length, TINY_MODEL.n_group
    lengths = [9 * hop // g, 5 * hop // g]
    z = torch.randn(2, g, lengths[0], generator=torch.Generator().manual_seed(2))
    short_mel = mel.clone()
    short_mel[1, :, 5:] = 0.0
    batch = fast.reverse(z, short_mel, lengths=lengths)
    alone = tiny_model.reverse(z[1:, :, : lengths[1]], mel[1:, :, :5])[0]
    assert _max_diff(batch[1, : g * lengths[1]], alone) < 1e-4


def test_bf16_on_cpu_stays_close():
    model = make_tiny_model(seed=2)
    fast = prepare_for_inference(model, "cpu", precision="bf16")
    mel = torch.randn(1, 8, 8)
    plain = model.infer(mel, 0.6, torch.Generator().manual_seed(0))
    low = fast.infer(mel, 0.6, torch.Generator().manual_seed(0))
    assert low.dtype == torch.float32
    assert 0 < _max_diff(low, plain) < 0.05 * plain.abs().max().item()


def test_built_on_the_device_of_the_model():
    """Every tensor the fast engine derives is made on the model's device: built from a model on the
    meta device (no data; any CPU-made tensor mixed in raises), as it is from a model already on a GPU."""
    model = make_tiny_model().to("meta")
    for options in OPTIONS:
        fast = FastWaveGlow(model, device="meta", **options)
        assert {buffer.device.type for buffer in fast.buffers()} == {"meta"}


def test_graph_cache_keys_on_shapes_not_lengths_and_drops_the_oldest(monkeypatch):
    """GraphedReverse's bookkeeping, with a stand-in for the CUDA graph: batches of one shape share a graph
    whatever their items' lengths (copied into a static input), and at most max_graphs are kept."""

    class Replay:  # what a captured graph does on replay: run the function on the static inputs
        def __init__(self, fn, inputs, out):
            self.fn, self.inputs, self.out = fn, inputs, out

        def replay(self):
            self.out.copy_(self.fn(*self.inputs))

    def record(self, z, mel, lengths):
        inputs = tuple(None if t is None else t.clone() for t in (z, mel, lengths))
        out = self.reverse_fn(*inputs)
        return Replay(self.reverse_fn, inputs, out), inputs, out

    monkeypatch.setattr(GraphedReverse, "_record", record)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    fn = lambda z, mel, lengths: z.sum(1) * (1 if lengths is None else lengths[:, None])  # noqa: E731
    graphs = GraphedReverse(fn, max_graphs=2)
    z, mel = torch.ones(2, 3, 4), torch.zeros(2, 1, 1)
    for lengths in ([4, 2], [1, 3]):
        out = graphs(z, mel, torch.tensor(lengths))
        assert torch.equal(out, fn(z, mel, torch.tensor(lengths)))
    assert len(graphs.graphs) == 1  # one shape, two sets of lengths
    graphs(z, mel, None)
    graphs(torch.ones(1, 3, 4), mel[:1], None)
    assert len(graphs.graphs) == 2
    assert [key[0] for key in graphs.graphs] == [(2, 3, 4), (1, 3, 4)]  # the oldest was dropped


# ------------------------------------------------------------------------------------------------ GPU


@pytest.fixture(autouse=True)
def _no_tf32():
    """cuDNN convolutions default to TF32 on Ampere and later, so the plain model is not float32 there;
    the comparisons below are against true float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.gpu
def test_cuda_fp32_matches_plain():
    model = make_tiny_model().cuda()
    mel = torch.randn(2, 8, 9, device="cuda")
    plain = model.infer(mel, 0.6, torch.Generator("cuda").manual_seed(0))
    for options in OPTIONS:
        fast = prepare_for_inference(model, "cuda", **options)
        assert _max_diff(fast.infer(mel, 0.6, torch.Generator("cuda").manual_seed(0)), plain) < 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_half_precisions_stay_close(precision: str):
    model = make_tiny_model().cuda()
    mel = torch.randn(2, 8, 9, device="cuda")
    plain = model.infer(mel, 0.6, torch.Generator("cuda").manual_seed(0))
    fast = prepare_for_inference(model, "cuda", precision=precision, fold_upsampler=True)
    low = fast.infer(mel, 0.6, torch.Generator("cuda").manual_seed(0))
    assert low.dtype == torch.float32
    assert _max_diff(low, plain) < 0.05 * plain.abs().max().item()


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graphs_replay_new_inputs(compile: bool):
    model = make_tiny_model().cuda()
    fast = prepare_for_inference(model, "cuda", compile=compile, cuda_graphs=True)
    for seed in range(3):  # the first call records, the others replay with new mel and z
        mel = torch.randn(2, 8, 9, device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
        plain = model.infer(mel, 0.6, torch.Generator("cuda").manual_seed(seed))
        quick = fast.infer(mel, 0.6, torch.Generator("cuda").manual_seed(seed))
        assert _max_diff(quick, plain) < 1e-4
    z = torch.randn(2, 8, 18, device="cuda")
    mel = torch.randn(2, 8, 9, device="cuda")
    for lengths in ([18, 10], [6, 18]):  # one graph for the shape, whatever the lengths
        mel_cut = mel.clone()
        for i, n in enumerate(lengths):
            mel_cut[i, :, n * 8 // TINY_AUDIO.hop_length :] = 0.0
        batch = fast.reverse(z, mel_cut, lengths=lengths)
        for i, n in enumerate(lengths):
            frames = n * 8 // TINY_AUDIO.hop_length
            alone = model.reverse(z[i : i + 1, :, :n], mel[i : i + 1, :, :frames])[0]
            assert _max_diff(batch[i, : 8 * n], alone) < 1e-4
    assert len(fast._graphs.graphs) == 2  # one shape: without lengths (infer above) and with
