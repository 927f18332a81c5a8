r"""What every experiment shares: one command line, strict JSON, atomic output.

The convention every experiment follows (``experiments.NAME``; a new one copies
``experiments/mode_seeking.py``):

- **Command line.** ``parse_args`` builds its parser with :func:`parser` (usage line
  ``python -m experiments.NAME``, every default shown by ``--help``, errors on one line),
  adds its own options, then :func:`add_output_arguments` (``--seed``, ``--out``,
  ``--no-figure``, which every experiment takes). Numeric options take a checking ``type=``
  (:func:`int_at_least`, :func:`finite_float`, :func:`positive_float`, :func:`float_in`) so a
  bad value is refused by argparse before anything runs; constraints between options go in a
  ``validate(a)`` that returns a one-line error or ``None``. ``--out`` is checked as it is
  parsed (:func:`output_folder`): a path that is a file, lies under a file, or sits in a folder
  that cannot be written is refused then, not after the computation.
- **Running.** ``main(argv)`` is ``run_cli(NAME, parse_args(argv), validate, run, summary,
  figure)``: it validates, creates ``--out``, runs, prints ``summary(result)``, writes
  ``NAME.json`` (and ``NAME.png`` unless ``--no-figure``), prints the wall time and the paths
  written, and returns the result.
- **Bad input** is one line on stderr (``python -m experiments.NAME: error: ...``) and exit
  status 2, before anything is computed or written; never a traceback.
- **JSON.** The result is a dict whose top level holds the experiment's quantities and a
  ``meta`` dict (versions, backend, devices, the options used, ``wall_seconds``; :func:`meta`
  builds it). It is written as strict JSON (RFC 8259, what ``JSON.parse`` and jq accept): the
  non-finite floats, which JSON cannot represent, are written as the strings ``"inf"``,
  ``"-inf"`` and ``"nan"`` (:func:`to_strict_json`); :func:`read_json` reads a result back with
  those strings turned into floats again. NumPy scalars and arrays are written as numbers and
  lists.
- **Files.** Each file is written to a temporary file in the same folder, flushed to disk, given
  the permissions a plain ``open(path, "w")`` would (``0o666`` less the umask), then renamed
  over the destination (``os.replace`` is atomic on POSIX and Windows), so an interrupted run
  leaves either the previous result or the new one, never a half-written file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

#: How :func:`write_json` writes the floats that strict JSON cannot hold, and :func:`read_json`
#: reads them back.
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``.

    The file gets the permissions ``open(path, "w")`` would give it (``0o666`` less the umask),
    not ``tempfile.mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def to_strict_json(data: Any) -> Any:
    """``data`` with every non-finite float replaced by ``"inf"``, ``"-inf"`` or ``"nan"``, and
    NumPy scalars and arrays by Python numbers and lists: what strict JSON can hold."""
    if isinstance(data, dict):
        return {k: to_strict_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [to_strict_json(v) for v in data]
    if isinstance(data, (np.ndarray, np.generic)):
        return to_strict_json(data.tolist())
    if isinstance(data, float) and not math.isfinite(data):
        return "nan" if math.isnan(data) else ("inf" if data > 0 else "-inf")
    return data


def from_strict_json(data: Any) -> Any:
    """The inverse of :func:`to_strict_json` for floats: ``"inf"``, ``"-inf"`` and ``"nan"``
    become floats again (every other value is returned as is)."""
    if isinstance(data, dict):
        return {k: from_strict_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [from_strict_json(v) for v in data]
    if isinstance(data, str) and data in NONFINITE:
        return NONFINITE[data]
    return data


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Writes ``data`` as indented strict JSON, atomically. Non-finite floats are written as
    the strings ``"inf"``, ``"-inf"``, ``"nan"`` (:func:`read_json` reads them back as floats);
    the file never holds the non-standard tokens ``Infinity``/``NaN``."""
    text = json.dumps(to_strict_json(data), indent=2, allow_nan=False) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode()))


def read_json(path: str | os.PathLike) -> Any:
    """Reads a file written by :func:`write_json`, with ``"inf"``/``"-inf"``/``"nan"`` as
    floats."""
    return from_strict_json(json.loads(Path(path).read_text()))


def save_figure(path: str | os.PathLike, fig: Any, **savefig_kwargs: Any) -> Path:
    """Saves a matplotlib figure atomically (the format from the suffix of ``path``)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return write_atomic(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))


def exit_with_error(name: str, error: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2, nothing written."""
    print(f"{_prog(name)}: error: {error}", file=sys.stderr)
    raise SystemExit(2)


def write_outputs(out: Path, name: str, result: dict,
                  make_figure: Callable[[], Any] | None = None) -> list[Path]:
    """Writes ``NAME.json`` and, given ``make_figure``, ``NAME.png`` into ``out``, atomically,
    then prints the wall time (``result["meta"]["wall_seconds"]``) and where they went."""
    paths = [write_json(Path(out) / f"{name}.json", result)]
    if make_figure is not None:
        import matplotlib.pyplot as plt

        fig = make_figure()
        paths.append(save_figure(Path(out) / f"{name}.png", fig, dpi=120))
        plt.close(fig)
    print(f"wall time {result['meta']['wall_seconds']:.1f} s; wrote "
          + ", ".join(str(p) for p in paths))
    return paths


def meta(a: argparse.Namespace, t0: float, **extra: Any) -> dict:
    """The ``meta`` dict of a result: JAX version, backend and devices, the options in ``a``
    (``--out`` and ``--no-figure`` left out), ``extra``, and ``wall_seconds`` since ``t0``
    (a ``time.perf_counter()`` reading)."""
    import jax

    dev = jax.devices()[0]
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
               if k not in ("out", "no_figure")}
    return {"jax_version": jax.__version__, "backend": jax.default_backend(),
            "devices": f"{jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}",
            **options, **extra, "wall_seconds": time.perf_counter() - t0}


# The command line ------------------------------------------------------------------------------


def _prog(name: str) -> str:
    return name if name.startswith("python -m") else f"python -m experiments.{name}"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``argparse.ArgumentDefaultsHelpFormatter`` that leaves out a default the help already
    states, and the uninformative ``None``/``False`` of optional values and switches."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser(name: str, description: str) -> ArgumentParser:
    """The parser of ``experiments.NAME``: usage ``python -m experiments.NAME``, defaults shown
    in ``--help``, bad input reported on one line with exit status 2."""
    return ArgumentParser(prog=_prog(name), description=description,
                          formatter_class=HelpFormatter)


def _number(kind: type, text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """A ``type=`` for integer options ``>= low``."""
    def check(text: str) -> int:
        value = _number(int, text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value
    check.__name__ = f"integer >= {low}"
    return check


def finite_float(text: str) -> float:
    """A ``type=`` for finite float options."""
    value = _number(float, text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {value}")
    return value


def positive_float(text: str) -> float:
    """A ``type=`` for finite float options ``> 0``."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {value}")
    return value


def float_in(low: float, high: float) -> Callable[[str], float]:
    """A ``type=`` for float options in the closed interval ``[low, high]`` (NaN refused)."""
    def check(text: str) -> float:
        value = _number(float, text)
        if not low <= value <= high:  # False for NaN
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {value}")
        return value
    check.__name__ = f"number in [{low:g}, {high:g}]"
    return check


def output_folder(text: str) -> Path:
    """A ``type=`` for ``--out``: refuses, as the command line is parsed, a path that is a file
    or lies under one, and a folder that cannot be created or written (nothing is created)."""
    path = Path(text)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == path else f"lies under the file {probe}"
        raise argparse.ArgumentTypeError(f"{text!r} {where}; give a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {str(probe)!r} (permission denied)")
    return path


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    """``--weights``, ``--means``, ``--stds``: the 1-D Gaussian mixture to fit (the flagship's)."""
    p.add_argument("--weights", type=finite_float, nargs="+", default=[0.5, 0.5],
                   help="mixture weights, non-negative, summing to 1")
    p.add_argument("--means", type=finite_float, nargs="+", default=[-2.0, 2.0],
                   help="component means")
    p.add_argument("--stds", type=positive_float, nargs="+", default=[0.6, 0.6],
                   help="component standard deviations, > 0")


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
    """``--seed``, ``--out`` and ``--no-figure``, which every experiment takes. Also shows
    every default in ``--help`` when ``p`` was built with argparse's plain formatter."""
    if p.formatter_class is argparse.HelpFormatter:
        p.formatter_class = HelpFormatter
    p.add_argument("--seed", type=int_at_least(0), default=0, help="PRNG seed")
    p.add_argument("--out", type=output_folder, default="results",
                   help="output folder (created if missing)")
    p.add_argument("--no-figure", action="store_true", help="skip the PNG")


def run_cli(name: str, a: argparse.Namespace, validate: Callable[[Any], str | None],
            run: Callable[[Any], Any], summary: Callable[[dict], str],
            figure: Callable[..., Any]) -> dict:
    """Validates ``a``, creates ``--out``, runs, prints the summary table, writes ``NAME.json``
    and ``NAME.png`` (not with ``--no-figure``) and prints their paths.

    ``run(a)`` returns the JSON-ready result (with a ``meta`` dict holding ``wall_seconds``),
    or ``(result, extra)`` with data for the figure only (``figure(result, extra)``; otherwise
    ``figure(result)``). Returns the result, non-finite floats as floats.
    """
    out = Path(a.out)
    try:  # --out again, for a caller that built the namespace without output_folder
        output_folder(str(out))
    except argparse.ArgumentTypeError as e:
        exit_with_error(name, f"argument --out: {e}")
    error = validate(a)
    if error:
        exit_with_error(name, error)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        exit_with_error(name, f"argument --out: cannot create {str(out)!r}: {e.strerror}")
    result = run(a)
    result, *extra = result if isinstance(result, tuple) else (result,)
    print(summary(result))
    make_figure = None if a.no_figure else lambda: figure(result, *extra)
    write_outputs(out, name, result, make_figure)
    return result
