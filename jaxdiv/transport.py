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
import functools
import types
import warnings
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import centred, replicated, safe, uniform_weights

__all__ = ["SinkhornResult", "sinkhorn", "sinkhorn_divergence"]

_COSTS = ("euclidean", "sqeuclidean")
Cost = Literal["sqeuclidean", "euclidean"]


@functools.cache
def _ott() -> types.SimpleNamespace:
    """Imports ott-jax on first use (``import jaxdiv`` stays light) and applies its shims.

    ott-jax 0.6.0 compatibility, applied once (JAX itself is neither patched nor pinned):

    1. ott imports jaxopt, which warns that it is unmaintained: that one message is silenced.
    2. ott.utils calls jax.interpreters.batching.is_vmappable (in the batched_vmap behind the
       online PointCloud, batch_size=), a name JAX 0.10 removed: online mode fails with
       AttributeError. As ott-jax's main branch does, ott.utils gets
       jax._src.interpreters.batching instead, only when the public module lacks the name.
    3. ott differentiates through lineax.NormalCG, deprecated with a warning at every backward
       trace: the implicit differentiation passes the same solver spelt
       lineax.Normal(lineax.CG(...)). For small problems it passes lineax.SVD instead (see
       :func:`_implicit`).
    4. Precision: ott's implicit differentiation traces its linear solve in the backward pass,
       after :func:`sinkhorn` has returned, so outside its ``default_matmul_precision`` scope;
       ``_HighestImplicitDiff`` re-enters the scope there.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="JAXopt is no longer maintained",
                                category=DeprecationWarning)
        import lineax
        import ott.utils
        from ott.geometry import costs, epsilon_scheduler, pointcloud
        from ott.initializers.linear import initializers
        from ott.solvers import linear
        from ott.solvers.linear import acceleration, implicit_differentiation
        from ott.tools import sinkhorn_divergence

    if not hasattr(ott.utils.batching, "is_vmappable"):
        try:
            from jax._src.interpreters import batching

            batching.is_vmappable  # noqa: B018
        except (ImportError, AttributeError):  # pragma: no cover - no custom vmappables
            batching = types.SimpleNamespace(is_vmappable=lambda _: False)
        ott.utils.batching = batching

    class _HighestImplicitDiff(implicit_differentiation.ImplicitDiff):
        def gradient(self, *args, **kwargs):
            with jax.default_matmul_precision("highest"):
                return super().gradient(*args, **kwargs)

    def normal_cg(**kwargs):
        return lineax.Normal(lineax.CG(**kwargs))

    return types.SimpleNamespace(
        costs={"sqeuclidean": costs.SqEuclidean, "euclidean": costs.Euclidean},
        epsilon_scheduler=epsilon_scheduler, pointcloud=pointcloud, initializers=initializers,
        linear=linear, acceleration=acceleration, sinkhorn_divergence=sinkhorn_divergence,
        implicit=_HighestImplicitDiff(solver_kwargs={"nonsym_solver": normal_cg}),
        implicit_dense=_HighestImplicitDiff(solver_kwargs={
            "nonsym_solver": lambda **_: lineax.SVD()}))


# The implicit system of balanced Sinkhorn is singular (the potentials' common shift): in
# float32 lineax's CG on it often stalled or broke down and lineax raised "A linear solver
# returned non-finite output" (6 of 12 random 10-point problems at eps = 0.1). For small
# problems with uniform weights (static: no zero weight, whose infinite potential would make
# the whole matrix NaN, where CG leaves the NaN at that point) the system is materialised and
# solved by SVD (least squares, exact on the singular system). Measured, jit(grad) of
# transport_cost in float32: 64 x 64 1.2-2.7 ms against CG's 0.4-5.3, 128 x 128 5.5-7.5 ms
# against 1.1-10.9 (eps 0.5 to 0.05); 256 x 256 107 ms against 4 (CG raised at eps 0.05).
_DENSE_IMPLICIT = 128 * 128


def _implicit(ott, n: int, m: int, uniform: bool):
    return ott.implicit_dense if uniform and n * m <= _DENSE_IMPLICIT else ott.implicit


def _explicit_mesh(*arrays):
    """The mesh with Explicit axes that any of ``arrays`` (or the context) is on, or None."""
    for mesh in [jax.typeof(v).sharding.mesh for v in arrays if v is not None] + [
            jax.sharding.get_abstract_mesh()]:
        if mesh.explicit_axes:
            return mesh
    return None


def _auto_axes(mesh, solve, *args):
    """Runs ``solve`` (ott-jax) with the mesh axes of explicitly sharded inputs made Auto.

    ott-jax is written for Auto sharding: on Explicit axes its solver loops and implicit
    differentiation fail JAX's sharding-in-types checks even on replicated inputs. The inputs
    are gathered beforehand; the float outputs come back replicated. The backward pass (ott's
    implicit differentiation, traced after the forward one) is run in the Auto context too.
    """
    if mesh is None:
        return solve(*args)
    auto = functools.partial(jax.sharding.auto_axes, out_sharding=jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec()))

    @jax.custom_vjp
    def run(*args):
        return auto(solve)(*args)

    def fwd(*args):
        return auto(lambda *v: jax.vjp(solve, *v))(*args)

    def bwd(vjp, ct):
        return auto(lambda vjp, ct: vjp(ct))(vjp, ct)

    run.defvjp(fwd, bwd)
    return run(*args)


def _cost_fn(fn: str, cost: str):
    if not isinstance(cost, str) or cost not in _COSTS:
        raise ValueError(f"{fn}: cost must be one of {list(_COSTS)}, got {cost!r}")
    return _ott().costs[cost]()


def _count(fn: str, name: str, value, *, none_ok: bool = False) -> int | None:
    """A static count option: a Python int >= 1 (None too if ``none_ok``), never a bool."""
    if value is None and none_ok:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an int >= 1{' or None' if none_ok else ''}, got "
                        f"{value!r}")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be an int >= 1, got {value}")
    return int(value)


def _real_option(fn: str, name: str, value):
    """Rejects bools, strings and other non-real values of a number option (traced is fine)."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    if isinstance(value, jax.core.Tracer):
        return value
    v = np.asarray(value)
    if v.dtype == np.bool_ or not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    if v.ndim != 0:
        raise ValueError(f"{fn}: {name} must be a scalar, got shape {v.shape}")
    return value


def _threshold(fn: str, threshold):
    threshold = _real_option(fn, "threshold", threshold)
    if not isinstance(threshold, jax.core.Tracer) and not 0 < float(threshold) < np.inf:
        raise ValueError(f"{fn}: threshold must be > 0 and finite, got {threshold}")
    return threshold


def _epsilon(fn: str, epsilon, dtype):
    if epsilon is None:
        return None
    return C.positive_scalar(fn, "epsilon", _real_option(fn, "epsilon", epsilon), dtype)


# Entropic OT through ott-jax


def _plan_block(f, g, c, eps):
    """exp((f_i + g_j - c_ij) / eps); zero-weight points (potential -inf) give 0, NaN-free."""
    mask = jnp.isfinite(f)[:, None] & jnp.isfinite(g)[None, :]
    z = (safe(mask, f[:, None], 0.0) + safe(mask, g[None, :], 0.0) - c) / eps
    return jnp.where(mask, jnp.exp(safe(mask, z, 0.0)), 0)


def _cost_matrix(x, y, cost_fn):
    """The cost matrix exactly as ott-jax's dense PointCloud computes it (for the squared
    Euclidean cost, |x|^2 + |y|^2 - 2 x.y by one matmul); call under HIGHEST precision."""
    return _ott().pointcloud.PointCloud(x, y, cost_fn=cost_fn).cost_matrix


def _transport_cost(x, y, f, g, eps, cost_fn, batch_size):
    """<P, C> in one fused pass over the cost; [batch_size, m] tiles of rows when online."""
    if batch_size is None or batch_size >= x.shape[0]:
        c = _cost_matrix(x, y, cost_fn)
        return jnp.sum(_plan_block(f, g, c, eps) * c)
    n, nb = x.shape[0], -(-x.shape[0] // batch_size)
    pad = nb * batch_size - n  # padded rows get f = -inf: no mass
    xb = jnp.pad(x, ((0, pad), (0, 0))).reshape(nb, batch_size, x.shape[1])
    fb = jnp.pad(f, (0, pad), constant_values=-np.inf).reshape(nb, batch_size)

    def tile(args):
        c = _cost_matrix(args[0], y, cost_fn)
        return jnp.sum(_plan_block(args[1], g, c, eps) * c)

    return jnp.sum(lax.map(tile, (xb, fb)))


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
        with jax.default_matmul_precision("highest"):
            c = _cost_matrix(*centred(self.x, self.y), _ott().costs[self.cost]())
            return _plan_block(self.f, self.g, c, self.epsilon)


def _initializer(fn, initializer, shape, batch_size):
    if initializer == "default":
        return None
    if initializer == "gaussian":
        return _ott().initializers.GaussianInitializer()
    if initializer == "sorting":
        if shape[0] != shape[1] or batch_size is not None:
            raise ValueError(f"{fn}: initializer='sorting' needs n == m and a dense problem "
                             f"(batch_size=None), got clouds of sizes {shape}")
        return _ott().initializers.SortingInitializer()
    raise ValueError(f"{fn}: initializer must be 'default', 'gaussian' or 'sorting', got "
                     f"{initializer!r}")


def _accelerations(fn, anderson, momentum, inner_iterations):
    if anderson is not None and momentum is not None:
        raise ValueError(f"{fn}: choose anderson or momentum, not both (ott-jax ignores momentum "
                         f"under Anderson acceleration)")
    accel = _ott().acceleration
    if anderson is not None:
        if (isinstance(anderson, (bool, np.bool_)) or not isinstance(anderson, (int, np.integer))
                or anderson < 1):
            raise ValueError(f"{fn}: anderson is the memory size, an int >= 1, got {anderson!r}")
        return accel.AndersonAcceleration(memory=int(anderson)), None
    if momentum is None:
        return None, None
    if isinstance(momentum, str) and momentum == "adaptive":  # Lehmann et al. (2021)
        return None, accel.Momentum(start=2 * inner_iterations)  # from the first 2 checks
    if (isinstance(momentum, (str, bool, np.bool_, jax.core.Tracer))
            or not isinstance(momentum, (int, float, np.integer, np.floating))
            or not 0 < float(momentum) < 2):
        raise ValueError(f"{fn}: momentum must be a float in (0, 2) or 'adaptive', "
                         f"got {momentum!r}")
    return None, accel.Momentum(start=0, value=float(momentum))


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
    ``sinkhorn_log`` uses the L2 norm, a looser test at the same number). That bounds the
    marginal error, not the cost's: the error of ``transport_cost`` is first order in it, about
    ``threshold`` times the spread of the costs, and its sign depends on the path (plain
    Sinkhorn from zero potentials stops on one side of the solution). For three correct digits
    of ``transport_cost`` take ``threshold`` <= 1e-4 (benchmarks/RESULTS.md: at 1e-3 the plain
    iteration was 1.2e-3 off, the accelerated one 1.6e-4). The accelerations are ott-jax's own
    and leave the solution unchanged: ``anderson``, ``momentum``, epsilon scheduling (from
    ``epsilon_init * epsilon``, decaying by ``epsilon_decay`` per iteration; no error checks
    until it reaches ``epsilon``) and ``initializer``; ``converged`` is also False when the
    result is not finite (momentum can blow up from zero potentials at small epsilon). Gradients
    use implicit differentiation; with zero weights in ``a`` or ``b``, f, g and
    ``transport_cost`` get NaN gradients from ott-jax's implicit system, and ``reg_cost`` a NaN
    derivative in the zero weights themselves (finite in ``x``, ``y`` and the other weights).
    The gradients of f, g and ``transport_cost`` solve ott-jax's implicit linear system, which
    is singular (the potentials' common shift). With uniform weights (``a``, ``b`` None) and
    n·m up to 128², it is materialised and solved by SVD (least squares). Otherwise it goes to
    lineax's conjugate gradients, which in float32 can stall and raise "A linear solver
    returned non-finite output" (at 10 points and ε = 0.1 it did on 6 of 12 random problems;
    raw ott-jax does the same): take those gradients in float64 there, or differentiate
    ``reg_cost`` (envelope theorem, no solve) or :func:`sinkhorn_divergence`, both fine in
    float32.

    Precision and meshes: ott-jax runs under ``jax.default_matmul_precision("highest")``
    (forward and backward), so the cost matrix is full float32 even where XLA would use TF32,
    and the clouds are centred on their pooled mean first (held constant; both costs are
    translation-invariant): |x|^2 + |y|^2 - 2 x.y rounds relative to the points' norms, so
    clouds 1000 from the origin lost 8% of the transport cost in float32 before.
    Clouds sharded on a mesh are gathered (every Sinkhorn update needs every point); on Explicit
    mesh axes ott-jax runs with them made Auto (``jax.sharding.auto_axes``), and the results
    come back replicated.

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
      ``jax_enable_x64`` with ``anderson``, ``momentum='adaptive'`` or
      ``initializer='gaussian'`` in float64 (ott-jax builds these in the default dtype).

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
    _cost_fn(fn, cost)  # the checks; the solver builds its own
    max_iterations = _count(fn, "max_iterations", max_iterations)
    inner_iterations = _count(fn, "inner_iterations", inner_iterations)
    batch_size = _count(fn, "batch_size", batch_size, none_ok=True)
    threshold = _threshold(fn, threshold)
    anderson_acc, momentum_acc = _accelerations(fn, anderson, momentum, inner_iterations)
    _initializer(fn, initializer, (x.shape[0], y.shape[0]), batch_size)
    for name, value in (("epsilon_init", epsilon_init), ("epsilon_decay", epsilon_decay)):
        if isinstance(_real_option(fn, name, value), jax.core.Tracer):
            raise TypeError(f"{fn}: {name} must be a static number, got a traced value")
    epsilon_init, epsilon_decay = float(epsilon_init), float(epsilon_decay)
    if not (epsilon_init >= 1 and 0 < epsilon_decay <= 1) or (epsilon_init > 1
                                                              and epsilon_decay == 1):
        raise ValueError(f"{fn}: need epsilon_init >= 1 and 0 < epsilon_decay <= 1 (< 1 when "
                         f"epsilon_init > 1), got {epsilon_init} and {epsilon_decay}")
    if (anderson_acc is not None or initializer == "gaussian"
            or (momentum_acc is not None and momentum == "adaptive")):
        # ott-jax builds Anderson's history, the adaptive momentum weight and the Gaussian
        # initialisation in the default float dtype: float64 under jax_enable_x64 (float32
        # inputs would fail its lax.cond)
        wide = jax.dtypes.canonicalize_dtype(jnp.float64)
        x, y = (v.astype(jnp.promote_types(v.dtype, wide)) for v in (x, y))
    uniform = a is None and b is None  # static: no zero weight (see _implicit)
    a, b = uniform_weights(a, x.shape[0], x.dtype), uniform_weights(b, y.shape[0], x.dtype)
    a, b = a.astype(x.dtype), b.astype(x.dtype)
    C.check_probabilities(fn, "a", a, -1)
    C.check_probabilities(fn, "b", b, -1)
    eps = _epsilon(fn, epsilon, x.dtype)
    mesh = _explicit_mesh(x, y, a, b)
    x, y, a, b = (replicated(v) for v in (x, y, a, b))  # explicit gather of sharded samples
    options = _SinkhornOptions(cost, max_iterations, inner_iterations, batch_size, anderson,
                               momentum, epsilon_init, epsilon_decay, initializer, eps is not None,
                               uniform)
    if eps is None:
        eps = jnp.full((), np.nan, x.dtype)  # an array in every case, for _auto_axes
    threshold = jnp.asarray(threshold, x.dtype)
    solve = functools.partial(_solve if _eager(x, y, a, b, eps, threshold) else _solve_body,
                              options=options)
    reg, tc, f, g, eps_used, status = _auto_axes(mesh, solve, x, y, a, b, eps, threshold)
    # a solve that blew up (momentum can, from a poor start) has not converged, whatever
    # its marginal error says
    converged = (status[0] > 0) & jnp.isfinite(reg) & jnp.isfinite(tc)
    iterations = status[1].astype(jnp.int32)
    return SinkhornResult(reg_cost=reg.astype(dtype), transport_cost=tc.astype(dtype),
                          converged=converged, iterations=iterations, f=f, g=g,
                          x=x, y=y, epsilon=eps_used, cost=cost)


class _SinkhornOptions(NamedTuple):
    """:func:`sinkhorn`'s static options, checked: the key of the jitted solver's cache."""

    cost: str
    max_iterations: int
    inner_iterations: int
    batch_size: int | None
    anderson: int | None
    momentum: float | str | None
    epsilon_init: float
    epsilon_decay: float
    initializer: str
    given_epsilon: bool
    uniform: bool


# Called eagerly (no argument traced), the solves go through a module-level jit with their
# static options as the cache key: a solve built from new closures at each call was compiled
# again at each call (ott-jax's loop: sinkhorn took 0.57 s an eager call, 0.47 of it
# compiling; the divergence 0.82). Traced (under jit, grad, vmap) they are called directly, as
# part of the caller's program: differentiating a jitted call traces ott-jax's custom VJP again
# after the call has returned, outside the ``jax.default_matmul_precision("highest")`` in its
# body, and its products would fall back to the default precision (TF32 on NVIDIA GPUs).


def _eager(*args) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(args))


def _solve_body(x, y, a, b, eps, threshold, *, options):
    fn, ott, o = "sinkhorn", _ott(), options
    cost_fn = _cost_fn(fn, o.cost)
    anderson_acc, momentum_acc = _accelerations(fn, o.anderson, o.momentum, o.inner_iterations)
    init = _initializer(fn, o.initializer, (x.shape[0], y.shape[0]), o.batch_size)
    eps_ = eps if o.given_epsilon else None
    x, y = centred(x, y)  # both costs are translation-invariant; float32 rounding is not
    with jax.default_matmul_precision("highest"):
        geom_args = dict(cost_fn=cost_fn, batch_size=o.batch_size)
        min_iterations = 0
        if o.epsilon_init > 1:  # no error checks before the schedule reaches epsilon
            target = eps_ if eps_ is not None else ott.pointcloud.PointCloud(
                x, y, **geom_args).epsilon
            eps_ = ott.epsilon_scheduler.Epsilon(target, init=o.epsilon_init,
                                                 decay=o.epsilon_decay)
            min_iterations = int(np.ceil(np.log(o.epsilon_init) / -np.log(o.epsilon_decay)))
        geom = ott.pointcloud.PointCloud(x, y, epsilon=eps_, **geom_args)
        out = ott.linear.solve(geom, a=a, b=b, threshold=threshold,
                               max_iterations=o.max_iterations,
                               inner_iterations=o.inner_iterations,
                               min_iterations=min_iterations, anderson=anderson_acc,
                               implicit_diff=_implicit(ott, *geom.shape, o.uniform),
                               momentum=momentum_acc,
                               initializer=init)
        eps_used = jnp.asarray(geom.epsilon, x.dtype)
        tc = _transport_cost(x, y, out.f, out.g, eps_used, cost_fn, o.batch_size)
    status = jnp.stack([out.converged, out.n_iters]).astype(x.dtype)  # floats: see below
    return out.reg_ot_cost, tc, out.f, out.g, eps_used, status


_solve = jax.jit(_solve_body, static_argnames="options")


def sinkhorn_divergence(x: ArrayLike, y: ArrayLike, *, a: ArrayLike | None = None,
                        b: ArrayLike | None = None, epsilon: float | ArrayLike | None = None,
                        cost: Cost = "sqeuclidean", threshold: float = 1e-3,
                        max_iterations: int = 2000, batch_size: int | None = None) -> jax.Array:
    r"""Debiased Sinkhorn divergence, through ``ott.tools.sinkhorn_divergence``.

    .. math:: S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
       - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b),

    with :math:`\mathrm{OT}_\varepsilon` the regularised cost of :func:`sinkhorn`
    (``reg_cost``). Non-negative, 0 iff the measures coincide, for converged solves: each term
    carries the solver's first-order error in its marginals (``threshold``), so for nearly
    equal clouds the result can come out slightly negative (``S(x, x)`` of 50 points at the
    default threshold: -3e-6); lower ``threshold`` there. OT as :math:`\varepsilon \to 0`,
    MMD with kernel :math:`-c` as :math:`\varepsilon \to \infty`. The three terms share one
    epsilon (None: ``0.05 * std`` of the x-y cost matrix). Differentiable in ``x, y``
    (implicit differentiation) and ``a, b`` (the difference of the dual potentials, each the
    c-transform of the other side's: finite at zero weights too); vmappable over a batch of
    problems. Full float32 precision, centring, mesh gathering and the ``threshold``
    semantics as in :func:`sinkhorn`.

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
    _cost_fn(fn, cost)  # the checks; the solver builds its own
    max_iterations = _count(fn, "max_iterations", max_iterations)
    batch_size = _count(fn, "batch_size", batch_size, none_ok=True)
    threshold = _threshold(fn, threshold)
    uniform = a is None and b is None  # static: no zero weight (see _implicit)
    a, b = uniform_weights(a, x.shape[0], x.dtype), uniform_weights(b, y.shape[0], x.dtype)
    C.check_probabilities(fn, "a", a, -1)
    C.check_probabilities(fn, "b", b, -1)
    eps = _epsilon(fn, epsilon, x.dtype)
    mesh = _explicit_mesh(x, y, a, b)
    x, y, a, b = (replicated(v) for v in (x, y, a, b))  # explicit gather of sharded samples
    options = _DivergenceOptions(cost, max_iterations, batch_size, eps is not None, uniform)
    if eps is None:
        eps = jnp.full((), np.nan, x.dtype)  # an array in every case, for _auto_axes
    threshold = jnp.asarray(threshold, x.dtype)
    eager = _eager(x, y, a, b, eps, threshold)
    divergence = functools.partial(_divergence if eager else _divergence_body, options=options)
    return _auto_axes(mesh, divergence, x, y, a, b, eps, threshold).astype(dtype)


class _DivergenceOptions(NamedTuple):
    """:func:`sinkhorn_divergence`'s static options, checked: the jitted solver's cache key."""

    cost: str
    max_iterations: int
    batch_size: int | None
    given_epsilon: bool
    uniform: bool


def _divergence_body(x, y, a, b, eps, threshold, *, options):
    ott, cost_fn = _ott(), _cost_fn("sinkhorn_divergence", options.cost)
    max_iterations, batch_size = options.max_iterations, options.batch_size
    eps = eps if options.given_epsilon else None
    # The weights reach ott as constants; their gradient is the difference of the dual
    # potentials (Danskin), each the c-transform of the other side's, so it stays finite
    # at zero weights, where ott's implicit system gives NaN (its f is -inf there).
    sa, sb = lax.stop_gradient(a), lax.stop_gradient(b)
    x, y = centred(x, y)  # both costs are translation-invariant; float32 rounding is not
    with jax.default_matmul_precision("highest"):
        div, out = ott.sinkhorn_divergence.sinkhorn_divergence(
            ott.pointcloud.PointCloud, x, y, a=sa, b=sb, cost_fn=cost_fn, epsilon=eps,
            batch_size=batch_size,
            solve_kwargs=dict(threshold=threshold, max_iterations=max_iterations,
                              implicit_diff=_implicit(ott, x.shape[0], y.shape[0],
                                                     options.uniform)))
        (f_xy, g_xy), (_, g_xx), (f_yy, _) = lax.stop_gradient(out.potentials)
        geom_xy, geom_xx, geom_yy = out.geoms

        def c_transform(geom, f, g, axis):
            zero_f, zero_g = jnp.zeros_like(f), jnp.zeros_like(g)
            if axis == 1:  # phi_i = -eps LSE_j((g_j - C_ij) / eps)
                return geom.update_potential(zero_f, g, jnp.zeros_like(f), axis=1)
            return geom.update_potential(f, zero_g, jnp.zeros_like(g), axis=0)

        e = lax.stop_gradient(geom_xy.epsilon) * (jnp.sum(sa) - jnp.sum(sb))
        grad_a = (c_transform(geom_xy, f_xy, g_xy, 1) - c_transform(geom_xx, g_xx, g_xx, 1)
                  + e)
        grad_b = (c_transform(geom_xy, f_xy, g_xy, 0) - c_transform(geom_yy, f_yy, f_yy, 0)
                  - e)
    grad_a, grad_b = lax.stop_gradient(grad_a), lax.stop_gradient(grad_b)
    hi = lax.Precision.HIGHEST
    return (div + jnp.vdot(grad_a, a - sa, precision=hi)
            + jnp.vdot(grad_b, b - sb, precision=hi))


_divergence = jax.jit(_divergence_body, static_argnames="options")
