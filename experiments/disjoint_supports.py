"""Why Wasserstein gives gradients where KL and JS do not: two parallel segments (the WGAN example).

Question: P0 is uniform on the segment {0} x [0, 1] and P_theta uniform on {theta} x [0, 1]. For
theta != 0 the supports are disjoint, so KL(P0 || P_theta) = +inf and JS(P0, P_theta) = log 2
whatever theta is: both are flat in theta and give no gradient towards theta = 0, while
W1(P0, P_theta) = |theta| has gradient sign(theta) everywhere (Arjovsky, Chintala & Bottou,
Wasserstein GAN, ICML 2017, Example 1). What do jaxdiv's functions say, from samples, and what
does ``jax.grad`` through them give?

Method: P_theta is the push-forward of u ~ U[0, 1] by g_theta(u) = (theta, u), as a WGAN
generator; P0 and P_theta share the draws u (common random numbers), so at theta = 0 the two
samples coincide. KL and JS are ``jaxdiv.kl_divergence`` and ``jaxdiv.js_divergence`` between
2-D histograms of the two samples on one shared binning: hard bins in y, linear ("cloud in
cell") binning in x, where a point splits its mass between the two nearest bin centres in
proportion to proximity, so the histogram is differentiable in theta. The x-bins are half the
theta spacing wide and the theta grid sits midway between bin centres: at every nonzero grid
theta the two histograms share no bin (so KL is exactly +inf and JS exactly log 2, the closed
forms), and moving theta only moves mass between bins where P0 has none (so the gradient of JS
is 0 by mass conservation, computed, not assumed). W1 is ``jaxdiv.wasserstein_1d`` of the x
coordinates: exact, since the x-projection is 1-Lipschitz (W1 >= |theta|) and the horizontal
shift attains |theta|. As an independent check, ``jaxdiv.sinkhorn`` with the Euclidean cost on
the 2-D samples at small epsilon gives the transport cost <P, C> and its gradient (implicit
differentiation through ott-jax). At theta = 0 itself |theta| has no derivative and ``jax.grad``
returns some subgradient in [-1, 1]; JS jumps from 0 to log 2 there.

Command: ``python -m experiments.disjoint_supports [--out results/]`` (``--help`` for options).

Output: a table (theta, then KL, JS, W1 and the gradients of JS and W1, beside the closed
forms), and in ``--out``: ``disjoint_supports.json`` with keys ``theta``, ``kl``, ``js``,
``wasserstein``, ``grad_js``, ``grad_wasserstein`` (lists over theta), ``closed_form`` (the
same quantities in closed form), ``wasserstein_sinkhorn`` and ``grad_wasserstein_sinkhorn``
(the 2-D check; absent with ``--no-sinkhorn``) and ``meta``. The JSON is strict: infinite KL
is written as the string ``"inf"`` (and any NaN as ``"nan"``), the encoding of every
experiment (``experiments/_io.py``); ``experiments._io.read_json`` reads it back as
``float('inf')``. ``disjoint_supports.png`` draws the three curves and the
two gradients. Both files are written atomically.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiv
from experiments import _io


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _io.parser("disjoint_supports",
                   "KL, JS and W1 between two parallel segments, and their gradients.")
    p.add_argument("--theta-max", type=_io.positive_float, default=1.0,
                   help="theta runs over [-theta-max, theta-max]")
    p.add_argument("--num-theta", type=_io.int_at_least(3), default=33,
                   help="number of theta values, odd so that 0 is one")
    p.add_argument("--num-samples", type=_io.int_at_least(2), default=1024,
                   help="samples per segment for the histograms and W1")
    p.add_argument("--y-bins", type=_io.int_at_least(1), default=8, help="histogram bins along y")
    p.add_argument("--sinkhorn-samples", type=_io.int_at_least(2), default=128,
                   help="samples per segment for the 2-D Sinkhorn check")
    p.add_argument("--epsilon", type=_io.positive_float, default=0.005,
                   help="Sinkhorn regularisation, absolute, in distance units")
    p.add_argument("--no-sinkhorn", action="store_true", help="skip the 2-D Sinkhorn check")
    _io.add_output_arguments(p)
    return p.parse_args(argv)


def validate(a: argparse.Namespace) -> str | None:
    """Returns a one-line error for bad command-line input, or None."""
    if not (math.isfinite(a.theta_max) and a.theta_max > 0):
        return f"--theta-max must be finite and > 0, got {a.theta_max}"
    if a.num_theta < 3 or a.num_theta % 2 == 0:
        return f"--num-theta must be odd and >= 3 (so that theta = 0 is on the grid), got " \
               f"{a.num_theta}"
    if a.num_samples < 2 or a.sinkhorn_samples < 2 or a.y_bins < 1:
        return "--num-samples and --sinkhorn-samples must be >= 2, --y-bins >= 1"
    if not (math.isfinite(a.epsilon) and a.epsilon > 0):
        return f"--epsilon must be finite and > 0, got {a.epsilon}"
    return None


def histograms(theta: jax.Array, u: jax.Array, x_lo: float, h: float, x_bins: int,
               y_bins: int) -> tuple[jax.Array, jax.Array]:
    """Shared-binning 2-D histograms (flattened, normalised) of P0 and P_theta from draws u.

    Linear binning in x onto centres ``x_lo + j h`` (differentiable in theta), hard bins in y.
    """
    iy = jnp.clip(jnp.floor(u * y_bins).astype(jnp.int32), 0, y_bins - 1)

    def hist(x):  # x: the x coordinate of every sample (one value per sample)
        pos = (x - x_lo) / h
        ix = jnp.floor(pos)
        frac = pos - ix  # the weight of the right-hand centre; d frac / d theta = 1 / h
        ix = ix.astype(jnp.int32)
        counts = jnp.zeros(x_bins * y_bins, frac.dtype)
        counts = counts.at[ix * y_bins + iy].add(1 - frac)
        counts = counts.at[(ix + 1) * y_bins + iy].add(frac)
        return counts / x.shape[0]

    return hist(jnp.zeros_like(u)), hist(jnp.broadcast_to(theta, u.shape))


def run(a: argparse.Namespace) -> dict:
    """Every quantity at every theta; returns the JSON-ready results."""
    t0 = time.perf_counter()
    k = a.num_theta // 2
    theta = jnp.linspace(-a.theta_max, a.theta_max, a.num_theta).at[k].set(0.0)
    spacing = a.theta_max / k
    h = spacing / 2  # half the theta spacing: nonzero grid thetas never share a bin with P0
    x_lo = -a.theta_max - 1.5 * h  # grid thetas land midway between two centres
    x_bins = 2 * a.num_theta + 2
    key_u, key_s = jax.random.split(jax.random.key(a.seed))
    u = jax.random.uniform(key_u, (a.num_samples,))

    def divergences(t):
        p0, pt = histograms(t, u, x_lo, h, x_bins, a.y_bins)
        return jaxdiv.kl_divergence(p0, pt), jaxdiv.js_divergence(p0, pt)

    def w1(t):  # exact: W1 of the x-marginals equals W1 of the segments
        return jaxdiv.wasserstein_1d(jnp.zeros_like(u), jnp.broadcast_to(t, u.shape))

    def histogram_side(t):
        (kl, js), w = divergences(t), w1(t)
        grad_js = jax.grad(lambda t: divergences(t)[1])(t)
        return kl, js, w, grad_js, jax.grad(w1)(t)

    v = jax.random.uniform(key_s, (a.sinkhorn_samples,))
    x0 = jnp.stack([jnp.zeros_like(v), v], axis=1)

    def sinkhorn_w1(t):  # the 2-D check: transport cost <P, C> with C the Euclidean distance
        xt = jnp.stack([jnp.broadcast_to(t, v.shape), v], axis=1)
        r = jaxdiv.sinkhorn(x0, xt, cost="euclidean", epsilon=a.epsilon, threshold=1e-4,
                            max_iterations=5000)
        return r.transport_cost, r.converged

    programs = [jax.jit(jax.vmap(histogram_side))]
    if not a.no_sinkhorn:
        programs.append(jax.jit(jax.vmap(jax.value_and_grad(sinkhorn_w1, has_aux=True))))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # XLA compiles outside the GIL
        compiled = list(pool.map(lambda f: f.lower(theta).compile(), programs))
    kl, js, w, grad_js, grad_w = (np.asarray(x, np.float64) for x in compiled[0](theta))
    th = np.asarray(theta, np.float64)
    result = {
        "theta": th.tolist(), "kl": kl.tolist(), "js": js.tolist(), "wasserstein": w.tolist(),
        "grad_js": grad_js.tolist(), "grad_wasserstein": grad_w.tolist(),
        "closed_form": {"kl": np.where(th == 0, 0.0, np.inf).tolist(),
                        "js": np.where(th == 0, 0.0, math.log(2)).tolist(),
                        "wasserstein": np.abs(th).tolist(), "grad_js": np.zeros_like(th).tolist(),
                        "grad_wasserstein": np.sign(th).tolist()},
    }
    if not a.no_sinkhorn:
        (ws, converged), grad_ws = compiled[1](theta)
        result["wasserstein_sinkhorn"] = np.asarray(ws, np.float64).tolist()
        result["grad_wasserstein_sinkhorn"] = np.asarray(grad_ws, np.float64).tolist()
        result["sinkhorn_converged"] = bool(np.all(converged))
    dev = jax.devices()[0]
    result["meta"] = {
        "jax_version": jax.__version__, "backend": jax.default_backend(),
        "devices": f"{jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}",
        "seed": a.seed, "num_samples": a.num_samples, "x_bin_width": h, "y_bins": a.y_bins,
        "sinkhorn_samples": None if a.no_sinkhorn else a.sinkhorn_samples,
        "epsilon": None if a.no_sinkhorn else a.epsilon,
        "w1_method": "jaxdiv.wasserstein_1d on the x coordinates (exact)",
        "kl_js_method": "jaxdiv.kl_divergence / js_divergence of shared-binning 2-D histograms",
        "infinity": "the string \"inf\"", "wall_seconds": time.perf_counter() - t0}
    return result


def summary(result: dict) -> str:
    """The printed table: every theta, sample-based values beside the closed forms."""
    has_sk = "wasserstein_sinkhorn" in result
    lines = [f"{'theta':>7} {'KL':>6} {'JS':>7} {'W1':>7} {'dJS/dth':>8} {'dW1/dth':>8}"
             + (f" {'W1 (Sinkhorn)':>13} {'dW1 (Sk)':>8}" if has_sk else "")]
    for i, t in enumerate(result["theta"]):
        row = (f"{t:>+7.3f} {result['kl'][i]:>6.3g} {result['js'][i]:>7.4f} "
               f"{result['wasserstein'][i]:>7.4f} {result['grad_js'][i]:>+8.4f} "
               f"{result['grad_wasserstein'][i]:>+8.4f}")
        if has_sk:
            row += (f" {result['wasserstein_sinkhorn'][i]:>13.4f} "
                    f"{result['grad_wasserstein_sinkhorn'][i]:>+8.4f}")
        lines.append(row)
    lines.append(f"closed forms: KL = +inf, JS = log 2 = {math.log(2):.4f}, dJS/dtheta = 0 for "
                 f"theta != 0 (both 0 at theta = 0); W1 = |theta|, dW1/dtheta = sign(theta)")
    lines.append("(at theta = 0, W1 = |theta| has no derivative: jax.grad returns a subgradient)")
    return "\n".join(lines)


def figure(result: dict):
    """The three curves against theta, and the two gradients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    th = np.asarray(result["theta"])
    kl = np.asarray(result["kl"])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    top = 1.15 * max(th.max(), math.log(2))
    finite = np.isfinite(kl)
    ax.plot(th[finite], kl[finite], "o", color="C3", label="KL(P0‖Pθ) (finite only at θ = 0)")
    ax.plot(th[~finite], np.full((~finite).sum(), top), "^", color="C3", clip_on=False,
            label="KL = +∞ (drawn at the top edge)")
    ax.plot(th, result["js"], "s", color="C2", ms=4, label="JS(P0, Pθ) (jumps at θ = 0)")
    ax.plot(th, result["wasserstein"], "o-", color="C0", ms=4, label="W1 (wasserstein_1d)")
    if "wasserstein_sinkhorn" in result:
        ax.plot(th, result["wasserstein_sinkhorn"], "x", color="k", ms=5,
                label="W1 (2-D Sinkhorn check)")
    ax.axhline(math.log(2), color="C2", ls=":", lw=0.8)
    ax.set(xlabel="θ", ylabel="nats / distance", ylim=(-0.05, top * 1.02),
           title="Disjoint supports: KL and JS are flat, W1 = |θ|")
    ax.legend(fontsize=8, loc="lower left")
    bx.plot(th, result["grad_js"], "s", color="C2", ms=4, label="∂JS/∂θ (jax.grad)")
    bx.plot(th, result["grad_wasserstein"], "o", color="C0", ms=4, label="∂W1/∂θ (jax.grad)")
    if "grad_wasserstein_sinkhorn" in result:
        bx.plot(th, result["grad_wasserstein_sinkhorn"], "x", color="k", ms=5,
                label="∂W1/∂θ (2-D Sinkhorn)")
    bx.axhline(0, color="0.6", lw=0.8)
    bx.set(xlabel="θ", ylabel="gradient", title="Only W1 points θ back to 0")
    bx.legend(fontsize=8)
    return fig


def main(argv: list[str] | None = None) -> dict:
    return _io.run_cli("disjoint_supports", parse_args(argv), validate, run, summary, figure)


if __name__ == "__main__":
    main()
