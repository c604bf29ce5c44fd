"""Export for serving (waveglow.export): the TorchScript and ONNX files, run back (torch.jit.load, onnxruntime on
the CPU), give the Vocoder's audio for the same z at lengths and a batch size they were not traced with; the
CLI writes both files and fails in one line on a missing checkpoint.

Three small models (2 flows, one early output), one ONNX export each (module fixtures; an export takes
seconds): WaveGlow with g dividing the hop (z's length tied to the frames), WaveGlow with hop 12 and g 8
(2 frames per z column, z's length a dimension of its own), and the light flow.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import replace

import onnx
import pytest
import torch
from conftest import TINY_AUDIO, TINY_MODEL, make_tiny_model, randomize_end, speech_like

from waveglow import Config, LightWaveGlow, ModelConfig, Vocoder
from waveglow.checkpoints import save_model
from waveglow.export import (
    SynthesisGraph,
    export_onnx,
    export_torchscript,
    onnx_session,
    output_paths,
    run_onnx,
)
from waveglow.export.__main__ import main

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:`torch.jit.*` is deprecated"
    ),  # FutureWarning on 2.14, Deprecation on 2.11
    pytest.mark.filterwarnings("ignore:# The axis name:UserWarning"),
]

SMALL = replace(TINY_MODEL, n_flows=2, n_early_every=1)  # an early output before flow 1
SMALL_LIGHT = replace(SMALL, architecture="light")
HOP12 = replace(TINY_AUDIO, hop_length=12)  # 8 samples per z column: frames_per_z_column 2
SIGMA = 0.5
TOLERANCE = 1e-4  # max |exported - Vocoder|; float32 rounding gave at most 3.6e-7 here
FRAMES = (1, 6, 13)  # 13 (and 1): not a multiple of HOP12's 2 frames per z column


SMALL_MDCT = replace(SMALL_LIGHT, squeeze="mdct")


def make_light(model_cfg: ModelConfig = SMALL_LIGHT) -> LightWaveGlow:
    torch.manual_seed(1)
    return randomize_end(LightWaveGlow(model_cfg, TINY_AUDIO), seed=1).eval()


def export_both(model, folder) -> dict:
    graph = SynthesisGraph.from_model(model)
    paths = output_paths(folder / "model", ("torchscript", "onnx"))
    export_torchscript(graph, paths["torchscript"])
    export_onnx(graph, paths["onnx"])
    return paths


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``python -m waveglow.export CKPT --format both`` on a hop-12 WaveGlow checkpoint: (model, config, paths,
    exit code, stdout)."""
    folder = tmp_path_factory.mktemp("cli")
    config = Config(model=SMALL, audio=HOP12)
    save_model(make_tiny_model(model_cfg=SMALL, audio_cfg=HOP12), config, folder / "small.pt")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([str(folder / "small.pt"), "--format", "both", "--output", str(folder / "out" / "small")])
    paths = output_paths(folder / "out" / "small", ("torchscript", "onnx"))
    return make_tiny_model(model_cfg=SMALL, audio_cfg=HOP12), config, paths, code, stdout.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cli_run):
    """name -> (model, config, {format: path}) for the four models."""
    waveglow = make_tiny_model(model_cfg=SMALL)
    light, mdct = make_light(), make_light(SMALL_MDCT)
    model, config, paths, _, _ = cli_run
    return {
        "waveglow": (
            waveglow,
            Config(model=SMALL, audio=TINY_AUDIO),
            export_both(waveglow, tmp_path_factory.mktemp("wg")),
        ),
        "waveglow-hop12": (model, config, paths),
        "light": (
            light,
            Config(model=SMALL_LIGHT, audio=TINY_AUDIO),
            export_both(light, tmp_path_factory.mktemp("light")),
        ),
        "light-mdct": (
            mdct,
            Config(model=SMALL_MDCT, audio=TINY_AUDIO),
            export_both(mdct, tmp_path_factory.mktemp("mdct")),
        ),
    }


def speech_mels(vocoder: Vocoder, frames: int) -> torch.Tensor:
    """(2, n_mel, frames): the mels of two different speech-like signals."""
    mels = [vocoder.mel(torch.from_numpy(speech_like(0.12, seed=s, f0=110.0 + 40 * s)))[0] for s in (0, 1)]
    return torch.stack([mel[:, :frames] for mel in mels])


def runner(paths: dict, fmt: str):
    """(mel, z) -> audio through the file of ``fmt``: onnxruntime (CPU, one thread) or torch.jit.load."""
    if fmt == "onnx":
        session = onnx_session(paths["onnx"], threads=1)
        return lambda mel, z: run_onnx(session, mel, z)
    return torch.jit.load(str(paths["torchscript"]))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize(
    "name, engine",
    [
        ("waveglow", "fast"),
        ("waveglow", "eager"),
        ("waveglow-hop12", "fast"),
        ("light", "eager"),
        ("light-mdct", "eager"),
    ],
)
def test_exported_audio_equals_the_vocoder(exported, name, engine, fmt):
    model, config, paths = exported[name]
    vocoder = Vocoder(model, config, device="cpu", engine=engine)
    run = runner(paths, fmt)
    seeds = [11, 12]
    for frames in FRAMES:
        mel = speech_mels(vocoder, frames)
        z = torch.stack([vocoder.noise(seed, frames) * SIGMA for seed in seeds])  # (2, g, L)
        assert z.shape[2] == -(-frames * config.audio.hop_length // config.model.n_group)
        want = vocoder(mel, sigma=SIGMA, seeds=seeds)  # (2, frames*hop)
        with torch.no_grad():
            got = run(mel, z)
        assert got.shape == (2, z.shape[2] * config.model.n_group)
        got = got[:, : frames * config.audio.hop_length]
        assert want.shape == got.shape
        assert (want.abs() < 1).float().mean() > 0.8  # mostly unclipped: the comparison is not of clamps
        assert (got - want).abs().max().item() < TOLERANCE, (frames, (got - want).abs().max().item())
        # batch 1 gives the first item of batch 2
        with torch.no_grad():
            single = run(mel[:1], z[:1])[:, : frames * config.audio.hop_length]
        assert (single - got[:1]).abs().max().item() < TOLERANCE


def test_onnx_graph_names_shapes_and_metadata(exported):
    dims = {}
    for name, (_, config, paths) in exported.items():
        session = onnx_session(paths["onnx"])
        inputs = {i.name: (i.shape, i.type) for i in session.get_inputs()}
        outputs = {o.name: (o.shape, o.type) for o in session.get_outputs()}
        assert list(inputs) == ["mel", "z"] and list(outputs) == ["audio"]
        assert {t for _, t in [*inputs.values(), *outputs.values()]} == {"tensor(float)"}
        assert inputs["mel"][0][:2] == ["batch", 8] and inputs["z"][0][:2] == ["batch", 8]
        assert outputs["audio"][0][0] == "batch"
        dims[name] = (inputs["mel"][0][2], inputs["z"][0][2], outputs["audio"][0][1])
        meta = {
            p.key: p.value for p in onnx.load(str(paths["onnx"]), load_external_data=False).metadata_props
        }
        assert meta["architecture"] == config.model.architecture
        assert int(meta["hop_length"]) == config.audio.hop_length and int(meta["n_group"]) == 8
    assert dims["waveglow"] == ("frames", "2*frames", "16*frames")  # hop 16 = 2 columns of 8 per frame
    assert dims["light"] == ("frames", "2*frames", "16*frames")
    assert dims["waveglow-hop12"] == ("frames", "columns", "8*columns")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["waveglow", "light"])
def test_a_z_of_the_wrong_length_is_an_error(exported, name, fmt):
    """Where g divides the hop, z's length is tied to the frames: one column more or less is an error."""
    run = runner(exported[name][2], fmt)
    mel = torch.zeros(1, 8, 5)
    assert run(mel, torch.zeros(1, 8, 10)).shape == (1, 80)
    for columns in (9, 11):
        with pytest.raises(Exception, match="(?i)reshape|shape .* is invalid|size of tensor"):
            run(mel, torch.zeros(1, 8, columns))


def test_cli_writes_both_files_and_checks_them(cli_run):
    _, _, paths, code, stdout = cli_run
    assert code == 0
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 10_000
        assert not list(path.parent.glob(".*.tmp"))  # written atomically: no temporary file left
    checked = dict(re.findall(r"checked \S+\.(onnx|pt): max \|exported - model\| (\S+)", stdout))
    assert set(checked) == {"onnx", "pt"}
    assert all(float(diff) < 1e-5 for diff in checked.values())
    assert "z (B, 8, L) float32 with L = ceil(F*12/8)" in stdout


def test_cli_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    code = main([str(missing), "--format", "torchscript", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and str(missing) in err[0]
    assert not (tmp_path / "out.torchscript.pt").exists()
