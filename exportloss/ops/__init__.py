"""Trace-friendly building blocks the families share: argument checks, numerics (BCE, focal power,
finiteness), tie-free arg-extrema, reductions, label handling and a Where-free select. Torch only; nothing here exports."""
