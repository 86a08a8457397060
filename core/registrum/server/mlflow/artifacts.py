"""MLflow's artifact proxy: `/api/2.0/mlflow-artifacts/artifacts/...` (streamed bytes)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
