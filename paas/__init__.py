"""paas: a small Dokku-style platform-as-a-service."""

__version__ = "0.1.0"
