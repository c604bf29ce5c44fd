"""Filelists and splits (waveglow.filelists), the data check (waveglow.data_check), and the segment and clip
datasets and the CLI (waveglow.data), on generated signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import RATE, REPO, TINY_AUDIO, speech_like
from torch.utils.data import DataLoader

from waveglow.audio import MelSpectrogram
from waveglow.data.__main__ import main
from waveglow.data.check import check_files, usable_files
from waveglow.data.datasets import AudioClipDataset, AudioSegmentDataset, mirror_pad
from waveglow.filelists import DataError, ljspeech_files, read_filelist, resolve_files, split_keys

SEGMENT = 2048


def write(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype=subtype)
    return path


# --------------------------------------------------------------------------------------------- filelists


def test_filelist_formats_comments_and_roots(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    plain = lists / "plain.txt"
    plain.write_text("# a comment\n\nwavs/a.wav\n  wavs/b.flac  \n/abs/c.wav\n")
    tacotron = lists / "tacotron.txt"
    tacotron.write_text("wavs/a.wav|Hello there.\n\n# skip|me\nwavs/b.flac|Second one.|extra|fields\n")
    assert read_filelist(plain) == [lists / "wavs/a.wav", lists / "wavs/b.flac", Path("/abs/c.wav")]
    assert read_filelist(tacotron) == [lists / "wavs/a.wav", lists / "wavs/b.flac"]
    root = tmp_path / "data"
    assert read_filelist(tacotron, data_root=root) == [root / "wavs/a.wav", root / "wavs/b.flac"]
    assert resolve_files(str(tacotron), data_root=str(root), split="validation") == read_filelist(
        tacotron, root
    )
    empty = lists / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(DataError, match="empty.txt"):
        read_filelist(empty)
    with pytest.raises(DataError, match="nope.txt"):
        resolve_files(str(lists / "nope.txt"))


def test_split_is_deterministic_disjoint_and_ljspeech_sized():
    keys = [f"LJ{c:03d}-{i:04d}" for c in range(1, 51) for i in range(1, 263)][:13100]
    parts = {name: split_keys(keys, name) for name in ("train", "validation", "test")}
    assert [len(parts[n]) for n in ("train", "validation", "test")] == [12500, 100, 500]
    assert set().union(*map(set, parts.values())) == set(range(13100))
    assert sum(map(len, parts.values())) == 13100
    assert parts["validation"] == split_keys(list(keys), "validation")  # same on every call
    assert split_keys(keys[:2], "validation") == [0, 1]  # too few to split: every split has all


def test_ljspeech_folder_and_audio_folder(tmp_path):
    lj = tmp_path / "LJSpeech-1.1"
    (lj / "wavs").mkdir(parents=True)
    ids = [f"LJ001-{i:04d}" for i in range(1, 41)]
    (lj / "metadata.csv").write_text("".join(f"{i}|Text {i}.|Text {i}.\n" for i in ids))
    train = resolve_files(str(lj), split="train")
    val = resolve_files(str(lj), split="validation")
    test = resolve_files(str(lj), split="test")
    assert (len(train), len(val), len(test)) == (37, 1, 2)  # 40 * 100/13100, 40 * 500/13100
    assert sorted(train + val + test) == [lj / "wavs" / f"{i}.wav" for i in ids]
    assert resolve_files(str(lj / "metadata.csv"), split="validation") == val
    assert len(resolve_files(str(lj), split="all")) == 40

    folder = tmp_path / "clips"
    for i in range(5):
        write(folder / f"spk{i % 2}" / f"c{i}.wav", speech_like(0.1, seed=i))
    (folder / "notes.txt").write_text("not audio")
    everything = resolve_files(str(folder), split="all")
    assert len(everything) == 5 and all(p.suffix == ".wav" for p in everything)
    parts = [resolve_files(str(folder), split=s) for s in ("train", "validation", "test")]
    assert sorted(sum(parts, [])) == everything and [len(p) for p in parts] == [3, 1, 1]
    with pytest.raises(DataError, match="split"):
        resolve_files(str(folder), split="dev")


# ------------------------------------------------------------------------------------------ the data check


def make_bad_set(tmp_path: Path) -> dict[str, Path]:
    files = {
        "good": write(tmp_path / "good.wav", speech_like(0.5)),
        "good16k": write(tmp_path / "good16k.flac", speech_like(0.5, rate=16000), rate=16000),
        "short": write(tmp_path / "short.wav", speech_like(0.1)),  # 800 samples < SEGMENT: a warning
        "gap": write(tmp_path / "gap.wav", np.concatenate([speech_like(0.1), np.zeros(9), speech_like(0.1)])),
        "missing": tmp_path / "missing.wav",
        "empty": tmp_path / "empty.wav",
        "corrupt": tmp_path / "corrupt.wav",
        "nan": tmp_path / "nan.wav",
        "silent": write(tmp_path / "silent.wav", np.zeros(4000, dtype=np.float32)),
        "tiny": write(tmp_path / "tiny.wav", speech_like(0.005)),  # 40 samples < one 64-sample window
        "noframes": write(tmp_path / "noframes.wav", np.zeros(0, dtype=np.float32)),
    }
    files["empty"].write_bytes(b"")
    files["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    with_nan = speech_like(0.5)
    with_nan[100] = np.nan
    write(files["nan"], with_nan, subtype="FLOAT")
    return files


def test_check_files_reports_every_problem_with_the_file(tmp_path):
    files = make_bad_set(tmp_path)
    report = check_files(list(files.values()), TINY_AUDIO, SEGMENT)
    assert report.good == [files["good"], files["good16k"], files["short"], files["gap"]]
    reasons = {path.name: reason for path, reason in report.bad}
    expected = {
        "missing.wav": "missing",
        "empty.wav": "empty",
        "corrupt.wav": "unreadable",
        "nan.wav": "NaN",
        "silent.wav": "silent",
        "tiny.wav": "too short",
        "noframes.wav": "empty",
    }
    assert {name: reasons[name].split(" (")[0] for name in reasons} == expected
    assert report.sample_rates == {8000: 3, 16000: 1}
    assert report.hours == pytest.approx((0.5 + 0.5 + 0.1 + (1609 / 8000)) / 3600, rel=1e-3)
    assert [p.name for p, _ in report.warnings] == ["short.wav", "gap.wav"]
    assert report.digital_silence == 1  # gap.wav: 9 exact zeros
    text = report.format()
    for name in [*expected, "short.wav"]:
        assert name in text
    assert "4 good, 7 bad" in text and "1 files will be resampled to 8000 Hz" in text
    assert "1 files hold digital silence" in text

    with pytest.raises(DataError) as err:
        usable_files(list(files.values()), TINY_AUDIO, SEGMENT)
    assert "nan.wav" in str(err.value) and "skip_bad_files" in str(err.value)
    assert usable_files(list(files.values()), TINY_AUDIO, SEGMENT, skip_bad=True) == report.good


def test_check_cli_exit_code_and_report(tmp_path, capsys):
    files = make_bad_set(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(p.name for p in files.values()) + "\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "audio: {sampling_rate: 8000, filter_length: 64, hop_length: 16, win_length: 64, "
        "n_mel_channels: 8, mel_fmax: 4000.0}\nmodel: {n_mel_channels: 8}\ndata: {segment_length: 2048}\n"
    )
    assert main(["check", str(listing), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "corrupt.wav: unreadable" in out and "missing.wav: missing" in out
    good_list = tmp_path / "good.txt"
    good_list.write_text(f"{files['good'].name}|text\n")
    assert main(["check", str(good_list), "--data-root", str(tmp_path), "--config", str(config)]) == 0


# ---------------------------------------------------------------------------------------------- datasets


def clips(tmp_path: Path) -> list[Path]:
    return [
        write(tmp_path / "a.wav", speech_like(0.6, seed=1)),
        write(tmp_path / "b.flac", speech_like(0.8, seed=2, f0=200)),
        write(tmp_path / "c16k.wav", speech_like(0.5, rate=16000, seed=3), rate=16000),
        write(tmp_path / "short.wav", speech_like(0.1, seed=4)),
    ]


def all_items(ds) -> torch.Tensor:
    return torch.stack([ds[i] for i in range(len(ds))])


def test_segments_are_reproducible_and_change_with_epoch_and_seed(tmp_path):
    paths = clips(tmp_path)
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    ds = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=7, dither=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # no global random state touched
    assert np.array_equal(np.random.get_state()[1], np_state)
    first = all_items(ds)
    assert first.shape == (4, SEGMENT) and first.dtype == torch.float32
    assert torch.equal(first, all_items(AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=7, dither=0)))
    assert torch.equal(first, all_items(ds))  # reading again gives the same segments
    ds.set_epoch(1)
    second = all_items(ds)
    assert not torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])
    other_seed = all_items(AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=8))
    assert not torch.equal(first[0], other_seed[0])
    # the segment is a slice of the file
    full = sf.read(str(paths[0]), dtype="float32")[0]
    start = int(
        np.argmin([np.abs(full[s : s + 64] - first[0, :64].numpy()).sum() for s in range(len(full) - 64)])
    )
    assert np.array_equal(full[start : start + SEGMENT], first[0].numpy())


def test_workers_get_the_same_segments_and_see_the_epoch(tmp_path):
    paths = clips(tmp_path)
    ds = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=3)
    serial = [all_items(ds)]
    ds.set_epoch(1)
    serial.append(all_items(ds))
    ds.set_epoch(0)
    loader = DataLoader(ds, batch_size=1, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        batched = torch.cat(list(loader))
        assert torch.equal(batched, serial[epoch])


def test_short_clips_are_mirror_padded_never_zero_padded(tmp_path):
    short = speech_like(0.1, seed=4)  # 800 samples
    path = write(tmp_path / "short.wav", short, subtype="FLOAT")
    ds = AudioSegmentDataset([path], TINY_AUDIO, SEGMENT, seed=0, dither=0)
    lefts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        segment = ds[0].numpy()
        assert segment.shape == (SEGMENT,)
        # no squeezed column of 8 samples is all zeros (zero padding gives hundreds: unbounded density)
        assert np.min(np.abs(segment.reshape(-1, 8)).max(axis=1)) > 0
        # the padding is the clip mirrored: the segment is symmetric-pad of the clip at some offset
        left = next(k for k in range(SEGMENT - len(short) + 1) if np.array_equal(segment[k : k + 800], short))
        assert np.array_equal(segment, mirror_pad(short, SEGMENT, left))
        lefts.add(left)
    assert len(lefts) > 1  # the clip's position varies
    zero_padded = np.pad(short, (0, SEGMENT - len(short)))
    assert np.sum(np.abs(zero_padded.reshape(-1, 8)).max(axis=1) == 0) > 100  # what the old code did
    assert (
        len(AudioSegmentDataset([path, *clips(tmp_path)[:1]], TINY_AUDIO, SEGMENT, short_clips="drop")) == 1
    )


def test_short_clip_loss_stays_bounded(tmp_path):
    """Fitting a per-column Gaussian: zero padding drives the NLL to -inf, mirror padding does not."""
    short = speech_like(0.1, seed=5)
    path = write(tmp_path / "short.wav", short)
    ds = AudioSegmentDataset([path], TINY_AUDIO, SEGMENT, seed=0, dither=0)
    segments = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        segments.append(ds[0].numpy())
    columns = np.stack(segments).reshape(-1, 8)  # squeezed vectors, as the flow sees them
    min_energy = np.min(np.mean(columns**2, axis=1))
    assert min_energy > 1e-8
    zero = np.pad(short, (0, SEGMENT - len(short))).reshape(-1, 8)
    assert np.min(np.mean(zero**2, axis=1)) == 0.0


def test_resampled_files_cache_and_mel(tmp_path):
    paths = clips(tmp_path)
    cache = tmp_path / "cache"
    plain = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=1)
    cached = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=1, cache_dir=cache)
    first = all_items(cached)
    assert torch.equal(first, all_items(plain))
    entries = sorted(cache.glob("*.npy"))
    assert len(entries) == 2  # the 16 kHz file (long) and the short clip are decoded whole
    assert torch.equal(all_items(cached), first)  # read back from the cache
    assert sorted(cache.glob("*.npy")) == entries

    with_mel = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT, seed=1, return_mel=True)
    audio, mel = with_mel[2]
    assert torch.equal(audio, first[2])
    assert mel.shape == (8, 1 + SEGMENT // 16)
    batch_mel = MelSpectrogram(TINY_AUDIO)(first)  # what a trainer computes batch-wise on its device
    assert torch.allclose(batch_mel[2], mel, atol=1e-5)


def test_clip_dataset_returns_whole_clips_at_the_config_rate(tmp_path):
    paths = clips(tmp_path)
    ds = AudioClipDataset(paths, TINY_AUDIO)
    audio, name = ds[0]
    assert audio.shape == (4800,) and audio.dtype == torch.float32 and name == str(paths[0])
    resampled, _ = ds[2]
    assert resampled.shape == (4000,)  # 0.5 s at 16 kHz -> 0.5 s at 8 kHz
    assert AudioClipDataset(paths, TINY_AUDIO, max_samples=1000)[1][0].shape == (1000,)


def test_split_cli_writes_lists_that_read_back(tmp_path, capsys):
    folder = tmp_path / "clips"
    for i in range(6):
        write(folder / f"c{i}.flac", speech_like(0.1, seed=i))
    out = tmp_path / "lists"
    assert main(["split", str(folder), str(out), "--prefix", "demo"]) == 0
    parts = [read_filelist(out / f"demo_{name}.txt") for name in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [4, 1, 1]
    assert sorted(p.resolve() for p in sum(parts, [])) == [
        p.resolve() for p in resolve_files(str(folder), split="all")
    ]
    assert not (out / "demo_train.txt").read_text().startswith("/")  # relative to the list's folder


def test_shipped_corpus_lists_are_disjoint():
    lists = REPO / "filelists"
    parts = [read_filelist(lists / f"corpus_{name}.txt") for name in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [653, 5, 26]
    assert len(set().union(*map(set, parts))) == 684
    assert all(p.suffix == ".flac" for p in parts[0])


def test_dither_fills_digital_silence_reproducibly(tmp_path):
    audio = speech_like(0.5, seed=6)
    audio[1000:3000] = 0.0  # digital silence, as silence-trimmed recordings often hold
    path = write(tmp_path / "gap.wav", audio, subtype="FLOAT")
    plain = AudioSegmentDataset([path], TINY_AUDIO, 3200, seed=2, dither=0)[0].numpy()
    assert np.sum(np.abs(plain.reshape(-1, 8)).max(axis=1) == 0) >= 200  # 2000 zeros in the segment
    dithered = AudioSegmentDataset([path], TINY_AUDIO, 3200, seed=2)[0].numpy()
    assert np.abs(dithered.reshape(-1, 8)).max(axis=1).min() > 0
    assert 0 < np.abs(dithered - plain).max() <= 0.5 / 32768 + 1e-9
    again = AudioSegmentDataset([path], TINY_AUDIO, 3200, seed=2)[0].numpy()
    assert np.array_equal(dithered, again)


def test_resampling_is_logged_once_per_dataset(tmp_path, caplog):
    paths = [
        write(tmp_path / f"r{i}.wav", speech_like(0.4, rate=16000, seed=i), rate=16000) for i in range(3)
    ]
    with caplog.at_level("INFO", logger="waveglow.data"):
        ds = AudioSegmentDataset(paths, TINY_AUDIO, SEGMENT)
        all_items(ds)
        clips_ds = AudioClipDataset(paths, TINY_AUDIO)
        [clips_ds[i] for i in range(3)]
    messages = [r.getMessage() for r in caplog.records if "resampling" in r.getMessage()]
    assert messages == [
        "resampling 3 of 3 files (16000 Hz: 3) to 8000 Hz at every read (no cache_dir)",
        "resampling 3 of 3 clips to 8000 Hz",
    ]


def test_shipped_ljspeech_lists_are_the_folder_split(tmp_path):
    """filelists/ljspeech_*.txt hold the split an LJSpeech folder gets at run time, 12,500/100/500 clips."""
    root = REPO / "filelists"
    shipped = {name: read_filelist(root / f"ljspeech_{name}.txt") for name in ("train", "validation", "test")}
    assert {name: len(paths) for name, paths in shipped.items()} == {
        "train": 12500,
        "validation": 100,
        "test": 500,
    }
    ids = sorted(path.stem for paths in shipped.values() for path in paths)
    assert len(set(ids)) == 13100 and ids[0] == "LJ001-0001" and ids[-1] == "LJ050-0278"
    folder = tmp_path / "LJSpeech-1.1"
    (folder / "wavs").mkdir(parents=True)
    (folder / "metadata.csv").write_text("".join(f"{i}|text|text\n" for i in reversed(ids)))
    for name, paths in shipped.items():
        assert all(path.parent.name == "wavs" for path in paths)
        assert sorted(p.name for p in paths) == sorted(p.name for p in ljspeech_files(folder, split=name))


def test_locate_classifies_a_data_spec_once_for_every_reader(tmp_path):
    """filelists.locate is the one rule: an LJSpeech folder (or its metadata.csv), a folder of audio, or a
    filelist; relative specs under data_root; training's held-out split follows the same kinds."""
    from waveglow.filelists import DataError, locate

    lj = tmp_path / "LJ"
    (lj / "wavs").mkdir(parents=True)
    (lj / "metadata.csv").write_text("a|text|text\n")
    plain = tmp_path / "clips"
    plain.mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text("clips/a.wav\n")
    lone_csv = plain / "metadata.csv"  # a metadata.csv without wavs/ beside it: a filelist
    lone_csv.write_text("a.wav\n")
    assert locate(lj) == (lj, "ljspeech")
    assert locate(lj / "metadata.csv") == (lj, "ljspeech")
    assert locate(plain) == (plain, "folder")
    assert locate(listing) == (listing, "filelist")
    assert locate(lone_csv) == (lone_csv, "filelist")
    assert locate("list.txt", data_root=tmp_path) == (tmp_path / "list.txt", "filelist")
    with pytest.raises(DataError, match="nothing.txt: no such filelist or folder"):
        locate("nothing.txt", data_root=tmp_path)
    with pytest.raises(DataError, match="no data given"):
        locate("")


def test_check_reports_a_float_clip_beyond_full_scale(tmp_path):
    """A float file with samples beyond [-1, 1] is usable (clipped on load) but the check says so, with the
    peak it read before clipping."""
    loud = tmp_path / "loud.wav"
    tone = 1.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / RATE)
    sf.write(loud, tone.astype(np.float32), RATE, subtype="FLOAT")
    report = check_files([loud], TINY_AUDIO, SEGMENT)
    assert report.good == [loud]
    [(path, note)] = report.warnings
    assert path == loud and note.startswith("peak 1.5") and "clipped on load" in note
