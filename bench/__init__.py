"""Benchmarks of the running system (not part of the deployed packages)."""
