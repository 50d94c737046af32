"""Shared fixtures: graphs are exported once per session and exporter, then reused by many tests."""

from __future__ import annotations

import pytest

from exportloss import catalog
from exportloss.export import export_graph


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, exporter)`` -> path of the graph exported into a session temp dir (cached)."""
    cache: dict[tuple[str, str], object] = {}

    def get(name: str, exporter: str = "dynamo"):
        key = (name, exporter)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"models-{exporter}")
            cache[key] = export_graph(catalog.get(name), out, exporter=exporter).path
        return cache[key]

    return get
