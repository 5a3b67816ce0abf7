"""Benchmarks: ``python -m bench <name> [options]``. Each ``bench/<name>.py`` has ``main(argv) -> int``."""
