"""DistributedDataParallel through torchrun: 2 CPU processes with gloo against one process on the same global
batch. Tolerance: ranks must be bit-identical (DDP gives both the same averaged gradient); DDP vs one process
agree to atol 1e-5 / rtol 1e-4, the float32 rounding of averaging two half-batch gradients instead of one
full-batch mean, passed through Adam's normalisation for a few steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_config, train_losses

from waveglow.config import save_config
from waveglow.train.loop import train

# Runs train.py's main under torchrun and saves each rank's final weights (rank 0 alone writes the run dir).
WORKER = """
import sys, torch
sys.path.insert(0, {repo!r})
import train as cli
import waveglow.train.loop as training

torch.set_num_threads(1)
out_dir = sys.argv[1]
run = training.Trainer.run

def run_and_dump(self):
    result = run(self)
    weights = {{k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}
    torch.save(weights, f"{{out_dir}}/rank{{self.env.rank}}.pt")
    with open(f"{{out_dir}}/rank{{self.env.rank}}.wrapper", "w") as handle:
        handle.write(type(self.ddp).__name__)
    return result

training.Trainer.run = run_and_dump
sys.exit(cli.main(sys.argv[2:]))
"""


def _torchrun(tmp_path: Path, config: Path, run_dir: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(repo=str(REPO)))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        str(worker), str(tmp_path), "-c", str(config), "--run-dir", str(run_dir),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def _compare_with_single_process(tmp_path: Path, device: str) -> None:
    torch.set_num_threads(1)
    steps = 4  # 6 clips, global batch 2: one epoch boundary crossed
    ddp_cfg = tiny_config(
        tmp_path / "data", batch_size=1, max_steps=steps, validate_at_start=False, device=device
    )
    save_config(ddp_cfg, tmp_path / "ddp.yaml")
    done = _torchrun(tmp_path, tmp_path / "ddp.yaml", tmp_path / "ddp_run")
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    single_cfg = tiny_config(
        tmp_path / "data", batch_size=2, max_steps=steps, validate_at_start=False, device=device
    )
    train(single_cfg, tmp_path / "single_run")
    single = torch.load(tmp_path / f"single_run/checkpoints/step_{steps:08d}.pt", weights_only=True)["model"]
    moved, initial = 0.0, tiny_initial(single_cfg)
    for key, value in single.items():
        assert torch.allclose(rank0[key].cpu(), value, atol=1e-5, rtol=1e-4), key
        moved = max(moved, (value - initial[key]).abs().max().item())
    assert moved > 1e-3  # the weights did change, so the comparison means something

    ddp_losses, single_losses = train_losses(tmp_path / "ddp_run"), train_losses(tmp_path / "single_run")
    assert sorted(ddp_losses) == list(range(1, steps + 1))  # logged once per step: rank 0 only
    for step in ddp_losses:
        assert abs(ddp_losses[step] - single_losses[step]) < 1e-5
    assert len(list((tmp_path / "ddp_run/tensorboard").glob("events.out.tfevents.*"))) == 1
    assert (
        sorted(p.name for p in (tmp_path / "ddp_run/checkpoints").glob("*.pt"))[-1] == f"step_{steps:08d}.pt"
    )


def tiny_initial(cfg) -> dict[str, torch.Tensor]:
    from waveglow.train.loop import build_model

    return build_model(cfg).state_dict()


def test_two_cpu_processes_with_gloo_match_one_process(tmp_path):
    _compare_with_single_process(tmp_path, "cpu")


def _compare_one_process_under_torchrun(tmp_path: Path, device: str) -> None:
    """torchrun with one process runs DDP over a process group of one (gloo on CPU, NCCL on a GPU): the
    same weights as a plain single-process run, bit for bit on CPU (averaging over one rank changes nothing)."""
    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path / "data", batch_size=2, max_steps=3, validate_at_start=False, device=device)
    save_config(cfg, tmp_path / "cfg.yaml")
    done = _torchrun(tmp_path, tmp_path / "cfg.yaml", tmp_path / "ddp_run", nproc=1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "rank0.wrapper").read_text() == "DistributedDataParallel"
    under_torchrun = torch.load(tmp_path / "rank0.pt", weights_only=True)
    train(cfg, tmp_path / "single_run")
    single = torch.load(tmp_path / "single_run/checkpoints/step_00000003.pt", weights_only=True)["model"]
    for key, value in single.items():
        if device == "cpu":
            assert torch.equal(under_torchrun[key], value), key
        else:  # cuDNN may pick other (non-deterministic) kernels from run to run
            assert torch.allclose(under_torchrun[key].cpu(), value, atol=1e-5, rtol=1e-4), key
    assert train_losses(tmp_path / "ddp_run") == pytest.approx(
        train_losses(tmp_path / "single_run"), abs=1e-6
    )


def test_one_process_under_torchrun_runs_ddp_over_gloo(tmp_path, monkeypatch):
    from waveglow.train import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = distributed.setup_distributed("cpu")  # plain python: no process group, no DDP
    assert not env.distributed and not env.initialised_here
    _compare_one_process_under_torchrun(tmp_path, "cpu")


@pytest.mark.gpu
def test_one_gpu_under_torchrun_runs_ddp_over_nccl(tmp_path):
    _compare_one_process_under_torchrun(tmp_path, "cuda")


@pytest.mark.gpu(count=2)
def test_two_gpus_with_nccl_match_one_gpu(tmp_path):
    _compare_with_single_process(tmp_path, "cuda")
