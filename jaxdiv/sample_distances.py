r"""Distances between samples that need no solver: exact 1-D Wasserstein, sliced Wasserstein,
MMD and energy distance.

Point clouds are ``x: [n, d]``, ``y: [m, d]`` with weights ``a: [n]``, ``b: [m]`` (ott's names);
batch problems with ``jax.vmap``. Entropic transport (Sinkhorn) is in :mod:`jaxdiv.transport`.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import compute_dtype, safe, uniform_weights

__all__ = ["energy_distance", "mmd", "sliced_wasserstein", "wasserstein_1d"]


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
    a, b = uniform_weights(a, n, x.dtype), uniform_weights(b, m, x.dtype)
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

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> x, y = jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 2.0, 3.0])
      >>> print(f"{float(jaxdiv.wasserstein_1d(x, y)):.4f}")  # a shift by 1
      1.0000
      >>> print(f"{float(jaxdiv.wasserstein_1d(x, y, p=2)):.4f}")
      1.0000
      >>> w = jnp.array([0.0, 0.5, 0.5])
      >>> print(f"{float(jaxdiv.wasserstein_1d(x, y, x_weights=w)):.4f}")
      0.5000
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

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=jnp.float32)
      >>> print(f"{float(jaxdiv.sliced_wasserstein(jax.random.key(0), x, x)):.4f}")
      0.0000
      >>> sw = jaxdiv.sliced_wasserstein(jax.random.key(0), x, x + 2.0, num_projections=500)
      >>> print(f"{float(sw):.2f}")  # a shift by (2, 2): about |shift| / sqrt(2) = 2
      2.04
    """
    fn = "sliced_wasserstein"
    C.check_key(fn, key)
    _check_p(fn, p)
    dtype, x, y, _, _ = C.point_clouds(fn, x, y, None, None)
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

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> print(f"{float(jaxdiv.mmd(x, x, bandwidth=1.0)):.4f}")  # unbiased: can be < 0
      -0.3153
      >>> print(f"{float(jaxdiv.mmd(x, x + 1.0, bandwidth=1.0)):.4f}")
      0.4425
    """
    fn = "mmd"
    dtype, x, y, _, _ = C.point_clouds(fn, x, y, None, None, min_size=2)
    if kernel not in ("gaussian", "laplacian"):
        raise ValueError(f"{fn}: kernel must be 'gaussian' or 'laplacian', got {kernel!r}")
    sigma = (_median_bandwidth(x, y) if bandwidth is None
             else C.positive_scalar(fn, "bandwidth", bandwidth, x.dtype))

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

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> print(f"{float(jaxdiv.energy_distance(x, x)):.4f}")
      0.0000
      >>> print(f"{float(jaxdiv.energy_distance(x, x + 1.0)):.4f}")
      1.7525
    """
    dtype, x, y, _, _ = C.point_clouds("energy_distance", x, y, None, None)
    e = 2 * jnp.mean(_dist(x, y)) - jnp.mean(_dist(x, x)) - jnp.mean(_dist(y, y))
    return e.astype(dtype)
