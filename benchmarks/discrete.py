"""Discrete divergences against scipy, and against memory bandwidth on an accelerator.

Question: how much faster are jaxdiv's jitted KL, JS, entropy and KL-with-logits than scipy's
vectorised equivalents on a (4096, 1024) float32 batch, and, on a GPU, what fraction of the
bandwidth of the simplest kernel that reads both inputs once (``jnp.sum(p + q, -1)``) do they
reach?

Command: ``python -m benchmarks.discrete`` (CPU, with scipy) or
``python -m benchmarks.discrete --rows 65536 --cols 4096 --no-scipy`` (GPU). Prints a markdown
table with compile time, steady-state time, the ratio to scipy and the fraction of the
``sum(p + q)`` kernel's bandwidth, for ``benchmarks/RESULTS.md``. Two yardstick rows:
``jax.scipy.special.rel_entr`` summed, beside ``kl_divergence``; the gradient of the KL written
with ``jax.nn.log_softmax``, beside that of jaxdiv's KL-with-logits.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiv
from benchmarks._timing import compile_seconds, header, pin_allocator, steady, table


def _plain_kl(lp, lq):
    logp, logq = jax.nn.log_softmax(lp, -1), jax.nn.log_softmax(lq, -1)
    return jnp.sum(jnp.exp(logp) * (logp - logq))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=1024)
    parser.add_argument("--no-scipy", action="store_true", help="skip the scipy references")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    shape = (args.rows, args.cols)
    kp, kq = jax.random.split(jax.random.key(args.seed))
    lp, lq = jax.random.normal(kp, shape), jax.random.normal(kq, shape)
    p, q = jax.nn.softmax(lp, -1), jax.nn.softmax(lq, -1)
    jax.block_until_ready((p, q, lp, lq))
    nbytes = 2 * p.size * p.dtype.itemsize  # every kernel reads both inputs once

    cases = {
        "read p, q once: sum(p + q)": (lambda p, q: jnp.sum(p + q, -1), (p, q), None),
        "kl_divergence": (jaxdiv.kl_divergence, (p, q), "rel_entr(p, q).sum(-1)"),
        # The same KL from jax.scipy, log(p / q) from one quotient (not accurate near p = q).
        "jax.scipy.special.rel_entr(p, q).sum(-1)": (
            lambda p, q: jax.scipy.special.rel_entr(p, q).sum(-1), (p, q), None),
        "js_divergence": (jaxdiv.js_divergence, (p, q), "jensenshannon(p, q, axis=-1)**2"),
        "entropy": (lambda p, q: jaxdiv.entropy(p), (p, q), "stats.entropy(p, axis=-1)"),
        "kl_divergence_with_logits": (jaxdiv.kl_divergence_with_logits, (lp, lq),
                                      "rel_entr(softmax(lp), softmax(lq)).sum(-1)"),
        # Training losses need the gradient: jaxdiv's against the same KL written with
        # jax.nn.log_softmax (NaN-prone at -inf logits, so only a yardstick).
        "grad of kl_divergence_with_logits": (
            jax.grad(lambda a, b: jaxdiv.kl_divergence_with_logits(a, b).sum(), (0, 1)),
            (lp, lq), None),
        "grad of log_softmax KL (jax.nn)": (jax.grad(_plain_kl, (0, 1)), (lp, lq), None),
    }
    refs = {}
    if not args.no_scipy:
        import scipy.spatial.distance as ssd
        import scipy.special as sp
        import scipy.stats as ss

        P, Q, LP, LQ = (np.asarray(a) for a in (p, q, lp, lq))
        refs = {
            "kl_divergence": lambda: sp.rel_entr(P, Q).sum(-1),
            "js_divergence": lambda: ssd.jensenshannon(P, Q, axis=-1) ** 2,
            "entropy": lambda: ss.entropy(P, axis=-1),
            "kl_divergence_with_logits":
                lambda: sp.rel_entr(sp.softmax(LP, -1), sp.softmax(LQ, -1)).sum(-1),
        }

    rows, base_time = [], None
    for name, (fn, fargs, ref_name) in cases.items():
        jitted = jax.jit(fn)
        c = compile_seconds(jitted, *fargs)
        t = steady(lambda jitted=jitted, fargs=fargs: jitted(*fargs))
        base_time = t if base_time is None else base_time
        row = {"function": name, "compile s": c, "steady ms": 1e3 * t,
               "GB/s read": nbytes / t / 1e9, "vs sum(p+q)": base_time / t}
        if refs:
            if name in refs:
                np.testing.assert_allclose(np.asarray(jitted(*fargs)), refs[name](), rtol=1e-4)
                tr = steady(refs[name], repeats=3)
                row.update({"scipy": ref_name, "scipy ms": 1e3 * tr, "speed-up": tr / t})
            else:
                row.update({"scipy": "-", "scipy ms": "-", "speed-up": "-"})
        rows.append(row)
    print(header(f"benchmarks.discrete: {shape} float32"))
    print(table(rows))


if __name__ == "__main__":
    pin_allocator()
    main()
