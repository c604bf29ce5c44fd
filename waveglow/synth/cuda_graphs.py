"""CUDA-graph replay of a synthesis function: one graph recorded per input shape, then replayed."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch


class GraphedReverse:
    """Replays one CUDA graph per input shape; inputs are copied into the graph's static tensors and the
    output is cloned out of it (the next replay overwrites it). Per-item lengths are an input tensor too,
    so batches of one shape share a graph whatever their items' lengths. At most ``max_graphs`` are kept
    (each holds its own memory pool); the least recently used one is dropped first."""

    def __init__(
        self,
        reverse_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
        max_graphs: int = 16,
    ):
        """reverse_fn(z, mel, lengths) -> audio: the synthesis to record (eager or compiled)."""
        self.reverse_fn = reverse_fn
        self.max_graphs = max_graphs
        self.graphs: OrderedDict[tuple, tuple] = OrderedDict()

    def __call__(
        self, z: torch.Tensor, mel: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        key = (tuple(z.shape), tuple(mel.shape), z.dtype, mel.dtype, z.device, lengths is None)
        if key in self.graphs:
            self.graphs.move_to_end(key)
        else:
            while len(self.graphs) >= self.max_graphs:
                self.graphs.popitem(last=False)
            # torch.cuda.graph captures on a stream of the *current* device: make it z's (torchrun ranks)
            with torch.cuda.device(z.device):
                self.graphs[key] = self._record(z, mel, lengths)
        graph, static_inputs, static_out = self.graphs[key]
        for static, given in zip(static_inputs, (z, mel, lengths)):
            if static is not None:
                static.copy_(given)
        graph.replay()
        return static_out.clone()

    def _record(self, z: torch.Tensor, mel: torch.Tensor, lengths: torch.Tensor | None) -> tuple:
        """Warm up (and compile) on a side stream, then capture one graph with static inputs and output."""
        static_inputs = tuple(None if given is None else given.clone() for given in (z, mel, lengths))
        side = torch.cuda.Stream(device=z.device)
        side.wait_stream(torch.cuda.current_stream(z.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.reverse_fn(*static_inputs)
        torch.cuda.current_stream(z.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(device=z.device)):
            static_out = self.reverse_fn(*static_inputs)
        return graph, static_inputs, static_out
