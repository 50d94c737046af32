"""Tile plans: how the pairwise functions tell the exporter to row-tile their ``N × M`` planes.

While :func:`recording_tile_plans` is open (:mod:`exportloss.export` opens it around a trace), the pairwise
functions of :mod:`exportloss.boxes.iou` compute untiled and record ``{(N, M): rows}``; the exporter then
cuts the traced chain into row tiles at the ONNX level (:mod:`exportloss.row_tiles`). Outside such a
context (eager, or a direct ``torch.onnx.export``) they tile in torch. Standard library only, so the
graph modules can import it without the toolchain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

TilePlans = dict[tuple[int, int], int]

_recording: list[TilePlans] = []


@contextlib.contextmanager
def recording_tile_plans() -> Iterator[TilePlans]:
    """While open, :func:`record_tile_plan` collects ``{(N, M): rows}`` into the yielded dict (see the module docstring)."""
    plans: TilePlans = {}
    _recording.append(plans)
    try:
        yield plans
    finally:
        _recording.pop()


def record_tile_plan(n: int, m: int, rows: int) -> bool:
    """Record that ``[..., n, m]`` planes are to be cut into tiles of ``rows`` rows; ``False`` when no export
    records plans (the caller then tiles in torch)."""
    if not _recording:
        return False
    plans = _recording[-1]
    if plans.setdefault((n, m), rows) != rows:
        raise ValueError(f"two tile heights ({plans[(n, m)]} and {rows}) for the {n} x {m} planes of one graph")
    return True
