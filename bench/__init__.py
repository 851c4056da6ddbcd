"""Benchmark scripts (run them directly; see bench/README.md)."""
