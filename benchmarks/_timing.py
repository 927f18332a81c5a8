"""Timing helpers shared by the benchmarks: compile time and steady state, measured apart."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import jax

# glibc hands freed blocks above its adaptive mmap threshold back to the OS and trims the heap,
# so whether a function's output arrays (16 MiB each at (4096, 1024)) land on fresh pages (page
# faults) or on reused memory depended on what ran earlier in the process: the same gradient
# measured 1.5-3 ms in one process and 5-8 in another. A fixed threshold above these sizes, no
# trimming and a top pad make every call reuse memory.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(1 << 25), "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
             "MALLOC_TOP_PAD_": str(1 << 28)}


def pin_allocator() -> None:
    """Re-executes this benchmark's command line with :data:`ALLOCATOR` in the environment
    (glibc reads it at start-up), unless it is there already; only on Linux."""
    if sys.platform.startswith("linux") and not ALLOCATOR.items() <= os.environ.items():
        os.execve(sys.executable, sys.orig_argv, {**os.environ, **ALLOCATOR})



def steady(fn: Callable[[], Any], *, repeats: int = 5, min_seconds: float = 0.2) -> float:
    """Median seconds of one call of ``fn`` (results blocked on), after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    while len(times) < repeats or sum(times) < min_seconds:
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    times.sort()
    return times[len(times) // 2]


def compile_seconds(jitted: Any, *args: Any) -> float:
    """Seconds to lower and compile ``jitted`` for ``args`` (no execution)."""
    t0 = time.perf_counter()
    jitted.lower(*args).compile()
    return time.perf_counter() - t0


def header(title: str) -> str:
    """A markdown heading with the date, the device and the versions of this run."""
    import numpy as np

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    return (f"### {title}\n\n{datetime.date.today().isoformat()} · {dev.platform} ({kind}, "
            f"{jax.device_count()} device(s), {platform.machine()}) · jax {jax.__version__}, "
            f"numpy {np.__version__}, python {platform.python_version()}\n")


def table(rows: list[dict[str, Any]]) -> str:
    """Formats a list of dicts with the same keys as a markdown table."""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r[k]) for k in keys) + " |")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)
