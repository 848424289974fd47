"""symgrad's version, in a module of its own so that any stage can read it.

A stage must not import the `symgrad` package itself (its ``__init__`` imports
every stage); the kernel cache keys its files by this version.
"""

__version__ = "0.1.0"   # keep equal to [project] version in pyproject.toml
