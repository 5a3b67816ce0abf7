"""mailpipe: a mail server built as a pipeline of queue workers with filters.

The one name mailpipe installs. Its parts live in the repository's top-level folders
(``ingress/``, ``workers/``, ``filters/``, ...) and are installed as ``mailpipe.ingress``,
``mailpipe.workers``, ... by the ``package-dir`` mapping in ``pyproject.toml``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mailpipe")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
