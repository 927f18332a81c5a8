r"""Optimal transport and sample distances between point clouds.

Exact 1-D Wasserstein (sorting); entropic OT and the Sinkhorn divergence through ott-jax (the
only jaxdiv module importing it; no hand-written Sinkhorn loop); sliced Wasserstein; MMD and
energy distance. Point clouds are ``x: [n, d]``, ``y: [m, d]`` with weights ``a: [n]``,
``b: [m]`` (ott's names); batch problems with ``jax.vmap``. ``cost="sqeuclidean"`` is
:math:`\|x - y\|^2` (POT's ``ot.dist``, ott-jax), **not** GeomLoss's :math:`\tfrac12\|x - y\|^2`;
``epsilon`` is absolute, in cost units, like POT's ``reg``.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import lineax as _lx
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import compute_dtype, safe

# ott-jax 0.6.0 compatibility, applied once at import (JAX itself is neither patched nor pinned):
# 1. ott imports jaxopt, which warns that it is unmaintained: that one message is silenced.
# 2. ott.utils calls jax.interpreters.batching.is_vmappable (in the batched_vmap behind the online
#    PointCloud, batch_size=), a name JAX 0.10 removed: online mode fails with AttributeError.
#    As ott-jax's main branch does, ott.utils gets jax._src.interpreters.batching instead, only
#    when the public module lacks the name.
# 3. ott differentiates through lineax.NormalCG, deprecated with a warning at every backward
#    trace: _IMPLICIT passes the same solver spelt lineax.Normal(lineax.CG(...)).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="JAXopt is no longer maintained",
                            category=DeprecationWarning)
    import ott.utils as _ott_utils
    from ott.geometry import costs as _costs
    from ott.geometry import epsilon_scheduler as _eps_sched
    from ott.geometry import pointcloud as _pointcloud
    from ott.initializers.linear import initializers as _init
    from ott.solvers import linear as _linear
    from ott.solvers.linear import acceleration as _accel
    from ott.solvers.linear import implicit_differentiation as _implicit
    from ott.tools import sinkhorn_divergence as _sdiv


if not hasattr(_ott_utils.batching, "is_vmappable"):
    try:
        from jax._src.interpreters import batching as _batching

        _batching.is_vmappable  # noqa: B018
    except (ImportError, AttributeError):  # pragma: no cover - no custom vmappables: all leaves
        _batching = types.SimpleNamespace(is_vmappable=lambda _: False)
    _ott_utils.batching = _batching


def _normal_cg(**kwargs):
    return _lx.Normal(_lx.CG(**kwargs))


_IMPLICIT = _implicit.ImplicitDiff(solver_kwargs={"nonsym_solver": _normal_cg})

__all__ = ["SinkhornResult", "energy_distance", "mmd", "sinkhorn", "sinkhorn_divergence",
           "sliced_wasserstein", "wasserstein_1d"]

_COSTS = {"sqeuclidean": _costs.SqEuclidean, "euclidean": _costs.Euclidean}
Cost = Literal["sqeuclidean", "euclidean"]


def _cost_fn(fn: str, cost: str):
    if cost not in _COSTS:
        raise ValueError(f"{fn}: cost must be one of {sorted(_COSTS)}, got {cost!r}")
    return _COSTS[cost]()


def _clouds(fn, x, y, a, b, min_size=1):
    """Checks point clouds [n, d], [m, d] and weights [n], [m]; returns them in one dtype."""
    x, y = C.as_float(fn, "x", x), C.as_float(fn, "y", y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"{fn}: x has shape {x.shape} and y has shape {y.shape}; expected point "
                         f"clouds [n, d] and [m, d] with the same dimension d")
    if min(x.shape[0], y.shape[0]) < min_size or x.shape[1] == 0:
        raise ValueError(f"{fn}: x of shape {x.shape} and y of shape {y.shape} need at least "
                         f"{min_size} point(s) each and d > 0")
    ws = []
    for name, w, cloud, pts in (("a", a, "x", x), ("b", b, "y", y)):
        if w is not None:
            w = C.as_float(fn, name, w)
            if w.shape != (pts.shape[0],):
                raise ValueError(f"{fn}: weights {name} have shape {w.shape} but {cloud} has "
                                 f"shape {pts.shape}; expected {name} of shape ({pts.shape[0]},)")
        ws.append(w)
    dtype = compute_dtype(jnp.result_type(*[v for v in (x, y, *ws) if v is not None]))
    cast = [None if v is None else v.astype(dtype) for v in (x, y, *ws)]
    return jnp.result_type(x, y), *cast


def _positive(fn, name, value, dtype):
    """A scalar option that must be > 0: raises at trace time when concrete, else opt-in check."""
    value = jnp.asarray(value, dtype)
    if value.shape != ():
        raise ValueError(f"{fn}: {name} must be a scalar, got shape {value.shape}")
    if not isinstance(value, jax.core.Tracer) and not (0 < value < jnp.inf):
        raise ValueError(f"{fn}: {name} must be > 0 and finite, got {float(value)}")
    C.check_finite(fn, name, value)
    C.check_positive(fn, name, value)
    return value


def _uniform(w, n, dtype):
    return jnp.full((n,), 1.0 / n, dtype) if w is None else w


# Entropic OT through ott-jax


def _plan_block(f, g, c, eps):
    """exp((f_i + g_j - c_ij) / eps); zero-weight points (potential -inf) give 0, NaN-free."""
    mask = jnp.isfinite(f)[:, None] & jnp.isfinite(g)[None, :]
    z = (safe(mask, f[:, None], 0.0) + safe(mask, g[None, :], 0.0) - c) / eps
    return jnp.where(mask, jnp.exp(safe(mask, z, 0.0)), 0)


def _transport_cost(x, y, f, g, eps, cost_fn, batch_size):
    """<P, C> without materialising P when ``batch_size`` is set (rows in blocks)."""
    if batch_size is None:
        c = cost_fn.all_pairs(x, y)
        return jnp.sum(_plan_block(f, g, c, eps) * c)

    def row(xf):
        xi, fi = xf
        c = cost_fn.all_pairs(xi[None], y)
        return jnp.sum(_plan_block(fi[None], g, c, eps) * c)

    return jnp.sum(lax.map(row, (x, f), batch_size=batch_size))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SinkhornResult:
    r"""Result of :func:`sinkhorn`, a pytree (passes through ``jit`` and ``vmap``).

    Attributes: ``reg_cost`` (ott's :math:`\langle P, C\rangle + \varepsilon\,\mathrm{KL}(P
    \,\|\, a b^\top)`), ``transport_cost`` (:math:`\langle P, C\rangle`, as POT's ``sinkhorn2``),
    ``converged``, ``iterations``, the potentials ``f: [n]`` (``-inf`` where ``a`` is 0) and
    ``g: [m]``, the clouds ``x``, ``y``, the absolute ``epsilon`` used and the ``cost`` name.
    """

    reg_cost: jax.Array
    transport_cost: jax.Array
    converged: jax.Array
    iterations: jax.Array
    f: jax.Array
    g: jax.Array
    x: jax.Array
    y: jax.Array
    epsilon: jax.Array
    cost: str = dataclasses.field(metadata=dict(static=True))

    def plan(self) -> jax.Array:
        r"""The coupling :math:`P_{ij} = \exp((f_i + g_j - C_{ij}) / \varepsilon)`, ``[n, m]``.

        Materialises ``n * m`` entries: for small problems only.
        """
        c = _COSTS[self.cost]().all_pairs(self.x, self.y)
        return _plan_block(self.f, self.g, c, self.epsilon)


def _initializer(fn, initializer, shape, batch_size):
    if initializer == "default":
        return None
    if initializer == "gaussian":
        return _init.GaussianInitializer()
    if initializer == "sorting":
        if shape[0] != shape[1] or batch_size is not None:
            raise ValueError(f"{fn}: initializer='sorting' needs n == m and a dense problem "
                             f"(batch_size=None), got clouds of sizes {shape}")
        return _init.SortingInitializer()
    raise ValueError(f"{fn}: initializer must be 'default', 'gaussian' or 'sorting', got "
                     f"{initializer!r}")


def _accelerations(fn, anderson, momentum, inner_iterations):
    if anderson is not None and momentum is not None:
        raise ValueError(f"{fn}: choose anderson or momentum, not both (ott-jax ignores momentum "
                         f"under Anderson acceleration)")
    if anderson is not None:
        if not isinstance(anderson, (int, np.integer)) or anderson < 1:
            raise ValueError(f"{fn}: anderson is the memory size, an int >= 1, got {anderson!r}")
        return _accel.AndersonAcceleration(memory=int(anderson)), None
    if momentum is None:
        return None, None
    if momentum == "adaptive":  # Lehmann et al. (2021), from the error decay after 2 checks
        return None, _accel.Momentum(start=2 * inner_iterations)
    if isinstance(momentum, str) or not 0 < float(momentum) < 2:
        raise ValueError(f"{fn}: momentum must be a float in (0, 2) or 'adaptive', "
                         f"got {momentum!r}")
    return None, _accel.Momentum(start=0, value=float(momentum))


def sinkhorn(x: ArrayLike, y: ArrayLike, *, a: ArrayLike | None = None,
             b: ArrayLike | None = None, epsilon: float | ArrayLike | None = None,
             cost: Cost = "sqeuclidean", threshold: float = 1e-3, max_iterations: int = 2000,
             inner_iterations: int = 10, batch_size: int | None = None,
             anderson: int | None = None, momentum: float | Literal["adaptive"] | None = None,
             epsilon_init: float = 1.0, epsilon_decay: float = 1.0,
             initializer: Literal["default", "gaussian", "sorting"] = "default",
             ) -> SinkhornResult:
    r"""Entropic optimal transport between two point clouds, solved by ott-jax's Sinkhorn.

    .. math:: \mathrm{OT}_\varepsilon(a, b) = \min_{P 1 = a,\, P^\top 1 = b,\, P \ge 0}
       \langle P, C \rangle + \varepsilon\,\mathrm{KL}(P \,\|\, a b^\top),
       \qquad C_{ij} = c(x_i, y_j),

    in log-domain. ``transport_cost`` :math:`\langle P, C\rangle` tends to the unregularised
    cost (POT's ``emd2``) as :math:`\varepsilon \to 0`. Iterations stop when the L1 error of
    the second marginal is below ``threshold``, checked every ``inner_iterations`` (POT's
    ``sinkhorn_log`` uses the L2 norm, a looser test at the same number). The accelerations are
    ott-jax's own and leave the solution unchanged: ``anderson``, ``momentum``, epsilon
    scheduling (from ``epsilon_init * epsilon``, decaying by ``epsilon_decay`` per iteration;
    no error checks until it reaches ``epsilon``) and ``initializer``. Gradients use implicit
    differentiation; with zero weights in ``a`` or ``b``, only ``reg_cost`` has finite
    gradients (ott-jax's implicit system gives NaN for f, g and ``transport_cost``).

    Args:
      x, y: point clouds ``[n, d]`` and ``[m, d]``.
      a, b: weights ``[n]`` and ``[m]``, non-negative, each summing to 1 (not renormalised;
        opt-in check with :func:`jaxdiv.checked`); None: uniform.
      epsilon: absolute regularisation (POT's ``reg``), > 0. None: ott-jax's default,
        ``0.05 * std`` of the entries of the cost matrix.
      cost: ``'sqeuclidean'`` (:math:`\|x - y\|^2`) or ``'euclidean'`` (:math:`\|x - y\|`).
      threshold: tolerance on the L1 marginal error.
      max_iterations: iteration cap; ``converged`` is False if it is reached.
      inner_iterations: iterations between two error checks.
      batch_size: ott-jax's online geometry: the cost recomputed in blocks of rows, O((n + m) d)
        memory, same result; None: dense.
      anderson: Anderson acceleration memory (3 to 8); can stall short of tight thresholds.
      momentum: over-relaxation weight in (0, 2), or ``'adaptive'`` (Lehmann et al. 2021).
      epsilon_init: epsilon scheduling start, a multiple >= 1 of ``epsilon``.
      epsilon_decay: the schedule's decay factor in (0, 1].
      initializer: ``'default'`` (zeros), ``'gaussian'`` (Brenier map between Gaussian fits,
        for the squared-Euclidean cost) or ``'sorting'`` (n == m, dense).

    Returns:
      A :class:`SinkhornResult`; ``result.plan()`` materialises the ``[n, m]`` coupling. Costs
      keep the input dtype; 16-bit inputs are solved in float32, and float32 under
      ``jax_enable_x64`` with ``anderson`` in float64 (ott-jax builds its history in the default
      dtype).

    References:
      Cuturi, Sinkhorn Distances: Lightspeed Computation of Optimal Transport, NeurIPS 2013.
      Cuturi et al., Optimal Transport Tools (OTT), arXiv:2201.12324, 2022.
    """
    fn = "sinkhorn"
    dtype, x, y, a, b = _clouds(fn, x, y, a, b)
    cost_fn = _cost_fn(fn, cost)
    anderson_acc, momentum_acc = _accelerations(fn, anderson, momentum, inner_iterations)
    init = _initializer(fn, initializer, (x.shape[0], y.shape[0]), batch_size)
    if not (epsilon_init >= 1 and 0 < epsilon_decay <= 1) or (epsilon_init > 1
                                                              and epsilon_decay == 1):
        raise ValueError(f"{fn}: need epsilon_init >= 1 and 0 < epsilon_decay <= 1 (< 1 when "
                         f"epsilon_init > 1), got {epsilon_init} and {epsilon_decay}")
    if anderson_acc is not None:
        wide = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 under jax_enable_x64
        x, y = (v.astype(jnp.promote_types(v.dtype, wide)) for v in (x, y))
    a, b = _uniform(a, x.shape[0], x.dtype), _uniform(b, y.shape[0], x.dtype)
    a, b = a.astype(x.dtype), b.astype(x.dtype)
    C.check_probabilities(fn, "a", a, -1)
    C.check_probabilities(fn, "b", b, -1)
    geom_args = dict(cost_fn=cost_fn, batch_size=batch_size)
    eps = None if epsilon is None else _positive(fn, "epsilon", epsilon, x.dtype)
    min_iterations = 0
    if epsilon_init > 1:  # no error checks before the schedule reaches epsilon
        target = eps if eps is not None else _pointcloud.PointCloud(x, y, **geom_args).epsilon
        eps = _eps_sched.Epsilon(target, init=epsilon_init, decay=epsilon_decay)
        min_iterations = int(np.ceil(np.log(epsilon_init) / -np.log(epsilon_decay)))
    geom = _pointcloud.PointCloud(x, y, epsilon=eps, **geom_args)
    out = _linear.solve(geom, a=a, b=b, threshold=threshold, max_iterations=max_iterations,
                        inner_iterations=inner_iterations, min_iterations=min_iterations,
                        anderson=anderson_acc, implicit_diff=_IMPLICIT,
                        momentum=momentum_acc, initializer=init)
    eps_used = jnp.asarray(geom.epsilon, x.dtype)
    tc = _transport_cost(x, y, out.f, out.g, eps_used, cost_fn, batch_size)
    return SinkhornResult(reg_cost=out.reg_ot_cost.astype(dtype), transport_cost=tc.astype(dtype),
                          converged=out.converged, iterations=out.n_iters, f=out.f, g=out.g,
                          x=x, y=y, epsilon=eps_used, cost=cost)


def sinkhorn_divergence(x: ArrayLike, y: ArrayLike, *, a: ArrayLike | None = None,
                        b: ArrayLike | None = None, epsilon: float | ArrayLike | None = None,
                        cost: Cost = "sqeuclidean", threshold: float = 1e-3,
                        max_iterations: int = 2000, batch_size: int | None = None) -> jax.Array:
    r"""Debiased Sinkhorn divergence, through ``ott.tools.sinkhorn_divergence``.

    .. math:: S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
       - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b),

    with :math:`\mathrm{OT}_\varepsilon` the regularised cost of :func:`sinkhorn`
    (``reg_cost``). Non-negative, 0 iff the measures coincide; OT as :math:`\varepsilon \to 0`,
    MMD with kernel :math:`-c` as :math:`\varepsilon \to \infty`. The three terms share one
    epsilon (None: ``0.05 * std`` of the x-y cost matrix). Differentiable in ``x, y, a, b``
    (implicit differentiation); vmappable over a batch of problems.

    Args:
      x, y: point clouds ``[n, d]`` and ``[m, d]``.
      a, b: weights ``[n]`` and ``[m]``; None: uniform.
      epsilon: absolute regularisation in cost units, > 0, or None (ott-jax's default).
      cost: ``'sqeuclidean'`` (:math:`\|x - y\|^2`) or ``'euclidean'``.
      threshold: L1 marginal tolerance of each of the three Sinkhorn solves.
      max_iterations: iteration cap of each solve.
      batch_size: online geometry with this block size (O(n) memory), or None (dense).

    Returns:
      The divergence, a scalar of the input dtype.

    References:
      Feydy, Séjourné, Vialard, Amari, Trouvé, Peyré, Interpolating between Optimal Transport
      and MMD using Sinkhorn Divergences, AISTATS 2019.
    """
    fn = "sinkhorn_divergence"
    dtype, x, y, a, b = _clouds(fn, x, y, a, b)
    cost_fn = _cost_fn(fn, cost)
    a, b = _uniform(a, x.shape[0], x.dtype), _uniform(b, y.shape[0], x.dtype)
    C.check_probabilities(fn, "a", a, -1)
    C.check_probabilities(fn, "b", b, -1)
    eps = None if epsilon is None else _positive(fn, "epsilon", epsilon, x.dtype)
    div, _ = _sdiv.sinkhorn_divergence(
        _pointcloud.PointCloud, x, y, a=a, b=b, cost_fn=cost_fn, epsilon=eps,
        batch_size=batch_size,
        solve_kwargs=dict(threshold=threshold, max_iterations=max_iterations,
                          implicit_diff=_IMPLICIT))
    return div.astype(dtype)


# Exact 1-D Wasserstein and sliced Wasserstein


def _root(s, p):
    """s ** (1 / p) with a finite (zero) gradient at s = 0 (double where)."""
    if p == 1:
        return s
    pos = ~(s <= 0)  # s > 0, or NaN (which then propagates)
    return jnp.where(pos, safe(pos, s) ** (1.0 / p), 0)


def _wasserstein_1d_power(x, y, a, b, p):
    """W_p^p between 1-D samples x [n], y [m] with normalised weights (None: uniform)."""
    if a is None and b is None and x.shape == y.shape:  # quantiles at the same levels k/n
        return jnp.mean(jnp.abs(jnp.sort(x) - jnp.sort(y)) ** p)
    (n,), (m,) = x.shape, y.shape
    a, b = _uniform(a, n, x.dtype), _uniform(b, m, x.dtype)
    ix, iy = jnp.argsort(x), jnp.argsort(y)
    xs, ys = x[ix], y[iy]
    # CDF levels (cummax: sorted whatever order XLA sums in), merged by binary search
    cx, cy = lax.cummax(jnp.cumsum(a[ix])), lax.cummax(jnp.cumsum(b[iy]))
    i, j = jnp.arange(n), jnp.arange(m)
    px = i + jnp.searchsorted(cy, cx, side="left")  # positions in the merge, x first on ties
    py = j + jnp.searchsorted(cx, cy, side="right")
    t = jnp.zeros(n + m, x.dtype).at[px].set(cx, unique_indices=True)
    prev = jnp.concatenate([jnp.zeros((1,), x.dtype), t.at[py].set(cy, unique_indices=True)[:-1]])
    # on the interval ending at level c_i of x the quantiles are x_(i) and y_(#y-levels before)
    tx = (cx - prev[px]) * jnp.abs(xs - ys[jnp.minimum(px - i, m - 1)]) ** p
    ty = (cy - prev[py]) * jnp.abs(xs[jnp.minimum(py - j, n - 1)] - ys) ** p
    return jnp.sum(tx) + jnp.sum(ty)


def _check_p(fn, p):
    if isinstance(p, jax.core.Tracer) or not float(p) >= 1:
        raise ValueError(f"{fn}: p must be a static number >= 1, got {p!r}")


def _weights_1d(fn, name, w, n, dtype):
    if w is None:
        return None
    w = C.as_float(fn, name, w)
    if w.shape != (n,):
        raise ValueError(f"{fn}: {name} has shape {w.shape}; expected ({n},) to match the values")
    C.check_probabilities(fn, name, w, -1, normalized=False)
    w = w.astype(dtype)
    return w / jnp.sum(w)


def wasserstein_1d(x: ArrayLike, y: ArrayLike, *, p: float = 1,
                   x_weights: ArrayLike | None = None,
                   y_weights: ArrayLike | None = None) -> jax.Array:
    r"""Exact p-Wasserstein distance between two 1-D empirical distributions.

    .. math:: W_p(\mu, \nu) = \Big(\int_0^1 |F^{-1}(t) - G^{-1}(t)|^p \, dt\Big)^{1/p},

    with :math:`F^{-1}, G^{-1}` the quantile functions, constant between the merged jumps of
    the two CDFs (sorts of ``x`` and ``y``, then a merge of the cumulative weights); equal sizes
    without weights reduce to :math:`\frac1n \sum_k |x_{(k)} - y_{(k)}|^p`. The distance (the
    p-th root) is returned; for ``p = 1`` it equals ``scipy.stats.wasserstein_distance``. At
    :math:`W_p = 0` the gradient is taken as 0. Histograms ``u, v`` on a shared support ``s``:
    ``wasserstein_1d(s, s, x_weights=u, y_weights=v)``.

    Args:
      x, y: samples ``[n]`` and ``[m]``; batch with ``jax.vmap``.
      p: order, a static number >= 1.
      x_weights, y_weights: non-negative weights ``[n]``, ``[m]``, renormalised to sum to 1
        (as scipy); None: uniform.

    Returns:
      :math:`W_p`, a scalar of the input dtype; differentiable in ``x``, ``y`` and the weights.

    References:
      Villani, Optimal Transport: Old and New, Springer 2009 (Remark 2.19, the 1-D case).
    """
    fn = "wasserstein_1d"
    _check_p(fn, p)
    x, y = C.as_float(fn, "x", x), C.as_float(fn, "y", y)
    if x.ndim != 1 or y.ndim != 1 or x.size == 0 or y.size == 0:
        raise ValueError(f"{fn}: x has shape {x.shape} and y has shape {y.shape}; expected "
                         f"non-empty 1-D samples (use jax.vmap for batches)")
    dtype = jnp.result_type(x, y)
    cdt = compute_dtype(dtype)
    xw = _weights_1d(fn, "x_weights", x_weights, x.shape[0], cdt)
    yw = _weights_1d(fn, "y_weights", y_weights, y.shape[0], cdt)
    x, y = x.astype(cdt), y.astype(cdt)
    return _root(_wasserstein_1d_power(x, y, xw, yw, p), p).astype(dtype)


def sliced_wasserstein(key: jax.Array, x: ArrayLike, y: ArrayLike, *,
                       a: ArrayLike | None = None, b: ArrayLike | None = None,
                       num_projections: int = 50, p: float = 2) -> jax.Array:
    r"""Monte Carlo sliced p-Wasserstein distance, built on exact 1-D transport.

    .. math:: \mathrm{SW}_p(\mu, \nu) = \Big(\frac1L \sum_{l=1}^{L}
       W_p^p(\theta_l \# \mu, \theta_l \# \nu)\Big)^{1/p},

    with directions :math:`\theta_l` uniform on the sphere, the rows of
    ``jax.random.normal(key, (num_projections, d))`` over their norms. **The p-th root is
    taken**, as in POT's ``sliced_wasserstein_distance`` (ott-jax's ``sliced`` returns the mean
    of :math:`W_p^p` without it). Unbiased for :math:`\mathrm{SW}_p^p`, not for its root.

    Args:
      key: PRNG key for the directions.
      x, y: point clouds ``[n, d]`` and ``[m, d]``.
      a, b: weights ``[n]``, ``[m]`` (renormalised); None: uniform.
      num_projections: number of directions L (static).
      p: order, a static number >= 1.

    Returns:
      The estimate, a scalar of the input dtype; differentiable in ``x`` and ``y``.

    References:
      Bonneel, Rabin, Peyré, Pfister, Sliced and Radon Wasserstein Barycenters of Measures,
      J. Math. Imaging Vis. 51, 2015.
    """
    fn = "sliced_wasserstein"
    C.check_key(fn, key)
    _check_p(fn, p)
    dtype, x, y, _, _ = _clouds(fn, x, y, None, None)
    a = _weights_1d(fn, "a", a, x.shape[0], x.dtype)
    b = _weights_1d(fn, "b", b, y.shape[0], x.dtype)
    if int(num_projections) < 1:
        raise ValueError(f"{fn}: num_projections must be >= 1, got {num_projections}")
    theta = jax.random.normal(key, (int(num_projections), x.shape[1]), x.dtype)
    theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
    wpp = jax.vmap(lambda u, v: _wasserstein_1d_power(u, v, a, b, p), in_axes=1)(
        x @ theta.T, y @ theta.T)
    return _root(jnp.mean(wpp), p).astype(dtype)


# Kernel and energy distances


def _sqdist(x, y):
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def _dist(x, y):
    d2 = _sqdist(x, y)
    pos = ~(d2 <= 0)  # d2 > 0, or NaN (which then propagates)
    return jnp.where(pos, jnp.sqrt(safe(pos, d2)), 0)  # double where: finite gradient at 0


def _median_bandwidth(x, y):
    z = jnp.concatenate([x, y])
    i, j = np.triu_indices(z.shape[0], k=1)
    med = jnp.median(jnp.sqrt(jnp.sum((z[i] - z[j]) ** 2, axis=-1)))
    return lax.stop_gradient(jnp.where(med > 0, med, 1.0))


def mmd(x: ArrayLike, y: ArrayLike, *, kernel: Literal["gaussian", "laplacian"] = "gaussian",
        bandwidth: float | ArrayLike | None = None) -> jax.Array:
    r"""Unbiased estimate of the squared maximum mean discrepancy :math:`\mathrm{MMD}^2`.

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)} \sum_{i \ne j} k(x_i, x_j)
       + \frac{1}{m(m-1)} \sum_{i \ne j} k(y_i, y_j)
       - \frac{2}{nm} \sum_{i, j} k(x_i, y_j),

    with :math:`k(x, y) = \exp(-\|x - y\|^2 / 2\sigma^2)` (``'gaussian'``) or
    :math:`\exp(-\|x - y\|/\sigma)` (``'laplacian'``). **Squared** and unbiased: its mean is 0
    for two samples of one distribution, so single estimates can be negative. Default
    :math:`\sigma`: the median heuristic, the median of the pooled pairwise distances
    :math:`\|z_i - z_j\|, i < j` (1 if it is 0), constant under ``grad``. O((n + m)^2 d).

    Args:
      x, y: samples ``[n, d]`` and ``[m, d]``, n, m >= 2.
      kernel: ``'gaussian'`` or ``'laplacian'``.
      bandwidth: :math:`\sigma > 0`; None for the median heuristic.

    Returns:
      :math:`\widehat{\mathrm{MMD}}^2_u`, a scalar of the input dtype.

    References:
      Gretton, Borgwardt, Rasch, Schölkopf, Smola, A Kernel Two-Sample Test, JMLR 13, 2012.
    """
    fn = "mmd"
    dtype, x, y, _, _ = _clouds(fn, x, y, None, None, min_size=2)
    if kernel not in ("gaussian", "laplacian"):
        raise ValueError(f"{fn}: kernel must be 'gaussian' or 'laplacian', got {kernel!r}")
    sigma = (_median_bandwidth(x, y) if bandwidth is None
             else _positive(fn, "bandwidth", bandwidth, x.dtype))

    def k(u, v):
        if kernel == "gaussian":
            return jnp.exp(-_sqdist(u, v) / (2 * sigma**2))
        return jnp.exp(-_dist(u, v) / sigma)

    def within(u):
        n = u.shape[0]
        kuu = k(u, u)
        return (jnp.sum(kuu) - jnp.trace(kuu)) / (n * (n - 1))

    return (within(x) + within(y) - 2 * jnp.mean(k(x, y))).astype(dtype)


def energy_distance(x: ArrayLike, y: ArrayLike) -> jax.Array:
    r"""Squared energy distance between two empirical distributions (a V-statistic).

    .. math:: \mathcal{E}(\mu, \nu) = 2\,\mathbb{E}\|X - Y\| - \mathbb{E}\|X - X'\|
       - \mathbb{E}\|Y - Y'\|,

    over the empirical measures (all pairs, diagonals included), so :math:`\mathcal{E} \ge 0`,
    0 iff the samples coincide as measures. Székely's energy distance: ``scipy.stats.
    energy_distance`` (1-D only) returns its square root. Gradients are finite at coincident
    points (the norm's gradient at 0 is taken as 0). O((n + m)^2 d).

    Args:
      x, y: samples ``[n, d]`` and ``[m, d]``.

    Returns:
      :math:`\mathcal{E}`, a scalar of the input dtype.

    References:
      Székely & Rizzo, Energy statistics: A class of statistics based on distances, J. Stat.
      Plan. Inference 143(8), 2013.
    """
    dtype, x, y, _, _ = _clouds("energy_distance", x, y, None, None)
    e = 2 * jnp.mean(_dist(x, y)) - jnp.mean(_dist(x, x)) - jnp.mean(_dist(y, y))
    return e.astype(dtype)
