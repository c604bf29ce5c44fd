"""infer.py and synthesize_files: mixed inputs, bad inputs, resuming, batching, chunking, torchrun shards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, TINY_AUDIO

from waveglow.synth.batch import JobOptions, synthesize_files

sys.path.insert(0, str(REPO))
import infer  # noqa: E402

HOP = TINY_AUDIO.hop_length
N_MEL = TINY_AUDIO.n_mel_channels


def natural_mel(frames: int, seed: int = 0) -> np.ndarray:
    mel = np.random.default_rng(seed).standard_normal((N_MEL, frames)) - 8.0
    return np.maximum(mel, np.log(1e-5)).astype(np.float32)  # a plausible natural-log mel


def make_inputs(folder: Path) -> tuple[list[str], dict[str, int], dict[str, str]]:
    """Good and bad inputs; returns (CLI inputs, expected samples per good output, reason per bad input)."""
    folder.mkdir()
    np.save(folder / "a.npy", natural_mel(20, 1))
    torch.save(torch.from_numpy(natural_mel(13, 2))[None], folder / "b.pt")
    sf.write(
        folder / "c.wav", 0.3 * np.sin(np.arange(1000) * 0.05).astype(np.float32), TINY_AUDIO.sampling_rate
    )
    (folder / "sub" / "deep").mkdir(parents=True)
    np.save(folder / "sub" / "deep" / "d.npy", natural_mel(9, 3))
    (folder / "sub" / "notes.md").write_text("ignored inside folders")
    np.save(folder / "e.npy", natural_mel(11, 4))
    (folder / "list.txt").write_text("e.npy|Some text.\n\n# comment\nmissing.npy|gone\n")
    bad = {
        "shape.npy": (np.zeros((2, N_MEL, 5)) - 8, "is not (n_mel, F)"),
        "bins.npy": (np.zeros((N_MEL + 2, 5)) - 8, "mel bins"),
        "nan.npy": (np.where(np.eye(N_MEL, 6) > 0, np.nan, -8.0), "NaN or infinite"),
        "db.npy": (natural_mel(10) * 20 / np.log(10), "dB"),
    }
    for name, (array, _) in bad.items():
        np.save(folder / name, array)
    (folder / "empty.npy").write_bytes(b"")
    (folder / "garbage.npy").write_bytes(bytes(range(256)) * 4)
    (folder / "corrupt.pt").write_bytes(b"not a torch file at all")
    (folder / "broken.wav").write_bytes(b"RIFF")
    sf.write(folder / "short.flac", np.zeros(20, dtype=np.float32), TINY_AUDIO.sampling_rate)
    (folder / "again").mkdir()
    np.save(folder / "again" / "a.npy", natural_mel(5))
    (folder / "notes.xyz").write_text("what")
    reasons = {name: reason for name, (_, reason) in bad.items()}
    reasons |= {
        "empty.npy": "empty",
        "garbage.npy": "not a NumPy .npy file",
        "corrupt.pt": "cannot read",
        "broken.wav": "cannot read audio",
        "short.flac": "too short",
        "again/a.npy": "is already the output of",
        "notes.xyz": "unknown extension",
        "missing.npy": "not found",
    }
    inputs = [str(folder / name) for name in ("a.npy", "b.pt", "c.wav", "sub", "list.txt", *bad)]
    inputs += [
        str(folder / name)
        for name in (
            "empty.npy",
            "garbage.npy",
            "corrupt.pt",
            "broken.wav",
            "short.flac",
            "notes.xyz",
            "again/a.npy",
        )
    ]
    expected = {"a.wav": 20 * HOP, "b.wav": 13 * HOP, "c.wav": 1000, "deep/d.wav": 9 * HOP, "e.wav": 11 * HOP}
    return inputs, expected, reasons


def read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="int16")[0]


def test_cli_writes_good_inputs_and_reports_bad_ones(checkpoint, tmp_path, capsys):
    inputs, expected, reasons = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    rc = infer.main(
        ["--checkpoint", checkpoint, "--output", str(out), "--batch-size", "2", "--no-progress", *inputs]
    )
    assert rc == 1
    assert (
        infer.main(["--checkpoint", checkpoint, "--output", str(out), "--max-frames", "10", *inputs[:1]]) == 2
    )
    for name, samples in expected.items():
        info = sf.info(out / name)
        assert (info.frames, info.samplerate, info.subtype) == (samples, TINY_AUDIO.sampling_rate, "PCM_16")
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(expected)  # nothing else, no temporary files
    report = capsys.readouterr().out
    assert "5 written, 0 skipped (exist), 12 failed" in report
    failed = dict(re.findall(r"^FAILED (.+?): (.*)$", report, flags=re.M))
    failed = {Path(path).relative_to(tmp_path / "in").as_posix(): reason for path, reason in failed.items()}
    assert set(failed) == set(reasons)
    for name, reason in failed.items():
        assert reasons[name] in reason


def test_resume_skips_existing_outputs_and_overwrite_rewrites(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"m{i}.npy", natural_mel(10 + i, i))
    out = tmp_path / "out"
    first = synthesize_files(checkpoint, [folder], out, JobOptions(progress=False), device="cpu")
    assert (first.written, first.skipped, first.failures) == (3, 0, [])
    (out / "m1.wav").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    second = synthesize_files(checkpoint, [folder], out, JobOptions(progress=False), device="cpu")
    assert (second.written, second.skipped) == (1, 2)
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.iterdir() if p.name in stamps)
    before = {p.name: read(p) for p in out.iterdir()}
    third = synthesize_files(
        checkpoint, [folder], out, JobOptions(progress=False, overwrite=True), device="cpu"
    )
    assert (third.written, third.skipped) == (3, 0)
    assert all(np.array_equal(read(out / name), audio) for name, audio in before.items())
    assert third.audio_samples == (10 + 11 + 12) * HOP
    assert third.samples_per_second > 0 and third.real_time_factor > 0


def test_batching_sharding_and_chunking_do_not_change_the_audio(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, frames in enumerate((5, 17, 9, 30, 12)):
        np.save(folder / f"m{i}.npy", natural_mel(frames, i))
    np.save(folder / "long.npy", natural_mel(300, 9))
    common = dict(device="cpu", overlap_frames=24)  # the Vocoder's options
    job = dict(progress=False, sigma=0.3)
    one = synthesize_files(checkpoint, [folder], tmp_path / "one", JobOptions(batch_size=1, **job), **common)
    many = synthesize_files(
        checkpoint, [folder], tmp_path / "many", JobOptions(batch_size=4, max_frames=100, **job), **common
    )
    assert one.written == many.written == 6
    for i in range(5):  # padded batches equal one-by-one (to one 16-bit step)
        a, b = read(tmp_path / "one" / f"m{i}.wav"), read(tmp_path / "many" / f"m{i}.wav")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    long_one, long_chunked = read(tmp_path / "one" / "long.wav"), read(tmp_path / "many" / "long.wav")
    assert long_one.shape == long_chunked.shape == (300 * HOP,)
    assert np.abs(long_one.astype(int) - long_chunked.astype(int)).max() < 0.05 * 32768
    shards = [
        synthesize_files(
            checkpoint, [folder], tmp_path / "shard", JobOptions(rank=r, world_size=2, **job), **common
        )
        for r in range(2)
    ]
    assert [s.written for s in shards] == [3, 3]
    for i in range(5):  # other batch companions: equal to one 16-bit step
        a, b = read(tmp_path / "shard" / f"m{i}.wav"), read(tmp_path / "one" / f"m{i}.wav")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    args = ["--checkpoint", checkpoint, "--device", "cpu", "--sigma", "0.3", "--no-progress"]
    assert infer.main([*args, "--engine", "eager", "--output", str(tmp_path / "eager"), str(folder)]) == 0
    for i in range(5):  # the eager engine (the model as trained) writes the same audio as the fast one
        a, b = read(tmp_path / "eager" / f"m{i}.wav"), read(tmp_path / "one" / f"m{i}.wav")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_torchrun_two_processes_write_every_output_once(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        np.save(folder / f"m{i}.npy", natural_mel(8 + i, i))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(REPO / "infer.py"), "--checkpoint", checkpoint, "--output", str(out), "--no-progress"]
    done = subprocess.run(
        [*command, str(folder)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = [int(n) for n in re.findall(r"rank \d of 2\): (\d+) written", done.stdout)]
    assert sorted(counts) == [2, 3]
    assert sorted(p.name for p in out.iterdir()) == [f"m{i}.wav" for i in range(5)]
    reference = synthesize_files(
        checkpoint, [folder], tmp_path / "single", JobOptions(progress=False), device="cpu"
    )
    assert reference.written == 5
    for i in range(5):  # per-file seeds: the same audio as one process (to one 16-bit step)
        a, b = read(out / f"m{i}.wav"), read(tmp_path / "single" / f"m{i}.wav")
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_interrupted_run_leaves_no_partial_files_and_resumes(checkpoint, tmp_path, monkeypatch):
    from waveglow.synth.vocoder import Vocoder

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        np.save(folder / f"m{i}.npy", natural_mel(6 + i, i))
    out = tmp_path / "out"
    original, calls = Vocoder.synthesize, []

    def interrupt_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Vocoder, "synthesize", interrupt_second_batch)
    with pytest.raises(KeyboardInterrupt):
        synthesize_files(checkpoint, [folder], out, JobOptions(batch_size=2, progress=False), device="cpu")
    monkeypatch.setattr(Vocoder, "synthesize", original)
    assert sorted(p.name for p in out.iterdir()) == ["m0.wav", "m1.wav"]  # whole files only, no .tmp
    assert [sf.info(out / n).frames for n in ("m0.wav", "m1.wav")] == [6 * HOP, 7 * HOP]
    resumed = synthesize_files(
        checkpoint, [folder], out, JobOptions(batch_size=2, progress=False), device="cpu"
    )
    assert (resumed.written, resumed.skipped, resumed.failures) == (2, 2, [])


def test_cli_seed_and_precision(checkpoint, tmp_path):
    """--seed: the same seed writes the same file, another seed other audio; --precision bf16 stays close, and
    so does auto (fp32 or bf16, whichever this CPU runs faster)."""
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "u.npy", natural_mel(24, 5))
    common = ["--checkpoint", checkpoint, "--device", "cpu", "--no-progress", "--sigma", "0.6", str(folder)]
    runs = {
        "a": ["--seed", "7"],
        "b": ["--seed", "7"],
        "c": ["--seed", "8"],
        "bf16": ["--seed", "7", "--precision", "bf16"],
        "auto": ["--seed", "7", "--precision", "auto"],
    }
    for name, flags in runs.items():
        assert infer.main([*common, *flags, "--output", str(tmp_path / name)]) == 0
    a, b, c, bf16, auto = (read(tmp_path / name / "u.wav").astype(int) for name in runs)
    assert np.abs(a - auto).max() < 0.05 * 32768
    assert a.shape == (24 * HOP,) and np.abs(a).max() > 1000
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1000
    assert 0 < np.abs(a - bf16).max() < 0.05 * 32768


def test_threads_option(checkpoint, tmp_path, capsys):
    inputs, expected, _ = make_inputs(tmp_path / "in")
    before = torch.get_num_threads()
    args = ["--checkpoint", checkpoint, "--no-progress", inputs[0]]
    assert infer.main([*args, "--output", str(tmp_path / "fixed"), "--threads", "2"]) == 0
    assert infer.main([*args, "--output", str(tmp_path / "auto")]) == 0  # the default: auto
    assert torch.get_num_threads() == before  # the job puts the count back
    assert np.array_equal(read(tmp_path / "fixed/a.wav"), read(tmp_path / "auto/a.wav"))
    capsys.readouterr()
    assert infer.main([*args, "--output", str(tmp_path / "bad"), "--threads", "many"]) == 2
    assert "--threads must be auto or a number, got 'many'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="threads must be 'auto', a count >= 1 or None"):
        JobOptions(threads=0)
