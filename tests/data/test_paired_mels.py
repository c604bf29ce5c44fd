"""Paired mels (filelist lines ``audio|mel.npy``): reading them, the bad pairs and their reasons, the frame
tolerance, segments on frame boundaries, the mel convention check, --check-data and validation under the
file's mel. Generated clips at TINY_AUDIO's 8 kHz (hop 16, 8 mel bins)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import RATE, TINY_AUDIO, TINY_MODEL, randomize_end, speech_like

import train as train_script
from waveglow import WaveGlow
from waveglow.audio import MelSpectrogram
from waveglow.config import Config, ConfigError, DataConfig, TrainConfig, save_config
from waveglow.data.check import check_files, usable_entries
from waveglow.data.datasets import AudioClipDataset, AudioSegmentDataset, mirror_pad
from waveglow.data.paired import MelFileError, read_mel_file, segment_frames
from waveglow.filelists import DataError, Entry, read_entries, read_filelist, resolve_entries
from waveglow.train.validation import validate

HOP = TINY_AUDIO.hop_length  # 16
N_MEL = TINY_AUDIO.n_mel_channels  # 8
SEGMENT = 256


def write_clip(path: Path, seconds: float = 0.3, seed: int = 0) -> Path:
    """A speech-like clip as 32-bit float wav, so the file holds exactly the samples generated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), speech_like(seconds, seed=seed), RATE, subtype="FLOAT")
    return path


def recording_mel(path: Path) -> np.ndarray:
    """The front end's mel of the whole file (n_mel, 1 + T // hop)."""
    audio = torch.from_numpy(sf.read(str(path), dtype="float32")[0])
    return MelSpectrogram(TINY_AUDIO)(audio)[0].numpy()


# --------------------------------------------------------------------------------------------- filelists


def test_a_second_field_ending_in_npy_or_pt_is_a_mel_file(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    filelist = lists / "pairs.txt"
    filelist.write_text(
        "\ufeffwavs/a.wav|mels/a.npy\n"  # a byte-order mark is not part of the path
        "# comment|x.npy\n"
        "wavs/b.wav | /abs/mels/b.PT |transcript after the mel\n"
        "wavs/c.wav|A transcript, not a mel.\n"
        "wavs/d.wav\n"
    )
    assert read_entries(filelist) == [
        Entry(lists / "wavs/a.wav", lists / "mels/a.npy"),
        Entry(lists / "wavs/b.wav", Path("/abs/mels/b.PT")),
        Entry(lists / "wavs/c.wav", None),
        Entry(lists / "wavs/d.wav", None),
    ]
    root = tmp_path / "root"
    assert read_entries(filelist, root)[0] == Entry(root / "wavs/a.wav", root / "mels/a.npy")
    assert resolve_entries(str(filelist), str(root))[0] == Entry(root / "wavs/a.wav", root / "mels/a.npy")
    # the audio-only reader (synthesis, evaluation) is unchanged
    assert read_filelist(filelist) == [lists / f"wavs/{name}.wav" for name in "abcd"]


def test_read_mel_file_takes_npy_and_pt_with_or_without_a_batch_axis(tmp_path):
    mel = np.random.default_rng(0).uniform(-11, -2, size=(N_MEL, 30)).astype(np.float32)
    np.save(tmp_path / "m.npy", mel)
    torch.save(torch.from_numpy(mel).unsqueeze(0).double(), tmp_path / "m.pt")
    assert np.array_equal(read_mel_file(tmp_path / "m.npy", TINY_AUDIO), mel)
    from_pt = read_mel_file(tmp_path / "m.pt", TINY_AUDIO)
    assert from_pt.shape == (N_MEL, 30) and from_pt.dtype == np.float32 and np.array_equal(from_pt, mel)


# ------------------------------------------------------------------------------------ the check of pairs


def make_pairs(folder: Path) -> tuple[list[Entry], dict[str, Path]]:
    """A good pair, an audio-only clip, and one pair per way a mel file can be bad."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = write_clip(folder / "a.wav")  # 2400 samples: 1 + 2400 // 16 = 151 frames
    good = recording_mel(audio)
    mels: dict[str, Path] = {}

    def save(name: str, array: np.ndarray) -> None:
        mels[name] = folder / f"{name}.npy"
        np.save(mels[name], array)

    save("good", good)
    mels["missing"] = folder / "missing.npy"
    mels["empty"] = folder / "empty.npy"
    mels["empty"].write_bytes(b"")
    mels["garbage"] = folder / "garbage.npy"
    mels["garbage"].write_bytes(b"not a numpy file at all")
    mels["pickled"] = folder / "pickled.pt"
    torch.save({"mel": torch.from_numpy(good)}, mels["pickled"])
    save("rank", np.stack([good, good]))
    save("transposed", good.T)
    save("no_frames", np.zeros((N_MEL, 0), np.float32))
    nan = good.copy()
    nan[3, 7] = np.nan
    save("nan", nan)
    save("long", np.concatenate([good, good[:, :3]], axis=1))  # 154 frames: 3 too many
    entries = [Entry(audio, mels["good"]), Entry(audio)]
    entries += [Entry(audio, path) for name, path in mels.items() if name != "good"]
    return entries, mels


def test_each_bad_pair_is_named_with_its_reason(tmp_path):
    entries, mels = make_pairs(tmp_path)
    report = check_files(entries, TINY_AUDIO, SEGMENT)
    assert report.entries == entries[:2] and report.n_pairs == 1
    reasons = [reason for _, reason in report.bad]
    assert [path for path, _ in report.bad] == [entries[0].audio] * 9
    assert reasons == [
        f"mel missing ({mels['missing']}: not found)",
        f"mel empty ({mels['empty']}: empty file, 0 bytes)",
        f"mel unreadable ({mels['garbage']}: not a NumPy .npy file (no .npy header))",
        f"mel unreadable ({mels['pickled']}: holds dict, not an array or tensor)",
        f"mel shape ({mels['rank']}: shape (2, 8, 151) is not (n_mel, F) or (1, n_mel, F))",
        f"mel bins ({mels['transposed']}: 151 mel bins, the config has 8 (transposed? expected (n_mel, F)))",
        f"mel empty ({mels['no_frames']}: no frames)",
        f"mel NaN ({mels['nan']}: contains 1 NaN or infinite values)",
        f"mel frames ({mels['long']}: 154 frames, but its audio's 2400 samples give 151 (1 + samples // "
        "hop_length): 3 apart, more than data.mel_frame_tolerance = 2)",
    ]
    text = report.format()
    assert "bad files (mel NaN: 1, mel bins: 1, mel empty: 2, mel frames: 1, mel missing: 1," in text
    assert str(mels["long"]) in text and not report.ok
    with pytest.raises(DataError, match="9 of 11 files are bad"):
        usable_entries(entries, TINY_AUDIO, SEGMENT)
    assert usable_entries(entries, TINY_AUDIO, SEGMENT, skip_bad=True) == entries[:2]
    with pytest.raises(MelFileError) as raised:
        read_mel_file(mels["missing"], TINY_AUDIO)
    assert str(raised.value) == f"{mels['missing']}: not found" and raised.value.kind == "missing"


def test_frame_counts_within_the_tolerance_are_fitted_and_summed_up(tmp_path, caplog):
    audio = write_clip(tmp_path / "a.wav")
    full = recording_mel(audio)  # 151 frames
    entries = []
    for offset in (-3, -2, -1, 0, 1, 1, 2, 3):
        mel = np.concatenate([full, full[:, :offset]], axis=1) if offset > 0 else full[:, : 151 + offset]
        path = tmp_path / f"off{offset:+d}_{len(entries)}.npy"
        np.save(path, mel)
        entries.append(Entry(audio, path))
    report = check_files(entries, TINY_AUDIO, SEGMENT)
    assert [Path(reason.split("(", 1)[1].split(":")[0]).name for _, reason in report.bad] == [
        "off-3_0.npy",
        "off+3_7.npy",
    ]
    assert report.frame_offsets == Counter({-2: 1, -1: 1, 0: 1, 1: 2, 2: 1})
    assert report.pairs_summary() == (
        "paired mels: 6 of 6 good files; mel frames minus 1 + samples // hop_length: -2: 1, -1: 1, "
        "equal: 1, +1: 2, +2: 1 (within data.mel_frame_tolerance = 2: cut, or the last frame repeated, to agree)"
    )
    assert report.pairs_summary() in report.format()
    with caplog.at_level(logging.INFO, logger="waveglow.data.check"):
        good = usable_entries(report.entries, TINY_AUDIO, SEGMENT)
    assert report.pairs_summary() in caplog.text
    strict = check_files(entries, TINY_AUDIO, SEGMENT, mel_frame_tolerance=0)
    assert len(strict.good) == 1 and strict.frame_offsets == Counter({0: 1})
    # within the tolerance the mel is cut, or its last frame repeated, to the clip's 151 frames
    clips = AudioClipDataset(good, TINY_AUDIO)
    for index, offset in enumerate((-2, -1, 0, 1, 1, 2)):
        _, _, mel = clips.clip(index)
        assert mel.shape == (N_MEL, 151)
        kept = min(151, 151 + offset)
        assert np.array_equal(mel[:, :kept].numpy(), full[:, :kept])
        assert all(np.array_equal(mel[:, j].numpy(), full[:, kept - 1]) for j in range(kept, 151))
    with pytest.raises(ConfigError, match="data.mel_frame_tolerance"):
        Config(model=TINY_MODEL, audio=TINY_AUDIO, data=DataConfig(mel_frame_tolerance=-1)).validate()


# ------------------------------------------------------------------------------------ segments and frames


def test_paired_segments_start_on_frame_boundaries_and_carry_the_files_frames(tmp_path):
    """The item's mel is the file's frames [start / hop, start / hop + S / hop + 1), not a recomputed mel: the
    file holds the recording's mel minus 0.5, so a recomputed one would be 0.5 away everywhere. The frames
    are those the model would get from the segment itself (equal away from the segment's edges)."""
    paths = [write_clip(tmp_path / f"c{i}.wav", seconds=0.25 + 0.05 * i, seed=i) for i in range(3)]
    entries = []
    for path in paths:
        np.save(path.with_suffix(".npy"), recording_mel(path) - 0.5)
        entries.append(Entry(path, path.with_suffix(".npy")))
    ds = AudioSegmentDataset(entries, TINY_AUDIO, SEGMENT, seed=3, dither=0)
    mel_fn = MelSpectrogram(TINY_AUDIO)
    starts = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for index, path in enumerate(paths):
            audio, mel = ds[index]
            assert audio.shape == (SEGMENT,) and mel.shape == (N_MEL, SEGMENT // HOP + 1)
            clip = sf.read(str(path), dtype="float32")[0]
            start = next(
                s for s in range(len(clip) - SEGMENT + 1) if np.array_equal(clip[s : s + 64], audio[:64])
            )
            assert start % HOP == 0 and np.array_equal(clip[start : start + SEGMENT], audio.numpy())
            starts.add(start)
            file_mel = np.load(path.with_suffix(".npy"))
            assert np.array_equal(mel.numpy(), file_mel[:, start // HOP : start // HOP + SEGMENT // HOP + 1])
            own = mel_fn(audio)[0].numpy() - 0.5  # the segment's own mel, on the file's offset
            inner = slice(2, SEGMENT // HOP - 1)  # frames whose window lies inside the segment
            assert np.abs(own[:, inner] - mel.numpy()[:, inner]).max() < 1e-4
    assert len(starts) > 4
    plain = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=3, dither=0)
    assert not plain.paired and plain[0].shape == (SEGMENT,)  # lists without mel files: audio alone


def test_short_paired_clips_are_mirror_padded_on_frame_boundaries(tmp_path):
    short = write_clip(tmp_path / "short.wav", seconds=0.015, seed=4)  # 120 samples: 8 frames
    full = recording_mel(short)
    np.save(tmp_path / "short.npy", full)
    clip = sf.read(str(short), dtype="float32")[0]
    ds = AudioSegmentDataset([Entry(short, tmp_path / "short.npy")], TINY_AUDIO, SEGMENT, seed=0, dither=0)
    lefts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        audio, mel = ds[0]
        left = next(k for k in range(SEGMENT - len(clip) + 1) if np.array_equal(audio[k : k + 120], clip))
        assert left % HOP == 0 and np.array_equal(audio.numpy(), mirror_pad(clip, SEGMENT, left))
        lefts.add(left)
        frames = mel.numpy()
        inside = range(left // HOP, left // HOP + full.shape[1])
        assert all(
            np.array_equal(frames[:, j], full[:, j - left // HOP]) for j in inside if j < frames.shape[1]
        )
        # outside the clip each frame is one of the clip's frames
        assert all(any(np.array_equal(frames[:, j], f) for f in full.T) for j in range(frames.shape[1]))
    assert len(lefts) > 1
    # the mirrored frames come from where the mirrored audio comes from: frame -m is frame m, and the
    # frame centred m samples after the end is the one centred m - 1 samples before it
    assert np.array_equal(segment_frames(full, -2, 2, 120, HOP), full[:, [2, 1]])
    assert np.array_equal(segment_frames(full, 8, 1, 120, HOP), full[:, [7]])  # centre 128 <- 111
    long = write_clip(tmp_path / "long.wav")
    np.save(tmp_path / "long.npy", recording_mel(long))
    pairs = [Entry(short, tmp_path / "short.npy"), Entry(long, tmp_path / "long.npy")]
    dropped = AudioSegmentDataset(pairs, TINY_AUDIO, SEGMENT, short_clips="drop")
    assert dropped.paths == [long] and dropped.mel_files == [tmp_path / "long.npy"]


def test_paired_data_needs_a_segment_length_on_frame_boundaries(tmp_path):
    audio = write_clip(tmp_path / "a.wav")
    np.save(tmp_path / "a.npy", recording_mel(audio))
    pair = Entry(audio, tmp_path / "a.npy")
    with pytest.raises(DataError, match="segment_length 264 is not a multiple of audio.hop_length 16"):
        AudioSegmentDataset([pair], TINY_AUDIO, 264)
    assert AudioSegmentDataset([audio], TINY_AUDIO, 264)[0].shape == (264,)  # recordings only: any length
    report = check_files([pair], TINY_AUDIO, 264)
    assert not report.ok and "264 is not a multiple of audio.hop_length 16" in report.problems[0]


# ------------------------------------------------------------------------------------ the mel convention


def test_mels_in_another_convention_are_refused_once_for_the_set(tmp_path):
    entries = []
    for i in range(6):
        audio = write_clip(tmp_path / f"c{i}.wav", seed=i)
        np.save(tmp_path / f"c{i}.npy", recording_mel(audio) * 20 / np.log(10))  # dB instead of natural log
        entries.append(Entry(audio, tmp_path / f"c{i}.npy"))
    report = check_files(entries, TINY_AUDIO, SEGMENT)
    assert len(report.good) == 6 and not report.bad and not report.ok
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.startswith(f"paired mels ({tmp_path / 'c0.npy'}, {tmp_path / 'c1.npy'}, ")
    assert "c4.npy" not in problem and "dB mel" in problem  # the first four files, checked once
    with pytest.raises(DataError, match="dB mel"):
        usable_entries(entries, TINY_AUDIO, SEGMENT, skip_bad=True)  # not a bad file: a wrong convention
    plausible = [Entry(e.audio, e.audio.with_suffix(".ok.npy")) for e in entries]
    for entry in plausible:
        np.save(entry.mel, recording_mel(entry.audio))
    good = check_files(plausible, TINY_AUDIO, SEGMENT)
    assert good.ok and not good.problems and not good.mel_notes


# ------------------------------------------------------------------------------ --check-data, validation


def paired_config(folder: Path, train_list: Path, validation_list: Path) -> Path:
    cfg = Config(
        model=TINY_MODEL,
        audio=TINY_AUDIO,
        data=DataConfig(
            training_files=str(train_list), validation_files=str(validation_list), segment_length=SEGMENT
        ),
        train=TrainConfig(device="cpu"),
    )
    save_config(cfg, folder / "config.yaml")
    return folder / "config.yaml"


def test_check_data_reports_pairs_and_lists_bad_ones(tmp_path, capsys):
    for i in range(3):
        np.save(tmp_path / f"c{i}.npy", recording_mel(write_clip(tmp_path / f"c{i}.wav", seed=i)))
    np.save(tmp_path / "c1.npy", np.load(tmp_path / "c1.npy")[:, :-1])  # one frame short: within tolerance
    (tmp_path / "train.txt").write_text("c0.wav|c0.npy\nc1.wav|c1.npy\nc2.wav|gone.npy\n")
    (tmp_path / "validation.txt").write_text("c2.wav|c2.npy\n")
    config = paired_config(tmp_path, tmp_path / "train.txt", tmp_path / "validation.txt")
    assert train_script.main(["-c", str(config), "--check-data"]) == 1
    out = capsys.readouterr().out
    assert f"  {tmp_path / 'c2.wav'}: mel missing ({tmp_path / 'gone.npy'}: not found)" in out
    assert (
        "paired mels: 2 of 2 good files; mel frames minus 1 + samples // hop_length: -1: 1, equal: 1" in out
    )
    assert "paired mels: 1 of 1 good files" in out  # the validation list
    (tmp_path / "train.txt").write_text("c0.wav|c0.npy\nc1.wav|c1.npy\n")
    assert train_script.main(["-c", str(config), "--check-data"]) == 0


def test_validation_scores_held_out_pairs_under_their_mel_files(tmp_path):
    paths = [write_clip(tmp_path / f"c{i}.wav", seed=i) for i in range(2)]
    same, shifted = [], []
    for path in paths:
        mel = recording_mel(path)
        np.save(path.with_suffix(".same.npy"), mel)
        np.save(path.with_suffix(".shifted.npy"), np.concatenate([mel[:, 3:], mel[:, -3:]], axis=1))
        same.append(Entry(path, path.with_suffix(".same.npy")))
        shifted.append(Entry(path, path.with_suffix(".shifted.npy")))
    cfg = Config(
        model=TINY_MODEL, audio=TINY_AUDIO, data=DataConfig(segment_length=SEGMENT, validation_clips=1)
    ).validate()
    torch.manual_seed(0)
    model, cpu = randomize_end(WaveGlow(TINY_MODEL, TINY_AUDIO), scale=0.5).eval(), torch.device("cpu")
    recordings = validate(model, AudioClipDataset(paths, TINY_AUDIO), cfg, cpu)
    with_same = validate(model, AudioClipDataset(same, TINY_AUDIO), cfg, cpu)
    with_shifted = validate(model, AudioClipDataset(shifted, TINY_AUDIO), cfg, cpu)
    # the file holding the recording's own mel scores like the recording; a shifted mel scores otherwise
    assert abs(with_same.nll - recordings.nll) < 1e-6, (with_same.nll, recordings.nll)
    assert abs(with_shifted.nll - recordings.nll) > 1e-2, (with_shifted.nll, recordings.nll)
    assert abs(with_same.log_mel_distance - recordings.log_mel_distance) < 1e-4
    assert (
        abs(with_shifted.log_mel_distance - recordings.log_mel_distance) > 1e-3
    )  # synthesised from the file
