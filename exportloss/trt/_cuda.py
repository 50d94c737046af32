"""The few CUDA driver calls that building and running TensorRT engines needs, through ctypes.

Using the driver library directly (``libcuda.so.1``, present wherever an NVIDIA driver is) keeps the
TensorRT path free of pycuda / cuda-python / a CUDA build of torch. TensorRT's runtime API calls share
the device's primary context, which :class:`CudaDriver` makes current.
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np

LIBRARY = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"


class TensorRTUnavailable(RuntimeError):
    """TensorRT cannot run here (no ``tensorrt`` package, no CUDA driver or no CUDA device); ``str`` is one line."""


class CudaError(RuntimeError):
    """A CUDA driver call failed."""


class CudaDriver:
    """Primary context of one device, device buffers, host <-> device copies and one stream."""

    def __init__(self, device: int = 0):
        try:
            self.lib = ctypes.CDLL(LIBRARY)
        except OSError:
            raise TensorRTUnavailable(f"no CUDA driver ({LIBRARY} not found): TensorRT needs an NVIDIA GPU and its driver") from None
        status = self.lib.cuInit(0)
        if status != 0:
            raise TensorRTUnavailable(f"the CUDA driver found no usable device ({self._error_name(status)})")
        count = ctypes.c_int()
        self._check(self.lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
        if count.value <= device:
            raise TensorRTUnavailable(f"no CUDA device {device} (the driver sees {count.value})")
        handle = ctypes.c_int()
        self._check(self.lib.cuDeviceGet(ctypes.byref(handle), device), "cuDeviceGet")
        self.context = ctypes.c_void_p()
        self._check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.context), handle), "cuDevicePrimaryCtxRetain")
        self._check(self.lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        name = ctypes.create_string_buffer(256)
        self._check(self.lib.cuDeviceGetName(name, len(name), handle), "cuDeviceGetName")
        self.device_name = name.value.decode()

    def _error_name(self, status: int) -> str:
        text = ctypes.c_char_p()
        self.lib.cuGetErrorName(status, ctypes.byref(text))
        return text.value.decode() if text.value else f"CUresult {status}"

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise CudaError(f"{call} failed: {self._error_name(status)}")

    def alloc(self, nbytes: int) -> int:
        pointer = ctypes.c_uint64()
        self._check(self.lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(max(nbytes, 1))), "cuMemAlloc")
        return pointer.value

    def free(self, pointer: int) -> None:
        self._check(self.lib.cuMemFree_v2(ctypes.c_uint64(pointer)), "cuMemFree")

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self._check(self.lib.cuMemcpyHtoD_v2(ctypes.c_uint64(pointer), array.ctypes.data_as(ctypes.c_void_p),
                                             ctypes.c_size_t(array.nbytes)), "cuMemcpyHtoD")

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        self._check(self.lib.cuMemcpyDtoH_v2(array.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint64(pointer),
                                             ctypes.c_size_t(array.nbytes)), "cuMemcpyDtoH")

    def create_stream(self) -> int:
        stream = ctypes.c_void_p()
        self._check(self.lib.cuStreamCreate(ctypes.byref(stream), 0), "cuStreamCreate")
        return stream.value or 0

    def synchronize(self, stream: int) -> None:
        self._check(self.lib.cuStreamSynchronize(ctypes.c_void_p(stream)), "cuStreamSynchronize")

    def destroy_stream(self, stream: int) -> None:
        self._check(self.lib.cuStreamDestroy_v2(ctypes.c_void_p(stream)), "cuStreamDestroy")
