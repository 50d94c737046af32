"""Eager references: plain float64 math, free to branch, that every exported graph is verified against.

They are written independently of the trace-friendly modules (different code, same formulas) and
take and return float64 torch tensors.
"""
