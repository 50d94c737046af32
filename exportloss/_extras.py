"""The ``export`` extra: the packages the toolchain (export, verify, checkers, command line) needs beyond
the torch-only core (``pip install 'exportloss[export]'``)."""

from __future__ import annotations

EXPORT_EXTRA_MODULES = frozenset({"onnx", "onnx_ir", "onnxscript", "onnxruntime", "onnxconverter_common", "rich", "filelock"})
"""Top-level modules of the ``export`` extra's packages (and of their own dependencies that the toolchain imports)."""


def missing_export_extra(err: BaseException) -> str | None:
    """One line naming the ``export`` extra when ``err`` is a missing toolchain package, else None."""
    if not isinstance(err, ModuleNotFoundError):
        return None
    module = (err.name or "").partition(".")[0]
    if module not in EXPORT_EXTRA_MODULES:
        return None
    return f"{module} is not installed; the toolchain needs the `export` extra: pip install 'exportloss[export]'"
