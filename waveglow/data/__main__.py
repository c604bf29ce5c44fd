"""``python -m waveglow.data check|split|voice``: check a data set, write split filelists, or rebuild the bundled
voice's data.

python -m waveglow.data check FILELIST [--data-root DIR] [--config FILE] [--split SPLIT]
python -m waveglow.data split FOLDER OUT_DIR [--prefix NAME] [--absolute]
python -m waveglow.data voice OUT_DIR [--deb FILE | --source DIR] [--reserved FILE]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from waveglow.audio import AudioFileError
from waveglow.config import Config, ConfigError, load_config
from waveglow.data.check import check_files
from waveglow.data.voice import (
    PACKAGE,
    VOICE_DIR,
    VoiceDataError,
    build,
    deb_members,
    download_package,
    folder_members,
    read_reserved,
)
from waveglow.filelists import SPLITS, DataError, resolve_files, write_filelist

# The project's list of prompts kept for independent evaluation, as shipped in filelists/ (a copy of the
# workspace's ../shared/reserved_prompts.txt, which tests/data/test_voice_data.py checks it equals).
DEFAULT_RESERVED = Path(__file__).resolve().parents[2] / "filelists" / "allison_reserved_prompts.txt"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m waveglow.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="scan every file once and report problems (exit 1 if any bad)")
    check.add_argument("files", help="filelist, LJSpeech folder or folder of audio files")
    check.add_argument("--data-root", default="", help="folder that relative filelist paths start from")
    check.add_argument("--config", default=None, help="config file (audio settings and segment_length)")
    check.add_argument("--split", default="all", choices=SPLITS, help="split of a folder (default: all)")
    split = commands.add_parser("split", help="write train/validation/test filelists for a folder")
    split.add_argument("folder", help="LJSpeech folder (metadata.csv + wavs/) or folder of audio files")
    split.add_argument("out_dir", help="where <prefix>_{train,validation,test}.txt are written")
    split.add_argument("--prefix", default=None, help="file name prefix (default: the folder's name)")
    split.add_argument(
        "--absolute", action="store_true", help="write absolute paths (default: relative to OUT_DIR)"
    )
    voice = commands.add_parser(
        "voice", help=f"rebuild the bundled voice's training set from the Debian package {PACKAGE}"
    )
    voice.add_argument("out_dir", help="where to write clips/, train.txt, validation.txt, reserved.txt")
    source = voice.add_mutually_exclusive_group()
    source.add_argument("--deb", help=f"a downloaded {PACKAGE}_*.deb (default: apt-get download it)")
    source.add_argument("--source", help=f"an installed voice folder (/{VOICE_DIR})")
    voice.add_argument(
        "--reserved",
        default=str(DEFAULT_RESERVED),
        help="list of prompts kept for independent evaluation (default: filelists/allison_reserved_prompts.txt)",
    )
    return parser.parse_args(argv)


def check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config) if args.config else Config()
    paths = resolve_files(args.files, args.data_root, args.split)
    report = check_files(paths, cfg.audio, cfg.data.segment_length)
    print(report.format(max_listed=10**9))
    return 0 if report.ok else 1


def split(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    out_dir = Path(args.out_dir)
    prefix = args.prefix or folder.resolve().name
    for name in ("train", "validation", "test"):
        files = resolve_files(folder, split=name)
        out = out_dir / f"{prefix}_{name}.txt"
        if args.absolute:
            write_filelist(out, [p.resolve() for p in files])
        else:  # relative to the list's own folder, so it works without a data_root
            write_filelist(out, files, relative_to=out_dir)
        print(f"{out}: {len(files)} files")
    return 0


def voice(args: argparse.Namespace) -> int:
    reserved = read_reserved(Path(args.reserved))
    if args.source:
        members = folder_members(Path(args.source))
    elif args.deb:
        members = deb_members(Path(args.deb))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            members = deb_members(download_package(Path(tmp)))
    lists = build(Path(args.out_dir), members, reserved)
    counts = ", ".join(f"{len(paths)} {split}" for split, paths in lists.items())
    print(f"{args.out_dir}: {counts} clips; train with data.training_files={args.out_dir}/train.txt")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return {"check": check, "split": split, "voice": voice}[args.command](args)
    except (DataError, ConfigError, AudioFileError, VoiceDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
