"""certmgr: certificate lifecycle manager for mail servers."""

__version__ = "0.1.0"
