"""The warm-allocator state: torch backends timed in a subprocess whose allocator keeps its buffers mapped.

With glibc's defaults, a buffer above the (dynamic, at most 32 MiB) mmap threshold is mapped fresh on
every allocation and returned to the OS when freed, so torch eager pays page faults for its large
temporaries on every call (about 2,100 minor faults per call for the eager pairwise module at
N = 1000). A long-running service sees the other state: :data:`WARM_ENV` raises the mmap threshold to
1 GiB and the trim threshold to 4 GiB, so freed buffers stay mapped and are reused. onnxruntime keeps
its own arena and is unaffected, so only the torch backends (eager module, torchvision anchor) get a
warm column.

Protocol (one JSON object per line): the parent sends the case ``{"graph", "size", "shapes",
"threads"}``; the worker answers ``{"ready": {backend: seconds of its first call}}``; then each
``{"burst": backend, "calls": n}`` is answered with ``{"seconds": [...]}`` and ``{"quit": true}`` ends it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from .timing import Backend, local_backend

WARM_ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
WARM = " warm"
"""Suffix of a backend's name in the warm state: ``"eager warm"``, ``"anchor warm"``."""


class WarmWorker:
    """The subprocess of one case; :attr:`first_calls` maps its backends to the seconds of their first call."""

    def __init__(self, graph: str, size: str, shapes: dict, threads: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from exportloss.bench.warm import serve; serve()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, **WARM_ENV}, text=True,
        )
        self.pid = self._process.pid
        reply = self._ask({"graph": graph, "size": size, "shapes": {k: list(v) for k, v in shapes.items()},
                           "threads": threads})
        self.first_calls: dict[str, float] = reply["ready"]

    def _ask(self, message: dict) -> dict:
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the warm-allocator worker exited with status {self._process.wait()}")
        return json.loads(line)

    def backends(self) -> list[Backend]:
        return [Backend(name + WARM, lambda calls, name=name: self._ask({"burst": name, "calls": calls})["seconds"], self.pid)
                for name in self.first_calls]

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.write(json.dumps({"quit": True}) + "\n")
            self._process.stdin.close()
            self._process.wait(timeout=30)

    def __enter__(self) -> "WarmWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def torch_backends(case, threads: int) -> dict[str, object]:
    """``{"eager": fn, "anchor": fn}`` for ``case`` (anchor only where it has one), inputs as in the parent."""
    import torch

    from ..export import to_torch

    entry = case.entry()
    tensors = to_torch(entry.example_inputs())
    args = [tensors[spec.name] for spec in entry.inputs]
    module = entry.build().eval()
    torch.set_num_threads(threads)
    backends = {"eager": lambda: module(*args)}
    if case.anchor is not None:
        backends["anchor"] = lambda: case.anchor(*args)
    return backends


def serve() -> None:
    """The worker's side of the protocol, on stdin and stdout."""
    import torch

    from .cases import find_case

    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol
    spec = json.loads(sys.stdin.readline())
    case = dataclasses.replace(find_case(spec["graph"], spec["size"]),
                               shapes={k: tuple(v) for k, v in spec["shapes"].items()})
    with torch.inference_mode():
        fns = torch_backends(case, spec["threads"])
        first = {}
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - start
        bursts = {name: local_backend(name, fn).burst for name, fn in fns.items()}
        protocol.write(json.dumps({"ready": first}) + "\n")
        protocol.flush()
        for line in sys.stdin:
            message = json.loads(line)
            if message.get("quit"):
                break
            protocol.write(json.dumps({"seconds": bursts[message["burst"]](message["calls"])}) + "\n")
            protocol.flush()
