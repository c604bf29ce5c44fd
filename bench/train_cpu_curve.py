#!/usr/bin/env python3
"""A training run's validation curve against cumulative process CPU time, as model-card table rows.

``process_cpu_seconds`` in a run's metrics.jsonl restarts at 0 with every process (a resumed run is a new
process), so the CPU time of a run is the sum of each process's last value. For a run that continued from
earlier weights (``--init-from``, its step count restarted at 0), give the lineage's step and CPU minutes at
the run's first step:

    python3 bench/train_cpu_curve.py RUN/metrics.jsonl --step0 21860 --cpu-minutes0 312.6 [--every 1000]

prints ``| step | CPU minutes | held-out NLL | log-mel distance | STOI | V/UV F1 | voiced share |`` rows and
the lineage's total CPU hours.
"""

from __future__ import annotations

import argparse  # noqa: TID251 (a script: argument parsing and printing are its job)
import json
import sys
from pathlib import Path


def curve(lines: list[str], step0: int, minutes0: float) -> tuple[list[dict], float]:
    """(validation records with ``lineage_step`` and ``cpu_minutes`` added, total CPU hours)."""
    offset = last = 0.0
    rows = []
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("kind") == "train" and "process_cpu_seconds" in record:
            seconds = float(record["process_cpu_seconds"])
            if seconds < last:  # a new process: the previous one's total is final
                offset += last
            last = seconds
        elif record.get("kind") == "validation":
            rows.append(
                {
                    **record,
                    "lineage_step": step0 + record["step"],
                    "cpu_minutes": minutes0 + (offset + last) / 60,
                }
            )
    return rows, minutes0 / 60 + (offset + last) / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("metrics", type=Path, help="RUN/metrics.jsonl")
    parser.add_argument("--step0", type=int, default=0, help="lineage step at the run's step 0")
    parser.add_argument(
        "--cpu-minutes0", type=float, default=0.0, help="lineage CPU minutes at the run's step 0"
    )
    parser.add_argument("--every", type=int, default=1000, help="print every Nth step's row (default 1000)")
    args = parser.parse_args()
    rows, hours = curve(args.metrics.read_text().splitlines(), args.step0, args.cpu_minutes0)
    for r in rows:
        if r["step"] % args.every == 0:
            sys.stdout.write(
                f"| {r['lineage_step']:,} | {r['cpu_minutes']:.0f} | {r['nll']:.3f} | {r['log_mel_distance']:.3f} "
                f"| {r['stoi']:.3f} | {r['vuv_f1']:.3f} | {r['voiced_share']:.3f} |\n"
            )
    sys.stdout.write(f"total: {hours:.2f} CPU hours\n")


if __name__ == "__main__":
    main()
