"""The machine record: CPU model and flags from /proc/cpuinfo, the machine kind, library versions from torch's
build configuration, and the matrix-product peak measured in the run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from waveglow.bench import machine
from waveglow.bench.report import format_machine

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: another name that is not read
flags\t\t: fpu
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu avx avx2 fma avx512f avx512_bf16 avx512_vnni
"""


def test_cpu_record_reads_the_first_processor_and_names_the_kind():
    xeon = machine.cpu_record(XEON)
    assert xeon["model_name"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert (xeon["vendor"], xeon["family"], xeon["model"]) == ("GenuineIntel", "6", "143")
    assert xeon["flags"] == dict.fromkeys(machine.CPU_FLAGS, True)
    assert xeon["kind"] == "xeon-amx"
    epyc = machine.cpu_record(EPYC)
    assert [name for name, on in epyc["flags"].items() if not on] == ["amx_tile", "amx_bf16", "amx_int8"]
    assert epyc["kind"] == "epyc-avx512bf16"
    assert machine.machine_kind("Intel(R) Core(TM) i7-8700", {"avx2": True, "avx512f": False}) == "core-avx2"
    assert machine.machine_kind("AMD EPYC 7763", {"avx2": True, "avx512f": False}) == "epyc-avx2"
    assert machine.machine_kind("Intel(R) Xeon(R) Gold 6148", {"avx512f": True}) == "xeon-avx512"
    assert machine.machine_kind("", None, "arm64") == "arm64"  # no /proc/cpuinfo: the architecture only
    unknown = machine.cpu_record("")  # macOS, Windows: no cpuinfo, flags unknown (not absent)
    assert unknown["flags"] is None and unknown["model_name"]


def test_cpu_record_of_this_machine_agrees_with_proc_cpuinfo():
    record = machine.cpu_record()
    assert record["logical_cpus"] >= 1
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "flags" in cpuinfo.read_text():
        flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.M).group(1).split())
        assert record["flags"] == {name: name in flags for name in machine.CPU_FLAGS}
    env = machine.environment(torch.device("cpu"))
    assert env["cpu"] == record and env["device_name"] == record["model_name"]


def test_library_versions_are_parsed_from_torch_build_configuration():
    versions = machine.library_versions()
    assert versions["torch"] == torch.__version__
    if torch.backends.mkldnn.is_available():  # every x86 build of torch 2.11-2.14
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", versions["onednn"])
    # the line as torch 2.11-2.14 print it, and as a build naming oneDNN would
    line = "  - Intel(R) MKL-DNN v3.7.1 (Git Hash 8d263e693366ef8db40acc569cc7d8edf644556d)\n"
    pattern = r"(?:oneDNN|MKL-DNN)[^\n]*?\bv?(\d+\.\d+(?:\.\d+)?)"
    assert machine._config_version(line, pattern) == "3.7.1"
    assert machine._config_version("  - oneDNN v3.12.0 (Git Hash 80afa71)\n", pattern) == "3.12.0"
    assert machine._config_version("nothing here", pattern) is None


def test_peaks_are_measured_in_the_run_and_the_measured_one_is_used_on_a_cpu():
    cpu = torch.device("cpu")
    assert machine.gemm_precisions(cpu, ["fp32", "tf32", "fp16"]) == ["fp32", "bf16", "fp16"]
    assert machine.gemm_precisions(torch.device("cuda"), ["fp32"]) == ["fp32", "tf32", "bf16", "fp16"]
    peaks = machine.measure_peaks(cpu, ["fp32"], size=96)
    assert (peaks["size"], peaks["repeats"], peaks["threads"]) == (96, 5, torch.get_num_threads())
    for precision in ("fp32", "bf16"):
        info = peaks["by_precision"][precision]
        assert info["source"] == "measured" and info["used"] == info["measured"] > 0.01
        assert machine.used_peak(peaks, cpu, precision) == info["measured"]
    stated = machine.measure_peaks(cpu, ["fp32"], size=0)  # nothing measured: the stated figures
    assert stated["by_precision"]["fp32"] == {
        "measured": None,
        "stated": 150.0,
        "used": 150.0,
        "source": "stated",
    }
    assert stated["by_precision"]["bf16"]["used"] is None and stated["by_precision"]["bf16"]["source"] is None
    assert machine.used_peak(None, cpu, "fp32") == 150.0


def test_gemm_rate_counts_two_flops_per_multiply_add(monkeypatch):
    times = iter([0.5, 0.25, 0.4])  # the best of three timed products is taken
    monkeypatch.setattr(machine, "timed", lambda fn, device: (next(times), fn()))
    gflops = machine.measure_gemm_gflops(torch.device("cpu"), "fp32", size=100, repeats=3)
    assert gflops == pytest.approx(2 * 100**3 / 0.25 / 1e9)


def test_machine_block_of_the_report_lists_flags_libraries_load_and_peaks():
    env = {
        "cpu": machine.cpu_record(EPYC),
        "libraries": {"torch": "2.14.1", "onednn": "3.12.0", "mkl": "2024.2", "openmp": None, "cuda": None},
        "load_average": [1.5, 1.25, 1.0],
        "cpu_count": 2,
        "device_name": "AMD EPYC 9654 96-Core Processor",
    }
    peaks = {
        "size": 2048, "repeats": 5, "threads": 2,
        "by_precision": {
            "fp32": {"measured": 120.04, "stated": 150.0, "used": 120.04, "source": "measured"},
            "bf16": {"measured": 250.0, "stated": None, "used": 250.0, "source": "measured"},
        },
    }  # fmt: skip
    text = "\n".join(format_machine(env, peaks))
    assert (
        "Machine `epyc-avx512bf16`: AMD EPYC 9654 96-Core Processor (AuthenticAMD, family 25, model 17)"
        in text
    )
    assert "avx2, fma, avx512f, avx512_bf16, avx512_vnni present; amx_tile, amx_bf16, amx_int8 absent" in text
    assert "Libraries: torch 2.14.1, oneDNN 3.12.0, MKL 2024.2." in text
    assert "Load average when the run started: 1.50, 1.25, 1.00" in text
    assert "best of 5, 2 threads" in text
    assert "| fp32 | 120.0 | 150.0 | measured |" in text and "| bf16 | 250.0 | n/a | measured |" in text
