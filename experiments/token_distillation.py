"""Mode-seeking against mass-covering on next-token distributions: distilling a small LM.

Question: when a student language model too small to copy its teacher is distilled on the
teacher's next-token distributions, where does each objective put the student's mass? Forward
KL(p || q) (teacher p, student q) pays for every teacher token the student misses, so the
student spreads out (higher entropy than the teacher, mass on tokens the teacher rules out);
reverse KL(q || p) pays for student mass where the teacher has little, so the student
concentrates on the teacher's main modes (lower entropy, its top-k holds less of the teacher's
mass) — MiniLLM's argument for reverse KL. The generalised JSD of GKD moves between the two
with beta (beta = 0 is forward KL, beta = 1 reverse KL); total variation is shown beside them.

Setup: a synthetic Zipfian trigram process over a vocabulary of ``--vocab`` tokens, each token
in one of ``vocab / 32`` clusters; the next token after (a, b) comes from a mixture of three
modes, a Zipf law over the tokens of a successor cluster of b's cluster (two of them) and of a's
cluster, with mixture weights of about 0.5, 0.3, 0.2 jittered per token b. A teacher
(embeddings of the two context tokens, a residual MLP, an output head) is trained by
cross-entropy to the process's next-token distributions at fresh contexts; then students with a
narrow hidden state (``--student-width``) are trained on the teacher's distributions at fresh
contexts with ``jaxdiv.losses.linear_distillation_loss`` (chunked: the ``[tokens, vocab]``
logits of neither model exist), one per objective. Everything is measured on held-out contexts,
fresh pairs (a, b), almost all unseen in training.

Command: ``python -m experiments.token_distillation [--out results/]`` (``--help`` for the
options; about 35 s of CPU time: well under 90 s on a quiet 2-core CPU).

Output: a table per objective: the student's mean entropy against the teacher's, the share of
the teacher's mass on the student's top-k tokens, KL(teacher || student) and
KL(student || teacher), all in nats on held-out contexts; ``token_distillation.json`` and
``token_distillation.png`` (the four measures per objective, and one context's distributions)
in ``--out``, written atomically.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxdiv
from experiments import _io
from jaxdiv.losses import linear_distillation_loss

CLUSTER = 32  # tokens per cluster
OBJECTIVES = ("forward_kl", "reverse_kl", "tvd", "jsd")
HIGHEST = jax.lax.Precision.HIGHEST


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m experiments.token_distillation",
        description="Distil a small teacher LM on a Zipfian trigram process into narrower "
                    "students under forward KL, reverse KL, the generalised JSD at several "
                    "beta, and total variation; compare where each puts its mass.")
    p.add_argument("--vocab", type=int, default=1024,
                   help=f"vocabulary size, a multiple of {CLUSTER} (default: 1024)")
    p.add_argument("--teacher-steps", type=int, default=300,
                   help="Adam steps of the teacher's training (default: 300)")
    p.add_argument("--student-steps", type=int, default=400,
                   help="Adam steps of each student's distillation (default: 400)")
    p.add_argument("--batch", type=int, default=256, help="contexts per step (default: 256)")
    p.add_argument("--student-width", type=int, default=8,
                   help="the students' hidden width; the teacher's is 64 (default: 8)")
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES,
                   help="the objectives to distil with (default: all four)")
    p.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.5, 0.9],
                   help="beta of the generalised JSD, in [0, 1] (default: 0.1 0.5 0.9)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="distillation temperature, > 0 (default: 1)")
    p.add_argument("--top-k", type=int, default=8,
                   help="k of the top-k coverage (default: 8)")
    p.add_argument("--eval-contexts", type=int, default=2048,
                   help="held-out contexts for the measures (default: 2048)")
    p.add_argument("--learning-rate", type=float, default=0.03,
                   help="Adam learning rate of teacher and students (default: 0.03)")
    _io.add_output_arguments(p)
    return p.parse_args(argv)


def validate(a: argparse.Namespace) -> str | None:
    """Returns a one-line error for bad command-line input, or None."""
    if a.vocab < 2 * CLUSTER or a.vocab % CLUSTER:
        return f"--vocab must be a multiple of {CLUSTER}, at least {2 * CLUSTER}, got {a.vocab}"
    if min(a.teacher_steps, a.student_steps, a.batch, a.student_width, a.eval_contexts) < 1:
        return ("--teacher-steps, --student-steps, --batch, --student-width and "
                "--eval-contexts must be >= 1")
    if not 1 <= a.top_k <= a.vocab:
        return f"--top-k must be in [1, --vocab], got {a.top_k}"
    if not all(math.isfinite(b) and 0 <= b <= 1 for b in a.betas):
        return f"--betas must lie in [0, 1], got {a.betas}"
    if not (math.isfinite(a.temperature) and a.temperature > 0):
        return f"--temperature must be finite and > 0, got {a.temperature}"
    if not (math.isfinite(a.learning_rate) and a.learning_rate > 0):
        return f"--learning-rate must be finite and > 0, got {a.learning_rate}"
    return None


@functools.partial(jax.jit, static_argnums=1)
def make_process(key: jax.Array, vocab: int) -> dict:
    """The trigram process: cluster of each token, successor clusters, mixture weights (about
    0.5, 0.3, 0.2, jittered per token b), and each cluster's Zipf law over its tokens."""
    k = jax.random.split(key, 3)
    n_clusters = vocab // CLUSTER
    zipf = 1.0 / jnp.arange(1, CLUSTER + 1) ** 1.1
    order = jax.random.permutation(k[0], vocab)
    mix = jnp.array([0.5, 0.3, 0.2]) * jax.random.uniform(k[2], (vocab, 3), minval=0.5,
                                                           maxval=1.5)
    return {
        "members": order.reshape(n_clusters, CLUSTER),
        "cluster": jnp.argsort(order) // CLUSTER,
        "succ": jax.random.randint(k[1], (n_clusters, 3), 0, n_clusters),
        "mix": mix / mix.sum(-1, keepdims=True),
        "zipf": zipf / zipf.sum(),
    }


def true_probs(proc: dict, a: jax.Array, b: jax.Array, vocab: int) -> jax.Array:
    """Next-token probabilities [B, V] after contexts (a, b)."""
    ca, cb = proc["cluster"][a], proc["cluster"][b]
    modes = jnp.stack([proc["succ"][cb, 0], proc["succ"][cb, 1], proc["succ"][ca, 2]], -1)
    w = proc["mix"][b]  # [B, 3]
    rows = jnp.arange(a.shape[0])[:, None, None]
    p = jnp.zeros((a.shape[0], vocab))
    return p.at[rows, proc["members"][modes]].add(w[..., None] * proc["zipf"])


def init_model(key: jax.Array, vocab: int, width: int) -> dict:
    k = jax.random.split(key, 5)
    emb = width // 2 if width > 1 else 1
    return {"emb": jax.random.normal(k[0], (2, vocab, emb)) * 0.5,
            "w1": jax.random.normal(k[1], (2 * emb, 4 * width)) / math.sqrt(2 * emb),
            "w2": jax.random.normal(k[2], (4 * width, width)) / math.sqrt(4 * width),
            "proj": jax.random.normal(k[3], (2 * emb, width)) / math.sqrt(2 * emb),
            "head": jax.random.normal(k[4], (width, vocab)) / math.sqrt(width),
            "bias": jnp.zeros(vocab)}


def hidden(params: dict, a: jax.Array, b: jax.Array) -> jax.Array:
    """The last hidden state [B, width]: embeddings of a and b, a residual MLP."""
    x = jnp.concatenate([params["emb"][0][a], params["emb"][1][b]], -1)
    def dot(u, v):
        return jnp.dot(u, v, precision=HIGHEST)

    return dot(x, params["proj"]) + dot(jax.nn.gelu(dot(x, params["w1"])), params["w2"])


def logits(params: dict, a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.dot(hidden(params, a, b), params["head"], precision=HIGHEST) + params["bias"]


def contexts(key: jax.Array, n: int, vocab: int) -> tuple[jax.Array, jax.Array]:
    """Context pairs (a, b): a uniform, b drawn from the process after a random token."""
    ka, kb = jax.random.split(key)
    return (jax.random.randint(ka, (n,), 0, vocab), jax.random.randint(kb, (n,), 0, vocab))


def train_teacher(key, proc, a):
    vocab = a.vocab
    opt = optax.adam(a.learning_rate)

    def loss(params, key):  # cross-entropy to the process's next-token law at fresh contexts
        ctx_a, ctx_b = contexts(key, a.batch, vocab)
        return optax.softmax_cross_entropy(logits(params, ctx_a, ctx_b),
                                           true_probs(proc, ctx_a, ctx_b, vocab)).mean()

    params = init_model(key, vocab, 64)
    return jaxdiv.fit(loss, params, opt, steps=a.teacher_steps, key=jax.random.fold_in(key, 1))


def student_program(divergence, teacher, a, betas=None):
    """A jitted function (key) -> (student params, losses) for one objective; with ``betas``,
    the generalised JSD vmapped over them."""
    opt = optax.adam(a.learning_rate)

    def fit_one(key, beta):
        def loss(params, key):
            ctx_a, ctx_b = contexts(key, a.batch, a.vocab)
            return linear_distillation_loss(
                hidden(params, ctx_a, ctx_b), params["head"], student_bias=params["bias"],
                teacher_hidden=hidden(teacher, ctx_a, ctx_b), teacher_head=teacher["head"],
                teacher_bias=teacher["bias"], divergence=divergence, beta=beta,
                temperature=a.temperature)

        params = init_model(jax.random.fold_in(key, 7), a.vocab, a.student_width)
        return jaxdiv.fit(loss, params, opt, steps=a.student_steps, key=key)

    if betas is None:
        return jax.jit(lambda key: fit_one(key, 0.5))
    return jax.jit(lambda key: jax.vmap(fit_one, (None, 0))(key, jnp.asarray(betas)))


@jax.jit
def measures(student, teacher, ctx_a, ctx_b, top_k_mask_k):
    """Mean entropy of student and teacher, teacher mass on the student's top-k, both KLs."""
    zs, zt = logits(student, ctx_a, ctx_b), logits(teacher, ctx_a, ctx_b)
    p = jax.nn.softmax(zt)
    k = top_k_mask_k.shape[0]
    top = jax.lax.top_k(zs, k)[1]
    return {"student_entropy": jaxdiv.entropy_with_logits(zs).mean(),
            "teacher_entropy": jaxdiv.entropy_with_logits(zt).mean(),
            "top_k_coverage": jnp.take_along_axis(p, top, -1).sum(-1).mean(),
            "forward_kl": jaxdiv.kl_divergence_with_logits(zt, zs).mean(),
            "reverse_kl": jaxdiv.kl_divergence_with_logits(zs, zt).mean()}


def run(a: argparse.Namespace) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    key = jax.random.key(a.seed)
    kp, kt, ks, ke = jax.random.split(key, 4)
    proc = make_process(kp, a.vocab)
    teacher, teacher_losses = jax.jit(lambda k: train_teacher(k, proc, a))(kt)
    ctx_a, ctx_b = contexts(ke, a.eval_contexts, a.vocab)
    truth = true_probs(proc, ctx_a, ctx_b, a.vocab)
    zt = logits(teacher, ctx_a, ctx_b)
    teacher_fit = {
        "kl_truth_teacher": float(jnp.mean(jaxdiv.kl_divergence(truth, jax.nn.softmax(zt)))),
        "truth_entropy": float(jnp.mean(jaxdiv.entropy(truth))),
        "final_loss": float(teacher_losses[-20:].mean())}

    objectives = [(name, list(a.betas) if name == "jsd" else None)
                  for name in OBJECTIVES if name in a.objectives]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # XLA compiles outside the GIL
        programs = list(pool.map(
            lambda ob: student_program(ob[0], teacher, a, ob[1]).lower(ks).compile(),
            objectives))
    kmask = jnp.zeros(a.top_k)
    rows, curves, example = {}, {}, {}
    show = int(jnp.argmax(jnp.sum(truth > 1e-3, -1)))  # a context with many modes, for the plot
    example["teacher"] = np.asarray(jax.nn.softmax(zt[show])).tolist()
    example["truth"] = np.asarray(truth[show]).tolist()
    for (name, betas), program in zip(objectives, programs, strict=True):
        params, losses = program(ks)
        runs = ([(name, params, losses)] if betas is None else
                [(f"jsd(beta={b:g})", jax.tree.map(lambda x, i=i: x[i], params), losses[i])
                 for i, b in enumerate(betas)])
        for label, prm, curve in runs:
            m = {k: float(v) for k, v in measures(prm, teacher, ctx_a, ctx_b, kmask).items()}
            m["final_loss"] = float(jnp.mean(curve[-max(1, a.student_steps // 20):]))
            rows[label] = m
            curves[label] = np.asarray(curve)
            example[label] = np.asarray(jax.nn.softmax(
                logits(prm, ctx_a[show:show + 1], ctx_b[show:show + 1])[0])).tolist()
    dev = jax.devices()[0]
    return {
        "teacher": teacher_fit,
        "students": rows,
        "example_context": {"a": int(ctx_a[show]), "b": int(ctx_b[show]),
                            "probabilities": example},
        "meta": {"jax_version": jax.__version__, "backend": jax.default_backend(),
                 "devices": f"{jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}",
                 "vocab": a.vocab, "teacher_width": 64, "student_width": a.student_width,
                 "teacher_steps": a.teacher_steps, "student_steps": a.student_steps,
                 "batch": a.batch, "objectives": list(a.objectives), "betas": list(a.betas),
                 "temperature": a.temperature,
                 "top_k": a.top_k, "eval_contexts": a.eval_contexts,
                 "learning_rate": a.learning_rate, "seed": a.seed,
                 "wall_seconds": time.perf_counter() - t0},
    }, curves


def summary(result: dict) -> str:
    t, k = result["teacher"], result["meta"]["top_k"]
    lines = [f"teacher: KL(truth || teacher) {t['kl_truth_teacher']:.3f} nats; truth entropy "
             f"{t['truth_entropy']:.3f}", "",
             f"{'objective':<16} {'H(student)':>10} {'H(teacher)':>10} {f'top-{k} cover':>11} "
             f"{'KL(p||q)':>9} {'KL(q||p)':>9}"]
    for name, r in result["students"].items():
        lines.append(f"{name:<16} {r['student_entropy']:>10.3f} {r['teacher_entropy']:>10.3f} "
                     f"{r['top_k_coverage']:>11.3f} {r['forward_kl']:>9.3f} "
                     f"{r['reverse_kl']:>9.3f}")
    lines.append("(p: teacher, q: student; nats; means over held-out contexts)")
    return "\n".join(lines)


def figure(result: dict, curves: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["students"])
    r = result["students"]
    colors = [f"C{i}" for i in range(len(names))]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), layout="constrained")
    x = np.arange(len(names))
    panels = [("student_entropy", "student entropy (nats)"),
              ("top_k_coverage", f"teacher mass on student's top-{result['meta']['top_k']}"),
              ("forward_kl", "KL(teacher ‖ student)"), ("reverse_kl", "KL(student ‖ teacher)")]
    for ax, (key, title) in zip(axes.flat[:4], panels, strict=True):
        ax.bar(x, [r[n][key] for n in names], color=colors)
        if key == "student_entropy":
            ax.axhline(r[names[0]]["teacher_entropy"], color="k", ls="--", label="teacher")
            ax.legend()
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
    ax = axes.flat[4]
    ex = result["example_context"]["probabilities"]
    order = np.argsort(ex["teacher"])[::-1][:48]
    ax.bar(np.arange(len(order)), np.asarray(ex["teacher"])[order], color="0.8", label="teacher")
    for n, c in zip(names, colors, strict=True):
        if n in ("forward_kl", "reverse_kl") or n.startswith("jsd(beta=0.5"):
            ax.plot(np.arange(len(order)), np.asarray(ex[n])[order], "o-", ms=3, color=c,
                    label=n)
    ax.set(title="one held-out context: the teacher's 48 likeliest tokens",
           xlabel="token (by teacher probability)", ylabel="probability")
    ax.legend(fontsize=8)
    ax = axes.flat[5]
    for n, c in zip(names, colors, strict=True):
        curve = curves[n]
        w = max(1, len(curve) // 30)
        ax.plot(np.convolve(curve, np.ones(w) / w, mode="valid"), color=c, label=n, lw=1)
    ax.set(title="distillation loss", xlabel="Adam step", ylabel="loss (nats)", yscale="log")
    ax.legend(fontsize=7)
    fig.suptitle("Distilling a next-token distribution: forward KL spreads the student, "
                 "reverse KL concentrates it")
    return fig


def main(argv: list[str] | None = None) -> dict:
    return _io.run_cli("token_distillation", parse_args(argv), validate, run, summary, figure)


if __name__ == "__main__":
    main()
