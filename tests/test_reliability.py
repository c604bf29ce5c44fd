"""Issue 14: no run destroys a good file, and every failure is one plain line. Each test here failed before
its fix: resume over unreadable checkpoints, file modes, infer.py filelists and extensions, clean errors
(device, unsafe checkpoints, a full disk), data paths in configs, the smaller Vocoder and infer.py
faults, and the probes (run-dir lock, SIGINT/SIGTERM, many bad files, NVIDIA files with extra keys)."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO, TINY_AUDIO, TINY_MODEL, make_clips, make_tiny_model, tiny_config, write_list

import train as train_script
from waveglow import files
from waveglow.audio import save_audio
from waveglow.checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    atomic_save,
    load_checkpoint,
    load_model,
)
from waveglow.config import Config, DataConfig, load_config, save_config
from waveglow.filelists import AUDIO_SUFFIXES
from waveglow.synth.batch import AUDIO_SUFFIXES as AUDIO_EXTENSIONS
from waveglow.synth.batch import JobOptions, collect_inputs, synthesize_files
from waveglow.synth.inputs import InputError, validate_mel
from waveglow.synth.vocoder import Vocoder
from waveglow.train.loop import TrainingError, train
from waveglow.train.state import RunDirLock, save_checkpoint

sys.path.insert(0, str(REPO))
import infer  # noqa: E402

N_MEL = TINY_AUDIO.n_mel_channels
HOP = TINY_AUDIO.hop_length


def natural_mel(frames: int, seed: int = 0) -> np.ndarray:
    mel = np.random.default_rng(seed).standard_normal((N_MEL, frames)) - 8.0
    return np.maximum(mel, np.log(1e-5)).astype(np.float32)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(stderr: str) -> str:
    """The one ``error: ...`` line of a command's stderr (progress bars and log lines aside), no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def tiny_vocoder() -> Vocoder:
    return Vocoder(make_tiny_model(), Config(model=TINY_MODEL, audio=TINY_AUDIO), device="cpu")


# ----------------------------------------------------------------------- 1. resume over unreadable files


def test_resume_when_every_step_checkpoint_is_unreadable_changes_nothing(tmp_path, capsys):
    # checkpoints at 2 and 4, best.pt (step 4), keep_last 2
    cfg = tiny_config(tmp_path / "data", max_steps=4, validate_at_start=False, validation_interval=4)
    run = tmp_path / "run"
    train(cfg, run)
    for path in (run / "checkpoints").glob("step_*.pt"):
        os.truncate(path, 1000)
    before = snapshot(run)
    assert "checkpoints/best.pt" in before and len([k for k in before if "step_" in k]) == 2
    capsys.readouterr()
    code = train_script.main(["--resume", "--run-dir", str(run), "--max-steps", "10"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot resume" in line and "none of its 2 step checkpoint(s) loads" in line
    best_step = load_checkpoint(run / "checkpoints/best.pt")["step"]
    assert f"best.pt (step {best_step}) loads: to continue from it, copy it to " in line
    assert f"step_{best_step:08d}.pt" in line
    after = snapshot(run)
    before.pop("train.lock"), after.pop("train.lock")  # the lock file holds the pid of the last holder
    assert after == before  # nothing overwritten, nothing deleted


def test_an_unreadable_newer_checkpoint_is_set_aside_and_never_counted(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=4, validate_at_start=False, validation_interval=100)
    run = tmp_path / "run"
    train(cfg, run)
    os.truncate(run / "checkpoints/step_00000004.pt", 1000)
    cfg.train.max_steps = 6
    result = train(cfg, run, resume=True)  # from step 2
    assert result.step == 6
    names = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert names == ["step_00000004.pt", "step_00000004.pt.unreadable", "step_00000006.pt"]
    assert [load_checkpoint(run / "checkpoints" / n)["step"] for n in names[::2]] == [4, 6]
    assert result.checkpoint == run / "checkpoints/step_00000006.pt"


def test_pruning_counts_only_complete_checkpoints(tmp_path):
    folder = tmp_path / "checkpoints"
    payload = {"format_version": 1, "w": torch.zeros(3)}
    atomic_save(payload, folder / "step_00000001.pt")
    (folder / "step_00000002.pt").write_bytes(b"PK\x03\x04 truncated")
    save_checkpoint(tmp_path, payload, 3, keep_last=2)
    assert sorted(p.name for p in folder.iterdir()) == [
        "step_00000001.pt",  # one of the 2 kept: the truncated step 2 does not count
        "step_00000002.pt",  # not deleted either (set aside by the next resume)
        "step_00000003.pt",
    ]


def test_a_new_run_is_refused_where_only_best_pt_is_left(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=2)
    run = tmp_path / "run"
    train(cfg, run)
    for path in (run / "checkpoints").glob("step_*.pt"):
        path.unlink()
    best = (run / "checkpoints/best.pt").read_bytes()
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, run)
    with pytest.raises(TrainingError, match=r"holds best.pt but no step checkpoint.*copy it to"):
        train(cfg, run, resume=True)
    assert (run / "checkpoints/best.pt").read_bytes() == best


# ----------------------------------------------------------------------------------------- 2. file modes


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        writers = {
            "a.txt": lambda p: files.atomic_write_text(p, "x"),
            "a.wav": lambda p: save_audio(p, np.zeros(100), 8000),
            "a.pt": lambda p: atomic_save({"x": torch.zeros(2)}, p),
            "a.yaml": lambda p: save_config(Config(), p),
        }
        for name, write in writers.items():
            write(tmp_path / name)
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
        os.chmod(tmp_path / "a.pt", 0o640)  # a replaced file keeps its mode, as with open(path, "w")
        atomic_save({"x": torch.ones(2)}, tmp_path / "a.pt")
        assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def _full_disk(monkeypatch, allowed_bytes: int) -> None:
    """Make every atomic write fail with ENOSPC after ``allowed_bytes`` bytes, as a full disk does (only in
    waveglow.files, whose ``os`` becomes a stand-in with this ``fdopen``)."""
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, handle):
            self.handle, self.left = handle, allowed_bytes

        def writable(self):
            return True

        def write(self, data):
            size = memoryview(data).nbytes
            if size > self.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.left -= size
            return self.handle.write(data)

        def fileno(self):
            return self.handle.fileno()

        def close(self):
            self.handle.close()
            super().close()

    class FullDiskOs:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fdopen(fd, mode):
            return FullDisk(real_fdopen(fd, mode))

    monkeypatch.setattr(files, "os", FullDiskOs())


def test_a_full_disk_fails_cleanly_and_keeps_the_old_file(tmp_path, monkeypatch):
    atomic_save({"old": torch.zeros(4)}, tmp_path / "c.pt")
    save_audio(tmp_path / "a.wav", np.zeros(50), 8000)
    before = snapshot(tmp_path)
    _full_disk(monkeypatch, allowed_bytes=300)
    for write, name in (
        (lambda p: atomic_save({"new": torch.zeros(10000)}, p), "c.pt"),
        (lambda p: save_audio(p, np.zeros(5000), 8000), "a.wav"),
    ):
        with pytest.raises(OSError) as info:
            write(tmp_path / name)
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / name)
    assert snapshot(tmp_path) == before  # old files intact, no temporary file left


def test_train_py_on_a_full_disk_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    cfg = tiny_config(tmp_path / "data", max_steps=4, validate_at_start=False, validation_interval=100)
    save_config(cfg, tmp_path / "tiny.yaml")
    _full_disk(monkeypatch, allowed_bytes=10_000)  # config.yaml fits, a checkpoint does not
    code = train_script.main(["-c", str(tmp_path / "tiny.yaml"), "--run-dir", str(tmp_path / "run")])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith("step_00000002.pt: No space left on device")
    assert not list((tmp_path / "run/checkpoints").iterdir())


# ------------------------------------------------------------------------ 3. one filelist reader, one list


def test_infer_filelists_skip_a_byte_order_mark_and_take_every_training_extension(tmp_path):
    assert set(AUDIO_EXTENSIONS) == set(AUDIO_SUFFIXES)
    np.save(tmp_path / "a.npy", natural_mel(5))
    tone = 0.3 * np.sin(np.arange(800) * 0.07)
    sf.write(tmp_path / "b.au", tone, 8000, format="AU")
    sf.write(tmp_path / "c.oga", tone, 8000, format="OGG")
    (tmp_path / "list.txt").write_bytes("\ufeffa.npy|text\nb.au\nc.oga\n".encode())
    items, failures = collect_inputs([tmp_path / "list.txt"], tmp_path / "out")
    assert failures == []
    assert [(i.source.name, i.kind) for i in items] == [
        ("a.npy", "mel"),
        ("b.au", "audio"),
        ("c.oga", "audio"),
    ]


# ------------------------------------------------------------------------------------- 4. clean errors


def test_infer_device_without_cuda_is_one_line(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    np.save(tmp_path / "a.npy", natural_mel(5))
    common = ["--checkpoint", checkpoint, "--output", str(tmp_path / "out"), str(tmp_path / "a.npy")]
    assert infer.main([*common, "--device", "cuda"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        "error: --device cuda: no CUDA device is available on this machine "
        f"({'this torch build has no CUDA' if torch.version.cuda is None else 'none found'}); use cpu"
    )
    assert infer.main([*common, "--device", "gpu"]) == 2
    assert "--device gpu: not a device name" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- 5. unsafe checkpoints


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_unsafe_checkpoint_is_refused_without_advice_to_load_it(tmp_path, checkpoint, capsys):
    marker = tmp_path / "ran"
    torch.save({"format_version": 1, "model": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_model(tmp_path / "evil.pt")
    message = str(info.value)
    assert (
        f"{tmp_path / 'evil.pt'}: refused: its pickle references '{os.system.__module__}.system'" in message
    )
    assert "could run code; nothing was executed" in message
    assert "weights_only" not in message and not marker.exists()
    np.save(tmp_path / "a.npy", natural_mel(5))
    args = [
        "--checkpoint",
        str(tmp_path / "evil.pt"),
        "--output",
        str(tmp_path / "o"),
        str(tmp_path / "a.npy"),
    ]
    assert infer.main(args) == 2
    assert "weights_only" not in one_error_line(capsys.readouterr().err)
    # a damaged file is called damaged, not unsafe
    data = Path(checkpoint).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "cut.pt")
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert str(info.value) == (
        f"{tmp_path / 'cut.pt'}: truncated or damaged (its zip archive has no readable end); was the copy, "
        "download or write complete?"
    )


# ------------------------------------------------------------------------------ 6. data paths in configs


def test_relative_data_paths_resolve_once_and_resume_from_anywhere(tmp_path, monkeypatch):
    project = tmp_path / "project"
    cfg = tiny_config(project / "data", max_steps=2, validate_at_start=False)
    cfg.data = DataConfig(
        **{
            **cfg.data.__dict__,
            "training_files": "../data/train.txt",
            "validation_files": "../data/validation.txt",
        }
    )
    save_config(cfg, project / "configs/tiny.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(project / "configs/tiny.yaml")
    assert loaded.data.training_files == str(project / "data/train.txt")
    train(loaded, tmp_path / "run")
    saved = load_config(tmp_path / "run/config.yaml")
    assert saved.data.validation_files == str(project / "data/validation.txt")
    monkeypatch.chdir(tmp_path / "run")  # resume from yet another directory, with the run's own config
    parsed = []
    monkeypatch.setattr(train_script, "run_cli", lambda args: parsed.append(args) or 0)
    train_script.main(["--resume", "--run-dir", str(tmp_path / "run"), "--max-steps", "3"])
    resumed_cfg, run_dir = train_script.config_from_args(parsed[0])
    assert train(resumed_cfg, run_dir, resume=True).step == 3


# --------------------------------------------------------------------------------------- 8. smaller ones


def test_score_refuses_nan_audio_and_mel():
    vocoder = tiny_vocoder()
    audio = np.zeros(800, np.float32)
    audio[5] = np.nan
    with pytest.raises(InputError, match="audio: contains 1 NaN or infinite samples"):
        vocoder.score(audio)
    mel = vocoder.mel(np.zeros(800, np.float32)).clone()
    mel[0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="mel: contains 1 NaN or infinite values"):
        vocoder.score(np.zeros(800, np.float32), mel)


def test_copy_synthesis_does_not_question_its_own_mel(caplog):
    vocoder = tiny_vocoder()
    square = np.sign(np.sin(np.arange(8000) * 0.3)).astype(np.float32)  # its mel sits far above the floor
    with caplog.at_level("WARNING"):
        out = vocoder.copy_synthesis(square, seeds=[3])
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    assert out.shape == (1, 8000)
    expected = vocoder(vocoder.mel(square), seeds=[3])[:, :8000]  # what it computed before
    assert torch.equal(out, expected)


def test_the_db_hint_is_given_once():
    mel = np.random.default_rng(0).integers(-100, 20, (N_MEL, 20))
    with pytest.raises(InputError) as info:
        validate_mel(mel, TINY_AUDIO, "int.npy")
    assert str(info.value).count("dB mel") == 1 and "above its ceiling" in str(info.value)


def test_infer_rewrites_an_empty_output_and_removes_stale_temporaries(checkpoint, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    for name in ("a", "b"):
        np.save(folder / f"{name}.npy", natural_mel(6))
    (out / "a.wav").write_bytes(b"")  # left empty by something else
    (out / ".b.wav.1a2b3c4d.tmp").write_bytes(b"RIFF half")  # a write killed before its rename
    (out / ".other.wav.00000000.tmp").write_bytes(b"not ours")
    summary = synthesize_files(checkpoint, [folder], out, JobOptions(progress=False), device="cpu")
    assert (summary.written, summary.skipped, summary.failures) == (2, 0, [])
    assert sorted(p.name for p in out.iterdir()) == [".other.wav.00000000.tmp", "a.wav", "b.wav"]
    assert sf.info(out / "a.wav").frames == 6 * HOP


@pytest.mark.parametrize("output", [".", "out"])
def test_infer_into_its_input_folder_reruns_cleanly(checkpoint, tmp_path, output):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        np.save(folder / f"{name}.npy", natural_mel(5))
    args = ["--checkpoint", checkpoint, "--device", "cpu", "--no-progress", str(folder)]
    for run in range(2):
        assert infer.main([*args, "--output", str(folder / output)]) == 0, run
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.wav")) == sorted(
        str(Path(output) / f"{n}.wav") for n in "ab"
    )


# ------------------------------------------------------------------------------------------- the probes


def test_a_second_training_on_a_run_dir_refuses(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=2, validate_at_start=False)
    run = tmp_path / "run"
    with RunDirLock(run):  # another process training there (flock is per open file: this blocks us too)
        with pytest.raises(
            TrainingError, match=re.escape(f"{run} is in use by another training (process {os.getpid()})")
        ):
            train(cfg, run)
    assert not (run / "checkpoints").exists()
    assert train(cfg, run).step == 2  # the lock dies with its holder


def _start(command: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, path: Path, what: str) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, f"{what}: {proc.communicate()[1][-2000:]}"
        time.sleep(0.05)


def test_ctrl_c_in_training_writes_a_final_checkpoint_and_exits_cleanly(tmp_path):
    cfg = tiny_config(tmp_path / "data", max_steps=100000, checkpoint_interval=50, validate_at_start=False)
    save_config(cfg, tmp_path / "tiny.yaml")
    run = tmp_path / "run"
    proc = _start(
        [sys.executable, str(REPO / "train.py"), "-c", str(tmp_path / "tiny.yaml"), "--run-dir", str(run)]
    )
    _wait_for(proc, run / "metrics.jsonl", "training did not start")  # written at step 1
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "SIGINT received: stopping after this step" in stderr
    saved = sorted((run / "checkpoints").glob("step_*.pt"))
    step = load_checkpoint(saved[-1])["step"]
    assert step >= 1 and f"stopped at step {step} (SIGINT)" in stdout
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_sigterm_in_training_stops_every_rank_at_the_next_step(tmp_path, monkeypatch, capsys):
    """The signal arrives during step 2: step 2 was already under way, step 3 carries the stop through
    train_step (the all-reduce that makes every rank stop at the same step), then the final checkpoint."""
    import waveglow.train.loop as training

    cfg = tiny_config(tmp_path / "data", max_steps=100, validate_at_start=False, validation_interval=100)
    save_config(cfg, tmp_path / "tiny.yaml")
    real, calls, stops = training.train_step, [], []

    def signalled(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        stops.append(kwargs["stop"])  # the stop wish passed to the all-reduce
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", signalled)
    handler_before = signal.getsignal(signal.SIGTERM)
    code = train_script.main(["-c", str(tmp_path / "tiny.yaml"), "--run-dir", str(tmp_path / "run")])
    assert code == 143 and stops == [False, False, True]
    assert "stopped at step 3 (SIGTERM)" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run/checkpoints/step_00000003.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the handler is put back


def test_sigterm_in_infer_stops_after_a_batch_with_whole_files(checkpoint, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(600):
        np.save(folder / f"m{i:03d}.npy", natural_mel(60, i))
    command = [sys.executable, str(REPO / "infer.py"), "--checkpoint", checkpoint, "--device", "cpu"]
    command += ["--batch-size", "1", "--no-progress", "--output", str(out), str(folder)]
    proc = _start(command)
    _wait_for(proc, out / "m000.wav", "no output written")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 600 and all(p.suffix == ".wav" for p in written)  # no temporary file
    assert all(sf.info(p).frames == 60 * HOP for p in written)
    assert f"stopped by SIGTERM: {600 - len(written)} input(s) not started" in stdout


def test_infer_stops_at_a_full_disk_instead_of_failing_every_file(checkpoint, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        np.save(folder / f"m{i}.npy", natural_mel(6, i))
    _full_disk(monkeypatch, allowed_bytes=0)
    args = ["--checkpoint", checkpoint, "--device", "cpu", "--no-progress", "--batch-size", "1"]
    assert infer.main([*args, "--output", str(tmp_path / "out"), str(folder)]) == 2
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == f"error: cannot write {tmp_path / 'out'}: No space left on device"
    assert "0 written, 0 skipped (exist), 1 failed" in captured.out
    assert "stopped at a write error" in captured.out and "4 input(s) not started" in captured.out
    assert not list((tmp_path / "out").iterdir())


def test_check_data_lists_every_bad_file(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "data")
    missing = [tmp_path / "data" / f"gone{i}.wav" for i in range(60)]
    write_list(tmp_path / "data/train.txt", [*make_clips(tmp_path / "data", 6), *missing])
    save_config(cfg, tmp_path / "tiny.yaml")
    assert train_script.main(["-c", str(tmp_path / "tiny.yaml"), "--check-data"]) == 1
    report = capsys.readouterr().out
    listed = [Path(word).name for word in report.split() if Path(word).name.startswith("gone")]
    assert listed == [f"gone{i}.wav:" for i in range(60)]


def test_out_of_memory_on_a_long_mel_hints_at_max_frames(checkpoint, tmp_path, monkeypatch):
    np.save(tmp_path / "long.npy", natural_mel(300))

    def out_of_memory(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(Vocoder, "synthesize", out_of_memory)
    summary = synthesize_files(
        checkpoint, [tmp_path / "long.npy"], tmp_path / "out", JobOptions(progress=False), device="cpu"
    )
    [(source, reason)] = summary.failures
    assert reason == (
        "synthesis failed (RuntimeError: CUDA out of memory. Tried to allocate 80.00 GiB); this mel has 300 "
        "frames: a smaller --max-frames (now 4000) bounds the memory"
    )


def test_a_mel_file_that_would_run_code_is_read_as_an_error(tmp_path):
    """Both mel readers (the batch job's and paired training data's) share audio.read_array_file: a pickle
    of code is refused as data, and nothing runs."""
    from waveglow.audio import ArrayReadError, read_array_file
    from waveglow.data.paired import MelFileError, read_mel_file

    marker = tmp_path / "ran"
    torch.save({"mel": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ArrayReadError) as info:
        read_array_file(tmp_path / "evil.pt")
    assert info.value.from_reader and info.value.detail.startswith("UnpicklingError: not a file of tensors")
    with pytest.raises(MelFileError, match="evil.pt.*not a file of tensors"):
        read_mel_file(tmp_path / "evil.pt", TINY_AUDIO)
    assert not marker.exists()
    np.save(tmp_path / "ok.npy", natural_mel(5))
    assert read_array_file(tmp_path / "ok.npy").shape == natural_mel(5).shape
