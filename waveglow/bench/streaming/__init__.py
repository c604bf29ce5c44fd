"""Streaming synthesis measured: ``python -m waveglow.bench.streaming`` (the command), ``measure`` (what it
measures: latency to the first audio chunk, real-time factor, and the look-ahead's effect on real speech)."""
