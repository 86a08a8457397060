"""The HTTP server: a thin FastAPI adapter over the service layer (needs the `server` extra)."""

from registrum.server.app import create_app
from registrum.server.settings import Settings

__all__ = ["Settings", "create_app"]
