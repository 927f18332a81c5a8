r"""Continuous distributions as pytrees: ``Normal``, ``MultivariateNormal`` and ``Mixture``.

Frozen dataclasses registered with ``jax.tree_util.register_dataclass``: they pass through
``jit``, ``vmap``, ``grad``, ``lax.scan`` and optax like any pytree of arrays. The protocol the
estimators in :mod:`jaxdiv.estimators` rely on: ``log_prob(x)`` maps ``x`` of shape
``sample_shape + batch_shape + event_shape`` to ``sample_shape + batch_shape``;
``sample(key, sample_shape=())`` returns ``sample_shape + batch_shape + event_shape``. There are
also ``mean()``, ``variance()``/``covariance()`` and, where closed, ``entropy()``. ``Normal`` and
``MultivariateNormal`` sample by reparameterisation, so gradients reach their parameters.

Checks. Shapes are checked whenever an object is built (also under ``jit``). Values are checked
at construction only when given as Python numbers, lists or NumPy arrays: JAX and optax rebuild
distributions from leaves that are not parameters (the cotangent from ``jax.grad``, an
optimiser's zero moments, signed updates), where a negative "scale" is legitimate. JAX-array
values are checked under :func:`jaxdiv.checked` (``checkify``, in ``log_prob``, ``sample`` and
the moments). Structure specs skip every check and are kept as they are: fields that are not
arrays (``None``, ``object()``, abstract values, as JAX builds; ``in_axes=Normal(0, None)``) or
that are all non-negative Python ints (``in_axes=Normal(0, 0)``, ``jax.tree.map(lambda _: 0,
d)``); so write parameters as floats, ``Normal(0.0, 1.0)``. A negative int makes them
parameters again: ``Normal(0, -1)`` is rejected as ``Normal(0.0, -1.0)`` is (an
axis spec never needs it: write ``Normal(0, 0)`` or the axis counted from the front). Empty
batches are fine; an empty event (a d = 0 ``MultivariateNormal``, a ``Mixture`` of K = 0
components) raises ``ValueError``. Inputs sharded over an Explicit mesh axis are gathered
before the triangular solves of ``MultivariateNormal`` (see ``replicated``). 16-bit parameters
compute in float32; results are cast back.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import checkify
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv import _numerics as _nx
from jaxdiv._numerics import compute_dtype

__all__ = ["Mixture", "MultivariateNormal", "Normal"]

_LOG_2PI = math.log(2 * math.pi)
_LITERAL = (bool, int, float, complex, np.ndarray, np.generic, list, tuple)  # typed by the user


def _fields(obj: Any, cls: str, names: tuple[str, ...]) -> tuple[list, list] | None:
    """Converts literal fields to float arrays in place.

    Returns (the arrays, each literal as a float64 NumPy copy or None for a JAX array), or None
    when a field is a structure placeholder (``None``, ``object()``, an abstract value). The
    NumPy copy is what gets value-checked: under ``jit`` the converted literal is a tracer.
    """
    raw = [getattr(obj, n) for n in names]
    for n, v in zip(names, raw, strict=True):
        if isinstance(v, (str, bytes)):
            raise TypeError(f"{cls}: argument {n} must be a real array, got {type(v).__name__}")
    if not all(isinstance(v, (jax.Array, *_LITERAL)) for v in raw) or all(
            type(v) is int and v >= 0 for v in raw):  # an axis spec, in_axes=Normal(0, 0)
        return None
    out, literal = [], []
    for n, v in zip(names, raw, strict=True):
        lit = None
        if isinstance(v, _LITERAL):
            v, lit = C.as_float(cls, n, v), np.asarray(v, dtype=np.float64)
            object.__setattr__(obj, n, v)
        out.append(v)
        literal.append(lit)
    return out, literal


def _check_positive(fn: str, name: str, x: jax.Array) -> None:
    """Opt-in value check ``x > 0`` (under :func:`jaxdiv.checked`); empty batches pass."""
    if C.checking():
        checkify.debug_check(jnp.all(x > 0), f"{fn}: argument {name} must be > 0 (smallest "
                             "{m})", m=jnp.min(x, initial=jnp.inf))


def _floats(fn: str, **xs: Any) -> tuple[Any, tuple[jax.Array, ...]]:
    """Float arrays promoted to one dtype; returns (result dtype, arrays in compute dtype)."""
    arrs = [C.as_float(fn, n, v) for n, v in xs.items()]
    dtype = jnp.result_type(*arrs)
    cdt = compute_dtype(dtype)
    return dtype, tuple(a.astype(cdt) for a in arrs)


def _sample_shape(fn: str, sample_shape: Any) -> tuple[int, ...]:
    """Normalises a static ``sample_shape`` (an int or a tuple of ints)."""
    if isinstance(sample_shape, (int, np.integer)):
        sample_shape = (sample_shape,)
    try:  # operator.index: ints, not floats (2.5) nor the characters of a string ("3")
        shape = tuple(operator.index(s) for s in sample_shape)
    except (TypeError, jax.errors.ConcretizationTypeError) as err:
        raise TypeError(f"{fn}: sample_shape must be a static int or tuple of ints, got "
                        f"{sample_shape!r}") from err
    if any(s < 0 for s in shape):
        raise ValueError(f"{fn}: sample_shape {shape} has negative entries")
    return shape


def _broadcast(fn: str, names: tuple[str, str], a: tuple, b: tuple) -> tuple[int, ...]:
    try:
        return tuple(jnp.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError as err:
        raise ValueError(f"{fn}: batch shapes of {names[0]} {tuple(a)} and {names[1]} "
                         f"{tuple(b)} do not broadcast") from err


def replicated(*xs: jax.Array) -> tuple[jax.Array, ...]:
    """The arrays gathered onto every device when they are sharded over an Explicit mesh axis.

    ``jax.sharding.reshard(x, P())``: the derivative of a batched triangular solve (and a
    reshape that merges a sharded axis) does not accept Explicit-sharded operands in this JAX,
    so the Gaussian code gathers them first. Other arrays are returned as they are.
    """
    return tuple(_nx.replicated(x) for x in xs)


def _solve_lower(tril: jax.Array, v: jax.Array) -> jax.Array:
    """``tril^{-1} v`` for ``tril`` of shape ``B + (d, d)`` and ``v`` of shape ``S + (d,)``.

    The leading axes of ``v`` beyond the broadcast batch go into the columns of one batched
    triangular solve, so a single factor serves all the samples without being copied.
    """
    tril, v = replicated(tril, v)
    d = tril.shape[-1]
    full = jnp.broadcast_shapes(v.shape[:-1], tril.shape[:-2])
    n_extra = len(full) - (tril.ndim - 2)
    lead, batch = full[:n_extra], full[n_extra:]
    m = math.prod(lead)
    cols = jnp.broadcast_to(v, (*full, d)).reshape((m, *batch, d))
    cols = jnp.moveaxis(cols, 0, -1)  # batch + (d, m)
    z = solve_triangular(jnp.broadcast_to(tril, (*batch, d, d)), cols, lower=True)
    return jnp.moveaxis(z, -1, 0).reshape((*full, d))


def _mvn_log_prob(z: jax.Array, diag: jax.Array) -> jax.Array:
    """-|z|^2 / 2 - sum log L_ii - d log(2 pi) / 2 for standardised ``z`` of shape [..., d]."""
    d = z.shape[-1]
    return -0.5 * jnp.sum(z * z, axis=-1) - jnp.sum(jnp.log(diag), axis=-1) - 0.5 * d * _LOG_2PI


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Normal:
    r"""Univariate normal distributions, batched by the broadcast shape of ``loc`` and ``scale``.

    .. math:: \log p(x) = -\frac{(x - \mu)^2}{2 \sigma^2} - \log \sigma - \tfrac12 \log 2\pi,
       \qquad H = \tfrac12 \log(2 \pi e \sigma^2).

    Events are scalars; ``batch_shape = broadcast(loc.shape, scale.shape)``. Samples are
    reparameterised, ``x = loc + scale * eps`` with ``eps ~ N(0, 1)``: gradients flow to
    ``loc`` and ``scale``.

    Attributes:
      loc: the mean :math:`\mu`, any shape.
      scale: the standard deviation :math:`\sigma > 0`, broadcast-compatible with ``loc``.

    Raises:
      ValueError: if the shapes do not broadcast, or if a literal (Python float, list, NumPy)
        ``scale`` is not positive. JAX-array scales are checked under :func:`jaxdiv.checked`.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> d = jaxdiv.Normal(jnp.float32(0.0), jnp.float32(2.0))
      >>> print(f"{float(d.log_prob(0.0)):.4f} {float(d.entropy()):.4f}")
      -1.6121 2.1121
      >>> x = d.sample(jax.random.key(0), (100_000,))
      >>> print(x.shape, f"{float(x.std()):.2f}")
      (100000,) 2.00
    """

    loc: jax.Array
    scale: jax.Array

    def __post_init__(self) -> None:
        got = _fields(self, "Normal", ("loc", "scale"))
        if got is None:
            return
        (loc, scale), (_, lit) = got
        _broadcast("Normal", ("loc", "scale"), loc.shape, scale.shape)
        if lit is not None and not np.all(lit > 0):
            raise ValueError(f"Normal: scale must be > 0, got {np.min(lit)} (scale of shape "
                             f"{scale.shape})")

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(jnp.broadcast_shapes(jnp.shape(self.loc), jnp.shape(self.scale)))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return ()

    def _params(self, fn: str, **x: Any) -> tuple[Any, jax.Array, jax.Array]:
        """(dtype, loc, scale) in the compute dtype, and ``x`` if given."""
        dtype, (loc, scale, *rest) = _floats(fn, loc=self.loc, scale=self.scale, **x)
        _check_positive(fn, "scale", scale)
        return (dtype, loc, scale, *rest)

    def log_prob(self, x: ArrayLike) -> jax.Array:
        """Log-density of ``x`` (shape broadcast-compatible with ``batch_shape``)."""
        dtype, loc, scale, x = self._params("Normal.log_prob", x=x)
        _broadcast("Normal.log_prob", ("x", "the distribution"), x.shape, self.batch_shape)
        z = (x - loc) / scale
        return (-0.5 * z * z - jnp.log(scale) - 0.5 * _LOG_2PI).astype(dtype)

    def _draw(self, fn: str, key: jax.Array, sample_shape: Any):
        """(dtype, draws x = loc + scale * eps in the compute dtype, eps, scale)."""
        C.check_key(fn, key)
        shape = _sample_shape(fn, sample_shape) + self.batch_shape
        dtype, loc, scale = self._params(fn)
        eps = jax.random.normal(key, shape, dtype=loc.dtype)
        return dtype, loc + scale * eps, eps, scale

    def sample(self, key: jax.Array, sample_shape: Any = ()) -> jax.Array:
        """Reparameterised draws of shape ``sample_shape + batch_shape``."""
        dtype, x, _, _ = self._draw("Normal.sample", key, sample_shape)
        return x.astype(dtype)

    def sample_and_log_prob(self, key: jax.Array,
                            sample_shape: Any = ()) -> tuple[jax.Array, jax.Array]:
        r"""``(x, log_prob(x))`` for reparameterised draws, ``log_prob`` from the noise.

        With :math:`x = \mu + \sigma \epsilon`, :math:`\log q(x) = -\tfrac12 \epsilon^2
        - \log \sigma - \tfrac12 \log 2\pi`: the same function of the parameters as
        ``log_prob(sample(key))`` (values and gradients), without recovering
        :math:`\epsilon = (x - \mu) / \sigma`. As ``distrax``'s method of the same name.
        """
        dtype, x, eps, scale = self._draw("Normal.sample_and_log_prob", key, sample_shape)
        log_prob = -0.5 * eps * eps - jnp.log(scale) - 0.5 * _LOG_2PI
        return x.astype(dtype), log_prob.astype(dtype)

    def mean(self) -> jax.Array:
        dtype, loc, _ = self._params("Normal.mean")
        return jnp.broadcast_to(loc, self.batch_shape).astype(dtype)

    def variance(self) -> jax.Array:
        dtype, _, scale = self._params("Normal.variance")
        return jnp.broadcast_to(scale * scale, self.batch_shape).astype(dtype)

    def entropy(self) -> jax.Array:
        r"""Differential entropy :math:`\tfrac12 (1 + \log 2\pi) + \log \sigma`, in nats."""
        dtype, _, scale = self._params("Normal.entropy")
        h = 0.5 * (1 + _LOG_2PI) + jnp.log(scale)
        return jnp.broadcast_to(h, self.batch_shape).astype(dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MultivariateNormal:
    r"""Multivariate normal distributions parametrised by a Cholesky factor of the covariance.

    .. math:: \log p(x) = -\tfrac12 \lVert L^{-1}(x - \mu) \rVert^2 - \sum_i \log L_{ii}
       - \tfrac{d}{2} \log 2\pi, \qquad \Sigma = L L^\top,
       \qquad H = \tfrac{d}{2}(1 + \log 2\pi) + \sum_i \log L_{ii}.

    Only the lower triangle of ``scale_tril`` is read (the upper one is ignored and gets zero
    gradient); its diagonal must be positive. Mahalanobis terms use triangular solves, never an
    inverse. Samples are reparameterised, ``x = loc + L eps``. Build one from a covariance
    matrix with :meth:`from_covariance`.

    Attributes:
      loc: the mean, shape ``[..., d]``.
      scale_tril: lower-triangular :math:`L`, shape ``[..., d, d]``; the batch shapes of
        ``loc[..., 0]`` and ``scale_tril[..., 0, 0]`` broadcast to ``batch_shape``.

    Raises:
      ValueError: for mismatched event sizes, non-square ``scale_tril``, batch shapes that do
        not broadcast, or a literal (Python, NumPy) ``scale_tril`` with a non-positive diagonal.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> d = jaxdiv.MultivariateNormal(jnp.zeros(2), jnp.array([[1.0, 0.0], [0.5, 1.0]]))
      >>> print(np.asarray(d.covariance()).round(4))  # scale_tril @ scale_tril.T
      [[1.   0.5 ]
       [0.5  1.25]]
      >>> print(f"{float(d.log_prob(jnp.zeros(2))):.4f}")
      -1.8379
    """

    loc: jax.Array
    scale_tril: jax.Array

    def __post_init__(self) -> None:
        fn = "MultivariateNormal"
        got = _fields(self, fn, ("loc", "scale_tril"))
        if got is None:
            return
        (loc, tril), (_, lit) = got
        if loc.ndim < 1:
            raise ValueError(f"{fn}: loc must have an event axis (shape [..., d]), got shape ()")
        if tril.ndim < 2 or tril.shape[-1] != tril.shape[-2]:
            raise ValueError(f"{fn}: scale_tril must be square matrices (shape [..., d, d]), "
                             f"got shape {tril.shape}")
        if loc.shape[-1] != tril.shape[-1]:
            raise ValueError(f"{fn}: loc of shape {loc.shape} and scale_tril of shape "
                             f"{tril.shape} have different event sizes ({loc.shape[-1]} vs "
                             f"{tril.shape[-1]})")
        if loc.shape[-1] == 0:
            raise ValueError(f"{fn}: loc of shape {loc.shape} and scale_tril of shape "
                             f"{tril.shape} have event size d = 0; need d >= 1")
        _broadcast(fn, ("loc", "scale_tril"), loc.shape[:-1], tril.shape[:-2])
        if lit is not None:
            diag = np.diagonal(lit, axis1=-2, axis2=-1)
            if not np.all(diag > 0):
                raise ValueError(f"{fn}: the diagonal of scale_tril must be > 0, got "
                                 f"{np.min(diag)} (scale_tril of shape {tril.shape})")

    @classmethod
    def from_covariance(cls, loc: ArrayLike, covariance: ArrayLike) -> MultivariateNormal:
        r"""The normal with mean ``loc`` and covariance ``covariance`` (Cholesky-factorised).

        Only the lower triangle of ``covariance`` is read (the upper is taken as its mirror;
        ``jnp.linalg.cholesky`` alone would average the two). A concrete (non-traced)
        covariance that is not positive definite raises ``ValueError``; under ``jit`` the
        factor is NaN.

        Args:
          loc: the mean, shape ``[..., d]``.
          covariance: symmetric positive definite matrices, shape ``[..., d, d]``.
        """
        fn = "MultivariateNormal.from_covariance"
        cov = C.as_float(fn, "covariance", covariance)
        if cov.ndim < 2 or cov.shape[-1] != cov.shape[-2]:
            raise ValueError(f"{fn}: covariance must be square matrices (shape [..., d, d]), "
                             f"got shape {cov.shape}")
        dtype, (cov,) = _floats(fn, covariance=cov)
        cov = jnp.tril(cov) + jnp.swapaxes(jnp.tril(cov, -1), -1, -2)
        tril = jnp.linalg.cholesky(cov).astype(dtype)
        if not isinstance(tril, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(tril))):
            raise ValueError(f"{fn}: covariance of shape {cov.shape} is not positive definite")
        return cls(C.as_float(fn, "loc", loc), tril)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(jnp.broadcast_shapes(jnp.shape(self.loc)[:-1],
                                          jnp.shape(self.scale_tril)[:-2]))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(jnp.shape(self.loc)[-1:])

    def _params(self, fn: str, **x: Any) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
        """(dtype, loc, lower triangle of scale_tril, its diagonal), and ``x`` if given."""
        dtype, (loc, tril, *rest) = _floats(fn, loc=self.loc, scale_tril=self.scale_tril, **x)
        tril = jnp.tril(tril)
        diag = jnp.diagonal(tril, 0, -2, -1)
        _check_positive(fn, "diagonal of scale_tril", diag)
        return (dtype, loc, tril, diag, *rest)

    def log_prob(self, x: ArrayLike) -> jax.Array:
        """Log-density of ``x`` of shape ``[..., d]``; returns ``x.shape[:-1]`` broadcast."""
        fn = "MultivariateNormal.log_prob"
        x = C.as_float(fn, "x", x)
        d = self.event_shape[0]
        if x.ndim < 1 or x.shape[-1] != d:
            raise ValueError(f"{fn}: x of shape {x.shape} does not end with the event size {d}")
        _broadcast(fn, ("x", "the distribution"), x.shape[:-1], self.batch_shape)
        dtype, loc, tril, diag, x = self._params(fn, x=x)
        z = _solve_lower(tril, x - loc)
        return _mvn_log_prob(z, diag).astype(dtype)

    def _draw(self, fn: str, key: jax.Array, sample_shape: Any):
        """(dtype, draws x = loc + L eps in the compute dtype, eps, diagonal of L)."""
        C.check_key(fn, key)
        shape = _sample_shape(fn, sample_shape) + self.batch_shape + self.event_shape
        dtype, loc, tril, diag = self._params(fn)
        eps = jax.random.normal(key, shape, dtype=loc.dtype)
        x = jnp.einsum("...ij,...j->...i", tril, eps, precision=lax.Precision.HIGHEST)
        return dtype, loc + x, eps, diag

    def sample(self, key: jax.Array, sample_shape: Any = ()) -> jax.Array:
        """Reparameterised draws of shape ``sample_shape + batch_shape + (d,)``."""
        dtype, x, _, _ = self._draw("MultivariateNormal.sample", key, sample_shape)
        return x.astype(dtype)

    def sample_and_log_prob(self, key: jax.Array,
                            sample_shape: Any = ()) -> tuple[jax.Array, jax.Array]:
        r"""``(x, log_prob(x))`` for reparameterised draws, ``log_prob`` from the noise.

        With :math:`x = \mu + L \epsilon`, :math:`\log q(x) = -\tfrac12 \|\epsilon\|^2 -
        \sum_i \log L_{ii} - \tfrac d2 \log 2\pi`: the same function of the parameters as
        ``log_prob(sample(key))``, without the triangular solve.
        """
        dtype, x, eps, diag = self._draw("MultivariateNormal.sample_and_log_prob", key,
                                         sample_shape)
        return x.astype(dtype), _mvn_log_prob(eps, diag).astype(dtype)

    def mean(self) -> jax.Array:
        dtype, loc, *_ = self._params("MultivariateNormal.mean")
        return jnp.broadcast_to(loc, self.batch_shape + self.event_shape).astype(dtype)

    def covariance(self) -> jax.Array:
        r"""The covariance :math:`L L^\top`, shape ``batch_shape + (d, d)``."""
        dtype, _, tril, _ = self._params("MultivariateNormal.covariance")
        cov = jnp.matmul(tril, jnp.swapaxes(tril, -1, -2), precision=lax.Precision.HIGHEST)
        return jnp.broadcast_to(cov, self.batch_shape + self.event_shape * 2).astype(dtype)

    def variance(self) -> jax.Array:
        """The marginal variances (diagonal of the covariance), shape ``batch_shape + (d,)``."""
        dtype, _, tril, _ = self._params("MultivariateNormal.variance")
        var = jnp.sum(tril * tril, axis=-1)
        return jnp.broadcast_to(var, self.batch_shape + self.event_shape).astype(dtype)

    def entropy(self) -> jax.Array:
        """Differential entropy in nats, shape ``batch_shape``."""
        dtype, _, _, diag = self._params("MultivariateNormal.entropy")
        h = 0.5 * diag.shape[-1] * (1 + _LOG_2PI) + jnp.sum(jnp.log(diag), axis=-1)
        return jnp.broadcast_to(h, self.batch_shape).astype(dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Mixture:
    r"""Finite mixture of normals: ``components[k]`` with weight ``softmax(logits)[k]``.

    .. math:: p(x) = \sum_k w_k\, p_k(x), \qquad w = \mathrm{softmax}(\text{logits}), \qquad
       \log p(x) = \operatorname{logsumexp}_k \bigl(\log w_k + \log p_k(x)\bigr).

    ``components`` is one batched :class:`Normal` or :class:`MultivariateNormal` whose leading
    batch axis indexes the ``K`` components. ``logits`` has shape ``(K,)``, or ``(K,) + L`` for
    batched mixtures, ``L`` broadcasting (right-aligned) with the components' other batch axes.
    A logit of :math:`-\infty` removes a component. ``mean()`` and ``variance()`` /
    ``covariance()`` are exact (law of total variance), :math:`m = \sum_k w_k \mu_k` and
    :math:`\Sigma = \sum_k w_k (\Sigma_k + (\mu_k - m)(\mu_k - m)^\top)`: the forward-KL
    (maximum likelihood) optimum of a single-Gaussian fit. No closed-form entropy.

    Sampling draws a component index from the categorical weights, then a point from that
    component (all K are drawn, one is kept). Given the index the point is reparameterised, so
    gradients reach the components' parameters, but **not the logits**: the discrete draw is
    not differentiable and the gradient of a sample with respect to ``logits`` is zero. Learn
    the weights through ``log_prob`` (e.g. ``forward_kl``), or with a score-function or
    relaxed estimator.

    Attributes:
      logits: unnormalised log-weights, shape ``(K,)`` or ``(K,) + L``.
      components: a ``Normal`` or ``MultivariateNormal`` with batch shape ``(K,) + B``.

    Raises:
      TypeError: if ``components`` is not a ``Normal`` or ``MultivariateNormal``.
      ValueError: if ``logits`` and the components disagree on ``K`` or do not broadcast.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> components = jaxdiv.Normal(jnp.array([-2.0, 2.0]), jnp.array([0.6, 0.6]))
      >>> mix = jaxdiv.Mixture(jnp.zeros(2), components)  # equal weights
      >>> print(f"{float(mix.mean()):.4f} {float(jnp.sqrt(mix.variance())):.4f}")
      0.0000 2.0881
      >>> print(f"{float(mix.log_prob(2.0)):.4f}")
      -1.1013
    """

    logits: jax.Array
    components: Normal | MultivariateNormal

    def __post_init__(self) -> None:
        fn = "Mixture"
        comps = self.components
        if comps is None:
            return
        if not isinstance(comps, (Normal, MultivariateNormal)):
            raise TypeError(f"{fn}: components must be a batched Normal or MultivariateNormal, "
                            f"got {type(comps).__name__}")
        got = _fields(self, fn, ("logits",))
        names = ("loc", "scale") if isinstance(comps, Normal) else ("loc", "scale_tril")
        if got is None or not all(isinstance(getattr(comps, n), jax.Array) for n in names):
            return
        (logits,), _ = got
        cb = comps.batch_shape
        if logits.ndim < 1 or not cb:
            raise ValueError(f"{fn}: logits (shape {logits.shape}) and components (batch shape "
                             f"{cb}) need a leading component axis")
        if logits.shape[0] == 0:
            raise ValueError(f"{fn}: logits of shape {logits.shape} give K = 0 components; "
                             f"need K >= 1")
        if logits.shape[0] != cb[0]:
            raise ValueError(f"{fn}: logits of shape {logits.shape} give {logits.shape[0]} "
                             f"components but components have batch shape {cb} ({cb[0]})")
        if logits.ndim > len(cb):
            raise ValueError(f"{fn}: logits of shape {logits.shape} have more batch axes than "
                             f"the components (batch shape {cb})")
        _broadcast(fn, ("logits", "components"), logits.shape[1:], cb[1:])

    @property
    def num_components(self) -> int:
        return jnp.shape(self.logits)[0]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(jnp.broadcast_shapes(jnp.shape(self.logits)[1:],
                                          self.components.batch_shape[1:]))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.components.event_shape

    def _log_weights(self, fn: str) -> jax.Array:
        """log_softmax over components, shape ``(K,) + (1,)*pad + L`` aligned with the batch."""
        logits = C.as_float(fn, "logits", self.logits)
        logw = jax.nn.log_softmax(logits.astype(compute_dtype(logits.dtype)), axis=0)
        pad = len(self.components.batch_shape) - logits.ndim
        return logw.reshape((logits.shape[0],) + (1,) * pad + logits.shape[1:])

    def _weights(self, fn: str, extra: int) -> jax.Array:
        w = jnp.exp(self._log_weights(fn))
        return w.reshape(w.shape + (1,) * extra)

    def log_prob(self, x: ArrayLike) -> jax.Array:
        """Log-density of ``x`` of shape ``sample_shape + batch_shape + event_shape``."""
        fn = "Mixture.log_prob"
        x = C.as_float(fn, "x", x)
        nb, ne = len(self.batch_shape), len(self.event_shape)
        if x.shape[x.ndim - ne:] != self.event_shape or x.ndim < ne:
            raise ValueError(f"{fn}: x of shape {x.shape} does not end with the event shape "
                             f"{self.event_shape}")
        _broadcast(fn, ("x", "the distribution"), x.shape[:x.ndim - ne], self.batch_shape)
        if x.ndim < nb + ne:
            x = x.reshape((1,) * (nb + ne - x.ndim) + x.shape)
        x = jnp.expand_dims(x, x.ndim - ne - nb)  # the component axis
        lp = self.components.log_prob(x)  # sample_shape + (K,) + batch_shape
        logw = self._log_weights(fn)
        out = logsumexp(lp.astype(logw.dtype) + logw, axis=-(nb + 1))
        return out.astype(jnp.promote_types(lp.dtype, jnp.result_type(self.logits)))

    def sample(self, key: jax.Array, sample_shape: Any = ()) -> jax.Array:
        """Draws of shape ``sample_shape + batch_shape + event_shape`` (no gradient to logits)."""
        fn = "Mixture.sample"
        C.check_key(fn, key)
        shape = _sample_shape(fn, sample_shape)
        batch, event = self.batch_shape, self.event_shape
        key_k, key_x = jax.random.split(key)
        logw = jnp.broadcast_to(self._log_weights(fn), (self.num_components, *batch))
        idx = jax.random.categorical(key_k, logw, axis=0, shape=shape + batch)
        xs = self.components.sample(key_x, shape)  # shape + (K,) + B + event
        xs = jnp.broadcast_to(xs, (*shape, self.num_components, *batch, *event))
        idx = idx.reshape((*shape, 1, *batch) + (1,) * len(event))
        return jnp.take_along_axis(xs, idx, axis=len(shape)).squeeze(len(shape))

    def mean(self) -> jax.Array:
        """The mixture mean, shape ``batch_shape + event_shape``."""
        means = self.components.mean()
        w = self._weights("Mixture.mean", len(self.event_shape))
        return jnp.sum(w * means, axis=0).astype(means.dtype)

    def variance(self) -> jax.Array:
        """Exact (marginal) variances, shape ``batch_shape + event_shape``."""
        means = self.components.mean()
        w = self._weights("Mixture.variance", len(self.event_shape))
        dev = means - jnp.sum(w * means, axis=0)
        var = jnp.sum(w * (self.components.variance() + dev * dev), axis=0)
        return var.astype(means.dtype)

    def covariance(self) -> jax.Array:
        """Exact covariance of a mixture of ``MultivariateNormal``, shape ``batch + (d, d)``."""
        if not isinstance(self.components, MultivariateNormal):
            raise TypeError("Mixture.covariance: needs MultivariateNormal components; use "
                            "variance() for a mixture of Normal")
        means = self.components.mean()
        w = self._weights("Mixture.covariance", 2)
        dev = means - jnp.sum(w[..., 0] * means, axis=0)
        outer = dev[..., :, None] * dev[..., None, :]
        cov = jnp.sum(w * (self.components.covariance() + outer), axis=0)
        return cov.astype(means.dtype)
