r"""Monte Carlo and quadrature estimators of divergences between densities.

The Monte Carlo estimators take ``(key, target, model, num_samples)`` with a static int
``num_samples``; ``target`` is ``p`` and ``model`` is ``q`` in D(p || q), as in the discrete
functions. ``forward_kl`` is KL(target || model) (mass-covering, maximum likelihood),
``reverse_kl`` is KL(model || target) (mode-seeking, variational inference). They are pure:
jit them, ``jax.vmap`` them over keys, model parameters or ``alpha``, and differentiate them
with respect to the model (``Normal`` and ``MultivariateNormal`` samples are reparameterised).

The protocol: ``target`` and ``model`` are any objects with ``log_prob(x)`` and, where draws are
taken from them, ``sample(key, sample_shape)`` returning ``sample_shape + event_shape``
(``log_prob`` of those returns ``sample_shape``). jaxdiv and numpyro distributions follow it.
Objects whose ``sample`` takes the key as ``seed=`` (distrax, TFP on JAX) are wrapped
automatically; :func:`as_distribution` does it explicitly and turns a plain log-density
function into an object with ``log_prob``. Batched distributions give one estimate per batch
entry (the mean is over the sample axis); the batch shapes of target and model broadcast as
numpy's, from the right, so an unbatched side is compared with every entry of a batched one
(an object without ``batch_shape`` is taken as it comes). ``jax.vmap`` is the clearer way to
batch.

The grid estimators integrate 1-D densities with the trapezoid rule on a user grid, after
normalising both by the same quadrature: the densities become discrete distributions on the
grid and the discrete core's conventions apply (0 log 0 = 0; KL = +inf where only the model
vanishes; JS finite), and unnormalised log-densities are fine. For smooth densities negligible
at the ends of the grid the trapezoid rule converges very fast (1e-12 for Gaussians with a few
thousand points).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import LOG2, compute_dtype, safe
from jaxdiv.discrete import js_divergence_with_logits, kl_divergence_with_logits

__all__ = ["alpha_divergence", "as_distribution", "forward_kl", "grid_alpha", "grid_js", "grid_kl",
           "js_divergence", "reverse_kl"]

_ARRAY = (jax.Array, np.ndarray, np.generic, int, float)

# ---------------------------------------------------------------------------------------------
# The protocol and its adapters.


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _SeedSampler:
    """A distribution whose ``sample`` takes ``seed=`` (distrax, TFP), in the jaxdiv protocol."""

    dist: Any

    def log_prob(self, x: ArrayLike) -> jax.Array:
        return self.dist.log_prob(x)

    def sample(self, key: jax.Array, sample_shape: Any = ()) -> jax.Array:
        return self.dist.sample(seed=key, sample_shape=sample_shape)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.dist.batch_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.dist.event_shape)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _LogDensity:
    """A log-density function ``x -> log p(x)`` as an object with ``log_prob`` (no sampling)."""

    fn: Callable[[jax.Array], jax.Array] = dataclasses.field(metadata=dict(static=True))

    def log_prob(self, x: ArrayLike) -> jax.Array:
        return self.fn(x)


def _seed_keyword(sample: Callable) -> bool:
    try:
        params = inspect.signature(sample).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params and "key" not in params


def _adapt(fn: str, name: str, obj: Any, *, sample: bool) -> Any:
    if not hasattr(obj, "log_prob"):
        if callable(obj) and not sample:
            return _LogDensity(obj)
        need = "log_prob and sample(key, sample_shape) methods" if sample else "a log_prob method"
        raise TypeError(f"{fn}: {name} needs {need} (see jaxdiv.estimators), got "
                        f"{type(obj).__name__}")
    has_sample = hasattr(obj, "sample")
    if sample and not has_sample:
        raise TypeError(f"{fn}: {name} has no sample method, which this estimator needs to draw "
                        f"from it (got {type(obj).__name__})")
    return _SeedSampler(obj) if has_sample and _seed_keyword(obj.sample) else obj


def as_distribution(obj: Any) -> Any:
    r"""Returns ``obj`` in the protocol the estimators use: ``log_prob(x)``, ``sample(key, shape)``.

    - Objects with ``log_prob`` and ``sample(key, sample_shape=())`` (jaxdiv, numpyro) are
      returned as they are.
    - Objects whose ``sample`` takes the key as ``seed=`` (distrax's
      ``sample(*, seed, sample_shape=())``, TFP's ``sample(sample_shape=(), seed=None)``) are
      wrapped so that ``sample(key, sample_shape)`` calls ``obj.sample(seed=key,
      sample_shape=sample_shape)``. The wrapper is a pytree with ``obj`` as its child, so it
      passes through ``jit``/``vmap``/``grad`` whenever ``obj`` does.
    - A plain callable (``x -> log p(x)``, possibly unnormalised) becomes an object with
      ``log_prob`` only: enough for the target of ``reverse_kl`` and for the grid estimators.

    The estimators apply it themselves; call it to check an object, or in your own code.

    Raises:
      TypeError: if ``obj`` has no ``log_prob`` and is not callable.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.estimators import as_distribution
      >>> d = as_distribution(lambda x: -0.5 * x**2)  # an unnormalised log-density
      >>> print(f"{float(d.log_prob(jnp.float32(2.0))):.4f}")
      -2.0000
      >>> print(as_distribution(jaxdiv.Normal(0.0, 1.0)) is not None)
      True
    """
    return _adapt("as_distribution", "obj", obj, sample=False)


def _num_samples(fn: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{fn}: num_samples must be a static Python int, got "
                        f"{type(n).__name__} (use jax.jit(f, static_argnames='num_samples'))")
    if n < 1:
        raise ValueError(f"{fn}: num_samples must be >= 1, got {n}")
    return int(n)


def _mean(values: jax.Array) -> jax.Array:
    """Mean over the sample axis, accumulated in at least float32."""
    values = jnp.asarray(values)
    return jnp.mean(values, axis=0, dtype=compute_dtype(values.dtype)).astype(values.dtype)


def _draws(x: Any, *dists: Any) -> tuple[Any, jax.Array]:
    """16-bit draws (or grid) in float32, so that ``log_prob`` and the arithmetic run in float32.

    Returns (the 16-bit dtype of the draws and the distributions' float parameters, to cast the
    result back to, or None when that dtype is wider; the draws in their compute dtype).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):  # integer draws (discrete distributions)
        return None, x
    params = [v for d in dists for v in jax.tree.leaves(d)
              if isinstance(v, (jax.Array, np.ndarray)) and jnp.issubdtype(v.dtype, jnp.floating)]
    dtype = jnp.result_type(x, *params)
    low = dtype if jnp.finfo(dtype).bits < 32 else None
    return low, x.astype(compute_dtype(x.dtype))


def _cast_back(value: jax.Array, low: Any, *extra: Any) -> jax.Array:
    """Casts a float32 result of 16-bit inputs back to ``low`` (promoted with ``extra``)."""
    return value if low is None else value.astype(jnp.result_type(low, *extra))


def _stop_gradient_params(fn: str, model: Any) -> Any:
    """The model with ``stop_gradient`` on its array leaves (for the path-derivative)."""
    leaves, treedef = jax.tree.flatten(model)
    arrays = [isinstance(leaf, _ARRAY) for leaf in leaves]
    if leaves and not any(arrays):
        raise TypeError(f"{fn}: gradient='path' needs the model to be a pytree of its parameter "
                        f"arrays (jaxdiv, numpyro and distrax distributions are); got an opaque "
                        f"{type(model).__name__}")
    return jax.tree.unflatten(treedef, [lax.stop_gradient(leaf) if is_array else leaf
                                        for leaf, is_array in zip(leaves, arrays, strict=True)])


def _shape(dist: Any, name: str) -> tuple[int, ...] | None:
    """``dist.batch_shape`` or ``dist.event_shape`` as a tuple, or None if it has none."""
    shape = getattr(dist, name, None)
    return None if shape is None else tuple(shape)


def _lift(fn: str, x: jax.Array, batch: tuple[int, ...] | None, *others: Any) -> jax.Array:
    """Draws ``x`` (``[n, *batch, *event]``) with ones after the sample axis, so that another
    distribution's ``log_prob`` broadcasts its batch against ``batch`` from the right, as numpy.

    Without the ones, draws of an unbatched distribution, shape ``[n]``, would pair draw i with
    batch entry i of a batched one. Left as they are where a batch shape is unknown.
    """
    shapes = [_shape(other, "batch_shape") for other in others]
    if batch is None or any(shape is None for shape in shapes):
        return x
    try:
        full = np.broadcast_shapes(batch, *shapes)
    except ValueError:
        raise ValueError(f"{fn}: the batch shapes of target and model, "
                         f"{', '.join(map(str, (batch, *shapes)))}, do not broadcast") from None
    return x.reshape(x.shape[:1] + (1,) * (len(full) - len(batch)) + x.shape[1:])


def _model_draws(fn: str, key: jax.Array, n: int, target: Any, model: Any, *,
                 path: bool = False) -> tuple[Any, jax.Array, jax.Array]:
    """(16-bit dtype or None, n reparameterised model draws, the model's log q at them).

    A model with ``sample_and_log_prob`` gives log q from its noise (no standardising solve);
    ``path`` stops the gradient through the model's parameters inside log q.
    """
    fast = not path and hasattr(model, "sample_and_log_prob")
    x, log_q = model.sample_and_log_prob(key, (n,)) if fast else (model.sample(key, (n,)), None)
    low, x = _draws(x, target, model)
    if log_q is None or low is not None:  # (16-bit draws: log q again, from the float32 draws)
        log_q = (_stop_gradient_params(fn, model) if path else model).log_prob(x)
    batch = _shape(model, "batch_shape")
    log_q = jnp.asarray(log_q)
    return low, _lift(fn, x, batch, target), _lift(fn, log_q, batch, target)


# ---------------------------------------------------------------------------------------------
# Monte Carlo estimators.


def forward_kl(key: jax.Array | None, target: Any, model: Any,
               num_samples: int | None = None) -> jax.Array:
    r"""Monte Carlo KL(target || model) from target samples: the maximum-likelihood direction.

    .. math:: \mathrm{KL}(p \,\|\, q) \approx \frac1n \sum_{i=1}^n \bigl(\log p(x_i)
       - \log q(x_i)\bigr), \qquad x_i \sim p.

    Minimising it over the model is maximum likelihood: mass-covering (the model spreads over
    every mode of the target); a Gaussian model's optimum matches the target's mean and
    covariance. Unbiased. Gradients with respect to the target's parameters flow through its
    reparameterised draws (right for Normal/MultivariateNormal, missing a Mixture's weights).

    If ``target`` is an array of samples (shape ``[N, *event]``) instead of a distribution, the
    result is the cross-entropy :math:`\frac1n \sum_i -\log q(x_i) \approx H(p, q)
    = \mathrm{KL}(p \,\|\, q) + H(p)`: it differs from the KL by the target's (unknown) entropy,
    which does not depend on the model, so it has the same gradient and the same minimiser.
    With ``num_samples=None`` all ``N`` rows are used (``key`` may be None); with an int, that
    many rows are drawn uniformly with replacement using ``key`` (a minibatch).

    Args:
      key: a PRNG key (``jax.random.key``), or None for an array target used whole.
      target: a distribution with ``log_prob`` and ``sample`` (see the module docstring), or
        an array of samples.
      model: a distribution with ``log_prob``.
      num_samples: number of draws, a static int (None only for an array target).

    Returns:
      The estimate in nats: a scalar for unbatched distributions.

    References:
      Kullback & Leibler, On Information and Sufficiency, Ann. Math. Statist. 22(1), 1951.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> print(f"{float(estimators.forward_kl(jax.random.key(0), p, q, 100_000)):.2f}")
      0.44
      >>> print(f"{float(jaxdiv.gaussian_kl(p, q)):.4f}")  # the exact value
      0.4431
    """
    fn = "forward_kl"
    model = _adapt(fn, "model", model, sample=False)
    if isinstance(target, (jax.Array, np.ndarray, list, tuple)):
        x = C.as_float(fn, "target", target)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"{fn}: target samples must have a non-empty leading sample axis, "
                             f"got shape {x.shape}")
        if num_samples is not None:
            C.check_key(fn, key)
            idx = jax.random.randint(key, (_num_samples(fn, num_samples),), 0, x.shape[0])
            x = x[idx]
        low, x = _draws(x, model)
        event = _shape(model, "event_shape")  # the array's batch: between samples and event
        batch = None if event is None else x.shape[1:x.ndim - len(event)]
        return _cast_back(_mean(-model.log_prob(_lift(fn, x, batch, model))), low)
    target = _adapt(fn, "target", target, sample=True)
    C.check_key(fn, key)
    low, x = _draws(target.sample(key, (_num_samples(fn, num_samples),)), target, model)
    x = _lift(fn, x, _shape(target, "batch_shape"), model)
    return _cast_back(_mean(target.log_prob(x) - model.log_prob(x)), low)


def reverse_kl(key: jax.Array, target: Any, model: Any, num_samples: int, *,
               gradient: str = "reparam") -> jax.Array:
    r"""Monte Carlo KL(model || target) from reparameterised model samples: the VI direction.

    .. math:: \mathrm{KL}(q \,\|\, p) \approx \frac1n \sum_{i=1}^n \bigl(\log q(x_i)
       - \log p(x_i)\bigr), \qquad x_i = g_\theta(\epsilon_i) \sim q_\theta.

    Minimising it over the model is mode-seeking: a unimodal model locks onto one mode of a
    multimodal target. Only ``target.log_prob`` is needed and it may be unnormalised: with
    :math:`\tilde p = Z p` the estimate is :math:`\mathrm{KL}(q \,\|\, p) - \log Z`, the
    negative ELBO, with the same gradient. A ``Mixture`` model's draws are not
    reparameterised in its logits, so their gradient here is biased (it misses the score term).

    ``gradient`` chooses the estimator of the gradient (the value is the same):

    - ``"reparam"``: differentiate everything, the total derivative through the samples and
      through the model's parameters in :math:`\log q_\theta(x)`. A model with
      ``sample_and_log_prob(key, sample_shape)`` (jaxdiv's Normal and MultivariateNormal)
      gives :math:`\log q` from its noise, the same function of the parameters, cheaper.
    - ``"path"``: the path derivative ("sticking the landing"): the parameters inside
      ``model.log_prob`` are wrapped in ``stop_gradient`` and gradients flow only through the
      samples. This drops the score term :math:`\nabla_\theta \log q_\theta(x)`, whose
      expectation is zero, so the gradient stays unbiased; its variance vanishes when the
      model equals the target (the per-sample gradient is then exactly 0). It needs ``model``
      to be a pytree of its parameters (jaxdiv, numpyro and distrax distributions are).

    Args:
      key: a PRNG key (``jax.random.key``).
      target: a distribution with ``log_prob`` (or a log-density function).
      model: a distribution with ``log_prob`` and reparameterised ``sample``.
      num_samples: number of draws, a static int.
      gradient: ``"reparam"`` or ``"path"`` (static).

    Returns:
      The estimate in nats: a scalar for unbatched distributions.

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014. Roeder, Wu & Duvenaud,
      Sticking the Landing: Simple, Lower-Variance Gradient Estimators for Variational
      Inference, NeurIPS 2017.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> print(f"{float(estimators.reverse_kl(jax.random.key(0), p, q, 100_000)):.2f}")  # KL(q||p)
      1.31
      >>> print(f"{float(jaxdiv.gaussian_kl(q, p)):.4f}")
      1.3069
    """
    fn = "reverse_kl"
    if gradient not in ("reparam", "path"):
        raise ValueError(f"{fn}: gradient must be 'reparam' or 'path', got {gradient!r}")
    target = _adapt(fn, "target", target, sample=False)
    model = _adapt(fn, "model", model, sample=True)
    C.check_key(fn, key)
    low, x, log_q = _model_draws(fn, key, _num_samples(fn, num_samples), target, model,
                                 path=gradient == "path")
    return _cast_back(_mean(log_q - target.log_prob(x)), low)


def js_divergence(key: jax.Array, target: Any, model: Any, num_samples: int) -> jax.Array:
    r"""Monte Carlo Jensen-Shannon divergence between two densities, from both sides.

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathbb{E}_p\Bigl[\log\frac{p}{m}\Bigr]
       + \tfrac12 \mathbb{E}_q\Bigl[\log\frac{q}{m}\Bigr], \qquad m = \tfrac12 (p + q),

    with ``num_samples`` draws from each (independent keys split from ``key``) and the mixture
    in log space, :math:`\log\frac{p}{m} = \log 2 - \operatorname{softplus}(\log q - \log p)`,
    so every term is finite and at most :math:`\log 2`. Symmetric in expectation; the true
    value lies in :math:`[0, \log 2]`.

    Args:
      key: a PRNG key.
      target: a distribution with ``log_prob`` and ``sample``.
      model: a distribution with ``log_prob`` and ``sample``.
      num_samples: number of draws from each, a static int.

    Returns:
      The estimate in nats: a scalar for unbatched distributions.

    References:
      Lin, Divergence Measures Based on the Shannon Entropy, IEEE Trans. Inf. Theory 37(1), 1991.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> print(f"{float(estimators.js_divergence(jax.random.key(0), p, q, 100_000)):.2f}")
      0.13
      >>> print(f"{float(estimators.grid_js(p, q, jnp.linspace(-20.0, 20.0, 4001))):.4f}")
      0.1282
    """
    fn = "js_divergence"
    target = _adapt(fn, "target", target, sample=True)
    model = _adapt(fn, "model", model, sample=True)
    n = _num_samples(fn, num_samples)
    C.check_key(fn, key)
    key_p, key_q = jax.random.split(key)
    xp, xq = target.sample(key_p, (n,)), model.sample(key_q, (n,))
    (low, xp), (_, xq) = _draws(xp, target, model, xq), _draws(xq)
    xp = _lift(fn, xp, _shape(target, "batch_shape"), model)
    xq = _lift(fn, xq, _shape(model, "batch_shape"), target)
    tp = LOG2 - jax.nn.softplus(model.log_prob(xp) - target.log_prob(xp))
    tq = LOG2 - jax.nn.softplus(target.log_prob(xq) - model.log_prob(xq))
    return _cast_back(0.5 * (_mean(tp) + _mean(tq)), low)


def _check_alpha(fn: str, alpha: ArrayLike, batch: tuple[int, ...]) -> jax.Array:
    """A real ``alpha`` broadcasting to ``batch``; non-finite: ValueError if concrete, else
    reported under :func:`jaxdiv.checked`."""
    alpha = C.as_float(fn, "alpha", alpha)
    if not C.broadcasts_to(alpha.shape, batch):
        raise ValueError(f"{fn}: alpha of shape {alpha.shape} does not broadcast to the batch "
                         f"shape {batch}; use jax.vmap over alpha for a sweep")
    if not isinstance(alpha, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(alpha))):
        raise ValueError(f"{fn}: alpha must be finite, got {alpha}")
    C.check_finite(fn, "alpha", alpha)
    return alpha


def _psi(b: jax.Array, ell: jax.Array) -> jax.Array:
    r""":math:`(e^{b\ell} - 1)/b`, equal to :math:`\ell` at b = 0: smooth in b, accurate near 0."""
    z = b * ell
    small = jnp.abs(z) < 1e-3  # series truncation error below z^5/720 < 1.4e-18
    zs = jnp.where(small, z, 0.0)  # double where: neither branch overflows or divides by 0
    series = ell * (1 + zs * (1 / 2 + zs * (1 / 6 + zs * (1 / 24 + zs / 120))))
    return jnp.where(small, series, jnp.expm1(safe(~small, z, 0.0)) / safe(~small, b))


def _weighted_psi(log_w: jax.Array, b: jax.Array, ell: jax.Array) -> jax.Array:
    r""":math:`w\,\psi(b, \ell)` with :math:`w = e^{\log w}`, in log space where it could overflow.

    Where :math:`b\ell > 1`, :math:`e^{b\ell}` may overflow while
    :math:`w e^{b\ell} = e^{\log w + b\ell}` (a term :math:`p^\alpha q^{1-\alpha}`) does not,
    and :math:`w` may have underflowed to 0 (0 times inf would be NaN); there
    :math:`(e^{\log w + b\ell} - w)/b` has no cancellation to fear. Elsewhere ``_psi``.
    """
    z = b * ell
    far = z > 1
    w = jnp.exp(log_w)
    near = w * _psi(b, jnp.where(far, 0.0, ell))
    away = (jnp.exp(jnp.where(far, log_w + z, 0.0)) - w) / jnp.where(far, b, 1.0)
    return jnp.where(far, away, near)


def _alpha_core(log_p: jax.Array, log_q: jax.Array, alpha: jax.Array) -> jax.Array:
    r"""Discrete :math:`(1 - \sum_i p_i^\alpha q_i^{1-\alpha}) / (\alpha (1 - \alpha))` over axis 0.

    ``log_p``, ``log_q`` are normalised log-probabilities (``-inf`` for zeros). With
    :math:`\ell = \log p - \log q` and the exact rewritings (using :math:`\sum p = \sum q = 1`)

    .. math:: D_\alpha = -\frac{\sum_i q_i\, \psi(\alpha, \ell_i)}{1 - \alpha}
       = \frac{\sum_i p_i\, \psi(\alpha - 1, \ell_i)}{\alpha},
       \qquad \psi(b, \ell) = \frac{e^{b \ell} - 1}{b},

    the first is used for :math:`\alpha < \tfrac12` and the second otherwise, so nothing is
    divided by a small number: the value and its derivative in :math:`\alpha` are continuous
    through :math:`\alpha = 0` (KL(q || p)) and :math:`\alpha = 1` (KL(p || q)). Entries with
    :math:`p_i = q_i = 0` are skipped; the infinite :math:`\ell` of an entry where only one
    vanishes is taken at its limit.
    """
    mp, mq = log_p != -jnp.inf, log_q != -jnp.inf  # NaN stays in: NaN in, NaN out
    lp, lq = safe(mp, log_p, 0.0), safe(mq, log_q, 0.0)
    ell = jnp.where(mp & mq, lp - lq, 0)
    p, q = jnp.where(mp, jnp.exp(lp), 0), jnp.where(mq, jnp.exp(lq), 0)
    lo = alpha < 0.5  # which form; the other one is zeroed (no inf in a discarded branch)
    a = jnp.where(lo, alpha, 0.0)  # form 1; p = 0 < q has q psi(a, -inf) = -q/a (a > 0)
    t1 = jnp.where(mp, _weighted_psi(lq, a, ell),
                   jnp.where(a > 0, -q / jnp.where(a > 0, a, 1.0), -jnp.inf))
    d1 = -jnp.sum(jnp.where(mq & lo, t1, 0), axis=0) / (1 - a)
    b = jnp.where(lo, 0.0, alpha - 1)  # form 2; q = 0 < p has p psi(b, +inf) = -p/b (b < 0)
    t2 = jnp.where(mq, _weighted_psi(lp, b, ell),
                   jnp.where(b < 0, -p / jnp.where(b < 0, b, -1.0), jnp.inf))
    d2 = jnp.sum(jnp.where(mp & ~lo, t2, 0), axis=0) / (1 + b)
    return jnp.where(lo, d1, d2)


def alpha_divergence(key: jax.Array, target: Any, model: Any, num_samples: int,
                     alpha: ArrayLike) -> jax.Array:
    r"""Monte Carlo α-divergence D_α(target || model), self-normalised, through model samples.

    .. math:: D_\alpha(p \,\|\, q) = \frac{1 - \int p^\alpha q^{1-\alpha}}{\alpha (1 - \alpha)},
       \qquad \int p^\alpha q^{1-\alpha} = \mathbb{E}_q\bigl[w^\alpha\bigr], \quad w = p/q,

    the same convention as the discrete ``alpha_divergence(p, q, alpha)`` (Minka 2005; Cichocki
    & Amari 2010; Amari's :math:`\alpha' = 2\alpha - 1`): :math:`\alpha \to 1` is KL(p || q)
    (mass-covering, like ``forward_kl``), :math:`\alpha \to 0` is KL(q || p) (mode-seeking,
    like ``reverse_kl``), :math:`\alpha = \tfrac12` is :math:`4(1 - \int\sqrt{pq})`.

    With reparameterised draws :math:`x_i \sim q` and log-weights
    :math:`\ell_i = \log p(x_i) - \log q(x_i)`, the weights are self-normalised,
    :math:`\bar w_i = e^{\ell_i} / \frac1n\sum_j e^{\ell_j}` (log-sum-exp), and the estimate is
    the discrete α-divergence between the distributions :math:`\bar w_i / n` and :math:`1/n`
    on the draws:

    .. math:: \hat D_\alpha = \frac{1 - \frac1n\sum_i \bar w_i^{\,\alpha}}{\alpha(1-\alpha)},
       \qquad \hat D_0 = -\tfrac1n \textstyle\sum_i \log \bar w_i, \qquad
       \hat D_1 = \tfrac1n \textstyle\sum_i \bar w_i \log \bar w_i.

    Self-normalising makes the estimate continuous and smooth in α through 0 and 1 (with the
    raw mean of :math:`w^\alpha`, :math:`\frac1n\sum_i w_i \ne 1` makes it blow up as
    α → 1), never negative, and invariant to the target's normalising constant (an
    unnormalised ``log_prob`` is fine). It is consistent with an :math:`O(1/n)` bias:
    :math:`\hat D_0` is ``reverse_kl`` on the same draws plus
    :math:`\log \frac1n\sum_i w_i \to 0`, and :math:`\hat D_1` is the self-normalised
    importance-sampling estimate of KL(p || q). For α outside [0, 1] the weights' moments must
    be finite (the target's tails lighter than the model's for α > 1) or the variance is
    infinite. ``alpha`` may be traced: ``jax.vmap`` over it for a sweep.

    Args:
      key: a PRNG key.
      target: a distribution with ``log_prob`` (possibly unnormalised).
      model: a distribution with ``log_prob`` and reparameterised ``sample``.
      num_samples: number of draws, a static int.
      alpha: the order, a finite real scalar (or broadcastable to the batch shape).

    Returns:
      The estimate in nats: a scalar for unbatched distributions.

    References:
      Minka, Divergence measures and message passing, Microsoft Research TR-2005-173, 2005.
      Cichocki & Amari, Families of Alpha- Beta- and Gamma-Divergences, Entropy 12(6), 2010.
      Hernández-Lobato et al., Black-Box α-Divergence Minimization, ICML 2016.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> print(f"{float(estimators.alpha_divergence(jax.random.key(0), p, q, 100_000, 0.5)):.2f}")
      0.60
      >>> print(f"{float(estimators.grid_alpha(p, q, jnp.linspace(-20.0, 20.0, 4001), 0.5)):.4f}")
      0.5968
    """
    fn = "alpha_divergence"
    target = _adapt(fn, "target", target, sample=False)
    model = _adapt(fn, "model", model, sample=True)
    n = _num_samples(fn, num_samples)
    C.check_key(fn, key)
    low, x, log_q = _model_draws(fn, key, n, target, model)
    ell = jnp.asarray(target.log_prob(x) - log_q)
    alpha = _check_alpha(fn, alpha, ell.shape[1:])
    dtype = jnp.result_type(ell, alpha)
    out = _alpha_core(ell - logsumexp(ell, axis=0),  # self-normalised: sums to 1 over the draws
                      jnp.full_like(ell, -math.log(n)), alpha.astype(compute_dtype(dtype)))
    return _cast_back(out.astype(dtype), low, alpha)


# ---------------------------------------------------------------------------------------------
# Quadrature on a 1-D grid.


def _grid_logits(fn: str, target: Any, model: Any, grid: ArrayLike):
    """log(trapezoid weight) + log density at each grid point, for target and model.

    Returns (the 16-bit dtype to cast the result back to, or None; the two logits), computed
    in float32 for a 16-bit grid or distributions.
    """
    target = _adapt(fn, "target", target, sample=False)
    model = _adapt(fn, "model", model, sample=False)
    grid = C.as_float(fn, "grid", grid)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"{fn}: grid must be 1-D with at least 2 points, got shape "
                         f"{grid.shape}")
    low, grid = _draws(grid, target, model)
    C.check_finite(fn, "grid", grid)
    dx = jnp.diff(grid)
    C.check_positive(fn, "diff(grid)", dx)
    log_w = jnp.log(0.5 * jnp.concatenate([dx[:1], dx[1:] + dx[:-1], dx[-1:]]))
    out = []
    for name, dist in (("target", target), ("model", model)):
        batch = getattr(dist, "batch_shape", ())  # batched jaxdiv distributions: one per entry
        lp = jnp.asarray(dist.log_prob(grid.reshape(grid.shape + (1,) * len(batch))))
        if lp.ndim < 1 or lp.shape[0] != grid.shape[0]:
            raise ValueError(f"{fn}: {name}.log_prob(grid) has shape {lp.shape}; expected "
                             f"({grid.shape[0]}, ...) for a grid of shape {grid.shape}")
        out.append(log_w.reshape(log_w.shape + (1,) * (lp.ndim - 1)) + lp)
    # Batch axes after the grid axis broadcast as numpy's, aligned from the right: the missing
    # ones go next to the grid axis, so batches (3, 1) and (3,) give a (3, 3) table.
    nd = max(o.ndim for o in out)
    return low, *(o.reshape(o.shape[:1] + (1,) * (nd - o.ndim) + o.shape[1:]) for o in out)


def grid_kl(target: Any, model: Any, grid: ArrayLike) -> jax.Array:
    r"""KL(target || model) between 1-D densities by the trapezoid rule on ``grid``.

    .. math:: \mathrm{KL}(p \,\|\, q) \approx \sum_i P_i \log\frac{P_i}{Q_i}, \qquad
       P_i = \frac{\omega_i\, p(x_i)}{\sum_j \omega_j\, p(x_j)}, \quad
       Q_i = \frac{\omega_i\, q(x_i)}{\sum_j \omega_j\, q(x_j)},

    with trapezoid weights :math:`\omega_i`, computed as ``kl_divergence_with_logits`` of
    :math:`\log\omega + \log p` and :math:`\log\omega + \log q`. Deterministic and exact for
    the distributions restricted to the grid; the densities may be unnormalised. Zero density
    contributes 0 where the target vanishes and +inf where only the model does.

    Args:
      target: an object with ``log_prob`` or a log-density function; ``log_prob(grid)`` has
        shape ``[n, ...]`` (a distribution with a ``batch_shape`` gets the grid as
        ``[n, 1, ..., 1]``, so batched jaxdiv distributions give one value per batch entry).
      model: the same for the model.
      grid: strictly increasing finite points, shape ``[n]`` with ``n >= 2``.

    Returns:
      The divergence in nats (a scalar for unbatched densities).

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> grid = jnp.linspace(-20.0, 20.0, 4001)
      >>> print(f"{float(estimators.grid_kl(p, q, grid)):.4f}")
      0.4431
      >>> print(f"{float(jaxdiv.gaussian_kl(p, q)):.4f}")
      0.4431
    """
    low, lp, lq = _grid_logits("grid_kl", target, model, grid)
    return _cast_back(kl_divergence_with_logits(lp, lq, axis=0), low)


def grid_js(target: Any, model: Any, grid: ArrayLike) -> jax.Array:
    r"""Jensen-Shannon divergence between 1-D densities by the trapezoid rule on ``grid``.

    ``js_divergence_with_logits`` of the quadrature-normalised densities (see :func:`grid_kl`):
    within :math:`[0, \log 2]`, :math:`\log 2` for disjoint supports, finite gradients.

    Args:
      target: an object with ``log_prob`` or a log-density function.
      model: the same for the model.
      grid: strictly increasing finite points, shape ``[n]`` with ``n >= 2``.

    Returns:
      The divergence in nats (a scalar for unbatched densities).

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> print(f"{float(estimators.grid_js(p, q, jnp.linspace(-20.0, 20.0, 4001))):.4f}")
      0.1282
      >>> print(f"{float(estimators.grid_js(p, p, jnp.linspace(-20.0, 20.0, 4001))):.4f}")
      0.0000
    """
    low, lp, lq = _grid_logits("grid_js", target, model, grid)
    return _cast_back(js_divergence_with_logits(lp, lq, axis=0), low)


def grid_alpha(target: Any, model: Any, grid: ArrayLike, alpha: ArrayLike) -> jax.Array:
    r"""α-divergence D_α(target || model) between 1-D densities by the trapezoid rule.

    .. math:: D_\alpha(p \,\|\, q) \approx \frac{1 - \sum_i P_i^\alpha Q_i^{1-\alpha}}
       {\alpha(1 - \alpha)}

    on the quadrature-normalised densities of :func:`grid_kl`, in the convention of the
    discrete ``alpha_divergence`` and of :func:`alpha_divergence`: α → 1 gives ``grid_kl``
    (KL(p || q)), α → 0 gives KL(q || p), continuously and differentiably in α (the value at
    exactly 0 and 1 is the limit). ``alpha`` may be traced (``jax.vmap`` over it).

    Args:
      target: an object with ``log_prob`` or a log-density function.
      model: the same for the model.
      grid: strictly increasing finite points, shape ``[n]`` with ``n >= 2``.
      alpha: the order, a finite real scalar.

    Returns:
      The divergence in nats (a scalar for unbatched densities).

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv import estimators
      >>> p = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(1.0))
      >>> q = jaxdiv.Normal(jnp.float32(1.0), jnp.float32(2.0))
      >>> grid = jnp.linspace(-20.0, 20.0, 4001)
      >>> print(f"{float(estimators.grid_alpha(p, q, grid, 1.0)):.4f}")  # alpha = 1: KL(p || q)
      0.4431
      >>> print(f"{float(estimators.grid_alpha(p, q, grid, 0.5)):.4f}")
      0.5968
    """
    fn = "grid_alpha"
    low, lp, lq = _grid_logits(fn, target, model, grid)
    alpha = _check_alpha(fn, alpha, lp.shape[1:])
    dtype = jnp.result_type(lp, lq, alpha)
    cdt = compute_dtype(dtype)
    lp, lq = jax.nn.log_softmax(lp.astype(cdt), axis=0), jax.nn.log_softmax(lq.astype(cdt), axis=0)
    return _cast_back(_alpha_core(lp, lq, alpha.astype(cdt)).astype(dtype), low, alpha)
