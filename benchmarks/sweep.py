"""Sweeps of fits: one vmapped ``jaxdiv.fit`` program against a Python loop and hand-written code.

Question: running many reverse-KL Gaussian fits (the flagship's problem: a Normal fitted to
0.5 N(-2, 0.6) + 0.5 N(2, 0.6), Adam with b2 = 0.9 and a cosine schedule), how much does one
vmapped, jitted ``jaxdiv.fit`` program gain over a Python loop calling the same single jitted
fit once per fit, and what does ``jaxdiv.fit`` cost against a hand-written vmapped
``lax.scan`` with the Adam update written out (no ``jaxdiv.fit``, no optax)? All in one run,
on the same keys and starts; the hand-written version reproduces optax's Adam exactly, and
the final parameters are checked to agree.

Rows: ``jaxdiv.fit, vmapped`` (``jax.jit(jax.vmap(fit))``, the program ``jaxdiv.sweep`` runs
on one device); ``Python loop of jitted fit`` (one fit per call; with more fits than
``--loop-fits`` the loop runs that many and its time is scaled up, as marked); ``hand-written
scan + Adam`` (same loss, ``estimators.reverse_kl``); ``hand-written, loss too`` (the mixture
and normal log-densities written out as well: the estimator's own overhead); ``draws only``
(the same scan drawing the same normals and nothing else: a floor for any vmapped fit on
this device, and so a ceiling on its speed-up over the loop).

Command: ``python -m benchmarks.sweep`` (256 fits x 500 steps x 256 samples, CPU) or
``python -m benchmarks.sweep --fits 4096 --steps 2000 --samples 256`` (GPU). Prints a markdown
table (compile seconds, steady-state milliseconds, fits per second, ratios) for
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.scipy.special import logsumexp

import jaxdiv
from benchmarks._timing import compile_seconds, header, pin_allocator, table
from jaxdiv import estimators

B1, B2, EPS, PEAK = 0.9, 0.9, 1e-8, 0.05
WEIGHTS, MEANS, STDS = (0.5, 0.5), (-2.0, 2.0), (0.6, 0.6)


def problem(steps: int, samples: int):
    """The jaxdiv loss, the optimiser, and the learning-rate schedule (shared by every row)."""
    target = jaxdiv.Mixture(jnp.log(jnp.asarray(WEIGHTS)),
                            jaxdiv.Normal(jnp.asarray(MEANS), jnp.asarray(STDS)))

    def loss(prm, key):
        model = jaxdiv.Normal(prm["loc"], jnp.exp(prm["log_scale"]))
        return estimators.reverse_kl(key, target, model, samples)

    schedule = optax.cosine_decay_schedule(PEAK, steps, alpha=0.01)
    return loss, optax.adam(schedule, b1=B1, b2=B2, eps=EPS), schedule


def hand_loss(samples: int):
    """Reverse KL(q || p) from reparameterised draws, every log-density written out."""
    logw, mu, sd = (jnp.log(jnp.asarray(WEIGHTS)), jnp.asarray(MEANS), jnp.asarray(STDS))
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def loss(prm, key):
        scale = jnp.exp(prm["log_scale"])
        eps = jax.random.normal(key, (samples,))
        x = prm["loc"] + scale * eps
        log_q = -0.5 * eps ** 2 - prm["log_scale"] - half_log_2pi
        z = (x[:, None] - mu) / sd
        log_p = logsumexp(logw - 0.5 * z ** 2 - jnp.log(sd) - half_log_2pi, axis=1)
        return jnp.mean(log_q - log_p)

    return loss


def hand_fit(loss, schedule, steps: int):
    """A ``lax.scan`` of Adam steps, written out as optax.adam computes them."""
    def fit(key, prm):
        def step(carry, k):
            prm, mu, nu, t = carry
            value, g = jax.value_and_grad(loss)(prm, k)
            lr = schedule(t)
            t = t + 1
            mu = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, mu, g)
            nu = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, nu, g)
            c1, c2 = 1 - B1 ** t, 1 - B2 ** t
            prm = jax.tree.map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + EPS),
                               prm, mu, nu)
            return (prm, mu, nu, t), value

        zeros = jax.tree.map(jnp.zeros_like, prm)
        (prm, *_), losses = lax.scan(step, (prm, zeros, zeros, jnp.zeros([], jnp.int32)),
                                     jax.random.split(key, steps))
        return prm, losses

    return fit


def draws_only(steps: int, samples: int):
    """The sweep's random numbers alone: per fit, ``steps`` draws of ``samples`` normals."""
    def run(key, prm):
        def step(total, k):
            return total + jnp.sum(jax.random.normal(k, (samples,))), None

        return lax.scan(step, jnp.zeros(()), jax.random.split(key, steps))[0]

    return run


def interleaved(fns: dict, repeats: int) -> dict:
    """Seconds per call of each function in every round, the calls interleaved.

    On a machine shared with other work, interleaving (in alternating order, so no variant
    always follows the same one) gives every variant the same share of the load; ratios are
    then taken round by round, which cancels most of the drift.
    """
    for fn in fns.values():  # warm-up
        jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            jax.block_until_ready(fns[name]())
            times[name].append(time.perf_counter() - t0)
    return {name: np.asarray(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--fits", type=int, default=256)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--loop-fits", type=int, default=256,
                        help="fits the Python loop runs (its time is scaled to --fits)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.fits, args.steps, args.samples, args.loop_fits, args.repeats) < 1:
        parser.error("every count must be >= 1")

    loss, optimizer, schedule = problem(args.steps, args.samples)
    keys = jax.random.split(jax.random.key(args.seed), args.fits)
    prm0 = {"loc": jnp.linspace(-3.0, 3.0, args.fits), "log_scale": jnp.full(args.fits, -0.6)}
    jax.block_until_ready((keys, prm0))

    def one(key, prm):
        return jaxdiv.fit(loss, prm, optimizer, steps=args.steps, key=key)

    vmapped = jax.jit(jax.vmap(one))
    single = jax.jit(one)
    hand = jax.jit(jax.vmap(hand_fit(loss, schedule, args.steps)))
    hand_all = jax.jit(jax.vmap(hand_fit(hand_loss(args.samples), schedule, args.steps)))
    draws = jax.jit(jax.vmap(draws_only(args.steps, args.samples)))

    n_loop = min(args.loop_fits, args.fits)
    loop_args = [(keys[i], jax.tree.map(lambda x, i=i: x[i], prm0)) for i in range(n_loop)]

    def loop():
        return [single(k, p) for k, p in loop_args]

    cases = {"jaxdiv.fit, vmapped": (vmapped, lambda: vmapped(keys, prm0)),
             "Python loop of jitted fit": (single, loop),
             "hand-written scan + Adam": (hand, lambda: hand(keys, prm0)),
             "hand-written, loss too": (hand_all, lambda: hand_all(keys, prm0)),
             "draws only (the floor)": (draws, lambda: draws(keys, prm0))}
    compile_s = {name: compile_seconds(jitted, *(loop_args[0] if jitted is single
                                                  else (keys, prm0)))
                 for name, (jitted, _) in cases.items()}
    rounds = interleaved({name: run for name, (_, run) in cases.items()}, args.repeats)
    rounds["Python loop of jitted fit"] *= args.fits / n_loop
    times = {name: float(np.median(t)) for name, t in rounds.items()}
    results = {name: run() for name, (_, run) in cases.items()}
    results["Python loop of jitted fit"] = (
        {k: jnp.stack([r[0][k] for r in results["Python loop of jitted fit"]]) for k in prm0},)
    ref = rounds["jaxdiv.fit, vmapped"]
    rows = []
    for name in cases:
        label = name if name != "Python loop of jitted fit" or n_loop == args.fits else \
            f"{name} ({n_loop} fits, time x{args.fits / n_loop:g})"
        rows.append({"variant": label, "compile s": compile_s[name],
                     "steady ms": 1e3 * times[name], "fits/s": args.fits / times[name],
                     "time / jaxdiv.fit": float(np.median(rounds[name] / ref))})

    base = results["jaxdiv.fit, vmapped"][0]
    for name in ("Python loop of jitted fit", "hand-written scan + Adam"):  # the same iterates
        for k in prm0:
            got = np.asarray(results[name][0][k])
            np.testing.assert_allclose(got, np.asarray(base[k][:len(got)]), rtol=1e-4,
                                       atol=1e-4, err_msg=name)
    loop_r, hand_r = rows[1]["time / jaxdiv.fit"], rows[2]["time / jaxdiv.fit"]
    ceiling = float(np.median(rounds["Python loop of jitted fit"]
                              / rounds["draws only (the floor)"]))
    print(header(f"benchmarks.sweep: {args.fits} reverse-KL Gaussian fits x {args.steps} Adam "
                 f"steps x {args.samples} samples"))
    print(table(rows))
    print(f"\nvmapped jaxdiv.fit vs Python loop: {loop_r:.2f}x faster; vs hand-written scan: "
          f"{100 * (1 / hand_r - 1):+.1f}% time (medians of the per-round ratios, "
          f"{args.repeats} rounds)")
    print(f"ceiling set by the random draws alone: loop / draws only = {ceiling:.2f}x")


if __name__ == "__main__":
    pin_allocator()
    t0 = time.perf_counter()
    main()
    print(f"(total {time.perf_counter() - t0:.1f} s)")
