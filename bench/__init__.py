"""Benchmarks: every figure next to a baseline measured in the same run (these machines are noisy)."""
