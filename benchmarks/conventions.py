"""What the logit twins' conventions and accuracy forms cost, beside the fastest peer.

Question: ``kl_divergence_with_logits``, ``cross_entropy_with_logits`` and
``entropy_with_logits`` run at 0.5-0.7x of optax and the plain ``jax.nn.log_softmax`` forms
(``python -m benchmarks.peers``). Is the gap the pieces those peers leave out, and how much
does each cost? Each row times, interleaved in one process, jaxdiv, the same computation
(jaxdiv's own internals) with one piece taken out, then a second, and the fastest peer:

- the support flag: +inf where p > 0 = q, also where p underflows (the peers give a finite
  number, or NaN);
- the per-term KL sum p (u + e^-u - 1), exact for nearly equal logits (the plain sum of p u
  loses 1e-3 of a KL of 1e-8 in float32);
- the softmax tail's ``log1p`` in log q, exact for peaked logits (log(sum e) rounds the largest
  log-probability to 0, and with it the entropy of a peaked row);
- the stand-in clamp that keeps -inf logits NaN-free (0 log 0 = 0).

Command: ``python -m benchmarks.conventions [--rounds 21]``. Prints a markdown table of min /
median ms per implementation, for ``benchmarks/RESULTS.md``. Each stripped variant is checked
against jaxdiv on these (well-conditioned) inputs before it is timed.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiv
from benchmarks._timing import header, pin_allocator, table
from jaxdiv import discrete as D

AX = -1


def _kl_without_flag(lp, lq):
    p, q, u, _, _ = D._log_ratio_logits(lp, lq, AX)
    return jnp.sum(D._kl_terms(p, q, u), axis=AX)


def _kl_without_flag_and_terms(lp, lq):
    p, _, u, _, _ = D._log_ratio_logits(lp, lq, AX)
    return jnp.sum(p * u, axis=AX)


def _ce_without_flag(lp, lq):
    p, _, logq, _ = D._ce_parts(lp, lq, AX)
    return jnp.sum(-p * logq, axis=AX)


def _ce_without_flag_and_tail(lp, lq):
    (_, ea), (sb, eb) = D._shifted_exp(lp, AX), D._shifted_exp(lq, AX)
    za = D._at_least(jnp.sum(ea, axis=AX, keepdims=True), 1)
    logq = jnp.maximum(sb - jnp.log(jnp.sum(eb, axis=AX, keepdims=True)), D._stand_in(sb.dtype))
    return jnp.sum(-(ea * (1 / za)) * logq, axis=AX)


def _entropy_without_tail(lg):
    s, e = D._shifted_exp(lg, AX)
    z = jnp.sum(e, axis=AX, keepdims=True)
    return -jnp.sum(e / z * jnp.maximum(s - jnp.log(z), D._stand_in(s.dtype)), axis=AX)


def _entropy_without_tail_and_clamp(lg):
    s, e = D._shifted_exp(lg, AX)
    z = jnp.sum(e, axis=AX, keepdims=True)
    return -jnp.sum(e / z * (s - jnp.log(z)), axis=AX)


def _rows():
    import optax

    ls = jax.nn.log_softmax
    return {
        "kl_divergence_with_logits": {
            "jaxdiv": jaxdiv.kl_divergence_with_logits,
            "- flag": _kl_without_flag,
            "- flag - per-term sum": _kl_without_flag_and_terms,
            "optax": lambda lp, lq: optax.losses.kl_divergence_with_log_targets(
                ls(lq, -1), ls(lp, -1))},
        "cross_entropy_with_logits": {
            "jaxdiv": jaxdiv.cross_entropy_with_logits,
            "- flag": _ce_without_flag,
            "- flag - tail": _ce_without_flag_and_tail,
            "optax": lambda lp, lq: optax.softmax_cross_entropy(lq, jax.nn.softmax(lp, -1))},
        "entropy_with_logits": {
            "jaxdiv": lambda lp, lq: jaxdiv.entropy_with_logits(lp),
            "- tail": lambda lp, lq: _entropy_without_tail(lp),
            "- tail - clamp": lambda lp, lq: _entropy_without_tail_and_clamp(lp),
            "jnp log_softmax": lambda lp, lq: -jnp.sum(jax.nn.softmax(lp, -1) * ls(lp, -1), -1)},
    }


def interleaved(fns, args, rounds):
    """(min, median) seconds per call of each function, over rotating rounds."""
    names, times = list(fns), {k: [] for k in fns}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            jax.block_until_ready(fns[k](*args))
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v), float(np.median(v))) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    pin_allocator()
    kp, kq = jax.random.split(jax.random.key(0))
    lp, lq = (3 * jax.random.normal(k, (args.rows, args.cols), jnp.float32) for k in (kp, kq))
    out = []
    for quantity, impls in _rows().items():
        fns = {k: jax.jit(f) for k, f in impls.items()}
        want = np.asarray(fns["jaxdiv"](lp, lq), np.float64)
        for k, f in fns.items():
            err = np.max(np.abs(np.asarray(f(lp, lq), np.float64) - want) / np.abs(want))
            if err > 1e-4:
                raise AssertionError(f"{quantity}: {k} is off by {err:.2g} relative")
        t = interleaved(fns, (lp, lq), args.rounds)
        jd, one, two, peer = impls
        ms = {k: f"{1e3 * a:.2f} / {1e3 * b:.2f}" for k, (a, b) in t.items()}
        out.append({"quantity": quantity, "jaxdiv": ms[jd], "one piece out": f"{one}: {ms[one]}",
                    "two pieces out": f"{two}: {ms[two]}", "fastest peer": f"{peer}: {ms[peer]}",
                    "speed (medians)": f"{t[peer][1] / t[jd][1]:.2f}x",
                    "speed, two out": f"{t[peer][1] / t[two][1]:.2f}x"})
    print(header(f"benchmarks.conventions: ({args.rows}, {args.cols}) float32, "
                 f"{args.rounds} interleaved rounds, min / median ms") + "\n")
    print(table(out))


if __name__ == "__main__":
    main()
