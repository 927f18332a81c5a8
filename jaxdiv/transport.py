r"""Entropic optimal transport between point clouds, through ott-jax.

Sinkhorn and the Sinkhorn divergence (this is the only jaxdiv module importing ott-jax; no
hand-written Sinkhorn loop). The distances that need no solver (exact 1-D Wasserstein, sliced
Wasserstein, MMD, energy distance) live in :mod:`jaxdiv.sample_distances`. Point clouds are
``x: [n, d]``, ``y: [m, d]`` with weights ``a: [n]``, ``b: [m]`` (ott's names); batch problems
with ``jax.vmap``. ``cost="sqeuclidean"`` is :math:`\|x - y\|^2` (POT's ``ot.dist``, ott-jax),
**not** GeomLoss's :math:`\tfrac12\|x - y\|^2`; ``epsilon`` is absolute, in cost units, like
POT's ``reg``.
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
from jaxdiv._numerics import safe, uniform_weights

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

__all__ = ["SinkhornResult", "sinkhorn", "sinkhorn_divergence"]

_COSTS = {"sqeuclidean": _costs.SqEuclidean, "euclidean": _costs.Euclidean}
Cost = Literal["sqeuclidean", "euclidean"]


def _cost_fn(fn: str, cost: str):
    if cost not in _COSTS:
        raise ValueError(f"{fn}: cost must be one of {sorted(_COSTS)}, got {cost!r}")
    return _COSTS[cost]()


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

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
      >>> y = x + jnp.array([0.0, 1.0])
      >>> result = jaxdiv.sinkhorn(x, y, epsilon=0.01)
      >>> print(f"{float(result.transport_cost):.4f}", bool(result.converged))  # each point moves 1
      1.0000 True
      >>> print(np.asarray(result.plan()).round(4))
      [[0.5 0. ]
       [0.  0.5]]
    """
    fn = "sinkhorn"
    dtype, x, y, a, b = C.point_clouds(fn, x, y, a, b)
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
    a, b = uniform_weights(a, x.shape[0], x.dtype), uniform_weights(b, y.shape[0], x.dtype)
    a, b = a.astype(x.dtype), b.astype(x.dtype)
    C.check_probabilities(fn, "a", a, -1)
    C.check_probabilities(fn, "b", b, -1)
    geom_args = dict(cost_fn=cost_fn, batch_size=batch_size)
    eps = None if epsilon is None else C.positive_scalar(fn, "epsilon", epsilon, x.dtype)
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

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
      >>> print(f"{float(jaxdiv.sinkhorn_divergence(x, x, epsilon=0.01)):.4f}")  # equal clouds
      0.0000
      >>> print(f"{float(jaxdiv.sinkhorn_divergence(x, x + 1.0, epsilon=0.01)):.4f}")  # |(1, 1)|^2
      2.0000
    """
    fn = "sinkhorn_divergence"
    dtype, x, y, a, b = C.point_clouds(fn, x, y, a, b)
    cost_fn = _cost_fn(fn, cost)
    a, b = uniform_weights(a, x.shape[0], x.dtype), uniform_weights(b, y.shape[0], x.dtype)
    C.check_probabilities(fn, "a", a, -1)
    C.check_probabilities(fn, "b", b, -1)
    eps = None if epsilon is None else C.positive_scalar(fn, "epsilon", epsilon, x.dtype)
    div, _ = _sdiv.sinkhorn_divergence(
        _pointcloud.PointCloud, x, y, a=a, b=b, cost_fn=cost_fn, epsilon=eps,
        batch_size=batch_size,
        solve_kwargs=dict(threshold=threshold, max_iterations=max_iterations,
                          implicit_diff=_IMPLICIT))
    return div.astype(dtype)
