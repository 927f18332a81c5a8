"""Chunked distillation loss against the materialised one: peak memory and time, value + grad.

Question: at language-model scale, how much memory and time does
``jaxdiv.losses.linear_distillation_loss`` (chunked over tokens, gradient computed chunk by
chunk) save against the materialised version, a jit of the same loss on ``h @ W`` with autodiff?
Targets: peak temporary memory at most 10% of the materialised version's; time at most 1.15x
(CPU) or 1.0x (GPU, Liger-Kernel's shape 8192 x 4096 x 128,256, where Liger reports 19.0 -> 2.0
GB and 195 -> 129 ms on an A100).

Command: ``python -m benchmarks.distillation`` (CPU: N = 4096, H = 512, V = 32,768) or
``python -m benchmarks.distillation --gpu`` (8192 x 4096 x 128,256 in bfloat16); ``--help`` for
the sizes, divergences and the teacher's form.

Output: a markdown table for ``benchmarks/RESULTS.md``: per divergence and version, the peak
temporary memory from ``jax.jit(f).lower(...).compile().memory_analysis()``, compile time and
steady-state time of ``jax.value_and_grad`` (in the student's hidden states and head), and the
chunked/materialised ratios. The two versions are timed in alternating rounds (the ratio is the
median of the per-round ratios, robust to a loaded machine), and their values and gradients are
checked to agree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiv
from benchmarks._timing import header, pin_allocator, table
from jaxdiv.losses import linear_distillation_loss

HIGHEST = jax.lax.Precision.HIGHEST


def _divergence(div, zt, zs):
    """The materialised per-token divergence through jaxdiv's logit kernels."""
    if div == "forward_kl":
        return jaxdiv.kl_divergence_with_logits(zt, zs)
    if div == "reverse_kl":
        return jaxdiv.kl_divergence_with_logits(zs, zt)
    if div == "jsd":  # beta = 1/2: 4 JS
        return 4 * jaxdiv.js_divergence_with_logits(zt, zs)
    return jaxdiv.total_variation(jax.nn.softmax(zt), jax.nn.softmax(zs))


def materialised(div):
    def loss(h, w, ht, wt):
        f32 = jnp.float32
        zs = jnp.dot(h, w, precision=HIGHEST, preferred_element_type=f32)
        zt = jax.lax.stop_gradient(jnp.dot(ht, wt, precision=HIGHEST, preferred_element_type=f32))
        return jnp.mean(_divergence(div, zt, zs))
    return jax.jit(jax.value_and_grad(loss, (0, 1)))


def chunked(div, chunk_size):
    def loss(h, w, ht, wt):
        return linear_distillation_loss(h, w, teacher_hidden=ht, teacher_head=wt, divergence=div,
                                        chunk_size=chunk_size)
    return jax.jit(jax.value_and_grad(loss, (0, 1)))


def _run(fn, args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distillation",
                                description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tokens", type=int, default=4096, help="N")
    p.add_argument("--hidden", type=int, default=512, help="H (student and teacher)")
    p.add_argument("--vocab", type=int, default=32768, help="V")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--gpu", action="store_true",
                   help="Liger-Kernel's shape: 8192 x 4096 x 128256 in bfloat16")
    p.add_argument("--divergences", nargs="+", default=["forward_kl", "jsd"],
                   choices=("forward_kl", "reverse_kl", "jsd", "tvd"))
    p.add_argument("--chunk-size", type=int, default=None, help="default: the library's")
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.gpu:
        a.tokens, a.hidden, a.vocab, a.dtype = 8192, 4096, 128256, "bfloat16"
    n, hd, v, dtype = a.tokens, a.hidden, a.vocab, jnp.dtype(a.dtype)

    k = jax.random.split(jax.random.key(a.seed), 4)
    h = jax.random.normal(k[0], (n, hd), dtype)
    ht = jax.random.normal(k[1], (n, hd), dtype)
    w = (jax.random.normal(k[2], (hd, v)) / np.sqrt(hd)).astype(dtype)
    wt = (2 * jax.random.normal(k[3], (hd, v)) / np.sqrt(hd)).astype(dtype)
    args = jax.block_until_ready((h, w, ht, wt))
    rows = []
    for div in a.divergences:
        fns, mem, comp = {}, {}, {}
        for name, make in (("materialised", materialised(div)),
                           ("chunked", chunked(div, a.chunk_size))):
            t0 = time.perf_counter()
            compiled = make.lower(*args).compile()
            comp[name] = time.perf_counter() - t0
            mem[name] = compiled.memory_analysis().temp_size_in_bytes
            fns[name] = compiled
        outs = {name: f(*args) for name, f in fns.items()}
        (vm, gm), (vc, gc) = outs["materialised"], outs["chunked"]
        err = max(float(jnp.max(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))
                        / (float(jnp.max(jnp.abs(y.astype(jnp.float32)))) + 1e-30))
                  for x, y in zip(gc, gm, strict=True))
        del outs
        times = {name: [] for name in fns}
        for _ in range(a.rounds):  # alternate, so that both see the same machine load
            for name, f in fns.items():
                times[name].append(_run(f, args))
        ratio = statistics.median(c / m for c, m in zip(times["chunked"],
                                                        times["materialised"], strict=True))
        for name in fns:
            rows.append({
                "divergence": div, "version": name,
                "peak temp MB": mem[name] / 2**20, "compile s": comp[name],
                "steady ms": 1e3 * statistics.median(times[name]),
                "memory / mat.": mem[name] / mem["materialised"],
                "time / mat.": ratio if name == "chunked" else 1.0,
                "value": f"{float(vc if name == 'chunked' else vm):.6g}",
                "grad rel. diff": f"{err:.1e}" if name == "chunked" else "",
            })
        print(table(rows[-2:]), flush=True)
    print()
    print(header(f"linear_distillation_loss vs materialised: N={n}, H={hd}, V={v}, {a.dtype}, "
                 f"value_and_grad in (hidden, head), teacher as hidden + head"))
    print(table(rows))


if __name__ == "__main__":
    pin_allocator()
    main()
