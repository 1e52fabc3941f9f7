"""memdash's terminal dashboard and command line."""

# The one place the version is written (pyproject.toml reads it from here): a literal, because
# every `memdash` process, one per agent event for `memdash hook`, would otherwise pay ~30 ms
# for importlib.metadata to look it up.
__version__ = "0.1.0"
