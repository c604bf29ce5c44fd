"""CUDA-graph replay of a synthesis function: one graph recorded per input shape, then replayed."""

from __future__ import annotations

from collections.abc import Callable

import torch


class GraphedReverse:
    """Replays one CUDA graph per input shape; inputs are copied into the graph's static tensors and the
    output is cloned out of it (the next replay overwrites it)."""

    def __init__(
        self, reverse_fn: Callable[[torch.Tensor, torch.Tensor, tuple[int, ...] | None], torch.Tensor]
    ):
        """reverse_fn(z, mel, lengths) -> audio: the synthesis to record (eager or compiled)."""
        self.reverse_fn = reverse_fn
        self.graphs: dict[tuple, tuple] = {}

    def __call__(
        self, z: torch.Tensor, mel: torch.Tensor, lengths: tuple[int, ...] | None = None
    ) -> torch.Tensor:
        key = (tuple(z.shape), tuple(mel.shape), z.dtype, mel.dtype, z.device, lengths)
        if key not in self.graphs:
            # torch.cuda.graph captures on a stream of the *current* device: make it z's (torchrun ranks)
            with torch.cuda.device(z.device):
                self.graphs[key] = self._record(z, mel, lengths)
        graph, static_z, static_mel, static_out = self.graphs[key]
        static_z.copy_(z)
        static_mel.copy_(mel)
        graph.replay()
        return static_out.clone()

    def _record(self, z: torch.Tensor, mel: torch.Tensor, lengths: tuple[int, ...] | None) -> tuple:
        """Warm up (and compile) on a side stream, then capture one graph with static inputs and output."""
        static_z, static_mel = z.clone(), mel.clone()
        side = torch.cuda.Stream(device=z.device)
        side.wait_stream(torch.cuda.current_stream(z.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.reverse_fn(static_z, static_mel, lengths)
        torch.cuda.current_stream(z.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(device=z.device)):
            static_out = self.reverse_fn(static_z, static_mel, lengths)
        return graph, static_z, static_mel, static_out
