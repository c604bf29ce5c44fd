"""Faults in distributed training, on one machine as two "nodes": two torchrun agents (``--nnodes 2
--nproc_per_node 1``) meeting at a c10d rendezvous on 127.0.0.1, one CPU worker each, gloo.

- the two nodes train as one process does on the same global batch (the tolerance of test_ddp.py);
- ``kill -9`` of one worker under ``--max-restarts 1``: torchrun restarts the group, which resumes from the
  newest checkpoint by itself and ends with the weights of an uninterrupted run;
- a peer that hangs (SIGSTOP): the other worker stops after train.collective_timeout_s with an error that
  names the key and what to check, and its node's torchrun exits non-zero.

The worker script pauses one rank after a chosen step (once, writing its pid to a file), so
the test acts on a known step instead of racing the training loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_config

from waveglow.config import ConfigError, save_config
from waveglow.train.distributed import DistEnv, peer_failure
from waveglow.train.loop import train

# train.py's main with two hooks: each rank saves its final weights when its run ends, and rank PAUSE_RANK
# writes its pid to <out>/paused after step PAUSE_STEP and then waits (once: the test kills or stops it there).
# Every worker leaves an empty pid.<PID> file, so that the test can end what is left of them.
WORKER = """
import os, sys, time, torch
sys.path.insert(0, {repo!r})
import train as cli
import waveglow.train.loop as training

torch.set_num_threads(1)
out_dir, pause_rank, pause_step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
run, after_step = training.Trainer.run, training.Trainer.after_step
open(f"{{out_dir}}/pid.{{os.getpid()}}", "w").close()

def run_and_dump(self):
    result = run(self)
    weights = {{k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}}
    torch.save(weights, f"{{out_dir}}/weights.rank{{self.env.rank}}.pt")
    return result

def after_step_then_pause(self, result):
    reason = after_step(self, result)
    paused = f"{{out_dir}}/paused"
    if self.env.rank == pause_rank and self.state.step == pause_step and not os.path.exists(paused):
        with open(paused + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(paused + ".tmp", paused)
        while True:
            time.sleep(1)
    return reason

training.Trainer.run = run_and_dump
training.Trainer.after_step = after_step_then_pause
sys.exit(cli.main(sys.argv[4:]))
"""

STEPS = 8  # global batch 2 (1 per node), 6 clips: 3 steps per epoch, two epoch boundaries
PAUSE_STEP = 5  # the newest checkpoint then is step 4 (checkpoint_interval 2): step 5 is done twice


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_nodes(tmp_path: Path, config: Path, run_dir: Path, max_restarts: int, pause_rank: int):
    """Two torchrun agents (the two nodes) on one c10d rendezvous; returns their Popen objects."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(repo=str(REPO)))
    port = _free_port()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"faults{port}",
        "--max-restarts", str(max_restarts), "--monitor-interval", "0.2",
        str(worker), str(tmp_path), str(pause_rank), str(PAUSE_STEP),
        "-c", str(config), "--run-dir", str(run_dir),
    ]  # fmt: skip
    # torch shares the rendezvous store with the workers by default, and a restarted group can then read
    # its peers' addresses from the attempt before (pytorch/pytorch#135712): the documented opt-out
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
    nodes = []
    for index in range(2):
        log = open(tmp_path / f"node{index}.log", "w")  # noqa: SIM115 - closed with the process
        nodes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return nodes


def _wait_for(path: Path, nodes: list[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear within {seconds} s"
        assert all(node.poll() is None for node in nodes), "a node ended early: " + _logs(path.parent)
        time.sleep(0.05)


def _logs(folder: Path) -> str:
    return "\n".join((folder / f"node{i}.log").read_text()[-3000:] for i in range(2))


def _end(nodes: list[subprocess.Popen], folder: Path) -> None:
    """Kill whatever of ours is still running (agents and the workers whose pids the workers wrote)."""
    for path in folder.glob("pid.*"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(path.suffix[1:]), signal.SIGKILL)
    for node in nodes:
        if node.poll() is None:
            node.kill()
        node.wait()


def _single_process_weights(tmp_path: Path) -> dict[str, torch.Tensor]:
    """The uninterrupted reference: one process with the global batch of the two nodes."""
    cfg = _config(tmp_path, batch_size=2)
    train(cfg, tmp_path / "single_run")
    path = tmp_path / f"single_run/checkpoints/step_{STEPS:08d}.pt"
    return torch.load(path, weights_only=True)["model"]


def _config(tmp_path: Path, **overrides):
    settings = dict(batch_size=1, max_steps=STEPS, validate_at_start=False, validation_interval=100)
    settings.update(overrides)
    return tiny_config(tmp_path / "data", **settings)


def _assert_close(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    """Within test_ddp.py's tolerance of DDP against one process (atol 1e-5, rtol 1e-4)."""
    assert weights.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.allclose(weights[key], value, atol=1e-5, rtol=1e-4), key


@pytest.mark.slow
def test_two_nodes_match_one_process(tmp_path):
    save_config(_config(tmp_path), tmp_path / "ddp.yaml")
    nodes = _start_nodes(tmp_path, tmp_path / "ddp.yaml", tmp_path / "run", max_restarts=0, pause_rank=-1)
    try:
        codes = [node.wait(timeout=50) for node in nodes]
    finally:
        _end(nodes, tmp_path)
    assert codes == [0, 0], _logs(tmp_path)
    rank0 = torch.load(tmp_path / "weights.rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "weights.rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP: one averaged gradient on both
    _assert_close(rank0, _single_process_weights(tmp_path))


@pytest.mark.slow
def test_kill9_of_one_worker_restarts_the_group_which_resumes(tmp_path):
    """rank 0 (the writer of the run directory, the holder of its lock) is killed after step 5."""
    save_config(_config(tmp_path, collective_timeout_s=30.0), tmp_path / "ddp.yaml")
    run_dir = tmp_path / "run"
    nodes = _start_nodes(tmp_path, tmp_path / "ddp.yaml", run_dir, max_restarts=1, pause_rank=0)
    try:
        _wait_for(tmp_path / "paused", nodes, 40)
        os.kill(int((tmp_path / "paused").read_text()), signal.SIGKILL)
        codes = [node.wait(timeout=50) for node in nodes]
    finally:
        _end(nodes, tmp_path)
    assert codes == [0, 0], _logs(tmp_path)
    assert len(list(tmp_path.glob("pid.*"))) == 4  # two workers, then two restarted ones
    rank0 = torch.load(tmp_path / "weights.rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "weights.rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    logs = _logs(tmp_path)
    assert "torchrun restart 1: resuming from the newest checkpoint" in logs
    assert "(step 4)" in logs  # resumed from step 4, the newest checkpoint when the worker was killed
    _assert_close(rank0, _single_process_weights(tmp_path))


@pytest.mark.slow
def test_hung_peer_ends_the_job_after_the_collective_timeout(tmp_path):
    """A SIGSTOPped worker: its peer stops with the timeout error and its node's torchrun exits non-zero.

    Only that node is asserted: the node of the stopped worker ends only when its agent is not the one
    hosting the rendezvous store (it then loses the store when the other agent exits, and kills its worker
    30 s later); an agent hosting the store watches its stopped worker for ever, and which agent hosts it
    is a race at start-up. A scheduler (or the test) ends it.
    """
    timeout_s = 4.0
    save_config(_config(tmp_path, collective_timeout_s=timeout_s), tmp_path / "ddp.yaml")
    nodes = _start_nodes(tmp_path, tmp_path / "ddp.yaml", tmp_path / "run", max_restarts=0, pause_rank=1)
    try:
        _wait_for(tmp_path / "paused", nodes, 40)
        paused_at = time.monotonic()  # rank 0 is entering step 6's all-reduce now
        os.kill(int((tmp_path / "paused").read_text()), signal.SIGSTOP)
        while all(node.poll() is None for node in nodes):
            assert time.monotonic() - paused_at < timeout_s + 30, "no node ended: " + _logs(tmp_path)
            time.sleep(0.05)
        waited = time.monotonic() - paused_at
        first = next(index for index, node in enumerate(nodes) if node.poll() is not None)
    finally:
        _end(nodes, tmp_path)
    assert nodes[first].returncode == 1  # torchrun: a worker failed
    assert timeout_s - 1 < waited < timeout_s + 20
    log = (tmp_path / f"node{first}.log").read_text()
    assert "failed (exitcode: 2)" in log  # train.py's exit code for a run that cannot go on
    error = next(line for line in log.splitlines() if line.startswith("error: "))
    assert error.startswith("error: process rank 0 of 2: no answer from a peer process within ")
    assert f"train.collective_timeout_s={timeout_s:g} s" in error
    assert "Check the other processes and machines" in error


def test_collective_timeout_must_be_positive_and_errors_are_classified(tmp_path):
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ConfigError, match="train.collective_timeout_s must be a positive number"):
            _config(tmp_path, collective_timeout_s=bad)
    env = DistEnv(1, 2, 0, torch.device("cpu"), distributed=True)
    timed_out = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 4000ms for recv")
    lost = RuntimeError("[gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:1234")
    assert "train.collective_timeout_s=7 s" in str(peer_failure(timed_out, env, 7.0))
    assert "a peer process went away" in str(peer_failure(lost, env, 7.0))
    assert peer_failure(RuntimeError("shape mismatch"), env, 7.0) is None  # other errors pass unchanged
    alone = DistEnv(0, 1, 0, torch.device("cpu"))
    assert peer_failure(timed_out, alone, 7.0) is None  # no process group: not a peer's fault
