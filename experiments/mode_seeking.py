"""Forward KL is mean-seeking, reverse KL is mode-seeking: fit one Gaussian to a bimodal target.

Question: fitting a single Gaussian q to a two-component mixture p, where does each objective
put it? Forward KL(p || q) is maximum likelihood on target samples: q must cover every place p
has mass, so the optimum matches p's mean and variance (mass-covering). Reverse KL(q || p)
pays without bound for q's mass where p has none, so q locks onto one mode (zero-forcing). JS
and the Sinkhorn divergence (optimal transport, through ott-jax) are shown beside them.

Command: ``python -m experiments.mode_seeking [--out results/]`` (``--help`` for the options).

Output: a table (objective x initialisation: fitted mean and std, exact KL both ways and JS on
a dense grid) beside the analytic forward-KL optimum, and in ``--out``: ``mode_seeking.json``
and ``mode_seeking.png`` (the target with every fit overlaid, and the loss curves), both
written atomically. Every objective's runs (one per initialisation) are one vmapped, jitted
``jaxdiv.fit`` call.
Strict JSON: a non-finite number is written as the string ``"inf"``, ``"-inf"`` or ``"nan"``
(the encoding of every experiment, ``experiments/_io.py``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxdiv
from experiments import _io
from jaxdiv import estimators

OBJECTIVES = ("forward_kl", "reverse_kl", "js", "sinkhorn")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _io.parser("mode_seeking", "Fit one Gaussian to a mixture of 1-D Gaussians under "
                   "forward KL, reverse KL, JS and the Sinkhorn divergence, from several "
                   "initialisations.")
    _io.add_target_arguments(p)
    p.add_argument("--init-means", type=_io.finite_float, nargs="+", default=None,
                   help="initial model means, one run each (default: the mixture mean minus "
                        "and plus one mixture std)")
    p.add_argument("--init-std", type=_io.positive_float, default=None,
                   help="initial model std, > 0 (default: a quarter of the mixture std; a wide "
                        "one lets reverse KL be captured by the heavier mode)")
    p.add_argument("--steps", type=_io.int_at_least(1), default=500, help="Adam steps per fit")
    p.add_argument("--num-samples", type=_io.int_at_least(2), default=256,
                   help="Monte Carlo samples per step and objective")
    p.add_argument("--learning-rate", type=_io.positive_float, default=0.05,
                   help="peak Adam learning rate, cosine-decayed to 1%%")
    p.add_argument("--sinkhorn-samples", type=_io.int_at_least(2), default=128,
                   help="samples per step for the Sinkhorn objective, whose cost grows as "
                        "their square")
    p.add_argument("--epsilon", type=_io.positive_float, default=0.5,
                   help="entropic regularisation of the Sinkhorn divergence, absolute, in "
                        "squared-distance units")
    _io.add_output_arguments(p)
    return p.parse_args(argv)


def validate(a: argparse.Namespace) -> str | None:
    """Returns a one-line error for bad command-line input, or None."""
    error = _io.target_error(a)
    if error:
        return error
    values = [*(a.init_means or []), a.init_std or 1.0, a.learning_rate, a.epsilon]
    if not all(math.isfinite(v) for v in values):
        return "every number must be finite"
    if a.init_std is not None and a.init_std <= 0:
        return f"--init-std must be > 0, got {a.init_std}"
    if a.steps < 1 or a.num_samples < 2 or a.sinkhorn_samples < 2:
        return "--steps must be >= 1, --num-samples and --sinkhorn-samples >= 2"
    if a.learning_rate <= 0 or a.epsilon <= 0:
        return "--learning-rate and --epsilon must be > 0"
    return None


def model_of(params: dict) -> jaxdiv.Normal:
    """The model Gaussian from unconstrained parameters (loc, log-scale)."""
    return jaxdiv.Normal(params["loc"], jnp.exp(params["log_scale"]))


def objective(name: str, target: jaxdiv.Mixture, num_samples: int, sinkhorn_samples: int,
              epsilon: float):
    """``loss(params, key)`` for one objective, all through jaxdiv's public API."""
    if name == "forward_kl":  # KL(p || q) from target samples: maximum likelihood
        return lambda prm, key: estimators.forward_kl(key, target, model_of(prm), num_samples)
    if name == "reverse_kl":  # KL(q || p) from reparameterised model samples
        return lambda prm, key: estimators.reverse_kl(key, target, model_of(prm), num_samples)
    if name == "js":
        return lambda prm, key: estimators.js_divergence(key, target, model_of(prm), num_samples)

    def sinkhorn(prm, key):  # debiased Sinkhorn divergence between the two samples
        kt, km = jax.random.split(key)
        x = target.sample(kt, (sinkhorn_samples,))[:, None]
        y = model_of(prm).sample(km, (sinkhorn_samples,))[:, None]
        return jaxdiv.sinkhorn_divergence(x, y, epsilon=epsilon, threshold=1e-2)

    return sinkhorn


def run(a: argparse.Namespace) -> tuple[dict, dict]:
    """Fits every objective from every initialisation; returns the JSON-ready results and the
    loss curves (for the figure)."""
    t0 = time.perf_counter()
    weights = jnp.asarray(a.weights)
    target = jaxdiv.Mixture(jnp.log(weights),
                            jaxdiv.Normal(jnp.asarray(a.means), jnp.asarray(a.stds)))
    t_mean, t_std = float(target.mean()), float(jnp.sqrt(target.variance()))
    init_means = a.init_means or [t_mean - t_std, t_mean + t_std]
    init_std = a.init_std or t_std / 4
    params0 = {"loc": jnp.asarray(init_means),
               "log_scale": jnp.full(len(init_means), math.log(init_std))}
    lr = optax.cosine_decay_schedule(a.learning_rate, a.steps, alpha=0.01)
    optimizer = optax.adam(lr, b2=0.9)  # short memory: the large early gradients fade fast
    lo = min(m - 8 * s for m, s in zip(a.means, a.stds, strict=True))
    hi = max(m + 8 * s for m, s in zip(a.means, a.stds, strict=True))
    grid = jnp.linspace(min(lo, *init_means) - 2, max(hi, *init_means) + 2, 8001)

    @jax.jit
    def exact(prm):  # quadrature on the grid: the table's numbers carry no Monte Carlo noise
        q = model_of(prm)
        return (estimators.grid_kl(target, q, grid), estimators.grid_kl(q, target, grid),
                estimators.grid_js(target, q, grid))

    keys = jax.random.split(jax.random.key(a.seed), (len(OBJECTIVES), len(init_means)))

    def compiled(name, obj_keys):  # one vmapped, jitted program per objective: all its runs
        loss = objective(name, target, a.num_samples, a.sinkhorn_samples, a.epsilon)
        fit_all = jax.vmap(lambda p0, k: jaxdiv.fit(loss, p0, optimizer, steps=a.steps, key=k))
        return jax.jit(fit_all).lower(params0, obj_keys).compile()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # XLA compiles outside the GIL
        programs = list(pool.map(compiled, OBJECTIVES, keys))
    fits, curves = {}, {}
    for name, program, obj_keys in zip(OBJECTIVES, programs, keys, strict=True):
        params, losses = program(params0, obj_keys)
        kl_pq, kl_qp, js = jax.vmap(exact)(params)
        curves[name] = np.asarray(losses)
        fits[name] = [
            {"init_mean": float(init_means[i]), "init_std": float(init_std),
             "mean": float(params["loc"][i]), "std": float(jnp.exp(params["log_scale"][i])),
             "final_loss": float(losses[i, -max(1, a.steps // 20):].mean()),
             "kl_target_model": float(kl_pq[i]), "kl_model_target": float(kl_qp[i]),
             "js": float(js[i])}
            for i in range(len(init_means))]
    dev = jax.devices()[0]
    return {
        "target": {"weights": list(a.weights), "means": list(a.means), "stds": list(a.stds),
                   "mean": t_mean, "std": t_std},
        "fits": fits,
        "meta": {"jax_version": jax.__version__, "backend": jax.default_backend(),
                 "devices": f"{jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}",
                 "steps": a.steps, "seed": a.seed, "num_samples": a.num_samples,
                 "sinkhorn_samples": a.sinkhorn_samples,
                 "learning_rate": a.learning_rate, "epsilon": a.epsilon,
                 "wall_seconds": time.perf_counter() - t0},
    }, curves


def summary(result: dict) -> str:
    """The printed table: objective x run, beside the analytic forward-KL optimum."""
    t = result["target"]
    lines = [f"target: weights {t['weights']}, means {t['means']}, stds {t['stds']}",
             f"analytic forward-KL optimum (moment matching): mean {t['mean']:+.4f}, "
             f"std {t['std']:.4f}", "",
             f"{'objective':<11} {'init mean':>9} {'mean':>8} {'std':>7} {'KL(p||q)':>9} "
             f"{'KL(q||p)':>9} {'JS':>7}"]
    for name, runs in result["fits"].items():
        for r in runs:
            lines.append(f"{name:<11} {r['init_mean']:>+9.3f} {r['mean']:>+8.4f} "
                         f"{r['std']:>7.4f} {r['kl_target_model']:>9.4f} "
                         f"{r['kl_model_target']:>9.4f} {r['js']:>7.4f}")
    lines.append("(p: target, q: fitted Gaussian; KL and JS in nats by quadrature on a grid)")
    return "\n".join(lines)


def figure(result: dict, curves: dict):
    """Target density with every fitted Gaussian, and each objective's loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["target"]
    w, m, s = (np.asarray(t[k]) for k in ("weights", "means", "stds"))
    x = np.linspace((m - 4.5 * s).min(), (m + 4.5 * s).max(), 1000)

    def normal(x, mu, sd):
        return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))

    fig = plt.figure(figsize=(14, 5.5), layout="constrained")
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[:, :2])
    ax.fill_between(x, (w[:, None] * normal(x, m[:, None], s[:, None])).sum(0), color="0.85",
                    label="target p (mixture)")
    styles = {"forward_kl": ("C0", "-", "forward KL(p‖q)"),
              "reverse_kl": ("C3", "-", "reverse KL(q‖p)"),
              "js": ("C2", "--", "Jensen–Shannon"), "sinkhorn": ("C4", ":", "Sinkhorn div.")}
    for name, runs in result["fits"].items():
        color, ls, label = styles[name]
        for i, r in enumerate(runs):
            ax.plot(x, normal(x, r["mean"], r["std"]), color=color, ls=ls, lw=2,
                    label=label if i == 0 else None)
    ax.axvline(t["mean"], color="k", lw=0.8, ls="--", label="mixture mean")
    ax.set(xlabel="x", ylabel="density",
           title="One Gaussian fitted to a bimodal target:\nforward KL covers both modes, "
                 "reverse KL locks onto one")
    ax.legend(loc="upper left", fontsize=8)
    for k, name in enumerate(curves):
        color, _, label = styles[name]
        a = fig.add_subplot(grid[k // 2, 2 + k % 2])
        for run in curves[name]:
            width = max(1, len(run) // 50)
            smooth = np.convolve(run, np.ones(width) / width, mode="valid")
            a.plot(np.arange(len(smooth)) + width - 1, smooth, color=color, lw=1)
        a.set(title=f"{label}: loss", xlabel="Adam step", ylabel="loss (nats)"
              if name != "sinkhorn" else "loss (sq. distance)")
    return fig


def main(argv: list[str] | None = None) -> dict:
    return _io.run_cli("mode_seeking", parse_args(argv), validate, run, summary, figure)


if __name__ == "__main__":
    main()
