"""Helpers for the browser tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any


def open_page(page: Any, url: str) -> Any:
    """Goes to `url` and waits until the page has rendered with its data
    (`main#page[data-ready=true]`)."""
    page.goto(url)
    return wait_ready(page)


def wait_ready(page: Any) -> Any:
    page.wait_for_selector("main#page[data-ready=true]", state="attached")
    return page
