"""Where a training process runs: torchrun's process group, its device, the sampler that resumes mid-epoch.

Under torchrun every process reads RANK / WORLD_SIZE / LOCAL_RANK here and joins the process group (one
process under torchrun too); one process without torchrun is rank 0 of 1, without a process group. Every
collective waits at most train.collective_timeout_s for its peers; ``peer_failure`` turns a collective that
timed out or lost its peer into a TrainingError that says so. The sampler gives each rank its share of an epoch's order (from seed and epoch), and can start that
share after the batches a checkpoint says were already consumed.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass
from datetime import timedelta

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


def setup_distributed(device_name: str, collective_timeout_s: float = 1800.0) -> DistEnv:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; start the process group (NCCL on GPUs, gloo on CPU).

    ``collective_timeout_s`` bounds every collective (all-reduce, broadcast, barrier): a process whose peer
    is hung or gone gets an error after that long instead of waiting for ever (see ``peer_failure``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = check_device(device_name, option="train.device")  # cuda -> cuda:LOCAL_RANK
    env = DistEnv(rank, world_size, local_rank, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # WORLD_SIZE is set by torchrun, also for one process: that runs DDP (and NCCL on a GPU) too, the way
    # a multi-GPU run does; a plain `python train.py` has no process group.
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=collective_timeout_s)
        )
        env.initialised_here = True
    env.distributed = dist.is_initialized()
    return env


def restart_count(env: DistEnv) -> int:
    """How many times torchrun has restarted this job's workers: the largest TORCHELASTIC_RESTART_COUNT of
    all ranks (0 without torchrun). Each node's agent counts only the restarts its own failures caused (a
    node restarted because another one failed keeps 0), so the ranks agree on the largest."""
    count = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    if env.distributed:
        largest = torch.tensor([count], dtype=torch.int64, device=env.device)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        count = int(largest.item())
    return count


# gloo's words for a collective that waited past the process group's timeout, and for a peer that went away
_TIMEOUT_WORDS = ("timed out", "timeout")
_LOST_PEER_WORDS = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "connection refused",
)


def peer_failure(exc: BaseException, env: DistEnv, collective_timeout_s: float) -> TrainingError | None:
    """A TrainingError that tells the user what happened when ``exc`` comes from a collective whose peer hung
    (no answer within ``collective_timeout_s``) or went away; None for any other error (left as it is)."""
    if not env.distributed or not isinstance(exc, RuntimeError) or isinstance(exc, TrainingError):
        return None
    text = str(exc).lower()
    where = f"process rank {env.rank} of {env.world_size}"
    if any(words in text for words in _TIMEOUT_WORDS):
        return TrainingError(
            f"{where}: no answer from a peer process within train.collective_timeout_s="
            f"{collective_timeout_s:g} s; a peer is hung or far slower than this one. Check the other "
            "processes and machines (their logs, whether they are alive or stopped, a full disk, the network); "
            "raise train.collective_timeout_s if rank 0 legitimately pauses longer (validation, checkpoint "
            f"writing, the data check). torchrun restarts the group from the newest checkpoint when "
            f"--max-restarts allows. ({str(exc).strip().splitlines()[0][:200]})"
        )
    if any(words in text for words in _LOST_PEER_WORDS):
        return TrainingError(
            f"{where}: a peer process went away during a collective (killed or crashed; see its log). "
            "torchrun restarts the group from the newest checkpoint when --max-restarts allows. "
            f"({str(exc).strip().splitlines()[0][:200]})"
        )
    return None


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
