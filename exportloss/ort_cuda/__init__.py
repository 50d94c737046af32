"""Static check that every node of an ONNX graph has a kernel on onnxruntime's CUDA execution provider."""

from .check import CudaFinding, CudaReport, KernelTable, check_model, load_table

__all__ = ["CudaFinding", "CudaReport", "KernelTable", "check_model", "load_table"]
