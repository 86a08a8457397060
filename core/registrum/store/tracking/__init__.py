"""Tracking: runs, params, metrics, provenance, artifacts, datasets and the blobs they hold."""
