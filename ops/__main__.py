"""``python -m mailpipe.ops`` is the ``mailpipe`` command (used by ``serve`` to start its workers)."""

from mailpipe.ops.cli import main

main()
