"""memdash's terminal dashboard and command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memdash")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
