"""Where mode-seeking starts: the reverse-KL Gaussian fit to 0.5 N(-d/2, 1) + 0.5 N(d/2, 1).

Question: fitting q = N(m, s) to the symmetric two-component mixture p_d by reverse KL(q || p_d),
at which separation d do fits stop sitting in the centre (m = 0) and split onto the modes?

Method: a sweep of d (65 values on [0, 8]) x initial mean (16 on [-4, 4]) x seed (4), for two
model families: ``fixed`` scale (s = 1, the components' std; only m is fitted) and ``free``
scale (m and s fitted, from s = 1). That is 2 x 4,160 Adam fits of the Monte Carlo
``jaxdiv.estimators.reverse_kl`` (32 reparameterised draws per step, 500 steps), run as one
vmapped, jitted program in chunks with a progress line between chunks (``--devices all``
shards each chunk over every device with ``jaxdiv.sweep``). The Monte Carlo noise does not
blur the transitions at these settings; ``--objective grid`` swaps in the deterministic
quadrature KL (``estimators.grid_kl``) for comparison.

Theory, beside the data, from ``grid_kl`` (quadrature) and central differences: with s fixed,
the centre m = 0 loses stability where its curvature 1 - (d/2)^2 E[sech^2(d z / 2)], z ~ N(0, 1),
changes sign, at d_c = 2.922 (not at d = 2, where p_d itself turns bimodal): a supercritical
pitchfork. With s free, the centre never loses stability (at the best s, its m-curvature is
exactly 1/s^2 > 0, by Stein's lemma); instead a minimum on each mode, with a saddle between it
and the centre, appears by a saddle-node bifurcation at d_sn = 4.82, and becomes the global
optimum only beyond d_eq = 5.60. From d_sn on both attract and a run's start decides
(bistability): a pitchfork whose branches are born at a finite distance from the centre, with
the centre branch continuing. Just below d_sn, runs pass the saddle-node's ghost slowly and a
few are still in transit at the end of the budget; they sit well inside the mode branch.

Command: ``python -m experiments.bifurcation [--out results/] [--devices all]`` (``--help``).

Output: a table (per d near the transitions: fraction of runs off-centre and the median
|m|, per family) and the critical separations (from the data, with the grid resolution, and
from the theory), and in ``--out``: ``bifurcation.json`` (``d``, ``init_means``, ``seeds``,
per family ``mean`` and ``std`` as [d][init][seed], ``critical``, ``theory``, ``meta``) and
``bifurcation.png`` (final mean against d: the pitchforks, with the theory's branches), both
written atomically.
Strict JSON: a non-finite number is written as the string ``"inf"``, ``"-inf"`` or ``"nan"``
(the encoding of every experiment, ``experiments/_io.py``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

import jaxdiv
from experiments import _io
from jaxdiv import estimators

FAMILIES = ("fixed", "free")
HEAD = {"fixed": ": off-centre", "free": ": on a mode"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _io.parser("bifurcation",
                   "Reverse-KL Gaussian fits to a symmetric two-component mixture, swept over "
                   "the separation d, the initial mean and the seed.")
    p.add_argument("--d-min", type=_io.finite_float, default=0.0, help="smallest separation")
    p.add_argument("--d-max", type=_io.finite_float, default=8.0, help="largest separation")
    p.add_argument("--num-d", type=_io.int_at_least(2), default=65, help="separations")
    p.add_argument("--init-range", type=_io.finite_float, default=4.0,
                   help="initial means evenly spaced on [-R, R]")
    p.add_argument("--num-inits", type=_io.int_at_least(1), default=16, help="initial means")
    p.add_argument("--seeds", type=_io.int_at_least(1), default=4, help="seeds per (d, start)")
    p.add_argument("--scale", choices=("both", *FAMILIES), default="both",
                   help="fit the scale too (free), hold it at 1 (fixed), or both")
    p.add_argument("--objective", choices=("mc", "grid"), default="mc",
                   help="Monte Carlo reverse_kl or quadrature grid_kl")
    p.add_argument("--num-samples", type=_io.int_at_least(2), default=32,
                   help="Monte Carlo draws per step")
    p.add_argument("--grid-points", type=_io.int_at_least(101), default=601,
                   help="quadrature points of grid_kl and of the theory")
    p.add_argument("--steps", type=_io.int_at_least(1), default=500, help="Adam steps per fit")
    p.add_argument("--learning-rate", type=_io.positive_float, default=0.05,
                   help="peak Adam learning rate, cosine-decayed to 1%%")
    p.add_argument("--chunk-size", type=_io.int_at_least(0), default=0,
                   help="fits per compiled call, with a progress line after each; 0: a quarter "
                        "of the sweep on one device, all of it with --devices all (each "
                        "jaxdiv.sweep call compiles anew)")
    p.add_argument("--devices", choices=("none", "all"), default="none",
                   help="'all' shards the sweep axis over every device")
    p.add_argument("--theory-points", type=_io.int_at_least(3), default=161,
                   help="separations on the theory's fine grid")
    p.add_argument("--no-theory", action="store_true", help="skip the quadrature theory")
    _io.add_output_arguments(p)
    return p.parse_args(argv)


def validate(a: argparse.Namespace) -> str | None:
    """Returns a one-line error for bad command-line input, or None."""
    if not all(math.isfinite(v) for v in (a.d_min, a.d_max, a.init_range, a.learning_rate)):
        return "every number must be finite"
    if not 0 <= a.d_min < a.d_max:
        return f"need 0 <= --d-min < --d-max, got {a.d_min} and {a.d_max}"
    if a.num_d < 2 or a.num_inits < 1 or a.seeds < 1:
        return "need --num-d >= 2, --num-inits >= 1 and --seeds >= 1"
    if a.init_range < 0 or a.learning_rate <= 0:
        return "need --init-range >= 0 and --learning-rate > 0"
    if a.steps < 1 or a.num_samples < 2 or a.grid_points < 101 or a.chunk_size < 0:
        return "need --steps >= 1, --num-samples >= 2, --grid-points >= 101, --chunk-size >= 0"
    if a.theory_points < 3:
        return f"need --theory-points >= 3, got {a.theory_points}"
    return None


def mixture(d: jax.Array) -> jaxdiv.Mixture:
    """0.5 N(-d/2, 1) + 0.5 N(d/2, 1)."""
    d = jnp.asarray(d)
    half = jnp.stack([-d / 2, d / 2])
    return jaxdiv.Mixture(jnp.zeros(2, half.dtype), jaxdiv.Normal(half, jnp.ones_like(half)))


def sweep_fits(a: argparse.Namespace, xgrid: jax.Array) -> dict:
    """Every fit of the sweep; returns per family the final means and stds [d, init, seed]."""
    fams = FAMILIES if a.scale == "both" else (a.scale,)
    ds = np.linspace(a.d_min, a.d_max, a.num_d)
    m0s = np.linspace(-a.init_range, a.init_range, a.num_inits)
    shape = (len(fams), a.num_d, a.num_inits, a.seeds)
    grids = np.meshgrid([f == "free" for f in fams], ds, m0s, np.arange(a.seeds), indexing="ij")
    free, d, m0 = (jnp.asarray(g.ravel()) for g in grids[:3])
    keys = jax.random.split(jax.random.key(a.seed), free.shape[0])
    lr = optax.cosine_decay_schedule(a.learning_rate, a.steps, alpha=0.01)
    optimizer = optax.adam(lr, b2=0.9)  # short memory: the large early gradients fade fast

    def one(d, m0, free, key):
        target = mixture(d)

        def model(prm):  # the fixed family's log-scale is held at 0 (zero gradient)
            return jaxdiv.Normal(prm["loc"], jnp.exp(jnp.where(free, prm["log_scale"], 0.0)))

        if a.objective == "mc":
            loss = lambda prm, k: estimators.reverse_kl(k, target, model(prm), a.num_samples)
        else:  # KL(q || p) by quadrature: deterministic
            loss = lambda prm, k: estimators.grid_kl(model(prm), target, xgrid)
        p0 = {"loc": m0, "log_scale": jnp.zeros_like(m0)}
        prm, _ = jaxdiv.fit(loss, p0, optimizer, steps=a.steps, key=key)
        return prm["loc"], model(prm).scale

    n = free.shape[0]
    chunk = a.chunk_size or (n if a.devices == "all" else -(-n // 4))
    chunk = min(chunk, n)
    if a.devices == "all":
        program = lambda *args: jaxdiv.sweep(one, *args, devices="all")
    else:  # one compilation, reused by every chunk (the last one is padded)
        example = (d[:chunk], m0[:chunk], free[:chunk], keys[:chunk])
        program = jax.jit(jax.vmap(one)).lower(*example).compile()
    outs, t0 = [], time.perf_counter()
    for start in range(0, n, chunk):
        size = min(chunk, n - start)  # the last single-device chunk is padded to the shape
        idx = np.minimum(np.arange(start, start + (chunk if a.devices == "none" else size)), n - 1)
        m, s = program(d[idx], m0[idx], free[idx], keys[idx])
        if jax.process_count() > 1:  # several hosts: every process gathers the whole sweep
            m, s = multihost_utils.process_allgather((m, s), tiled=True)
        outs.append(np.stack([np.asarray(m)[:size], np.asarray(s)[:size]]))
        bar = "#" * round(30 * (start + size) / n)
        print(f"\rbifurcation: [{bar:<30}] {start + size}/{n} fits, "
              f"{time.perf_counter() - t0:.1f} s", end="" if start + size < n else "\n",
              file=sys.stderr, flush=True)
    mean, std = np.concatenate(outs, axis=1).astype(np.float64).reshape(2, *shape)
    return {"d": ds, "init_means": m0s, "families": fams,
            "mean": dict(zip(fams, mean, strict=True)), "std": dict(zip(fams, std, strict=True))}


def _zeros(x: np.ndarray, y: np.ndarray, sign: int) -> list[float]:
    """Linear-interpolated zeros of y(x) where y crosses from -sign to +sign."""
    s = np.sign(y)
    i = np.flatnonzero((s[:-1] == -sign) & (s[1:] == sign))
    return [float(x[k] - y[k] * (x[k + 1] - x[k]) / (y[k + 1] - y[k])) for k in i]


def theory_program(a: argparse.Namespace, xgrid: jax.Array):
    """The compiled theory program, its d grid and its m grid (see :func:`theory`)."""
    def kl(m, u, d):  # u = log s
        return estimators.grid_kl(jaxdiv.Normal(m, jnp.exp(u)), mixture(d), xgrid)

    kl_mu = jax.vmap(kl, (0, 0, None))  # over paired (m, u); few call sites: fast compiles
    ms = jnp.linspace(0.0, a.d_max / 2 + 1, 101)
    us = jnp.linspace(-1.0, math.log(a.d_max / 2 + 2), 48)
    hu, eps, h = float(us[1] - us[0]), 0.01, 0.05
    n = ms.shape[0]

    def at(d):
        table = jax.vmap(lambda m: jax.vmap(lambda u: kl(m, u, d))(us))(ms)  # [m, u]
        j = jnp.clip(jnp.argmin(table, axis=1), 1, len(us) - 2)
        f0, f1, f2 = (jnp.take_along_axis(table, (j + k)[:, None], 1)[:, 0] for k in (-1, 0, 1))
        curv = f0 - 2 * f1 + f2
        u = us[j] + hu * jnp.where(curv > 0, (f0 - f2) / (2 * jnp.where(curv > 0, curv, 1)), 0)

        def newton(_, u):  # in u, with central differences
            lo, mid, hi = kl_mu(jnp.tile(ms, 3), jnp.concatenate([u - eps, u, u + eps]),
                                d).reshape(3, n)
            c = (hi - 2 * mid + lo) / eps ** 2
            step = jnp.where(c > 0, (hi - lo) / (2 * eps) / jnp.where(c > 0, c, 1), 0)
            return u - jnp.clip(step, -hu, hu)

        u = jax.lax.fori_loop(0, 2, newton, u)
        zero, u0 = jnp.zeros_like(ms), u[0]
        cm = jnp.array([h, -h, 0.0, 0.0, h, h, -h, -h, h, -h, 0.0])  # centre stencils
        cu = jnp.array([0, 0, h, -h, h, -h, h, -h, -u0, -u0, -u0]) + u0
        vals = kl_mu(jnp.concatenate([ms, ms + eps, ms - eps, ms + eps, ms - eps, cm]),
                     jnp.concatenate([u, u, u, zero, zero, cu]), d)
        prof, fp, fm, gp, gm = vals[:5 * n].reshape(5, n)
        (kp, km, kup, kum, kpp, kpm, kmp, kmm, kf_p, kf_m, kf_0), c0 = vals[5 * n:], prof[0]
        g_free = (fp - fm) / (2 * eps)  # envelope theorem: the slope of the profile P(m)
        g_fixed = (gp - gm) / (2 * eps)
        h_fixed = (kf_p - 2 * kf_0 + kf_m) / h ** 2  # curvatures at the centre
        h_mm, h_uu = (kp - 2 * c0 + km) / h ** 2, (kup - 2 * c0 + kum) / h ** 2
        h_mu = (kpp - kpm - kmp + kmm) / (4 * h * h)
        lam = 0.5 * (h_mm + h_uu) - jnp.sqrt(0.25 * (h_mm - h_uu) ** 2 + h_mu ** 2)
        return g_free, prof, u, g_fixed, h_fixed, lam

    dth = np.linspace(a.d_min, a.d_max, a.theory_points)
    program = jax.jit(lambda ds: jax.lax.map(at, ds, batch_size=4))
    return program.lower(jnp.asarray(dth)).compile(), dth, np.asarray(ms, np.float64)


def theory(program, dth: np.ndarray, msn: np.ndarray) -> dict:
    """Stationary points of KL(N(m, s) || p_d) by quadrature, on a fine d grid.

    ``grid_kl`` values only (no nested autodiff, which compiles slowly): for each d and each
    m of a grid, the best log-scale u*(m) by a search over a u grid, a parabolic step and two
    Newton steps with central differences; then the profile P(m) = KL(m, u*(m)) and its slope
    dP/dm, whose sign changes are the off-centre stationary points (slope - to + a minimum,
    + to - a saddle). Fixed scale: the slope and curvature in m at s = 1. Returns the branches,
    the curvatures at the centre and the critical separations d_c (fixed: the centre's
    curvature changes sign), d_sn (free: a minimum and a saddle appear off the centre) and d_eq
    (free: the off-centre minimum becomes the global one).
    """
    g_free, prof, u_best, g_fixed, h_fixed, lam = (np.asarray(v, np.float64)
                                                   for v in program(jnp.asarray(dth)))
    fixed_branch, mode, saddle, mode_std, gap = [], [], [], [], []
    for i in range(len(dth)):
        z = _zeros(msn, g_fixed[i], +1)
        fixed_branch.append(z[-1] if z else 0.0)
        zs, zm = _zeros(msn[1:], g_free[i, 1:], -1), _zeros(msn[1:], g_free[i, 1:], +1)
        saddle.append(zs[0] if zs else None)
        mode.append(zm[-1] if zm else None)
        j = int(np.argmin(np.abs(msn - zm[-1]))) if zm else 0
        mode_std.append(float(np.exp(u_best[i, j])) if zm else None)
        gap.append(float(prof[i, max(j - 1, 0):j + 2].min() - prof[i, 0]) if zm else None)
    inner = (msn > 0.5)[None, :]  # min over m of the profile slope, away from the centre
    g_min = np.where(inner, g_free, np.inf).min(axis=1)
    d_c = _zeros(dth, -h_fixed, +1)
    d_sn = _zeros(dth, -g_min, +1)
    d_eq = _zeros(dth, -np.asarray([np.nan if g is None else g for g in gap]), +1)
    return {"d": dth.tolist(), "fixed_branch": fixed_branch, "free_mode_branch": mode,
            "free_saddle_branch": saddle, "free_mode_std": mode_std,
            "free_centre_std": np.exp(u_best[:, 0]).tolist(),
            "fixed_curvature_at_centre": h_fixed.tolist(),
            "free_min_hessian_eigenvalue_at_centre": lam.tolist(),
            "d_c_fixed": d_c[0] if d_c else None, "d_sn_free": d_sn[0] if d_sn else None,
            "d_eq_free": d_eq[0] if d_eq else None}


def locate(res: dict) -> dict:
    """Critical separations from the data, with the grid resolution.

    Fixed scale: the first d where most runs (the median |m|) are off the centre, and the
    extrapolation to zero of the median m^2, linear in d just past a supercritical pitchfork.
    Free scale: the first d where any run sits on a mode branch, |m| >= 0.75 d / 2 (the theory's
    mode branch is beyond 0.9 d / 2; runs still in transit towards the centre, slowed down near
    the saddle-node, sit lower).
    """
    ds = res["d"]
    step = float(ds[1] - ds[0])
    out = {}
    for fam in res["families"]:
        m = np.abs(res["mean"][fam]).reshape(len(ds), -1)
        med = np.median(m, axis=1)
        if fam == "fixed":
            frac = (m > 0.25).mean(axis=1)
            hit = np.flatnonzero(med > 0.25)
        else:
            frac = (m >= np.maximum(0.75 * ds / 2, 0.5)[:, None]).mean(axis=1)
            hit = np.flatnonzero(frac > 0)
        entry = {"off_centre_fraction": frac.tolist(), "median_abs_mean": med.tolist(),
                 "resolution": step, "interval": None, "fit": None}
        if len(hit) and hit[0] > 0:
            k = int(hit[0])
            entry["interval"] = [float(ds[k - 1]), float(ds[k])]
            if fam == "fixed" and k + 2 < len(ds):
                sel = np.arange(k, min(k + 4, len(ds)))
                slope, icpt = np.polyfit(ds[sel], med[sel] ** 2, 1)
                entry["fit"] = float(-icpt / slope) if slope > 0 else None
        out[fam] = entry
    return out


def run(a: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    xgrid = jnp.linspace(-a.d_max / 2 - 8, a.d_max / 2 + 8, a.grid_points)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # XLA compiles outside the GIL
        compiling = None if a.no_theory else pool.submit(theory_program, a, xgrid)
        res = sweep_fits(a, xgrid)
        t_fits = time.perf_counter() - t0
        th = None if compiling is None else theory(*compiling.result())
    dev = jax.devices()[0]
    return {
        "d": res["d"].tolist(), "init_means": res["init_means"].tolist(), "seeds": a.seeds,
        "fits": {f: {"mean": res["mean"][f].tolist(), "std": res["std"][f].tolist()}
                 for f in res["families"]},
        "critical": locate(res), "theory": th,
        "meta": {"jax_version": jax.__version__, "backend": jax.default_backend(),
                 "devices": f"{jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}",
                 "sharded": a.devices == "all", "objective": a.objective,
                 "num_samples": a.num_samples if a.objective == "mc" else None,
                 "grid_points": a.grid_points, "steps": a.steps, "seed": a.seed,
                 "learning_rate": a.learning_rate, "num_fits": int(res["mean"][
                     res["families"][0]].size * len(res["families"])),
                 "fit_seconds": t_fits, "wall_seconds": time.perf_counter() - t0},
    }


def summary(result: dict) -> str:
    """The printed table: the transitions from the data beside the theory."""
    ds, crit, th = np.asarray(result["d"]), result["critical"], result["theory"]
    fams = list(result["fits"])
    lines = [f"{result['meta']['num_fits']} reverse-KL fits ({result['meta']['objective']}), "
             f"d on [{ds[0]:g}, {ds[-1]:g}] step {ds[1] - ds[0]:.4g}, "
             f"{len(result['init_means'])} starts x {result['seeds']} seeds", "",
             f"{'d':>6} " + " ".join(f"{f + HEAD[f]:>18} {'med |m|':>8}" for f in fams)]
    show = set()
    for f in fams:
        iv = crit[f]["interval"]
        if iv:
            k = int(np.argmin(np.abs(ds - iv[1])))
            show |= set(range(max(k - 2, 0), min(k + 3, len(ds))))
    show |= {0, len(ds) - 1}
    for i in sorted(show):
        cells = " ".join(f"{crit[f]['off_centre_fraction'][i]:>18.2f} "
                         f"{crit[f]['median_abs_mean'][i]:>8.3f}" for f in fams)
        lines.append(f"{ds[i]:>6.3f} {cells}")
    lines.append("")
    for f in fams:
        iv, c = crit[f]["interval"], crit[f]
        where = f"d in ({iv[0]:.3f}, {iv[1]:.3f}] (grid step {c['resolution']:.3f})" if iv \
            else "not on this grid"
        if f == "fixed":
            fit = f"; m^2-linear fit: {c['fit']:.3f}" if c["fit"] is not None else ""
            theo = f"; theory d_c = {th['d_c_fixed']:.3f}" if th and th["d_c_fixed"] else ""
            lines.append(f"fixed scale, the centre loses stability: data {where}{fit}{theo}")
        else:
            theo = (f"; theory: saddle-node d_sn = {th['d_sn_free']:.3f}, mode global beyond "
                    f"d_eq = {th['d_eq_free']:.3f}, centre curvature min eigenvalue "
                    f"{min(th['free_min_hessian_eigenvalue_at_centre']):.3g} > 0"
                    if th and th["d_sn_free"] and th["d_eq_free"] else "")
            lines.append(f"free scale, first runs settle on a mode: data {where}{theo}")
    return "\n".join(lines)


def figure(result: dict):
    """Final mean against d for each family (the pitchforks), with the theory's branches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds, th = np.asarray(result["d"]), result["theory"]
    fams = list(result["fits"])
    fig, axes = plt.subplots(1, len(fams), figsize=(7 * len(fams), 5), layout="constrained",
                             squeeze=False)
    for ax, f in zip(axes[0], fams, strict=True):
        m = np.asarray(result["fits"][f]["mean"]).reshape(len(ds), -1)
        ax.plot(np.repeat(ds, m.shape[1]), m.ravel(), ".", ms=2, color="C0", alpha=0.35,
                label=f"final mean, {m.size} fits")
        ax.plot(ds, ds / 2, ":", color="0.6", lw=1, label="component means ±d/2")
        ax.plot(ds, -ds / 2, ":", color="0.6", lw=1)
        iv = result["critical"][f]["interval"]
        if iv:
            ax.axvspan(*iv, color="C1", alpha=0.25, label="critical d from the data")
        if th:
            td = np.asarray(th["d"])
            cut = (th["d_c_fixed"] or np.inf) if f == "fixed" else np.inf
            ax.plot(td[td < cut], 0 * td[td < cut], "-", color="C3", lw=1.2,
                    label="theory: stable branches")
            ax.plot(td[td >= cut], 0 * td[td >= cut], "--", color="C3", lw=1.2,
                    label="theory: unstable (saddles)")
            keys = ["fixed_branch"] if f == "fixed" else ["free_mode_branch", "free_saddle_branch"]
            for key, ls in zip(keys, ("-", "--"), strict=False):
                br = np.asarray([np.nan if v is None else v for v in th[key]])
                ax.plot(td, br, ls, td, -br, ls, color="C3", lw=1.2)
            marks = [("d_c_fixed", "pitchfork ", "right")] if f == "fixed" else \
                [("d_sn_free", "saddle-node ", "right"), ("d_eq_free", " mode global", "left")]
            for key, lab, ha in marks:
                if th[key]:
                    ax.axvline(th[key], color="C3", lw=0.8, ls=":")
                    ax.text(th[key], 0.97 * ds[-1] / 2, f"{lab}\nd = {th[key]:.2f}",
                            fontsize=7, color="C3", ha=ha, va="top")
        ax.axvline(2.0, color="0.5", lw=0.8, ls="-.", label="target turns bimodal (d = 2)")
        title = {"fixed": "scale fixed at 1: supercritical pitchfork",
                 "free": "scale fitted too: branches born by a saddle-node"}[f]
        ax.set(xlabel="separation d", ylabel="fitted mean m", title=title)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def main(argv: list[str] | None = None) -> dict:
    return _io.run_cli("bifurcation", parse_args(argv), validate, run, summary, figure)


if __name__ == "__main__":
    main()
