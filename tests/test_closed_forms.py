"""Gaussian KL and 2-Wasserstein closed forms against float64 numpy/scipy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl
from jax.test_util import check_grads

from jaxdiv.closed_forms import gaussian_kl, gaussian_w2
from jaxdiv.distributions import Mixture, MultivariateNormal, Normal

MVN = MultivariateNormal


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _kl_ref(m1, s1, m2, s2):
    """KL(N(m1, s1) || N(m2, s2)) with an explicit inverse and log-determinants."""
    inv = np.linalg.inv(s2)
    dm = m2 - m1
    return 0.5 * (np.trace(inv @ s1) + dm @ inv @ dm - len(m1)
                  + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1])


def _w2_ref(m1, s1, m2, s2):
    r2 = sl.sqrtm(s2)
    bures = np.trace(s1 + s2 - 2 * sl.sqrtm(r2 @ s1 @ r2)).real
    return np.sqrt(np.sum((m1 - m2) ** 2) + bures)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_normal_closed_forms(transform):
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(4, 1)), rng.normal(size=(3,))
    s1, s2 = rng.uniform(0.3, 3, size=(4, 1)), rng.uniform(0.3, 3, size=(3,))
    p, q = Normal(jnp.asarray(m1), jnp.asarray(s1)), Normal(jnp.asarray(m2), jnp.asarray(s2))
    ref = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    np.testing.assert_allclose(transform(gaussian_kl)(p, q), ref, rtol=1e-12)
    np.testing.assert_allclose(transform(gaussian_w2)(p, q),
                               np.sqrt((m1 - m2) ** 2 + (s1 - s2) ** 2), rtol=1e-12)
    # vmap over a batch of p against one q
    pb = Normal(jnp.asarray(m1[:, 0]), jnp.asarray(s1[:, 0]))
    q0 = Normal(jnp.asarray(m2[0]), jnp.asarray(s2[0]))
    np.testing.assert_allclose(jax.vmap(gaussian_kl, in_axes=(0, None))(pb, q0), ref[:, 0],
                               rtol=1e-12)
    # float32 in, float32 out
    p32 = Normal(jnp.float32(0.3), jnp.float32(1.7))
    q32 = Normal(jnp.float32(-0.2), jnp.float32(0.9))
    assert gaussian_kl(p32, q32).dtype == jnp.float32
    np.testing.assert_allclose(gaussian_kl(p32, q32),
                               np.log(0.9 / 1.7) + (1.7**2 + 0.25) / (2 * 0.81) - 0.5, rtol=1e-5)


def test_normal_kl_accurate_near_equal():
    # sigma_p = 1 + d: KL = d^2 - d^3/3 + d^4/4 + O(d^5); the naive formula loses it to rounding
    for d in (1e-3, 1e-6):
        kl = gaussian_kl(Normal(0.0, 1.0 + d), Normal(0.0, 1.0))
        np.testing.assert_allclose(kl, d**2 - d**3 / 3 + d**4 / 4, rtol=1e-8)
    assert gaussian_kl(Normal(0.5, 2.0), Normal(0.5, 2.0)) == 0.0


@pytest.mark.parametrize("d", [1, 2, 5])
def test_mvn_closed_forms_random_spd(d):
    rng = np.random.default_rng(d)
    s = [_spd(rng, d) for _ in range(6)]
    m = rng.normal(size=(6, d))
    kl = jax.jit(jax.vmap(gaussian_kl))
    w2 = jax.jit(jax.vmap(gaussian_w2))
    p = MVN.from_covariance(m[:3], np.stack(s[:3]))
    q = MVN.from_covariance(m[3:], np.stack(s[3:]))
    np.testing.assert_allclose(kl(p, q), [_kl_ref(m[i], s[i], m[i + 3], s[i + 3])
                                          for i in range(3)], rtol=1e-10)
    np.testing.assert_allclose(w2(p, q), [_w2_ref(m[i], s[i], m[i + 3], s[i + 3])
                                          for i in range(3)], rtol=1e-9)
    # batch broadcasting without vmap: a batch of 3 against one q
    q0 = MVN.from_covariance(m[3], s[3])
    np.testing.assert_allclose(gaussian_kl(p, q0), [_kl_ref(m[i], s[i], m[3], s[3])
                                                    for i in range(3)], rtol=1e-10)
    np.testing.assert_allclose(gaussian_w2(p, q0), [_w2_ref(m[i], s[i], m[3], s[3])
                                                    for i in range(3)], rtol=1e-9)
    # KL(p || p) = 0 and W2(p, p) = 0 up to rounding
    np.testing.assert_allclose(gaussian_kl(p, p), 0.0, atol=1e-13)  # rounding of the solves
    np.testing.assert_allclose(gaussian_w2(p, p), 0.0, atol=1e-7)  # sqrt of a rounding error


def test_mvn_gradients():
    rng = np.random.default_rng(7)
    s1, s2 = _spd(rng, 3), _spd(rng, 3)
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    l1, l2 = np.linalg.cholesky(s1), np.linalg.cholesky(s2)
    kl = lambda a, b, la, lb: gaussian_kl(MVN(a, la), MVN(b, lb))
    w2 = lambda a, b, la, lb: gaussian_w2(MVN(a, la), MVN(b, lb))
    check_grads(kl, (m1, m2, l1, l2), order=2, modes=["rev"])
    # the Procrustes rotation is held fixed (envelope theorem): first order only
    check_grads(w2, (m1, m2, l1, l2), order=1, modes=["rev"])
    # isotropic and equal covariances: repeated eigenvalues, where eigh-based square roots NaN
    eye = jnp.eye(3)
    g = jax.jit(jax.grad(w2, argnums=(0, 2, 3)))(jnp.ones(3), jnp.zeros(3), eye, eye)
    assert all(np.isfinite(x).all() for x in g)
    np.testing.assert_allclose(g[0], np.ones(3) / np.sqrt(3), rtol=1e-12)
    np.testing.assert_allclose(g[1], 0.0, atol=1e-12)  # the Bures term is at its minimum
    # p == q: the distance is 0 and its gradient is taken as 0 (double where)
    g = jax.grad(w2, argnums=(0, 2))(jnp.zeros(3), jnp.zeros(3), eye, eye)
    np.testing.assert_array_equal(g[0], 0.0)
    assert np.isfinite(g[1]).all()
    g = jax.grad(lambda s: gaussian_w2(Normal(0.0, s), Normal(0.0, 1.0)))(1.0)
    assert g == 0.0


def test_w2_nearly_singular():
    # commuting (diagonal) covariances: W2^2 = |dm|^2 + sum (sqrt(a) - sqrt(b))^2 exactly
    a = np.array([1.0, 1e-12, 4.0])
    b = np.array([9.0, 1e-10, 4.0])
    p, q = MVN(jnp.zeros(3), jnp.diag(jnp.sqrt(a))), MVN(jnp.ones(3), jnp.diag(jnp.sqrt(b)))
    ref = np.sqrt(3 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    np.testing.assert_allclose(gaussian_w2(p, q), ref, rtol=1e-12)
    # a rotated, nearly rank-one pair against scipy
    rng = np.random.default_rng(3)
    u = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    s1 = u @ np.diag([2.0, 1e-9, 1e-9]) @ u.T
    s2 = _spd(rng, 3)
    p, q = MVN.from_covariance(np.zeros(3), s1), MVN.from_covariance(np.zeros(3), s2)
    np.testing.assert_allclose(gaussian_w2(p, q), _w2_ref(np.zeros(3), s1, np.zeros(3), s2),
                               rtol=1e-7)  # scipy's sqrtm is itself only this accurate here
    g = jax.grad(lambda l: gaussian_w2(MVN(jnp.zeros(3), l), q))(p.scale_tril)
    assert np.isfinite(g).all()
    # float32 stays finite and close
    p32 = MVN(jnp.zeros(3, jnp.float32), jnp.diag(jnp.sqrt(jnp.asarray(a, jnp.float32))))
    q32 = MVN(jnp.ones(3, jnp.float32), jnp.diag(jnp.sqrt(jnp.asarray(b, jnp.float32))))
    out = gaussian_w2(p32, q32)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_bad_input():
    n, m = Normal(0.0, 1.0), MVN(jnp.zeros(2), jnp.eye(2))
    for f in (gaussian_kl, gaussian_w2):
        with pytest.raises(TypeError, match=f"{f.__name__}: p and q must both be Normal"):
            f(n, m)
        with pytest.raises(TypeError, match=f.__name__):
            f(Mixture(jnp.zeros(2), Normal(jnp.zeros(2), jnp.ones(2))), n)
        with pytest.raises(ValueError, match=f"{f.__name__}: p has event size 2"):
            f(m, MVN(jnp.zeros(3), jnp.eye(3)))
        with pytest.raises(ValueError, match="do not broadcast"):
            f(Normal(jnp.zeros(2), 1.0), Normal(jnp.zeros(3), 1.0))
