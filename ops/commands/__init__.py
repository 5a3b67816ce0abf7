"""Subcommands of the ``mailpipe`` CLI, one module per group. Each has ``register(cli)``."""
