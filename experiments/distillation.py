"""Does a teacher's softened output teach a small student more than the hard labels do?

Question: a small student MLP sees only a few hundred labelled examples. Trained on the hard
labels alone it overfits; trained with ``jaxdiv.losses.distillation_loss`` against a larger
teacher's logits (Hinton et al. 2015) it also learns how the teacher ranks the wrong classes.
How much test accuracy and how much closeness to the teacher does that buy, and how does it
depend on the temperature T?

Command::

    python -m experiments.distillation --out results/

Set-up: a synthetic 10-class task in 10 dimensions, each class a mixture of 3 Gaussian
clusters (so boundaries are non-linear and the Bayes posterior is soft; the "bayes" row is
that posterior, the best any classifier can do). A teacher MLP (plain JAX + optax) is trained
on 8192 examples; students of one small hidden layer are trained on a subset of
``--n-student`` of them, with the loss
``alpha * distillation_loss(T) + (1 - alpha) * cross-entropy(hard labels)``, against
``alpha = 0`` (hard labels alone). All students (temperatures x seeds) train at once under
one ``jax.vmap`` of a ``lax.scan`` loop: one compilation, the temperature a traced value.

Output: a table (printed) of test accuracy, top-1 agreement with the teacher and the mean
KL(teacher || student) on held-out data, mean and spread over ``--seeds`` student seeds;
``distillation.json`` with every number and ``distillation.png`` (accuracy and KL against T,
the hard-label student as a band). With the defaults (about 10 s on 2 CPU cores) and seeds
0-2, the students distilled at T = 4..8 end 2-3x closer to the teacher than the hard-label
students (KL 0.19-0.35 against 0.43-1.03 nats) and 4-9 points more accurate; both gains grow
from T = 1 to T = 4 and level off by T = 8.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxdiv
from jaxdiv import losses

from ._io import save_figure, write_json

F32 = jnp.float32


def make_task(rng, *, classes=10, clusters=3, dim=10, spread=1.6):
    """Cluster centres ``[classes, clusters, dim]`` of a Gaussian-mixture classification task."""
    return (spread * rng.standard_normal((classes, clusters, dim))).astype(np.float32)


def sample(rng, centres, n):
    """``n`` labelled examples: a uniform class, a uniform cluster of it, unit Gaussian noise.

    Data, initial weights and minibatch indices come from NumPy's generator: they are inputs,
    not part of the computation under study, and this spares compiling JAX's PRNG kernels."""
    k, c, d = centres.shape
    y, cl = rng.integers(0, k, n), rng.integers(0, c, n)
    x = centres[y, cl] + rng.standard_normal((n, d)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y, jnp.int32)


def bayes_logits(centres, x):
    """Log-posterior (up to a constant) of the true mixture: the best any classifier can do."""
    sq = jnp.sum((x[:, None, None, :] - centres[None]) ** 2, axis=-1)  # [n, classes, clusters]
    return jax.nn.logsumexp(-0.5 * sq, axis=-1)


def init_mlp(rng, sizes):
    """He-initialised weights and zero biases for layer widths ``sizes``."""
    return [(jnp.asarray(rng.standard_normal((m, n)) * np.sqrt(2.0 / m), F32), jnp.zeros(n, F32))
            for m, n in itertools.pairwise(sizes)]


def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def train_teacher(rng, x, y, *, hidden, steps, batch, lr):
    """Cross-entropy training with Adam on minibatches, as one jitted ``lax.scan``."""
    params = init_mlp(rng, [x.shape[1], *hidden, int(y.max()) + 1])
    batches = jnp.asarray(rng.integers(0, x.shape[0], (steps, batch)), jnp.int32)
    opt = optax.adam(lr)

    def step(carry, idx):
        params, state = carry

        def loss(p):
            logits = mlp(p, x[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

    run = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), batches)[0][0])
    return run(params)


def train_students(params, x, y, teacher_logits, temperatures, alphas, *, steps, lr):
    """Full-batch Adam on ``alpha * distillation_loss(T) + (1 - alpha) * CE``, vmapped over
    students: ``params`` (stacked initial weights), ``temperatures`` and ``alphas`` all have one
    entry per student."""
    opt = optax.adam(lr)
    teacher_logits = jax.lax.stop_gradient(teacher_logits)  # the teacher is fixed

    def train_one(params, temperature, alpha):
        def loss(p):
            logits = mlp(p, x)
            soft = losses.distillation_loss(logits, teacher_logits, temperature=temperature)
            hard = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.mean(alpha * soft + (1 - alpha) * hard)

        def step(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[0][0]

    return jax.jit(jax.vmap(train_one))(params, temperatures, alphas)


@jax.jit
def metrics(logits, teacher_logits, y):
    """Accuracy, top-1 agreement with the teacher, and mean KL(teacher || model) in nats;
    ``logits`` may carry leading (student) axes."""
    pred = jnp.argmax(logits, -1)
    kl = jaxdiv.kl_divergence_with_logits(teacher_logits, logits)
    return {"accuracy": jnp.mean(pred == y, -1),
            "agreement": jnp.mean(pred == jnp.argmax(teacher_logits, -1), -1),
            "kl_to_teacher": jnp.mean(kl, -1)}


def run(*, seed=0, steps=1000, teacher_steps=1000, n_student=400, seeds=3,
        temperatures=(1.0, 2.0, 4.0, 8.0), alpha=0.9, student_hidden=32, lr=3e-3):
    """Trains the teacher and all students; returns a JSON-ready dict of the results."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = make_task(rng)
    x, y = sample(rng, centres, 8192)
    x_test, y_test = sample(rng, centres, 4096)
    teacher = train_teacher(rng, x, y, hidden=(128, 128), steps=teacher_steps, batch=256, lr=lr)
    t_test = mlp(teacher, x_test)
    xs, ys = x[:n_student], y[:n_student]

    # One student per (configuration, seed); the hard-label configuration has alpha = 0.
    configs = [("hard labels", 1.0, 0.0)] + [(f"distill T={t:g}", t, alpha)
                                             for t in temperatures]
    temps = jnp.repeat(jnp.asarray([c[1] for c in configs], F32), seeds)
    alphas = jnp.repeat(jnp.asarray([c[2] for c in configs], F32), seeds)
    sizes = [x.shape[1], student_hidden, centres.shape[0]]
    inits = [init_mlp(rng, sizes) for _ in range(len(configs) * seeds)]
    students = train_students(jax.tree.map(lambda *a: jnp.stack(a), *inits), xs, ys,
                              mlp(teacher, xs), temps, alphas, steps=steps, lr=lr)
    s_test = jax.vmap(mlp, in_axes=(0, None))(students, x_test)
    per_student = jax.tree.map(np.asarray, metrics(s_test, t_test, y_test))

    def scalars(m):
        return {k: float(v) for k, v in m.items()}

    rows = [{"model": "bayes", "temperature": None, "alpha": None,
             **scalars(metrics(bayes_logits(centres, x_test), t_test, y_test))},
            {"model": "teacher", "temperature": None, "alpha": None,
             **scalars(metrics(t_test, t_test, y_test))}]
    for i, (name, t, a) in enumerate(configs):
        row = {"model": name, "temperature": t if a > 0 else None, "alpha": a}
        for m, vals in per_student.items():
            vals = vals[i * seeds:(i + 1) * seeds]
            row[m], row[m + "_std"], row[m + "_runs"] = (float(vals.mean()), float(vals.std()),
                                                         vals.tolist())
        rows.append(row)
    settings = dict(seed=seed, steps=steps, teacher_steps=teacher_steps, n_student=n_student,
                    seeds=seeds, temperatures=list(temperatures), alpha=alpha,
                    student_hidden=student_hidden, lr=lr, classes=10, clusters=3, dim=10,
                    n_teacher=8192, n_test=4096, teacher_hidden=[128, 128])
    return {"settings": settings, "rows": rows, "seconds": time.perf_counter() - t0,
            "backend": jax.default_backend(), "jax": jax.__version__}


def table(result) -> str:
    lines = [f"{'model':<14} {'test acc':>16} {'agreement':>16} {'KL(teacher||s)':>18}"]
    for r in result["rows"]:
        def cell(m, width, r=r):
            s = f"{round(r[m], 3) + 0.0:.3f}"  # + 0.0: no "-0.000" from rounding
            if m + "_std" in r:
                s += f" ± {r[m + '_std']:.3f}"
            return f"{s:>{width}}"
        lines.append(f"{r['model']:<14} {cell('accuracy', 16)} {cell('agreement', 16)} "
                     f"{cell('kl_to_teacher', 18)}")
    return "\n".join(lines)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    hard = next(r for r in rows if r["model"] == "hard labels")
    dist = [r for r in rows if r["model"].startswith("distill")]
    ts = [r["temperature"] for r in dist]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, m, label in zip(axes, ["accuracy", "kl_to_teacher"],
                            ["test accuracy", "KL(teacher || student) [nats]"], strict=True):
        ax.errorbar(ts, [r[m] for r in dist], [r[m + "_std"] for r in dist], marker="o",
                    capsize=3, label="distilled students")
        ax.axhspan(hard[m] - hard[m + "_std"], hard[m] + hard[m + "_std"], alpha=0.25,
                   color="C1")
        ax.axhline(hard[m], color="C1", label="hard labels only")
        if m == "accuracy":
            teacher = next(r for r in rows if r["model"] == "teacher")
            ax.axhline(teacher[m], color="k", ls="--", label="teacher")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ts, [f"{t:g}" for t in ts])
        ax.set_xlabel("temperature T")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"distillation on {result['settings']['n_student']} labelled examples")
    fig.tight_layout()
    save_figure(path, fig, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000, help="student training steps")
    parser.add_argument("--teacher-steps", type=int, default=1000)
    parser.add_argument("--n-student", type=int, default=400, help="student training set size")
    parser.add_argument("--seeds", type=int, default=3, help="student seeds per configuration")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--alpha", type=float, default=0.9,
                        help="weight of the distillation term (the rest: hard labels)")
    parser.add_argument("--no-plot", action="store_true", help="skip distillation.png")
    args = parser.parse_args(argv)
    result = run(seed=args.seed, steps=args.steps, teacher_steps=args.teacher_steps,
                 n_student=args.n_student, seeds=args.seeds,
                 temperatures=tuple(args.temperatures), alpha=args.alpha)
    print(table(result))
    print(f"({result['seconds']:.1f} s on {result['backend']})")
    write_json(args.out / "distillation.json", result)
    if not args.no_plot:
        plot(result, args.out / "distillation.png")
    return result


if __name__ == "__main__":
    main()
