"""Benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` runs ``benchmarks/bench_NAME.py``
modules (each exposes ``main(quick: bool) -> None`` and prints its own table)."""
