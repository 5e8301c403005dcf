"""digest: a daily email digest of new arXiv papers, matched locally by keyword."""

__version__ = "0.1.0"
