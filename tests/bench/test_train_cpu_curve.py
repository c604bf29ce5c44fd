"""bench/train_cpu_curve.py: CPU time summed over the processes of a resumed run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_cpu_curve.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_cpu_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_time_adds_up_across_a_resume_and_the_lineage_offset():
    records = [
        {"kind": "train", "step": 25, "process_cpu_seconds": 60.0},
        {"kind": "train", "step": 50, "process_cpu_seconds": 120.0},
        {"kind": "validation", "step": 50, "nll": -5.0, "stoi": 0.9},
        {"kind": "train", "step": 75, "process_cpu_seconds": 180.0},
        # the process died; a resumed one starts its own clock at 0
        {"kind": "train", "step": 75, "process_cpu_seconds": 30.0},
        {"kind": "train", "step": 100, "process_cpu_seconds": 90.0},
        {"kind": "validation", "step": 100, "nll": -5.1, "stoi": 0.91},
    ]
    lines = [json.dumps(r) for r in records] + [""]
    rows, hours = _load().curve(lines, step0=1000, minutes0=10.0)
    assert [r["lineage_step"] for r in rows] == [1050, 1100]
    assert abs(rows[0]["cpu_minutes"] - (10.0 + 2.0)) < 1e-9
    assert abs(rows[1]["cpu_minutes"] - (10.0 + (180.0 + 90.0) / 60)) < 1e-9
    assert abs(hours - (10.0 / 60 + 270.0 / 3600)) < 1e-12
