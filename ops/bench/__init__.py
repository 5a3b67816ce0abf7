"""Benchmarks: ``python -m ops.bench <name> [options]``. Each ``ops/bench/<name>.py`` has ``main(argv) -> int``."""
