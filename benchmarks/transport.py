"""Benchmark: jaxdiv's Sinkhorn against POT, and exact 1-D Wasserstein against scipy.

Question: how much faster is ``jaxdiv.sinkhorn`` (ott-jax underneath) than POT's log-domain
Sinkhorn at the same absolute epsilon and threshold, with and without ott-jax's accelerations,
and at what accuracy? How does ``wasserstein_1d`` compare with ``scipy.stats.wasserstein_distance``?

Also: ``jaxdiv.sinkhorn`` against raw ott-jax at the same settings (its overhead), and ``mmd`` /
``energy_distance`` against the plain matmul form (|x|^2 + |y|^2 - 2 x.y at full precision,
clamped at 0), value and gradient, with the compiled temporary memory.

Command (CPU, about 2-3 minutes on 2 cores, most of it POT)::

    python -m benchmarks.transport
    python -m benchmarks.transport --sections overhead kernels
    python -m benchmarks.transport --sections convergence   # ~25 min on a loaded 2-core CPU
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
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import ot
import scipy
import scipy.stats

import jaxdiv
from benchmarks._timing import pin_allocator
from jaxdiv.sample_distances import wasserstein_1d
from jaxdiv.transport import _ott, sinkhorn

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


def _interleaved(fns, args, rounds):
    """Best wall time and median process CPU time of each of ``fns``, called in turn."""
    for f in fns.values():
        jax.block_until_ready(f(*args))
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(f(*args))
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (min(wall[k]), statistics.median(cpu[k])) for k in fns}


def overhead_rows(args):
    """jaxdiv.sinkhorn against raw ott-jax: n = 1000, eps = 0.05, 150 iterations, float32."""
    n = 1000
    x, y = (jnp.asarray(c, jnp.float32) for c in _clouds(n, args.seed))
    ott = _ott()
    settings = dict(threshold=1e-12, max_iterations=150)  # never converges: 150 iterations

    def raw(x, y):
        with jax.default_matmul_precision("highest"):
            geom = ott.pointcloud.PointCloud(x, y, epsilon=0.05)
            return ott.linear.solve(geom, **settings)

    fns = {"raw ott-jax (linear.solve, whole output)": jax.jit(raw),
           "jaxdiv.sinkhorn (whole SinkhornResult)": jax.jit(
               lambda x, y: sinkhorn(x, y, epsilon=0.05, **settings))}
    times = _interleaved(fns, (x, y), args.rounds)
    base = times["raw ott-jax (linear.solve, whole output)"]
    return [(f"n=m={n}, eps 0.05, 150 iterations", k, f"{1e3 * w:.1f}", f"{w / base[0]:.3f}",
             f"{1e3 * c:.1f}", f"{c / base[1]:.3f}") for k, (w, c) in times.items()]


def _sqdist(x, y):
    hi = jax.lax.Precision.HIGHEST
    d2 = jnp.sum(x * x, 1)[:, None] + jnp.sum(y * y, 1)[None] - 2 * jnp.matmul(x, y.T,
                                                                             precision=hi)
    return jnp.maximum(d2, 0)


def _mmd_matmul(x, y):
    n, m = len(x), len(y)
    k = lambda u, v: jnp.exp(-_sqdist(u, v) / 2)  # bandwidth 1
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - jnp.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - jnp.trace(kyy)) / (m * (m - 1)) - 2 * k(x, y).mean())


def _energy_matmul(x, y):
    def dist(u, v):
        d2 = _sqdist(u, v)
        pos = d2 > 0
        return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1)), 0)
    return 2 * dist(x, y).mean() - dist(x, x).mean() - dist(y, y).mean()


def kernel_rows(args):
    """mmd and energy_distance against the plain matmul form, n = m = 2048, d = 32; each once at
    n = m = 65,536 (time and temporaries)."""
    n, d = 2048, 32
    r = np.random.default_rng(args.seed)
    x = jnp.asarray(r.normal(size=(n, d)), jnp.float32)
    y = jnp.asarray(r.normal(size=(n, d)) + 0.1, jnp.float32)
    mmd1 = lambda x, y: jaxdiv.mmd(x, y, bandwidth=1.0)
    rows = []
    for q, mine, plain in (("mmd value", mmd1, _mmd_matmul),
                           ("mmd gradient", jax.grad(mmd1, (0, 1)), jax.grad(_mmd_matmul, (0, 1))),
                           ("energy value", jaxdiv.energy_distance, _energy_matmul),
                           ("energy gradient", jax.grad(jaxdiv.energy_distance, (0, 1)),
                            jax.grad(_energy_matmul, (0, 1)))):
        fns = {"jaxdiv": jax.jit(mine), "matmul form": jax.jit(plain)}
        mem = {k: f.lower(x, y).compile().memory_analysis().temp_size_in_bytes / 2**20
               for k, f in fns.items()}
        t = _interleaved(fns, (x, y), args.rounds)
        (wj, cj), (wm, cm) = t["jaxdiv"], t["matmul form"]
        rows.append((f"{q}, n=m={n}, d={d}", f"{1e3 * wj:.1f}", f"{1e3 * wm:.1f}",
                     f"{wm / wj:.2f}x", f"{1e3 * cj:.1f}", f"{1e3 * cm:.1f}", f"{cm / cj:.2f}x",
                     f"{mem['jaxdiv']:.0f}", f"{mem['matmul form']:.0f}"))
    # --large-size points (65,536): run once each (the matmul form would need three 16 GiB
    # matrices there)
    big = args.large_size
    if not big:
        return rows
    xb = jnp.asarray(r.normal(size=(big, d)), jnp.float32)
    yb = jnp.asarray(0.8 * r.normal(size=(big, d)) + 0.5, jnp.float32)
    for q, f in (("mmd value (median bandwidth)", jaxdiv.mmd),
                 ("mmd gradient", jax.grad(lambda x, y: jaxdiv.mmd(x, y), (0, 1))),
                 ("energy value", jaxdiv.energy_distance),
                 ("energy gradient", jax.grad(jaxdiv.energy_distance, (0, 1)))):
        compiled = jax.jit(f).lower(xb, yb).compile()
        temp = compiled.memory_analysis().temp_size_in_bytes
        w0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(xb, yb))
        w, c = time.perf_counter() - w0, time.process_time() - c0
        rows.append((f"{q}, n=m={big}, d={d} (one run)", f"{1e3 * w:.0f}", "-", "-",
                     f"{1e3 * c:.0f}", "-", "-", f"{temp / 2**20:.0f}",
                     f"{big**2 * 4 * 3 / 2**20:.0f} MiB (3 matrices)"))
    return rows


def convergence_rows(args):
    """Issue 13, point 3: what threshold 1e-3 means for <P, C>, against a tight float64 solve.

    x ~ N(0, I2), y ~ 0.8 N(0, I2) + 1, eps = --conv-epsilon; marginal errors recomputed in
    float64 from the returned potentials. The reference needs float64 (jax_enable_x64).
    """
    n, eps = args.conv_size, args.conv_epsilon
    x, y = _clouds(n, args.seed)
    cost = ((x[:, None] - y[None]) ** 2).sum(-1)

    def run(dtype, threshold, options, max_iterations):
        solve = jax.jit(lambda x, y: sinkhorn(x, y, epsilon=eps, threshold=threshold,
                                              max_iterations=max_iterations, **options))
        out = solve(jnp.asarray(x, dtype), jnp.asarray(y, dtype))
        f, g = (np.asarray(v, np.float64) for v in (out.f, out.g))
        with np.errstate(over="ignore", invalid="ignore"):
            plan = np.exp((f[:, None] + g[None] - cost) / eps)
        return (float(out.transport_cost), int(out.iterations), bool(out.converged),
                np.abs(plan.sum(1) - 1 / n).sum(), np.abs(plan.sum(0) - 1 / n).sum(),
                float(out.reg_cost))

    ref = run(jnp.float64, 1e-9, ACCELERATED, args.conv_reference_iterations)
    rows = [("reference", "gaussian init + adaptive momentum", "float64", ref[1], f"{ref[0]:.7f}",
             "-", f"{ref[3]:.1e}", f"{ref[4]:.1e}", f"{ref[5]:.7f}")]
    for threshold in (1e-3, 1e-4, 1e-5):
        for name, options in (("ott defaults", {}), ("gaussian init + adaptive momentum",
                                                     ACCELERATED)):
            tc, it, conv, ea, eb, reg = run(jnp.float32, threshold, options, 20000)
            rows.append((threshold, name + ("" if conv else " NOT CONVERGED"), "float32", it,
                         f"{tc:.7f}", f"{(tc - ref[0]) / ref[0]:+.1e}", f"{ea:.1e}", f"{eb:.1e}",
                         f"{reg:.7f}"))
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
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds (overhead, kernels)")
    p.add_argument("--sections", nargs="+", default=["sinkhorn", "w1", "overhead", "kernels"],
                   choices=["sinkhorn", "w1", "overhead", "kernels", "convergence"])
    p.add_argument("--large-size", type=int, default=65536,
                   help="kernels: n = m of the one-off large runs (0: skip them)")
    p.add_argument("--conv-size", type=int, default=1024)
    p.add_argument("--conv-epsilon", type=float, default=0.01)
    p.add_argument("--conv-reference-iterations", type=int, default=100_000)
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
    if "sinkhorn" in args.sections:
        rows = [row for n in args.sizes for row in sinkhorn_rows(n, args)]
        if args.online_size:
            rows += online_rows(args.online_size, args)
        print(_table(["problem", "method", "compile s", "steady s", "iterations", "<P, C>",
                      "rel. diff vs POT", "L1 marginal error", "speed-up vs POT"], rows))
    if "overhead" in args.sections:
        print()
        print(_table(["problem", "method", "wall ms (best)", "wall ratio", "CPU ms (median)",
                      "CPU ratio"], overhead_rows(args)))
    if "kernels" in args.sections:
        print()
        print(_table(["quantity", "jaxdiv wall ms (best)", "matmul form wall ms",
                      "speed-up (wall)", "jaxdiv CPU ms (median)", "matmul form CPU ms",
                      "speed-up (CPU)", "jaxdiv temp MiB", "matmul form temp MiB"],
                     kernel_rows(args)))
    if "convergence" in args.sections:
        jax.config.update("jax_enable_x64", True)
        print()
        print(_table(["threshold", "method", "dtype", "iterations", "<P, C>", "rel. error",
                      "L1 err a", "L1 err b", "reg_cost"], convergence_rows(args)))
    if args.w1_size and "w1" in args.sections:
        print()
        print(_table(["problem", "method", "compile s", "steady s", "W1", "rel. diff",
                      "speed-up vs scipy"], wasserstein_rows(args.w1_size, args)))
    print(f"\nWhole run: {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    pin_allocator()
    main()
