"""Atomic output: every experiment writes its results through these helpers.

A file is written to a temporary file in the same folder, flushed to disk, then renamed over
the destination (``os.replace`` is atomic on POSIX and Windows), so an interrupted run leaves
either the previous result or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import json
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
