"""Interleaved timing rounds behind a quiet-machine gate.

A *backend* is anything that can run a burst: one untimed call (it pays for whatever the previous
backend left behind: caches, page faults, another runtime's worker threads still spinning) and then
``calls`` timed calls. A *round* runs every backend's burst once, in an order that rotates from round to
round, with a pause of :data:`PAUSE_S` before each burst: onnxruntime's intra-op workers keep spinning
for 25-30 ms after a run returns, which would otherwise be charged to whichever backend runs next.
The rounds are the paired samples from which :mod:`.intervals` draws each ratio's interval.

The quiet gate reads ``/proc/stat`` (all CPUs) and ``/proc/PID/stat`` (the bench's own processes)
around each round. The share of the machine's CPU time that *other* processes used during the round
is recorded; a round above ``quiet_share`` is discarded and run again, until ``min_rounds`` quiet rounds
are kept or ``time_limit_s`` has passed. Then the quietest rounds are kept and the measurement says
that the gate was not met. While the caller's ``undecided`` says that the kept rounds cannot yet tell
a verdict (an interval straddles its target), more rounds are drawn, up to the same time limit.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

MiB = 1 << 20
PAUSE_S = 0.05
"""Pause before each burst: longer than onnxruntime's 25-30 ms of post-run spinning."""

QUIET_SHARE = 0.10
"""Rounds in which other processes used more than this share of all CPUs' time are rerun."""

BURST_SECONDS = 0.25
MAX_BURST = 3


@dataclass(frozen=True)
class Backend:
    """``burst(calls)`` runs one untimed call and ``calls`` timed ones, returning their seconds; ``pid``
    is the process that runs it, whose CPU time counts as the bench's own in the quiet gate."""

    name: str
    burst: Callable[[int], list[float]]
    pid: int


def local_backend(name: str, fn: Callable[..., object], prepare: Callable[[], object] | None = None) -> Backend:
    """``fn()`` timed in this process; with ``prepare``, each call is ``fn(prepare())`` and only ``fn`` is timed
    (fresh copies of inputs that the timed code edits in place)."""

    def call() -> float:
        args = () if prepare is None else (prepare(),)
        start = time.perf_counter()
        fn(*args)
        return time.perf_counter() - start

    def burst(calls: int) -> list[float]:
        call()
        return [call() for _ in range(calls)]

    return Backend(name, burst, os.getpid())


def burst_calls(first_call_s: float) -> int:
    """Timed calls per burst: about :data:`BURST_SECONDS` of work, 1 to :data:`MAX_BURST` calls."""
    return max(1, min(MAX_BURST, int(BURST_SECONDS / max(first_call_s, 1e-9))))


@dataclass
class Timing:
    median_ms: float
    q1_ms: float
    q3_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Timing":
        ms = sorted(s * 1e3 for s in seconds)
        q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
        return cls(statistics.median(ms), q[0], q[2], len(ms))


@dataclass
class Measurement:
    timings: dict[str, Timing]
    rounds_kept: int
    rounds_run: int
    quiet: bool
    """True when ``rounds_kept`` quiet rounds were found within the time limit."""
    others_share: float | None
    """Largest share of CPU time other processes used in a kept round (``None`` without ``/proc``)."""
    rounds: list[dict[str, list[float]]]
    """The kept rounds: each backend's timed calls, in seconds."""


@dataclass(frozen=True)
class CpuSample:
    total: int
    busy: int
    own: int


def cpu_sample(pids: Sequence[int]) -> CpuSample | None:
    """All CPUs' total and busy jiffies and those of ``pids``; ``None`` where ``/proc`` is missing."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        own = sum(_process_jiffies(pid) for pid in set(pids))
    except (OSError, ValueError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = fields[3] + fields[4]
    return CpuSample(total, total - idle, own)


def _process_jiffies(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def others_share(before: CpuSample | None, after: CpuSample | None) -> float | None:
    if before is None or after is None or after.total <= before.total:
        return None
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(others, 0) / (after.total - before.total)


def interleaved(backends: Sequence[Backend], calls: dict[str, int], min_rounds: int = 5, time_limit_s: float = 20.0,
                quiet_share: float = QUIET_SHARE,
                undecided: Callable[[list[dict[str, list[float]]]], bool] | None = None) -> Measurement:
    """Rounds of bursts as in the module docstring; timings from the quiet rounds kept.

    At least ``min_rounds`` rounds run whatever the time limit; within it, rounds go on until
    ``min_rounds`` are quiet and ``undecided(quiet rounds)`` (when given) is false.
    """
    rounds: list[tuple[float | None, dict[str, list[float]]]] = []
    pids = [b.pid for b in backends]
    start = time.perf_counter()

    def quiet_rounds() -> list[dict[str, list[float]]]:
        return [samples for share, samples in rounds if share is None or share <= quiet_share]

    while len(rounds) < min_rounds or time.perf_counter() - start < time_limit_s:
        quiet = quiet_rounds()
        if len(quiet) >= min_rounds and (undecided is None or not undecided(quiet)):
            break
        shift = len(rounds) % len(backends)
        before = cpu_sample(pids)
        samples = {}
        for backend in [*backends[shift:], *backends[:shift]]:
            time.sleep(PAUSE_S)
            samples[backend.name] = backend.burst(calls[backend.name])
        rounds.append((others_share(before, cpu_sample(pids)), samples))

    quiet = [r for r in rounds if r[0] is None or r[0] <= quiet_share]
    kept = quiet if len(quiet) >= min_rounds else sorted(rounds, key=lambda r: r[0] or 0.0)[:min_rounds]
    timings = {b.name: Timing.of([s for _, samples in kept for s in samples[b.name]]) for b in backends}
    shares = [share for share, _ in kept if share is not None]
    return Measurement(timings, len(kept), len(rounds), len(quiet) >= min_rounds, max(shares) if shares else None,
                       [samples for _, samples in kept])


def measure_bandwidth(threads: int, nbytes: int = 256 * MiB, repeats: int = 5) -> float:
    """Bytes per second of a large copy (read + write) with ``threads`` threads."""
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    best = float("inf")
    with torch_threads(threads):
        for _ in range(repeats):
            start = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


def floor_backends(output_elements: Sequence[int], suffix: str = "") -> list[Backend]:
    """The two parts of the output floor every implementation pays, timed like any other backend:
    ``fill``, writing the outputs once into preallocated buffers, and ``fresh``, allocating them anew
    and writing them (the fresh allocation costs ``fresh - fill``: page faults where the allocator maps
    new memory). ``suffix`` follows both names (the floor of a second graph timed in the same rounds)."""
    buffers = [torch.empty(n, dtype=torch.float32) for n in output_elements]

    def fill() -> None:
        for buffer in buffers:
            buffer.fill_(1.0)

    def fresh() -> None:
        for n in output_elements:
            torch.empty(n, dtype=torch.float32).fill_(1.0)

    return [local_backend("fill" + suffix, fill), local_backend("fresh" + suffix, fresh)]


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def peak_memory_mib(fn: Callable[[], object]) -> float | None:
    """Growth of the resident set's high-water mark during one call (Linux; ``None`` elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return None
    base = _proc_status_kib("VmRSS")
    fn()
    return max(_proc_status_kib("VmHWM") - base, 0) / 1024


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)
