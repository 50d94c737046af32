"""Trace-friendly building blocks the families share: argument checks, numerics (BCE, focal power,
finiteness), tie-free arg-extrema, reductions and label handling. Torch only; nothing here exports."""
