"""The catalog of exportable graphs. ``names()`` lists them; ``get(name)`` returns a :class:`GraphEntry`."""

from ._registry import (
    EXAMPLE_SEED,
    VERIFICATION_SEED,
    Case,
    GraphEntry,
    TensorSpec,
    UnknownGraphError,
    get,
    names,
    register,
    resolve,
)

# Importing a family module registers its entries; the order here is the order of `exportloss list`.
from . import boxes  # noqa: E402,F401
from . import classification  # noqa: E402,F401
from . import detection  # noqa: E402,F401
from . import segmentation  # noqa: E402,F401

__all__ = ["EXAMPLE_SEED", "VERIFICATION_SEED", "Case", "GraphEntry", "TensorSpec", "UnknownGraphError", "get", "names", "register", "resolve"]
