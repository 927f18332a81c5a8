"""Tests for jaxdiv.sample_distances against float64 references: scipy, POT and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
import scipy.stats as st
from jax.experimental import checkify
from scipy.spatial.distance import cdist, pdist

from jaxdiv._checks import checked
from jaxdiv._numerics import argsort_last, sort_last
from jaxdiv.sample_distances import energy_distance, mmd, sliced_wasserstein, wasserstein_1d


def clouds(seed, n=40, m=30, d=2, shift=1.0):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, d)), 0.8 * r.normal(size=(m, d)) + shift


def weights(seed, n):
    w = np.random.default_rng(seed).uniform(0.2, 1.0, size=n)
    return w / w.sum()


# --------------------------------------------------------------------------------------------
# The sorts behind them (a bitonic network on CPU): numpy's order, NaN last, jnp.sort's derivative


def _awkward_rows(n, seed=0):
    r = np.random.default_rng(seed)
    v = np.round(r.normal(size=(5, n)), 1)  # ties
    v[v > 1.2] = np.inf
    v[v < -1.3] = -np.inf
    v[0, ::3] = np.nan
    v[1] = np.nan
    v[2, : n // 2] = 0.0
    v[2, n // 2:] = -0.0
    return v


@pytest.mark.parametrize("n,dtype", [(1, np.float32), (2, np.float32), (3, np.float32),
                                     (8, np.float32), (33, np.float32), (1500, np.float32),
                                     (33, np.float64)])
def test_sort_helpers_match_numpy(n, dtype):
    v = _awkward_rows(n).astype(dtype)
    ref = np.sort(v, axis=-1)  # NaN last
    got = np.asarray(jax.jit(sort_last)(jnp.asarray(v)))
    np.testing.assert_array_equal(got, ref)
    order = np.asarray(jax.jit(argsort_last)(jnp.asarray(v)))
    assert (np.sort(order, -1) == np.arange(n)).all()  # a permutation of each row
    np.testing.assert_array_equal(np.take_along_axis(v, order, -1), ref)
    assert order.dtype == jnp.argsort(jnp.asarray(v)).dtype
    # under vmap over a middle axis, as sliced_wasserstein uses it
    np.testing.assert_array_equal(
        np.asarray(jax.jit(jax.vmap(sort_last, in_axes=1, out_axes=1))(jnp.asarray(v[None]))),
        ref[None])


def test_median_order_statistics_take_nan_of_either_sign_as_inf():
    from jaxdiv.sample_distances import _order_statistics

    d = jnp.array([1.0, 2.0, np.inf]) - jnp.array([0.0, 0.0, np.inf])  # inf - inf: a -NaN
    np.testing.assert_array_equal(_order_statistics(d, (0, 1, 2)), [1.0, 2.0, np.inf])
    r = np.random.default_rng(3)
    v = np.abs(r.normal(size=1001))
    v[::9] = 0.0
    ks = (0, 500, 1000)
    np.testing.assert_array_equal(jax.jit(lambda d: _order_statistics(d, ks))(v),
                                  np.sort(v)[list(ks)])


def test_sort_last_derivatives_are_jnp_sorts():
    r = np.random.default_rng(1)
    v, w = jnp.asarray(r.normal(size=(3, 37))), jnp.asarray(r.normal(size=37))
    loss = lambda sort: lambda v: jnp.sum(sort(v) ** 3 * w)
    # both jitted (the same fused arithmetic around the sorts): op by op, the sorting network's
    # derivatives compiled hundreds of small programs
    np.testing.assert_array_equal(jax.jit(jax.grad(loss(sort_last)))(v),
                                  jax.jit(jax.grad(loss(lambda u: jnp.sort(u, axis=-1))))(v))
    v, w = v[0, :6], w[:6]
    np.testing.assert_allclose(jax.jit(jax.hessian(loss(sort_last)))(v),
                               jax.hessian(loss(lambda u: jnp.sort(u, axis=-1)))(v), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# wasserstein_1d and sliced_wasserstein

W1 = jax.jit(wasserstein_1d, static_argnames="p")


@pytest.mark.parametrize("n,m,transform", [(50, 50, lambda f: f), (40, 65, lambda f: W1)],
                         ids=["eager-equal-sizes", "jit"])
def test_wasserstein_1d_matches_scipy(n, m, transform):
    r = np.random.default_rng(n + m)
    x, y = r.normal(size=n), 1.5 * r.normal(size=m) + 0.3
    u, v = r.uniform(size=n), r.uniform(size=m)
    w1 = transform(wasserstein_1d)
    np.testing.assert_allclose(w1(x, y), st.wasserstein_distance(x, y), rtol=1e-10)
    np.testing.assert_allclose(w1(x, y, x_weights=u, y_weights=v),
                               st.wasserstein_distance(x, y, u, v), rtol=1e-10)
    if w1 is not W1:  # one weighted side only; fewer compilations under jit
        np.testing.assert_allclose(w1(x, y, x_weights=u), st.wasserstein_distance(x, y, u),
                                   rtol=1e-10)
    # p = 3, 2 against the exact LP (POT emd2 with cost |x - y|^p), then the p-th root
    M = np.abs(x[:, None] - y[None, :]) ** 3
    ref = ot.emd2(u / u.sum(), v / v.sum(), M) ** (1 / 3)
    np.testing.assert_allclose(w1(x, y, p=3, x_weights=u, y_weights=v), ref, rtol=1e-9)
    ref = ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), M ** (2 / 3)) ** (1 / 2)
    np.testing.assert_allclose(w1(x, y, p=2), ref, rtol=1e-9)
    if w1 is not W1:
        np.testing.assert_allclose(w1(x.astype(np.float32), y.astype(np.float32)),
                                   st.wasserstein_distance(x, y), rtol=1e-5)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_wasserstein_1d_shift(p):
    x = np.random.default_rng(0).normal(size=30)
    w = np.arange(1.0, 31)
    np.testing.assert_allclose(W1(x, x + 0.7, p=p), 0.7, rtol=1e-12)
    np.testing.assert_allclose(W1(x + 0.7, x, p=p, x_weights=w, y_weights=w), 0.7, rtol=1e-12)
    grad = jax.jit(jax.grad(wasserstein_1d, argnums=(0, 1)), static_argnames="p")
    ds = jax.grad(lambda s: W1(x, x + s, p=p))(0.4)
    np.testing.assert_allclose(ds, 1.0, rtol=1e-12)
    gx, gy = grad(x, np.sort(x)[::-1], p=p)  # W = 0: the root's gradient is taken as 0
    assert np.isfinite(gx).all() and np.isfinite(gy).all()


def test_wasserstein_1d_many_float32_samples_keep_their_small_intervals():
    # Intervals of mass 1/n fell under a fixed 4-ulp cut (4.8e-7 in float32) and were dropped:
    # W was 2.3% low at 300,000 vs 300,001 samples, and exactly 0 from n = 2^21 on.
    rng = np.random.default_rng(0)
    x = rng.normal(size=300_000).astype(np.float32)
    y = (rng.normal(size=300_001) + 1).astype(np.float32)
    ref = st.wasserstein_distance(x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(float(wasserstein_1d(x, y)), ref, rtol=1e-5)
    n = 2**21 + 16
    x = rng.normal(size=n).astype(np.float32)
    y = (rng.normal(size=n) + 1).astype(np.float32)
    d = np.sort(x).astype(np.float64) - np.sort(y)
    np.testing.assert_allclose(float(wasserstein_1d(x, y)), np.mean(np.abs(d)), rtol=1e-5)
    np.testing.assert_allclose(float(wasserstein_1d(x, y, p=np.inf)), np.max(np.abs(d)),
                               rtol=1e-6)


def test_wasserstein_1d_vmap_histogram_and_errors():
    r = np.random.default_rng(1)
    xs, ys = r.normal(size=(4, 20)), r.normal(size=(4, 25))
    out = jax.jit(jax.vmap(wasserstein_1d))(xs, ys)
    ref = [st.wasserstein_distance(u, v) for u, v in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(out, ref, rtol=1e-10)
    s = np.linspace(0.0, 1.0, 11)
    u, v = r.uniform(size=11), r.uniform(size=11)
    np.testing.assert_allclose(W1(s, s, x_weights=u, y_weights=v),
                               st.wasserstein_distance(s, s, u, v), rtol=1e-10)
    bf = W1(xs[0].astype(jnp.bfloat16), ys[0].astype(jnp.bfloat16))
    assert bf.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(bf), ref[0], rtol=2e-2)  # bfloat16 inputs: ~3 digits
    with pytest.raises(ValueError, match=r"wasserstein_1d: x has shape \(4, 20\)"):
        wasserstein_1d(xs, ys)
    with pytest.raises(ValueError, match="p must be a static number >= 1"):
        wasserstein_1d(xs[0], ys[0], p=0.5)
    with pytest.raises(ValueError, match=r"x_weights has shape \(3,\); expected \(20,\)"):
        wasserstein_1d(xs[0], ys[0], x_weights=np.ones(3))
    # value checks are opt-in (they cannot raise inside jit)
    with pytest.raises(checkify.JaxRuntimeError, match="argument x_weights has negative"):
        checked(wasserstein_1d)(xs[0, :10], ys[0, :8], x_weights=np.r_[-1.0, np.ones(9)])


def test_sliced_wasserstein_matches_pot(rng):
    x, y = clouds(18, n=50, m=40, d=3)
    a = weights(19, 50)
    theta = jax.random.normal(rng, (20, 3))
    theta = np.asarray(theta / jnp.linalg.norm(theta, axis=1, keepdims=True))
    sw = jax.jit(sliced_wasserstein, static_argnames=("num_projections", "p"))
    ref = ot.sliced_wasserstein_distance(x, y, a=a, projections=theta.T, p=2)  # root taken
    np.testing.assert_allclose(sw(rng, x, y, a=a, num_projections=20), ref, rtol=1e-10)
    g = jax.jit(jax.grad(sliced_wasserstein, argnums=1), static_argnames="num_projections")(
        rng, x, y, a=a, num_projections=20)
    assert np.isfinite(g).all() and np.abs(g).sum() > 0
    keys = jax.random.split(rng, 3)
    batched = jax.vmap(lambda k: sw(k, x, y, a=a, num_projections=20))(keys)
    np.testing.assert_allclose(batched[2], sw(keys[2], x, y, a=a, num_projections=20), rtol=1e-12)
    with pytest.raises(ValueError, match=r"sliced_wasserstein: x has shape \(50, 3\)"):
        sliced_wasserstein(rng, x, y[:, :2])


# --------------------------------------------------------------------------------------------
# MMD and energy distance


def mmd_ref(x, y, kernel, sigma):
    def k(u, v):
        d = cdist(u, v)
        return np.exp(-d**2 / (2 * sigma**2)) if kernel == "gaussian" else np.exp(-d / sigma)
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy))
            / (m * (m - 1)) - 2 * k(x, y).mean())


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian"])
def test_mmd_matches_numpy(kernel):
    x, y = clouds(20, n=30, m=25, d=3, shift=0.5)
    sigma = np.median(pdist(np.concatenate([x, y])))
    f = jax.jit(mmd, static_argnames="kernel")
    np.testing.assert_allclose(mmd(x, y, kernel=kernel), mmd_ref(x, y, kernel, sigma),
                               rtol=1e-10)  # eager
    np.testing.assert_allclose(f(x, y, kernel=kernel, bandwidth=0.7),
                               mmd_ref(x, y, kernel, 0.7), rtol=1e-10)
    np.testing.assert_allclose(f(x.astype(np.float32), y.astype(np.float32), kernel=kernel),
                               mmd_ref(x, y, kernel, sigma), rtol=1e-5)
    xx = np.concatenate([x[3:], x[:3]])  # coincident points: the Laplacian's |x - y| at 0
    g = jax.jit(jax.grad(mmd), static_argnames="kernel")(xx, x, kernel=kernel)
    assert np.isfinite(g).all()
    with pytest.raises(ValueError, match=r"need at least 2 point"):
        mmd(x[:1], y)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        mmd(x, y, bandwidth=-1.0)


def test_mmd_unbiased_mean_zero(rng):
    # Same distribution: the unbiased estimator averages to 0 (the biased V-statistic would
    # average to about 2/n > 0, some 20 standard errors away here).
    keys = jax.random.split(rng, 400)
    draw = lambda k: jax.random.normal(k, (2, 20, 2))
    vals = jax.jit(jax.vmap(lambda k: mmd(*draw(k), bandwidth=1.0)))(keys)
    se = np.std(vals) / np.sqrt(len(vals))
    assert abs(np.mean(vals)) < 3 * se
    x, y = draw(keys[0])
    assert mmd(x, y + 3.0, bandwidth=1.0) > 0.5


def test_energy_distance():
    r = np.random.default_rng(21)
    x, y = r.normal(size=(40, 1)), 0.5 * r.normal(size=(30, 1)) + 0.2
    f = jax.jit(energy_distance)
    # scipy's (1-D) energy distance is the square root of ours
    np.testing.assert_allclose(energy_distance(x, y), st.energy_distance(x[:, 0], y[:, 0]) ** 2,
                               rtol=1e-10)  # eager
    x3, y3 = clouds(22, n=30, m=20, d=3)
    ref = 2 * cdist(x3, y3).mean() - cdist(x3, x3).mean() - cdist(y3, y3).mean()
    np.testing.assert_allclose(f(x3, y3), ref, rtol=1e-10)
    np.testing.assert_allclose(f(x3.astype(np.float32), y3.astype(np.float32)), ref, rtol=1e-5)
    np.testing.assert_allclose(f(x3, x3), 0.0, atol=1e-14)  # exact zero up to rounding
    g = jax.jit(jax.grad(energy_distance))(x3, x3)
    assert np.isfinite(g).all()
    with pytest.raises(ValueError, match=r"energy_distance: x has shape \(30, 3\)"):
        energy_distance(x3, y3[:, :2])


def test_mmd_and_energy_of_nearby_clouds_float32_matches_float64():
    # Precision policy: both are small differences of large pairwise means (here 30 to 300x
    # smaller); the matmul form at full float32 precision keeps float32 within 1e-5 of
    # float64, where TF32 products (1e-3 relative) could not.
    r = np.random.default_rng(0)
    x = r.normal(size=(64, 3))
    y = x + 0.1 * r.normal(size=(64, 3)) + 0.05
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    terms = cdist(x, y).mean()
    energy_ref = 2 * terms - cdist(x, x).mean() - cdist(y, y).mean()
    for f, ref in ((jax.jit(lambda x, y: mmd(x, y, bandwidth=1.0)), mmd_ref(x, y, "gaussian", 1.0)),
                   (jax.jit(energy_distance), energy_ref)):
        assert abs(ref) < terms / 30
        np.testing.assert_allclose(f(x, y), ref, rtol=1e-10)
        out = f(x32, y32)
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Tiles, gradients and boundaries


@pytest.mark.parametrize("batch_size", [None, 8], ids=["one-tile", "tiles-with-padding"])
def test_mmd_and_energy_gradients_match_finite_differences(batch_size):
    x, y = clouds(30, n=30, m=25, d=3, shift=0.5)
    f_mmd = jax.jit(jax.value_and_grad(lambda x, y, s, **kw: mmd(x, y, bandwidth=s, **kw),
                                       (0, 1, 2)), static_argnames=("kernel", "batch_size"))
    f_e = jax.jit(jax.value_and_grad(energy_distance, (0, 1)), static_argnames="batch_size")

    def energy_ref(x, y):
        return 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()

    def fd(fun, args, i, h=1e-6):  # central differences of the numpy reference in argument i
        g = np.zeros_like(args[i])
        for k in np.ndindex(g.shape):
            up, dn = [np.array(a, float) for a in args], [np.array(a, float) for a in args]
            up[i][k] += h
            dn[i][k] -= h
            g[k] = (fun(*up) - fun(*dn)) / (2 * h)
        return g

    for kernel in ("gaussian", "laplacian"):
        ref = lambda x, y, s, kernel=kernel: mmd_ref(x, y, kernel, float(s))
        v, grads = f_mmd(x, y, 0.7, kernel=kernel, batch_size=batch_size)
        np.testing.assert_allclose(v, ref(x, y, 0.7), rtol=1e-10)
        for i, g in enumerate(grads):
            np.testing.assert_allclose(g, fd(ref, (x, y, np.array(0.7)), i), rtol=1e-6,
                                       atol=1e-9, err_msg=f"{kernel} argument {i}")
    v, grads = f_e(x, y, batch_size=batch_size)
    np.testing.assert_allclose(v, energy_ref(x, y), rtol=1e-10)
    for i, g in enumerate(grads):
        np.testing.assert_allclose(g, fd(energy_ref, (x, y), i), rtol=1e-6, atol=1e-9)
    # coincident clouds: every distance x_i - x_i is exactly 0, so E is 0 up to the rounding
    # of its sums (atol), and E(x, .) is minimal at x: zero gradient
    v, (gx, gy) = f_e(x, x, batch_size=batch_size)
    np.testing.assert_allclose(v, 0.0, atol=1e-14)
    np.testing.assert_allclose(gx, 0.0, atol=1e-14)
    np.testing.assert_allclose(gy, 0.0, atol=1e-14)


def test_median_bandwidth_from_a_fixed_subsample():
    # Beyond 1024 pooled points the heuristic uses 1024 of them, evenly spaced (documented)
    x, y = clouds(31, n=900, m=700, d=2)
    z = np.concatenate([x, y])
    sub = z[np.round(np.linspace(0, len(z) - 1, 1024)).astype(int)]
    sigma = np.median(pdist(sub))
    np.testing.assert_allclose(jax.jit(mmd)(x, y), mmd_ref(x, y, "gaussian", sigma), rtol=1e-9)


def test_infinite_samples_follow_scipy():
    r = np.random.default_rng(32)
    u, v = r.normal(size=8), r.normal(size=6)
    ui = np.r_[u, np.inf]
    # one sample infinite, the other finite: +inf, as scipy; both infinite: inf - inf = NaN
    assert wasserstein_1d(ui, v) == st.wasserstein_distance(ui, v) == np.inf
    assert energy_distance(ui[:, None], v[:, None]) == np.inf
    assert st.energy_distance(ui, v) == np.inf
    assert np.isnan(wasserstein_1d(ui, np.r_[v, np.inf]))
    assert np.isnan(energy_distance(ui[:, None], np.r_[v, np.inf][:, None]))
    assert np.isnan(energy_distance(np.r_[u, np.nan][:, None], v[:, None]))


def test_wasserstein_p_infinity_and_large_p():
    r = np.random.default_rng(33)
    x, y = r.normal(size=12), 1.3 * r.normal(size=9) + 0.2
    u, v = r.uniform(0.2, 1.0, 12), r.uniform(0.2, 1.0, 9)
    # W_inf: the largest quantile difference, on a grid of levels strictly inside every
    # interval of the merged CDFs
    cu, cv = np.cumsum(u[np.argsort(x)]) / u.sum(), np.cumsum(v[np.argsort(y)]) / v.sum()
    levels = np.unique(np.r_[0.0, cu, cv])
    t = (levels[:-1] + levels[1:]) / 2
    qx = np.sort(x)[np.minimum(np.searchsorted(cu, t), 11)]
    qy = np.sort(y)[np.minimum(np.searchsorted(cv, t), 8)]
    w_inf = np.max(np.abs(qx - qy))
    np.testing.assert_allclose(W1(x, y, p=np.inf, x_weights=u, y_weights=v), w_inf, rtol=1e-12)
    np.testing.assert_allclose(W1(x, x + 5.0, p=np.inf), 5.0, rtol=1e-12)
    # large p: no underflow (the shift case gave 0 at p = 1100); against the quantile integral
    # on the same grid (the LP solvers lose such costs to their tolerances), and towards W_inf
    np.testing.assert_allclose(W1(x, x + 0.5, p=1100), 0.5, rtol=1e-12)
    for p in (3, 300):
        ref = w_inf * np.sum(np.diff(levels) * (np.abs(qx - qy) / w_inf) ** p) ** (1 / p)
        np.testing.assert_allclose(W1(x, y, p=p, x_weights=u, y_weights=v), ref, rtol=1e-10)
    assert abs(W1(x, y, p=2000, x_weights=u, y_weights=v) - w_inf) < 2e-3 * w_inf
    # sliced: the largest W_inf over the directions
    key, xs = jax.random.key(3), r.normal(size=(10, 2))
    shift = np.array([0.3, -0.4])
    theta = np.array(jax.random.normal(key, (20, 2)), float)
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    np.testing.assert_allclose(sliced_wasserstein(key, xs, xs + shift, num_projections=20,
                                                  p=np.inf), np.abs(theta @ shift).max(),
                               rtol=1e-12)


def test_wasserstein_zero_gradient_at_zero_and_zero_weights():
    r = np.random.default_rng(34)
    x, w = r.normal(size=7), r.uniform(0.5, 1.0, 7)
    grad = jax.jit(jax.grad(wasserstein_1d, argnums=(0, 1)), static_argnames="p")
    for p in (1, 2, np.inf):  # W = 0: the gradient is taken as 0 (p = 1 included)
        for g in grad(x, x[::-1], p=p):
            np.testing.assert_array_equal(g, 0.0)
    gw = jax.grad(lambda w: wasserstein_1d(x, x, x_weights=w, y_weights=w))(w)
    np.testing.assert_array_equal(gw, 0.0)
    # all-zero weights: no distribution; NaN, and reported under jaxdiv.checked
    assert np.isnan(wasserstein_1d(x, x + 1, x_weights=np.zeros(7)))
    with pytest.raises(checkify.JaxRuntimeError, match="x_weights sums to 0"):
        checked(wasserstein_1d)(x, x + 1, x_weights=np.zeros(7))


def test_wasserstein_gradient_in_a_zero_weight():
    # A zero weight ties two CDF levels: cummax split the derivative between them (-1.0 where
    # -1.5 is right), and the interval of no mass it opens was dropped with its derivative.
    # The reference: scipy's one-sided differences into the simplex (weights renormalised).
    x, y = np.array([0.0, 1.0, 5.0, 2.0]), np.array([0.5, 3.0, 1.0])
    a, b = np.array([0.3, 0.0, 0.5, 0.2]), np.array([0.0, 0.6, 0.4])
    ga, gb = jax.grad(lambda a, b: wasserstein_1d(x, y, x_weights=a, y_weights=b),
                      argnums=(0, 1))(a, b)
    h = 1e-7

    def one_sided(f, v):
        return [(f(v + h * e) - f(v)) / h for e in np.eye(v.size)]

    np.testing.assert_allclose(ga, one_sided(lambda a: st.wasserstein_distance(x, y, a, b), a),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gb, one_sided(lambda b: st.wasserstein_distance(x, y, a, b), b),
                               rtol=1e-6, atol=1e-6)
    # p = 2: the limit of the gradient from positive weights
    g2 = jax.grad(lambda a, b: wasserstein_1d(x, y, x_weights=a, y_weights=b, p=2),
                  argnums=(0, 1))
    for g, ref in zip(g2(a, b), g2(a + 1e-12 * (a == 0), b + 1e-12 * (b == 0)), strict=True):
        np.testing.assert_allclose(g, ref, rtol=1e-9, atol=1e-9)
