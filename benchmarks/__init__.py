"""Benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` runs ``benchmarks/bench_NAME.py``
modules (each exposes ``main(quick: bool) -> None`` and prints its own table). A module with
``DEFAULT = False`` (deploy: minutes, its own environment) runs only when named."""
