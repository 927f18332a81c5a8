"""What every experiment shares: atomic output, and the command line around ``run``.

A file is written to a temporary file in the same folder, flushed to disk, then renamed over
the destination (``os.replace`` is atomic on POSIX and Windows), so an interrupted run leaves
either the previous result or the new one, never a half-written file. Bad command-line input
is one line on stderr and exit status 2, before anything is computed or written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Writes ``data`` as indented JSON, atomically. Non-finite floats are written as JSON
    ``Infinity``/``NaN`` (Python's ``json`` reads them back)."""
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode()))


def save_figure(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> Path:
    """Saves a matplotlib figure atomically (the format from the suffix of ``path``)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return write_atomic(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))


def exit_with_error(name: str, error: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2, nothing written."""
    print(f"{name}: error: {error}", file=sys.stderr)
    raise SystemExit(2)


def write_outputs(out: Path, name: str, result: dict,
                  make_figure: Callable[[], Any] | None = None) -> list[Path]:
    """Writes ``NAME.json`` and, given ``make_figure``, ``NAME.png`` into ``out``, atomically,
    then prints the wall time (``result["meta"]["wall_seconds"]``) and where they went."""
    paths = [write_json(out / f"{name}.json", result)]
    if make_figure is not None:
        import matplotlib.pyplot as plt

        fig = make_figure()
        paths.append(save_figure(out / f"{name}.png", fig, dpi=120))
        plt.close(fig)
    print(f"wall time {result['meta']['wall_seconds']:.1f} s; wrote "
          + ", ".join(str(p) for p in paths))
    return paths


# The command line ------------------------------------------------------------------------------


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    """``--weights``, ``--means``, ``--stds``: the 1-D Gaussian mixture to fit (the flagship's)."""
    p.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.5],
                   help="mixture weights, non-negative, summing to 1 (default: 0.5 0.5)")
    p.add_argument("--means", type=float, nargs="+", default=[-2.0, 2.0],
                   help="component means (default: -2 2)")
    p.add_argument("--stds", type=float, nargs="+", default=[0.6, 0.6],
                   help="component standard deviations, > 0 (default: 0.6 0.6)")


def target_error(a: argparse.Namespace) -> str | None:
    """A one-line error for the arguments of :func:`add_target_arguments`, or None."""
    k = len(a.weights)
    if len(a.means) != k or len(a.stds) != k:
        return (f"--weights, --means and --stds need the same length, got {k}, "
                f"{len(a.means)}, {len(a.stds)}")
    if k < 2:
        return "the target needs at least two components"
    if not all(math.isfinite(v) for v in (*a.weights, *a.means, *a.stds)):
        return "every number must be finite"
    if min(a.stds) <= 0:
        return f"--stds must be > 0, got {a.stds}"
    if min(a.weights) < 0 or abs(sum(a.weights) - 1) > 1e-6:
        return (f"--weights must be non-negative and sum to 1, got {a.weights} (sum "
                f"{sum(a.weights):.6g})")
    return None


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--seed``, ``--out`` and ``--no-figure``, which every experiment takes."""
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default: 0)")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="output folder (default: results/)")
    p.add_argument("--no-figure", action="store_true", help="skip the PNG")


def run_cli(name: str, a: argparse.Namespace, validate: Callable[[Any], str | None],
            run: Callable[[Any], Any], summary: Callable[[dict], str],
            figure: Callable[..., Any]) -> dict:
    """Validates ``a``, runs, prints the summary table, writes ``NAME.json`` and ``NAME.png``.

    ``run(a)`` returns the JSON-ready result, or ``(result, extra)`` with data for the figure
    only (``figure(result, extra)``; otherwise ``figure(result)``). Returns the result.
    """
    error = validate(a)
    if error:
        exit_with_error(name, error)
    out = run(a)
    result, *extra = out if isinstance(out, tuple) else (out,)
    print(summary(result))
    make_figure = None if a.no_figure else lambda: figure(result, *extra)
    write_outputs(a.out, name, result, make_figure)
    return result
