"""Where a training process runs: torchrun's process group, its device, the sampler that resumes mid-epoch.

Under torchrun every process reads RANK / WORLD_SIZE / LOCAL_RANK here and joins the process group (one
process under torchrun too); one process without torchrun is rank 0 of 1, without a process group. The sampler gives each rank its share of an epoch's order (from seed and epoch), and can start that
share after the batches a checkpoint says were already consumed.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from waveglow.device import check_device
from waveglow.train.errors import TrainingError


@dataclass
class DistEnv:
    """Where this process runs: its rank among world_size processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialised_here: bool = False
    # under a process group (torchrun, even one process): the model is wrapped in DDP, ranks synchronise
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> cuda:local_rank when CUDA is available, else cpu; "cuda" -> cuda:local_rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device is {name!r} but no CUDA device is available (use auto or cpu)")
    device = check_device(name, option="train.device")  # DeviceError for a malformed or absent device
    return torch.device("cuda", local_rank) if name == "cuda" else device


def setup_distributed(device_name: str) -> DistEnv:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; start the process group (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    env = DistEnv(rank, world_size, local_rank, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # WORLD_SIZE is set by torchrun, also for one process: that runs DDP (and NCCL on a GPU) too, the way
    # a multi-GPU run does; a plain `python train.py` has no process group.
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        env.initialised_here = True
    env.distributed = dist.is_initialized()
    return env


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (order from seed and epoch) that can start an epoch after ``start`` samples."""

    def __init__(self, dataset: Sized, env: DistEnv, seed: int):
        super().__init__(
            dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
