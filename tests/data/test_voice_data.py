"""The bundled voice's data recipe: package reading, G.722 decoding, trimming, the fixed split."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO

from waveglow.data import voice as voice_data
from waveglow.data.voice import VoiceDataError


def g722_tone(seconds: float = 1.0, pitch: float = 220.0) -> tuple[np.ndarray, bytes]:
    """A 16 kHz tone between two silences and its G.722 encoding."""
    import G722

    rate = voice_data.SOURCE_RATE
    time_axis = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * pitch * time_axis)
    audio = np.concatenate([np.zeros(rate // 2), tone, np.zeros(rate // 2)])
    pcm = (audio * 32767).astype(np.int16)
    return audio.astype(np.float32), bytes(G722.G722(rate, 64000).encode(pcm))


def fake_deb(path: Path, members: dict[str, bytes]) -> Path:
    """A minimal Debian package: an ar archive with debian-binary and data.tar.xz holding ``members``."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(f"./{voice_data.VOICE_DIR}/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    out = bytearray(b"!<arch>\n")
    for name, body in ((b"debian-binary", b"2.0\n"), (b"data.tar.xz", data.getvalue())):
        header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        out += header + str(len(body)).encode().ljust(10) + b"`\n" + body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


def test_g722_round_trip_and_processing():
    audio, encoded = g722_tone()
    decoded = voice_data.decode_g722(encoded)
    assert decoded.shape == audio.shape and decoded.dtype == np.float32
    # G.722 has a short codec delay; the tone's energy survives within 1 dB
    middle = slice(8000 + 1600, 24000 - 1600)
    assert abs(10 * np.log10(np.mean(decoded[middle] ** 2) / np.mean(audio[middle] ** 2))) < 1.0
    processed = voice_data.process(decoded)
    seconds = len(processed) / voice_data.SAMPLING_RATE
    assert 1.2 < seconds < 1.3  # the 1 s tone and 2 x 120 ms of margin; the silences are trimmed
    assert abs(np.abs(processed).max() - 10 ** (-1 / 20)) < 1e-4  # peak at -1 dBFS


def test_split_rules(tmp_path):
    reserved = {"vm-sorry", "dictate/truncating_audio"}
    assert voice_data.split_of("vm-sorry", reserved) == "reserved"
    assert voice_data.split_of("dictate/truncating_audio", reserved) == "reserved"
    assert voice_data.split_of("conf-noempty", reserved) == "validation"  # held out by the demo
    assert (
        voice_data.split_of("beep", reserved) is None and voice_data.split_of("silence/1", reserved) is None
    )
    names = [f"prompt-{i}" for i in range(400)]
    splits = [voice_data.split_of(name, reserved) for name in names]
    assert 0.02 < splits.count("validation") / len(names) < 0.08  # 5% by SHA-1, fixed
    assert splits == [voice_data.split_of(name, reserved) for name in names]
    listed = tmp_path / "reserved.txt"
    listed.write_text("\ufeff# comment\nvm-sorry.g722\n\ndictate/truncating_audio.g722  # why\n")
    assert voice_data.read_reserved(listed) == reserved


def test_the_shipped_reserved_list_names_only_prompts_it_keeps_out():
    """filelists/allison_reserved_prompts.txt (the default of python -m waveglow.data voice) holds the 20
    reserved prompts, the same as the workspace's ../shared/reserved_prompts.txt where that is present."""
    path = REPO / "filelists" / "allison_reserved_prompts.txt"
    reserved = voice_data.read_reserved(path)
    shared = REPO.parent / "shared" / "reserved_prompts.txt"
    if shared.is_file():
        assert voice_data.read_reserved(shared) == reserved
    assert len(reserved) == 20
    assert all(voice_data.split_of(name, reserved) == "reserved" for name in reserved)


def test_build_from_a_package(tmp_path):
    _, tone = g722_tone()
    deb = fake_deb(
        tmp_path / "voice.deb",
        {"hello.g722": tone, "vm-sorry.g722": tone, "beep.g722": tone, "digits/1.g722": tone},
    )
    members = voice_data.deb_members(deb)
    assert sorted(members) == ["beep.g722", "digits/1.g722", "hello.g722", "vm-sorry.g722"]
    lists = voice_data.build(tmp_path / "out", members, reserved={"vm-sorry"})
    assert lists["reserved"] == ["clips/vm-sorry.flac"]
    assert sorted(lists["train"] + lists["validation"]) == ["clips/digits/1.flac", "clips/hello.flac"]
    for split in ("train", "validation", "reserved"):
        text = (tmp_path / "out" / f"{split}.txt").read_text()
        assert text.splitlines() == lists[split]
    info = sf.info(tmp_path / "out" / "clips" / "hello.flac")
    assert info.samplerate == 22050 and info.subtype == "PCM_16" and info.format == "FLAC"
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme or "Attribution-ShareAlike 3.0" in readme
    assert "never train on them" in readme


def test_bad_sources_are_named(tmp_path):
    bogus = tmp_path / "x.deb"
    bogus.write_bytes(b"not an archive")
    with pytest.raises(VoiceDataError, match="x.deb: not a Debian package"):
        voice_data.deb_members(bogus)
    empty = fake_deb(tmp_path / "empty.deb", {})
    with pytest.raises(VoiceDataError, match="no .g722 prompts"):
        voice_data.deb_members(empty)
    with pytest.raises(VoiceDataError, match="reserved-prompt list not found"):
        voice_data.read_reserved(tmp_path / "missing.txt")
