"""Does a teacher's softened output teach a small student more than the hard labels do?

Question: a small student MLP sees only a few hundred labelled examples. Trained on the hard
labels alone it overfits; trained with ``jaxdiv.losses.distillation_loss`` against a larger
teacher's logits (Hinton et al. 2015) it also learns how the teacher ranks the wrong classes.
How much test accuracy and how much closeness to the teacher does that buy, and how does it
depend on the temperature T?

Command: ``python -m experiments.distillation [--out results/]`` (``--help`` for the options).

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
and in ``--out``: ``distillation.json`` (``models``: one entry per model with its metrics, and
for the students their mean, ``_std`` and per-seed ``_runs``; ``meta``: the options and
versions) and ``distillation.png`` (accuracy and KL against T, the hard-label student as a
band), both written atomically. Strict JSON: a non-finite number is written as the string
``"inf"``, ``"-inf"`` or ``"nan"`` (the encoding of every experiment, ``experiments/_io.py``).

With the defaults (about 10 s on 2 CPU cores) and seeds 0-2, the students distilled at T = 4..8
end 2-3x closer to the teacher than the hard-label students (KL 0.19-0.35 against 0.43-1.03
nats) and 4-9 points more accurate; both gains grow from T = 1 to T = 4 and level off by T = 8.
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxdiv
from experiments import _io
from jaxdiv import losses

F32 = jnp.float32
N_TEACHER, N_TEST, TEACHER_HIDDEN = 8192, 4096, (128, 128)


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _io.parser("distillation", "Train a teacher MLP, then small students on a few labelled "
                   "examples, with and without jaxdiv.losses.distillation_loss, over a grid of "
                   "temperatures.")
    p.add_argument("--steps", type=_io.int_at_least(1), default=1000,
                   help="student training steps")
    p.add_argument("--teacher-steps", type=_io.int_at_least(1), default=1000,
                   help="teacher training steps")
    p.add_argument("--n-student", type=_io.int_at_least(1), default=400,
                   help=f"student training set size, at most {N_TEACHER}")
    p.add_argument("--seeds", type=_io.int_at_least(1), default=3,
                   help="student seeds per configuration")
    p.add_argument("--temperatures", type=_io.positive_float, nargs="+",
                   default=[1.0, 2.0, 4.0, 8.0], help="distillation temperatures T, > 0")
    p.add_argument("--alpha", type=_io.float_in(0.0, 1.0), default=0.9,
                   help="weight of the distillation term, in [0, 1] (the rest: hard labels)")
    p.add_argument("--student-hidden", type=_io.int_at_least(1), default=32,
                   help="width of the student's hidden layer")
    p.add_argument("--learning-rate", type=_io.positive_float, default=3e-3,
                   help="Adam learning rate of teacher and students")
    _io.add_output_arguments(p)
    return p.parse_args(argv)


def validate(a: argparse.Namespace) -> str | None:
    """Returns a one-line error for bad command-line input, or None."""
    if a.n_student > N_TEACHER:
        return f"--n-student must be <= {N_TEACHER} (the teacher's data), got {a.n_student}"
    return None


def run(a: argparse.Namespace) -> dict:
    """Trains the teacher and all students; returns the JSON-ready results."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(a.seed)
    centres = make_task(rng)
    x, y = sample(rng, centres, N_TEACHER)
    x_test, y_test = sample(rng, centres, N_TEST)
    teacher = train_teacher(rng, x, y, hidden=TEACHER_HIDDEN, steps=a.teacher_steps, batch=256,
                            lr=a.learning_rate)
    t_test = mlp(teacher, x_test)
    xs, ys = x[:a.n_student], y[:a.n_student]
    seeds = a.seeds

    # One student per (configuration, seed); the hard-label configuration has alpha = 0.
    configs = [("hard labels", 1.0, 0.0)] + [(f"distill T={t:g}", t, a.alpha)
                                             for t in a.temperatures]
    temps = jnp.repeat(jnp.asarray([c[1] for c in configs], F32), seeds)
    alphas = jnp.repeat(jnp.asarray([c[2] for c in configs], F32), seeds)
    sizes = [x.shape[1], a.student_hidden, centres.shape[0]]
    inits = [init_mlp(rng, sizes) for _ in range(len(configs) * seeds)]
    students = train_students(jax.tree.map(lambda *v: jnp.stack(v), *inits), xs, ys,
                              mlp(teacher, xs), temps, alphas, steps=a.steps,
                              lr=a.learning_rate)
    s_test = jax.vmap(mlp, in_axes=(0, None))(students, x_test)
    per_student = jax.tree.map(np.asarray, metrics(s_test, t_test, y_test))

    def scalars(m):
        return {k: float(v) for k, v in m.items()}

    models = [{"model": "bayes", "temperature": None, "alpha": None,
               **scalars(metrics(bayes_logits(centres, x_test), t_test, y_test))},
              {"model": "teacher", "temperature": None, "alpha": None,
               **scalars(metrics(t_test, t_test, y_test))}]
    for i, (name, t, alpha) in enumerate(configs):
        row = {"model": name, "temperature": t if alpha > 0 else None, "alpha": alpha}
        for m, vals in per_student.items():
            vals = vals[i * seeds:(i + 1) * seeds]
            row[m], row[m + "_std"], row[m + "_runs"] = (float(vals.mean()), float(vals.std()),
                                                         vals.tolist())
        models.append(row)
    return {"models": models,
            "meta": _io.meta(a, t0, classes=10, clusters=3, dim=10, n_teacher=N_TEACHER,
                             n_test=N_TEST, teacher_hidden=list(TEACHER_HIDDEN))}


def summary(result: dict) -> str:
    """The printed table: one line per model."""
    lines = [f"{'model':<14} {'test acc':>16} {'agreement':>16} {'KL(teacher||s)':>18}"]
    for r in result["models"]:
        def cell(m, width, r=r):
            s = f"{round(r[m], 3) + 0.0:.3f}"  # + 0.0: no "-0.000" from rounding
            if m + "_std" in r:
                s += f" ± {r[m + '_std']:.3f}"
            return f"{s:>{width}}"
        lines.append(f"{r['model']:<14} {cell('accuracy', 16)} {cell('agreement', 16)} "
                     f"{cell('kl_to_teacher', 18)}")
    return "\n".join(lines)


def figure(result: dict):
    """Test accuracy and KL to the teacher against T, the hard-label students as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["models"]
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
    fig.suptitle(f"distillation on {result['meta']['n_student']} labelled examples")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict:
    return _io.run_cli("distillation", parse_args(argv), validate, run, summary, figure)


if __name__ == "__main__":
    main()
