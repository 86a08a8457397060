"""MLflow's registry routes (see _wire.py for the conventions)."""

from __future__ import annotations
