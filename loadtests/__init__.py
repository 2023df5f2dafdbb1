"""Benchmarks against a local PostgreSQL: ``python -m loadtests [scenario ...]``."""
