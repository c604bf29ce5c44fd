"""Training data: the segment and clip datasets, the data check, the bundled voice's recipe; the command line
``python -m waveglow.data check|split|voice``."""

from waveglow.data.check import DataReport, check_files, usable_files
from waveglow.data.datasets import AudioClipDataset, AudioSegmentDataset

__all__ = ["AudioClipDataset", "AudioSegmentDataset", "DataReport", "check_files", "usable_files"]
