"""How biased and how noisy are Schulman's KL estimators, in value and in gradient?

Question: RL fine-tuning penalises KL(pi || pi_ref) with per-token estimators k1 = -log r,
k2 = (log r)^2 / 2, k3 = (r - 1) - log r (log r = log pi_ref - log pi, tokens from pi). How
far off (bias) and how noisy (standard deviation), relative to the true KL, are their values,
and the gradients of ``jaxdiv.losses.kl_penalty`` in each gradient form, as the KL runs from
0.001 to 2? Where do the gradient forms part ways?

Method: two policy families, each at every KL level: a Gaussian pi = N(m, e^s) at (m, s) =
(0, 0) against pi_ref = N(mu, 1), KL = mu^2/2 (Schulman's example: KL 0.005 at mu = 0.1, 0.5
at mu = 1), parameters (m, s); and a categorical pi = softmax(theta) over a vocabulary,
theta = theta_ref + t v with t set by bisection to the KL level, parameters theta. Per sample,
``kl_penalty`` on a single token gives each estimator's value and theta-gradient in the forms
"naive" and "unbiased" (its derivative in log pi times the score), and ``gradient="none"``
times grad log pi gives the penalty used as a reward (the REINFORCE gradient k grad log pi).
Exact moments come from a sum over the vocabulary (categorical) and Gauss-Hermite quadrature
(Gaussian); Monte Carlo moments from ``--num-samples`` draws per level. A Monte Carlo bias is
a paired difference with an unbiased estimator on the same draws (k2 - k3 for the value,
form - unbiased for a gradient), so its standard error is that of the small difference, not
of the noisy estimate. Everything is one jitted program, vmapped over the KL levels.

What it shows: k1 is unbiased but its relative std grows like KL^(-1/2) (20 at KL 0.005);
k3 is unbiased with relative std ~1.4 for nearby policies; k2's relative bias is KL/2 for the
Gaussians (0.25% at 0.005, 25% at 0.5). In gradient, the unbiased forms of k1, k2 and k3, the
naive k2 and k1 used as a reward are one and the same estimator, -log r grad log pi; naive k1
has mean 0 (100% relative bias at every KL), naive k3 estimates the gradient of the reverse
KL(pi_ref || pi), and k2 or k3 used as a reward are biased as well: these depart from the
true gradient as the KL grows.

Command: ``python -m experiments.kl_estimators [--out results/]`` (``--help`` for the options).

Output: tables (Schulman's reference numbers beside this run's Monte Carlo and exact values;
relative bias and std per family at a few KL levels; the KL where each biased gradient form
passes 10% relative bias) and in ``--out``: ``kl_estimators.json`` (``kl``, ``families``: per
family ``value`` and ``gradient`` metrics, exact and Monte Carlo, over ``kl``; ``schulman``;
``parting``; ``meta``) and ``kl_estimators.png``, both written atomically.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import log_softmax as np_log_softmax
from scipy.special import softmax as np_softmax

import jaxdiv
from experiments import _io
from jaxdiv.losses import kl_penalty

FAMILIES = ("gaussian", "categorical")
ESTIMATORS = ("k1", "k2", "k3")
FORMS = ("reward", "naive", "unbiased")  # "reward": gradient="none" times grad log pi
SCHULMAN_KL = (0.005, 0.5)
# Schulman's blog (2020), Gaussian q = N(0, 1), p = N(0.1, 1) and N(1, 1): relative std and
# relative bias, as quoted in issue 16.
SCHULMAN_REFERENCE = {0.005: {"k1_rel_std": 20.0, "k3_rel_std": 1.42, "k2_rel_bias": 0.002},
                      0.5: {"k2_rel_bias": 0.25}}
CHUNK = 1 << 13


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m experiments.kl_estimators",
        description="Bias and standard deviation of the k1, k2, k3 KL estimators and of "
                    "kl_penalty's gradient forms, for Gaussian and categorical policies.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-kl", type=int, default=14,
                   help="KL levels, log-spaced from --kl-min to --kl-max (Schulman's 0.005 and "
                        "0.5 are added)")
    p.add_argument("--kl-min", type=float, default=0.001, help="smallest KL")
    p.add_argument("--kl-max", type=float, default=2.0, help="largest KL")
    p.add_argument("--num-samples", type=int, default=1 << 18,
                   help="Monte Carlo draws per family and KL level")
    p.add_argument("--vocab", type=int, default=16, help="categorical vocabulary size")
    p.add_argument("--quadrature", type=int, default=96,
                   help="Gauss-Hermite nodes for the Gaussian's exact moments")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="float64 keeps the exact moments exact (in float32 the log-probabilities' "
                        "rounding shows as ~1e-4 relative bias of k1 at KL 0.001)")
    _io.add_output_arguments(p)
    return p.parse_args(argv)


def validate(a: argparse.Namespace) -> str | None:
    """Returns a one-line error for bad command-line input, or None."""
    if not (math.isfinite(a.kl_min) and math.isfinite(a.kl_max)):
        return "--kl-min and --kl-max must be finite"
    if not 0 < a.kl_min < a.kl_max <= 2.5:
        return f"need 0 < --kl-min < --kl-max <= 2.5, got {a.kl_min} and {a.kl_max}"
    if a.num_kl < 1:
        return f"--num-kl must be >= 1, got {a.num_kl}"
    if a.num_samples < 2:
        return f"--num-samples must be >= 2, got {a.num_samples}"
    if not 4 <= a.vocab <= 4096:
        return f"--vocab must be in [4, 4096], got {a.vocab}"
    if not 8 <= a.quadrature <= 400:
        return f"--quadrature must be in [8, 400], got {a.quadrature}"
    return None


# Policies -------------------------------------------------------------------------------------


def gaussian_log_prob(theta: jax.Array, x: jax.Array) -> jax.Array:
    """log N(x; m, e^s) for theta = (m, s), the draw x held fixed (a sampled token)."""
    return jaxdiv.Normal(theta[0], jnp.exp(theta[1])).log_prob(jax.lax.stop_gradient(x))


def categorical_log_prob(theta: jax.Array, a: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(theta)[a]


def categorical_levels(kls: np.ndarray, vocab: int, seed: int):
    """theta_ref, and theta = theta_ref + t v with KL(softmax(theta) || softmax(theta_ref)) at
    each level (bisection in float64); the exact gradient of that KL in theta."""
    rng = np.random.default_rng(seed)
    theta_ref, v = 0.5 * rng.standard_normal(vocab), rng.standard_normal(vocab)
    log_rho = np_log_softmax(theta_ref)

    def kl_at(t):
        lp = np_log_softmax(theta_ref + t * v)
        return float(np.exp(lp) @ (lp - log_rho))

    if kl_at(1e3) <= kls.max():
        raise ValueError(f"categorical family: KL {kls.max()} is out of reach")
    thetas, grads = [], []
    for kl in kls:
        lo, hi = 0.0, 1.0
        while kl_at(hi) < kl:
            hi *= 2
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if kl_at(mid) < kl else (lo, mid)
        theta = theta_ref + 0.5 * (lo + hi) * v
        pi, ell = np_softmax(theta), np_log_softmax(theta) - log_rho
        thetas.append(theta)
        grads.append(pi * (ell - pi @ ell))  # grad KL = E[(log pi - log pi_ref) grad log pi]
    return theta_ref, np.array(thetas), np.array(grads)


# Per-sample estimates through the public API -------------------------------------------------


def per_sample(log_prob, theta, x, ref):
    """Values [3] and gradients [3 estimators, 3 forms, P] of one token's kl_penalty, and the
    paired differences used for Monte Carlo biases: k - k3 [3], form - unbiased [3, 3, P].

    The penalty depends on theta only through log pi(x), so its theta-gradient is its
    derivative in the log-probability (through ``kl_penalty``'s own gradient) times the score
    grad log pi(x), computed once.
    """
    lp, score = jax.value_and_grad(log_prob)(theta, x)

    def pen(l, est, form):
        return kl_penalty(l[None, None], ref[None, None], estimator=est, gradient=form)

    values = jnp.stack([pen(lp, e, "none") for e in ESTIMATORS])
    slopes = jnp.stack([jnp.stack([values[i],  # as a reward: k grad log pi
                                   jax.grad(pen)(lp, e, "naive"),
                                   jax.grad(pen)(lp, e, "unbiased")])
                        for i, e in enumerate(ESTIMATORS)])  # [3, 3]
    grads = slopes[..., None] * score  # [3, 3, P]
    return values, grads, values - values[2], grads - grads[:, 2:3]


def moments(f, nodes, weights):
    """Exact mean and variance of every output of ``f`` over weighted nodes."""
    out = jax.vmap(f)(nodes)
    mean = jax.tree.map(lambda o: jnp.tensordot(weights, o, axes=1,
                                                precision=jax.lax.Precision.HIGHEST), out)
    var = jax.tree.map(lambda o, m: jnp.tensordot(weights, (o - m) ** 2, axes=1,
                                                  precision=jax.lax.Precision.HIGHEST),
                       out, mean)
    return mean, var


def monte_carlo(f, draw, key, num_samples, center):
    """Mean and variance of every output of ``f`` over ``num_samples`` draws, in chunks,
    accumulating sums shifted by ``center`` (the exact mean), which keeps them small."""
    n_chunks = -(-num_samples // CHUNK)

    def step(acc, k):
        d = jax.tree.map(lambda o, c: o - c, jax.vmap(f)(draw(k, CHUNK)), center)
        s1 = jax.tree.map(lambda a, x: a + x.sum(0), acc[0], d)
        s2 = jax.tree.map(lambda a, x: a + (x * x).sum(0), acc[1], d)
        return (s1, s2), None

    zero = jax.tree.map(jnp.zeros_like, center)
    (s1, s2), _ = jax.lax.scan(step, (zero, zero), jax.random.split(key, n_chunks))
    n = n_chunks * CHUNK
    mean = jax.tree.map(lambda c, a: c + a / n, center, s1)
    var = jax.tree.map(lambda a, b: jnp.maximum(b / n - (a / n) ** 2, 0.0), s1, s2)  # >= 0
    return mean, var, n


def program(mus, thetas, theta_ref, gh_nodes, gh_weights, key, num_samples):
    """Both families at every KL level: exact and Monte Carlo moments. One jitted program."""
    kg, kc = jax.random.split(key)
    log_rho = jax.nn.log_softmax(theta_ref)
    theta0 = jnp.zeros(2, mus.dtype)
    vocab = jnp.arange(theta_ref.shape[0])

    def gaussian(mu, k):
        ref = jaxdiv.Normal(mu, jnp.ones((), mu.dtype))

        def f(x):
            return per_sample(gaussian_log_prob, theta0, x, ref.log_prob(x))
        exact = moments(f, gh_nodes, gh_weights)
        mc = monte_carlo(f, lambda kk, n: jax.random.normal(kk, (n,), mu.dtype), k, num_samples,
                         exact[0])
        return exact, mc[:2]

    def categorical(theta, k):
        def f(a):
            return per_sample(categorical_log_prob, theta, a, log_rho[a])
        exact = moments(f, vocab, jax.nn.softmax(theta))
        mc = monte_carlo(f, lambda kk, n: jax.random.categorical(kk, theta, shape=(n,)), k,
                         num_samples, exact[0])
        return exact, mc[:2]

    n_levels = mus.shape[0]
    return (jax.vmap(gaussian)(mus, jax.random.split(kg, n_levels)),
            jax.vmap(categorical)(thetas, jax.random.split(kc, n_levels)))


# Metrics --------------------------------------------------------------------------------------


def metrics(kls, true_grads, exact, mc, n):
    """Relative bias and std of values and gradients, exact and Monte Carlo (with standard
    errors of the Monte Carlo biases)."""
    (v_mean, g_mean, _, _), (v_var, g_var, _, _) = (
        jax.tree.map(lambda x: np.asarray(x, np.float64), exact))
    (mv_mean, mg_mean, mdv_mean, mdg_mean), (mv_var, mg_var, mdv_var, mdg_var) = (
        jax.tree.map(lambda x: np.asarray(x, np.float64), mc))
    gnorm = np.linalg.norm(true_grads, axis=-1)  # [L]
    value = {}
    for e, est in enumerate(ESTIMATORS):
        # MC bias: k - k3 paired (k3 is unbiased); for k3 itself, mean - KL.
        mc_bias = mdv_mean[:, e] if est != "k3" else mv_mean[:, e] - kls
        mc_se = np.sqrt((mdv_var[:, e] if est != "k3" else mv_var[:, e]) / n)
        value[est] = {"rel_bias_exact": (v_mean[:, e] - kls) / kls,
                      "rel_std_exact": np.sqrt(v_var[:, e]) / kls,
                      "rel_bias_mc": mc_bias / kls, "rel_bias_mc_se": mc_se / kls,
                      "rel_std_mc": np.sqrt(mv_var[:, e]) / kls}
    gradient = {}
    for f, form in enumerate(FORMS):
        gradient[form] = {}
        for e, est in enumerate(ESTIMATORS):
            exact_bias = g_mean[:, e, f] - true_grads
            if form == "unbiased":
                mc_bias, mc_var = mg_mean[:, e, f] - true_grads, mg_var[:, e, f]
            else:
                mc_bias, mc_var = mdg_mean[:, e, f], mdg_var[:, e, f]
            gradient[form][est] = {
                "rel_bias_exact": np.linalg.norm(exact_bias, axis=-1) / gnorm,
                "rel_std_exact": np.sqrt(g_var[:, e, f].sum(-1)) / gnorm,
                "rel_bias_mc": np.linalg.norm(mc_bias, axis=-1) / gnorm,
                "rel_bias_mc_se": np.sqrt(mc_var.sum(-1) / n) / gnorm,
                "rel_std_mc": np.sqrt(mg_var[:, e, f].sum(-1)) / gnorm}
    return {"value": value, "gradient": gradient}


def _lists(tree):
    return jax.tree.map(lambda x: [float(v) for v in np.asarray(x).ravel()], tree)


def parting(kls, fam):
    """Per biased gradient form: the smallest KL (log-interpolated) where its exact relative
    bias passes 10%."""
    out = {}
    for form, est in (("naive", "k1"), ("naive", "k3"), ("reward", "k2"), ("reward", "k3")):
        b = np.asarray(fam["gradient"][form][est]["rel_bias_exact"])
        above = np.nonzero(b > 0.1)[0]
        if len(above) == 0:
            kl = None
        elif above[0] == 0:
            kl = float(kls[0])
        else:
            i = above[0]
            w = (math.log(0.1) - math.log(b[i - 1])) / (math.log(b[i]) - math.log(b[i - 1]))
            kl = float(math.exp(math.log(kls[i - 1]) + w * (math.log(kls[i]) -
                                                             math.log(kls[i - 1]))))
        out[f"{form} {est}"] = kl
    return out


def run(a: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    kls = np.unique(np.concatenate([np.geomspace(a.kl_min, a.kl_max, a.num_kl),
                                    SCHULMAN_KL]))
    mus = np.sqrt(2 * kls)
    theta_ref, thetas, cat_grads = categorical_levels(kls, a.vocab, a.seed)
    nodes, weights = np.polynomial.hermite_e.hermegauss(a.quadrature)
    weights = weights / weights.sum()
    with jax.enable_x64(a.dtype == "float64"):  # scoped: no global switch
        dtype = jnp.dtype(a.dtype)
        args = [jnp.asarray(x, dtype) for x in (mus, thetas, theta_ref, nodes, weights)]
        out = jax.jit(program, static_argnums=6)(*args, jax.random.key(a.seed), a.num_samples)
        (g_exact, g_mc), (c_exact, c_mc) = jax.tree.map(np.asarray, out)
    n = -(-a.num_samples // CHUNK) * CHUNK
    gauss_grads = np.stack([-mus, np.zeros_like(mus)], -1)  # grad of (m - mu)^2/2 + ... at 0
    families = {"gaussian": metrics(kls, gauss_grads, g_exact, g_mc, n),
                "categorical": metrics(kls, cat_grads, c_exact, c_mc, n)}
    schulman = []
    gv = families["gaussian"]["value"]
    for kl in SCHULMAN_KL:
        i = int(np.argmin(np.abs(kls - kl)))
        ref = SCHULMAN_REFERENCE[kl]
        row = {"kl": float(kls[i])}
        for est, q in (("k1", "rel_std"), ("k3", "rel_std"), ("k2", "rel_bias")):
            row[f"{est}_{q}_mc"] = float(gv[est][f"{q}_mc"][i])
            row[f"{est}_{q}_exact"] = float(gv[est][f"{q}_exact"][i])
            row[f"{est}_{q}_reference"] = ref.get(f"{est}_{q}")
        row["k2_rel_bias_mc_se"] = float(gv["k2"]["rel_bias_mc_se"][i])
        schulman.append(row)
    dev = jax.devices()[0]
    return {
        "kl": [float(k) for k in kls],
        "families": _lists(families),
        "schulman": schulman,
        "parting": {f: parting(kls, families[f]) for f in FAMILIES},
        "meta": {"jax_version": jax.__version__, "backend": jax.default_backend(),
                 "devices": f"{jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}",
                 "seed": a.seed, "num_samples": n, "vocab": a.vocab,
                 "quadrature": a.quadrature, "dtype": a.dtype,
                 "gaussian": "pi = N(m, e^s) at (0, 0), pi_ref = N(mu, 1), KL = mu^2/2, "
                             "gradient in (m, s)",
                 "categorical": "pi = softmax(theta_ref + t v), pi_ref = softmax(theta_ref), "
                                "gradient in the logits",
                 "wall_seconds": time.perf_counter() - t0},
    }


# Output ---------------------------------------------------------------------------------------


def _fmt(x, pct=False):
    if x is None:
        return "—"
    if abs(x) < 1e-9:  # an exact zero up to rounding (float64: ~1e-13)
        return "0"
    return f"{100 * x:.3g}%" if pct else f"{x:.3g}"


def summary(result: dict) -> str:
    lines = ["Schulman's Gaussian check: x ~ q = N(0, 1), p = N(mu, 1), KL(q || p) = mu^2 / 2",
             f"{'KL':>6} {'quantity':<16} {'this run (MC)':>16} {'exact':>9} {'Schulman':>9}"]
    for row in result["schulman"]:
        for est, q, pct in (("k1", "rel_std", False), ("k3", "rel_std", False),
                            ("k2", "rel_bias", True)):
            mc = _fmt(row[f"{est}_{q}_mc"], pct)
            if q == "rel_bias":
                mc += f" ± {_fmt(row['k2_rel_bias_mc_se'], pct)}"
            lines.append(f"{row['kl']:>6.3g} {est + ' ' + q.replace('_', '. '):<16} "
                         f"{mc:>16} {_fmt(row[f'{est}_{q}_exact'], pct):>9} "
                         f"{_fmt(row[f'{est}_{q}_reference'], pct):>9}")
    kls = np.asarray(result["kl"])
    show = [int(np.argmin(np.abs(kls - k))) for k in (0.001, 0.005, 0.05, 0.5, 2.0)]
    show = sorted(set(show))
    cols = [("value", None, "k1"), ("value", None, "k2"), ("value", None, "k3"),
            ("gradient", "unbiased", "k3"), ("gradient", "naive", "k1"),
            ("gradient", "naive", "k3"), ("gradient", "reward", "k2"),
            ("gradient", "reward", "k3")]
    names = ["k1", "k2", "k3", "unbiased*", "naive k1", "naive k3", "reward k2", "reward k3"]
    for fam in FAMILIES:
        f = result["families"][fam]
        lines += ["", f"{fam}: relative bias / relative std (exact; * = the unbiased forms of "
                      "k1, k2, k3, naive k2 and k1 as a reward: one estimator)",
                  f"{'KL':>6} " + " ".join(f"{n:>15}" for n in names)]
        for i in show:
            cells = []
            for kind, form, est in cols:
                m = f[kind][est] if kind == "value" else f[kind][form][est]
                cells.append(f"{_fmt(m['rel_bias_exact'][i], True)}/"
                             f"{_fmt(m['rel_std_exact'][i])}")
            lines.append(f"{kls[i]:>6.3g} " + " ".join(f"{c:>15}" for c in cells))
        never = f"never (KL <= {kls[-1]:g})"
        lines.append("gradient relative bias passes 10% at KL: " + ", ".join(
            f"{k} {'always' if v == kls[0] else _fmt(v) if v else never}"
            for k, v in result["parting"][fam].items()))
    return "\n".join(lines)


def figure(result: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kls = np.asarray(result["kl"])
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), layout="constrained")
    colors = {"k1": "C0", "k2": "C1", "k3": "C2"}
    grad_lines = [("unbiased", "k3", "C2", "-", "−log r ∇log π: unbiased forms, naive k2, "
                                                "k1 as reward"),
                  ("naive", "k1", "C0", "--", "naive k1 (∇log π)"),
                  ("naive", "k3", "C3", "--", "naive k3 ((1 − r)∇log π)"),
                  ("reward", "k2", "C1", ":", "k2 as reward"),
                  ("reward", "k3", "C4", ":", "k3 as reward")]
    for row, fam in enumerate(FAMILIES):
        f = result["families"][fam]
        ax = axes[row, 0]
        for est in ESTIMATORS:
            m = f["value"][est]
            ax.loglog(kls, m["rel_std_exact"], color=colors[est], label=f"{est}")
            ax.loglog(kls, m["rel_std_mc"], "o", color=colors[est], ms=3)
        ax.set(xlabel="KL(π‖π_ref)", ylabel="std / KL",
               title=f"{fam}: relative std of the value (lines exact, dots Monte Carlo)")
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        m = f["value"]["k2"]
        ax.loglog(kls, m["rel_bias_exact"], color=colors["k2"], label="value k2")
        ax.errorbar(kls, m["rel_bias_mc"], yerr=m["rel_bias_mc_se"], fmt="o",
                    color=colors["k2"], ms=3)
        for form, est, c, ls, label in grad_lines[1:]:
            g = f["gradient"][form][est]
            ax.loglog(kls, g["rel_bias_exact"], color=c, ls=ls, label=f"gradient: {label}")
            ax.loglog(kls, g["rel_bias_mc"], "o", color=c, ms=3)
        ax.axhline(0.1, color="0.6", lw=0.8)
        ax.set(xlabel="KL(π‖π_ref)", ylabel="|bias| / |true|",
               title=f"{fam}: relative bias (k1, k3 values and −log r ∇log π: 0)")
        ax.legend(fontsize=7)
        ax = axes[row, 2]
        for form, est, c, ls, label in grad_lines:
            g = f["gradient"][form][est]
            ax.loglog(kls, g["rel_std_exact"], color=c, ls=ls, label=label)
            ax.loglog(kls, g["rel_std_mc"], "o", color=c, ms=3)
        ax.set(xlabel="KL(π‖π_ref)", ylabel="std / |∇KL|",
               title=f"{fam}: relative std of the gradient (one token)")
        ax.legend(fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> dict:
    return _io.run_cli("kl_estimators", parse_args(argv), validate, run, summary, figure)


if __name__ == "__main__":
    main()
