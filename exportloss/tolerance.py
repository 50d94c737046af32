"""How close a backend's output must come to the reference: one value, shared by the catalog and the verifier.

Kept apart from :mod:`exportloss.backends` so that the catalog imports it without onnx or onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """An output element passes when ``|got - want| <= atol + rtol * |want|``."""

    atol: float = 1e-5
    rtol: float = 1e-5

    def at_least(self, floor: float) -> Tolerance:
        """Both bounds raised to ``floor`` where they are tighter."""
        return Tolerance(max(self.atol, floor), max(self.rtol, floor))
