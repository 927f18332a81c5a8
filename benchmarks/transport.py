"""Benchmark: jaxdiv's Sinkhorn against POT, and exact 1-D Wasserstein against scipy.

Question: how much faster is ``jaxdiv.sinkhorn`` (ott-jax underneath) than POT's log-domain
Sinkhorn at the same absolute epsilon and threshold, with and without ott-jax's accelerations,
and at what accuracy? How does ``wasserstein_1d`` compare with ``scipy.stats.wasserstein_distance``?

Command (CPU, about 2-3 minutes on 2 cores, most of it POT)::

    python -m benchmarks.transport
    python -m benchmarks.transport --sizes 16384 --epsilon 0.01 --skip-pot --online-size 65536

The second form is for a GPU: dense n = 16384 without POT, and an online (``batch_size``) solve
at n = 65536 with the device's peak memory where the backend reports it.

Output: markdown tables (paste them into ``benchmarks/RESULTS.md``). Problem: ``x ~ N(0, I_2)``,
``y ~ 0.8 N(0, I_2) + 1``, n = m, uniform weights, squared-Euclidean cost, the same absolute
epsilon for both libraries. jaxdiv runs in float32 (JAX's default), POT in float64. Times:
"compile" is the first call (tracing + XLA compilation + one solve), "steady" the best of
``--repeats`` calls after it, always with ``block_until_ready``; POT runs once (it has no
compile step). The stopping tests differ: ott-jax stops on the L1 norm of the marginal error,
POT on its L2 norm, so at one threshold POT stops earlier; the "L1 marginal error" column
measures both solutions with the same yardstick, and "rel. diff" is the transport-cost
difference to POT's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import ot
import scipy
import scipy.stats

from jaxdiv.sample_distances import wasserstein_1d
from jaxdiv.transport import sinkhorn

ACCELERATED = dict(initializer="gaussian", momentum="adaptive")


def _timed(fn, *args, repeats):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return out, first, best


def _clouds(n, seed):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, 2)), 0.8 * r.normal(size=(n, 2)) + 1.0


def _pot(x, y, eps, threshold, max_iterations):
    t = time.perf_counter()
    n, m = len(x), len(y)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    M = ot.dist(x, y)  # |x - y|^2, as jaxdiv's "sqeuclidean"
    value, log = ot.sinkhorn2(a, b, M, eps, method="sinkhorn_log", stopThr=threshold,
                              numItermax=max_iterations, log=True)
    elapsed = time.perf_counter() - t
    logP = log["log_u"][:, None] + log["log_v"][None, :] - M / eps
    err = np.abs(np.exp(scipy.special.logsumexp(logP, axis=0)) - b).sum()
    return float(value), elapsed, int(log["niter"]), err


def sinkhorn_rows(n, args):
    x, y = _clouds(n, args.seed)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    pot = None if args.skip_pot else _pot(x, y, args.epsilon, args.threshold,
                                          args.max_iterations)
    rows = []
    if pot is not None:
        value, elapsed, iters, err = pot
        rows.append((f"n=m={n}", "POT sinkhorn2 (log, float64)", "-", f"{elapsed:.3f}", iters,
                     f"{value:.6f}", "-", f"{err:.1e}", "1.0x"))
    for name, options in (("jaxdiv.sinkhorn (ott defaults)", {}),
                          ("jaxdiv.sinkhorn (gaussian init + adaptive momentum)", ACCELERATED)):
        solve = jax.jit(lambda x, y, o=options: sinkhorn(
            x, y, epsilon=args.epsilon, threshold=args.threshold,
            max_iterations=args.max_iterations, **o))
        out, first, best = _timed(solve, xj, yj, repeats=args.repeats)
        plan = jax.jit(lambda r: r.plan().sum(0))(out)
        err = float(jnp.abs(plan - 1.0 / n).sum())
        value = float(out.transport_cost)
        rel = "-" if pot is None else f"{abs(value - pot[0]) / pot[0]:.1e}"
        ratio = "-" if pot is None else f"{pot[1] / best:.1f}x"
        rows.append((f"n=m={n}", name + ("" if bool(out.converged) else " NOT CONVERGED"),
                     f"{first:.2f}", f"{best:.3f}", int(out.iterations), f"{value:.6f}", rel,
                     f"{err:.1e}", ratio))
    return rows


def online_rows(n, args):
    x, y = _clouds(n, args.seed)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    solve = jax.jit(lambda x, y: sinkhorn(x, y, epsilon=args.epsilon, threshold=args.threshold,
                                          max_iterations=args.max_iterations,
                                          batch_size=args.batch_size, **ACCELERATED))
    out, first, best = _timed(solve, xj, yj, repeats=args.repeats)
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    memory = "n/a" if peak is None else f"{peak / 2**30:.2f} GiB peak"
    return [(f"n=m={n} online (batch {args.batch_size}), {memory}",
             "jaxdiv.sinkhorn (gaussian init + adaptive momentum)", f"{first:.2f}", f"{best:.3f}",
             int(out.iterations), f"{float(out.transport_cost):.6f}", "-", "-", "-")]


def wasserstein_rows(n, args):
    r = np.random.default_rng(args.seed)
    x, y = r.normal(size=n), 1.5 * r.normal(size=n) + 0.3
    u, v = r.uniform(size=n), r.uniform(size=n)
    xj, yj, uj, vj = (jnp.asarray(t, jnp.float32) for t in (x, y, u, v))
    rows = []
    for label, sargs, jargs, fn in (
        ("uniform weights", (x, y), (xj, yj), jax.jit(wasserstein_1d)),
        ("random weights", (x, y, u, v), (xj, yj, uj, vj),
         jax.jit(lambda x, y, u, v: wasserstein_1d(x, y, x_weights=u, y_weights=v))),
    ):
        t = time.perf_counter()
        ref = scipy.stats.wasserstein_distance(*sargs)
        t_ref = time.perf_counter() - t
        out, first, best = _timed(fn, *jargs, repeats=args.repeats)
        rows.append((f"n=m={n:.0e}, {label}", "scipy.stats.wasserstein_distance (float64)", "-",
                     f"{t_ref:.3f}", f"{ref:.6f}", "-", "1.0x"))
        rows.append((f"n=m={n:.0e}, {label}", "jaxdiv.wasserstein_1d (float32)", f"{first:.2f}",
                     f"{best:.3f}", f"{float(out):.6f}", f"{abs(float(out) - ref) / ref:.1e}",
                     f"{t_ref / best:.1f}x"))
    return rows


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    p.add_argument("--epsilon", type=float, default=0.05, help="absolute, in cost units")
    p.add_argument("--threshold", type=float, default=1e-5)
    p.add_argument("--max-iterations", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-pot", action="store_true")
    p.add_argument("--online-size", type=int, default=0, help="0: no online solve")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--w1-size", type=int, default=1_000_000, help="0: skip wasserstein_1d")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    start = time.perf_counter()

    dev = jax.devices()[0]
    print(f"## Transport benchmark, {datetime.date.today()}\n")
    print(f"Device: {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPUs visible, "
          f"{platform.processor() or platform.machine()}. Versions: jax {jax.__version__}, "
          f"ott-jax {__import__('ott').__version__}, POT {ot.__version__}, "
          f"scipy {scipy.__version__}, numpy {np.__version__}.\n")
    print(f"Sinkhorn: epsilon = {args.epsilon} (absolute), threshold = {args.threshold}, "
          f"d = 2, squared-Euclidean cost, float32 (jaxdiv) vs float64 (POT).\n")
    rows = [row for n in args.sizes for row in sinkhorn_rows(n, args)]
    if args.online_size:
        rows += online_rows(args.online_size, args)
    print(_table(["problem", "method", "compile s", "steady s", "iterations", "<P, C>",
                  "rel. diff vs POT", "L1 marginal error", "speed-up vs POT"], rows))
    if args.w1_size:
        print()
        print(_table(["problem", "method", "compile s", "steady s", "W1", "rel. diff",
                      "speed-up vs scipy"], wasserstein_rows(args.w1_size, args)))
    print(f"\nWhole run: {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
