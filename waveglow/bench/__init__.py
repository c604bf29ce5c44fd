"""Benchmarks: the variants, the machine record, FLOP counts, the report; ``python -m waveglow.bench``."""
