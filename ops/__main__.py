"""``python -m ops`` is the ``mailpipe`` command (used by ``serve`` to start its workers)."""

from ops.cli import main

main()
