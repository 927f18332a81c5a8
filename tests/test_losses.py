"""jaxdiv.losses against float64 references, the identities that justify each block, and a
smoke test of experiments.distillation."""

import decimal
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special as sp
from jax.experimental.checkify import JaxRuntimeError
from jax.test_util import check_grads

from jaxdiv import checked
from jaxdiv.closed_forms import gaussian_kl
from jaxdiv.discrete import js_divergence, kl_divergence, kl_divergence_with_logits
from jaxdiv.distributions import MultivariateNormal, Normal
from jaxdiv.losses import (
    adaptive_kl_coefficient,
    approx_kl,
    distillation_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    gradient_penalty,
    policy_kl,
    vae_kl,
    wasserstein_critic_loss,
)
from tests.conftest import JIT

TRANSFORMS = [lambda f: f, JIT]
IDS = ["eager", "jit"]
LOG2 = np.log(2.0)


def _em1mx(x):
    """e^x - 1 - x to 40 digits (decimal), elementwise: free of the cancellation near 0."""
    def one(v):
        with decimal.localcontext() as ctx:
            ctx.prec = 40
            d = decimal.Decimal(float(v))
            return float(d.exp() - 1 - d)
    return np.vectorize(one, otypes=[np.float64])(np.asarray(x, np.float64))


def _softmax(z, t=1.0):
    return sp.softmax(np.asarray(z, np.float64) / t, axis=-1)


def _kl_ref(zt, zs, t=1.0):
    """T^2 KL(softmax(zt/T) || softmax(zs/T)) in float64 via scipy, in log space (exact even
    where a softmax underflows to 0)."""
    lt = sp.log_softmax(np.asarray(zt, np.float64) / t, axis=-1)
    ls = sp.log_softmax(np.asarray(zs, np.float64) / t, axis=-1)
    return t * t * np.sum(np.exp(lt) * np.where(np.isneginf(lt), 0.0, lt - ls), axis=-1)


def _logits(seed, shape=(4, 6), scale=2.0, dtype=jnp.float64):
    """Gaussian test inputs from NumPy (no PRNG kernels to compile), cast to ``dtype``."""
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def _dirichlet(seed, n):
    return jnp.asarray(np.random.default_rng(seed).dirichlet(np.ones(n)))


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_distillation_loss(transform):
    zs, zt = _logits(1, dtype=jnp.float32), _logits(2, dtype=jnp.float32)
    f = transform(distillation_loss)
    for t in (0.5, 1.0, 3.0):
        out = f(zs, zt, temperature=t)
        assert out.dtype == jnp.float32 and out.shape == (4,)
        np.testing.assert_allclose(out, _kl_ref(zt, zs, t), rtol=1e-5)
    ref = _kl_ref(zt, zs, 3.0)
    np.testing.assert_allclose(f(zs.T, zt.T, temperature=3.0, axis=0), ref, rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(lambda a, b: f(a, b, temperature=3.0))(zs, zt), ref,
                               rtol=1e-5)
    if transform is not JIT:
        return
    temps = jnp.array([0.5, 1.0, 3.0], jnp.float32)  # traced temperature, one per student
    out = jax.vmap(lambda t: f(zs, zt, temperature=t))(temps)
    np.testing.assert_allclose(out, np.stack([_kl_ref(zt, zs, t) for t in (0.5, 1, 3)]),
                               rtol=1e-5)


def test_distillation_at_t1_is_kl_and_has_the_cross_entropy_gradient():
    # KL = CE - H(teacher): same value as jaxdiv's KL, same student gradient as optax's CE.
    zs, zt = _logits(1), _logits(2)
    pt = jax.nn.softmax(zt)
    np.testing.assert_allclose(distillation_loss(zs, zt), kl_divergence_with_logits(zt, zs),
                               rtol=1e-12)
    entropy_t = sp.entr(_softmax(zt)).sum(-1)
    np.testing.assert_allclose(distillation_loss(zs, zt),
                               optax.softmax_cross_entropy(zs, pt) - entropy_t, rtol=1e-10)
    g_kl = jax.jit(jax.grad(lambda z: distillation_loss(z, zt).sum()))(zs)
    g_ce = jax.jit(jax.grad(lambda z: optax.softmax_cross_entropy(z, pt).sum()))(zs)
    np.testing.assert_allclose(g_kl, g_ce, rtol=1e-10, atol=1e-15)  # atol: entries near 0
    np.testing.assert_allclose(g_kl, _softmax(zs) - _softmax(zt), rtol=1e-10, atol=1e-15)


def test_distillation_t_squared_keeps_the_gradient_scale():
    zs, zt = _logits(1), _logits(2)
    grad = jax.grad(lambda z, t: distillation_loss(z, zt, temperature=t).sum())
    for t in (0.5, 2.0, 8.0):
        ref = t * (_softmax(zs, t) - _softmax(zt, t))
        np.testing.assert_allclose(grad(zs, t), ref, rtol=1e-10, atol=1e-15)
    # High-T limit (Hinton et al. Sec. 2.1): T^2 makes the gradient tend to the T-independent
    # (centred zs - centred zt) / n; the remaining correction is O(1/T) = 1e-3 relative.
    center = lambda z: np.asarray(z) - np.mean(np.asarray(z), -1, keepdims=True)
    np.testing.assert_allclose(grad(zs, 1e3), (center(zs) - center(zt)) / 6, rtol=1e-2,
                               atol=1e-4)


def test_distillation_boundaries():
    zs, zt = (_logits(k, scale=1e4, dtype=jnp.float32) for k in (1, 2))
    for t in (1.0, 4.0):
        v, g = jax.value_and_grad(lambda z, t=t: distillation_loss(z, zt, temperature=t).sum())(zs)
        assert np.isfinite(v) and np.isfinite(g).all()
        np.testing.assert_allclose(distillation_loss(zs, zt, temperature=t), _kl_ref(zt, zs, t),
                                   rtol=1e-5)
    # where: masked classes leave both softmaxes; a teacher logit -inf is a zero-mass class.
    zs, zt = _logits(1), _logits(2)
    mask = jnp.array([True, True, False, True, False, True])
    np.testing.assert_allclose(distillation_loss(zs, zt, temperature=2.0, where=mask),
                               _kl_ref(zt[:, mask], zs[:, mask], 2.0), rtol=1e-10)
    zt_inf = zt.at[:, 2].set(-jnp.inf)
    v, g = jax.value_and_grad(lambda z: distillation_loss(z, zt_inf).sum())(zs)
    assert np.isfinite(v) and np.isfinite(g).all()


@pytest.mark.parametrize("transform, dtype, rtol", [
    (TRANSFORMS[0], jnp.float64, 1e-10), (JIT, jnp.float32, 1e-5), (JIT, jnp.float64, 1e-10)],
    ids=["eager-float64", "jit-float32", "jit-float64"])
def test_vae_kl(transform, dtype, rtol):
    mean, log_var = _logits(3, (4, 5), 1.0, dtype), _logits(4, (4, 5), 2.0, dtype)
    ref = 0.5 * (_em1mx(log_var) + np.asarray(mean, np.float64) ** 2).sum(-1)
    f = transform(vae_kl)
    assert f(mean, log_var).dtype == dtype
    np.testing.assert_allclose(f(mean, log_var), ref, rtol=rtol)
    np.testing.assert_allclose(f(mean.T, log_var.T, axis=0), ref, rtol=rtol)
    np.testing.assert_allclose(jax.vmap(f)(mean, log_var), ref, rtol=rtol)
    gm, gv = jax.grad(lambda m, v: f(m, v).sum(), (0, 1))(mean, log_var)
    np.testing.assert_allclose(gm, mean, rtol=rtol)
    np.testing.assert_allclose(gv, 0.5 * np.expm1(np.asarray(log_var, np.float64)), rtol=rtol)
    if dtype == jnp.float64 and transform is JIT:
        check_grads(f, (mean, log_var), order=1, modes=["fwd", "rev"])


def test_vae_kl_extreme_log_var():
    # One latent per row, so each output is one term. Near 0 the naive exp(v) - 1 - v in
    # float32 is pure rounding error (it fails this test); at -1e4 the term is ~-v, at +100 inf.
    lv = jnp.array([-1e4, -100.0, -3e-4, 1e-6, 2e-3, 0.0999, 0.1001, 30.0, 100.0], jnp.float32)
    mean = jnp.zeros_like(lv)
    out = vae_kl(mean[:, None], lv[:, None])
    ref = 0.5 * _em1mx(lv)
    np.testing.assert_allclose(out[:-1], ref[:-1], rtol=1e-5)
    assert out[-1] == np.inf
    g = jax.grad(lambda v: vae_kl(mean[:-1, None], v[:, None]).sum())(lv[:-1])
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, 0.5 * np.expm1(np.asarray(lv[:-1], np.float64)), rtol=1e-5)


def test_vae_kl_matches_gaussian_kl():
    mean, log_var = _logits(3, (3, 4), 1.0), _logits(4, (3, 4), 1.5)
    scale = jnp.exp(0.5 * log_var)
    kl = jax.jit(gaussian_kl)
    ref_normal = kl(Normal(mean, scale), Normal(0.0, 1.0)).sum(-1)
    mvn = MultivariateNormal(mean, jax.vmap(jnp.diag)(scale))
    ref_mvn = kl(mvn, MultivariateNormal(jnp.zeros(4), jnp.eye(4)))
    np.testing.assert_allclose(vae_kl(mean, log_var), ref_normal, rtol=1e-10)
    np.testing.assert_allclose(vae_kl(mean, log_var), ref_mvn, rtol=1e-10)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_policy_kl(transform):
    old, new = _logits(5, dtype=jnp.float32), _logits(6, dtype=jnp.float32)
    f = transform(policy_kl)
    np.testing.assert_allclose(f(old, new), _kl_ref(old, new), rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(f)(old, new), _kl_ref(old, new), rtol=1e-5)
    mask = jnp.array([True, False, True, True, True, False])  # invalid actions
    np.testing.assert_allclose(f(old, new, where=mask), _kl_ref(old[:, mask], new[:, mask]),
                               rtol=1e-5)


def test_approx_kl_expectations_are_policy_kl():
    # Exact expectations under pi_old, no sampling: k1 and k3 average to KL(pi_old || pi_new)
    # (k3's extra term e^r - 1 has mean 0); k2's bias is third order, so its relative error
    # shrinks linearly with the distance between the policies.
    old = _logits(7, (3, 5), 1.0)
    p_old = _softmax(old)
    rel_err_k2 = []
    for spread in (0.4, 0.1, 0.025):
        new = old + _logits(8, (3, 5), spread)
        r = jax.nn.log_softmax(new) - jax.nn.log_softmax(old)  # every action's log-ratio
        exact = _kl_ref(old, new)
        np.testing.assert_allclose(policy_kl(old, new), exact, rtol=1e-10)
        for name in ("k1", "k3"):
            np.testing.assert_allclose(np.sum(p_old * approx_kl(r, estimator=name), -1), exact,
                                       rtol=1e-10)
        k2 = np.sum(p_old * approx_kl(r, estimator="k2"), -1)
        rel_err_k2.append(np.max(np.abs(k2 / exact - 1)))
    assert rel_err_k2[2] < 0.05 and rel_err_k2[2] < rel_err_k2[1] / 3 < rel_err_k2[0] / 9


def test_approx_kl_monte_carlo(rng):
    # Sampled actions, as in PPO: k1 and k3 within 5 standard errors of the exact KL; k3 >= 0
    # per sample where k1 is not; k3 has the smaller variance for nearby policies.
    old = _logits(7, (3, 5), 1.0)
    new = old + _logits(8, (3, 5), 0.3)
    n = 100_000
    actions = jax.random.categorical(rng, old, axis=-1, shape=(n, 3))
    r = jnp.take_along_axis(jax.nn.log_softmax(new) - jax.nn.log_softmax(old), actions.T,
                            axis=-1).T  # [n, 3]
    exact = _kl_ref(old, new)
    k1, k3 = (np.asarray(approx_kl(r, estimator=e)) for e in ("k1", "k3"))
    for k in (k1, k3):
        assert (np.abs(k.mean(0) - exact) < 5 * k.std(0) / np.sqrt(n)).all()
    assert (k3 >= 0).all() and (k1 < 0).any()
    assert (k3.std(0) < k1.std(0)).all()


@pytest.mark.parametrize("dtype, rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_approx_kl_values(dtype, rtol):
    r = jnp.array([-50.0, -1.0, -1e-4, 0.0, 1e-6, 0.05, 0.2, 2.0, 30.0], dtype)
    r64 = np.asarray(r, np.float64)
    f = jax.jit(approx_kl, static_argnames="estimator")
    np.testing.assert_array_equal(f(r, estimator="k1"), -r)
    np.testing.assert_allclose(f(r, estimator="k2"), 0.5 * r64**2, rtol=rtol)
    k3 = f(r)
    assert k3.dtype == dtype and k3[3] == 0.0
    np.testing.assert_allclose(k3, _em1mx(r64), rtol=rtol)  # naive (e^r - 1) - r fails at 1e-6
    np.testing.assert_allclose(jax.vmap(approx_kl)(r), _em1mx(r64), rtol=rtol)
    g = jax.grad(lambda r: f(r).sum())(r)
    np.testing.assert_allclose(g, np.expm1(r64), rtol=rtol)


def test_adaptive_kl_coefficient():
    kl = jnp.array([0.1, 0.6, 0.7, 1.0, 1.5, 1.6, 10.0])  # target 1: band (2/3, 1.5)
    np.testing.assert_array_equal(adaptive_kl_coefficient(1.0, kl, 1.0),
                                  [0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(adaptive_kl_coefficient(3.0, kl, 1.0, tolerance=2.0,
                                                          factor=3.0),
                                  [1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 9.0])

    # Pure: runs inside lax.scan under jit, and matches the paper's rule as a Python loop.
    kls = jnp.array([0.001, 0.002, 0.05, 0.2, 0.01, 0.012, 0.0, 0.03])

    def step(beta, kl):
        beta = adaptive_kl_coefficient(beta, kl, 0.01)
        return beta, beta
    _, betas = jax.jit(lambda b: jax.lax.scan(step, b, kls))(1.0)
    beta, ref = 1.0, []
    for d in np.asarray(kls):
        beta = beta / 2 if d < 0.01 / 1.5 else beta * 2 if d > 0.01 * 1.5 else beta
        ref.append(beta)
    np.testing.assert_allclose(betas, ref, rtol=1e-15)
    out = jax.vmap(adaptive_kl_coefficient, in_axes=(0, None, None))(jnp.ones(3), 1.0, 0.1)
    np.testing.assert_array_equal(out, 2.0)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=IDS)
def test_gan_losses(transform):
    real, fake = _logits(9, (8,), 5.0, jnp.float32), _logits(10, (8,), 5.0, jnp.float32)
    r64, f64 = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    np.testing.assert_allclose(transform(gan_discriminator_loss)(real, fake),
                               -sp.log_expit(r64) - sp.log_expit(-f64), rtol=1e-5)
    ns = transform(gan_generator_loss)
    mm = transform(lambda f: gan_generator_loss(f, non_saturating=False))
    np.testing.assert_allclose(ns(fake), -sp.log_expit(f64), rtol=1e-5)
    np.testing.assert_allclose(mm(fake), sp.log_expit(-f64), rtol=1e-5)
    np.testing.assert_array_equal(transform(wasserstein_critic_loss)(real, fake), fake - real)
    out = jax.vmap(gan_discriminator_loss)(real[:, None], fake[:, None])
    np.testing.assert_allclose(out[:, 0], -sp.log_expit(r64) - sp.log_expit(-f64), rtol=1e-5)


def test_gan_extreme_logits():
    big = jnp.array([1e4, -1e4, 30.0, -30.0, 0.0], jnp.float32)
    d = gan_discriminator_loss(big, -big)
    np.testing.assert_allclose(d, -2 * sp.log_expit(np.asarray(big, np.float64)), rtol=1e-5)
    gr, gf = jax.grad(lambda r, f: gan_discriminator_loss(r, f).sum(), (0, 1))(big, -big)
    s = sp.expit(np.asarray(big, np.float64))
    # atol: float32 resolves gradients like sigma(-30) ~ 9e-14 only to ~1e-3 relative.
    np.testing.assert_allclose(gr, s - 1, rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(gf, 1 - s, rtol=1e-5, atol=1e-15)
    # Saturation: against a confident discriminator (logit -30) the minimax loss has gradient
    # -sigma(-30) ~ -1e-13, the non-saturating one about -1.
    g_ns = jax.grad(lambda f: gan_generator_loss(f).sum())(big)
    g_mm = jax.grad(lambda f: gan_generator_loss(f, non_saturating=False).sum())(big)
    np.testing.assert_allclose(g_ns, s - 1, rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(g_mm, -s, rtol=1e-5, atol=1e-15)
    assert abs(g_mm[3]) < 1e-12 and abs(g_ns[3] + 1) < 1e-6



INF = np.inf


def test_approx_kl_limits_at_infinite_log_ratios():
    # r = +inf: k1 = -inf, k2 = k3 = +inf (e^r - 1 - r, not inf - inf = NaN); r = -inf: k1,
    # k2, k3 all +inf. Derivatives: -1, r, e^r - 1, finite wherever the value is.
    r = jnp.array([INF, -INF])
    limits = {"k1": [-INF, INF], "k2": [INF, INF], "k3": [INF, INF]}
    for est, lim in limits.items():
        np.testing.assert_array_equal(approx_kl(r, estimator=est), lim)
        np.testing.assert_array_equal(jax.jit(approx_kl, static_argnames="estimator")(
            r, estimator=est), lim)
    g = jax.vmap(jax.grad(lambda x: approx_kl(x, estimator="k3")))(r)
    np.testing.assert_array_equal(g, [INF, -1.0])
    np.testing.assert_array_equal(jax.vmap(jax.grad(lambda x: approx_kl(x, estimator="k1")))(
        r), [-1.0, -1.0])
    assert float(approx_kl(jnp.array(800.0))) == INF  # e^800 overflows float64: +inf, not NaN


def test_gan_losses_limits_at_infinite_logits():
    # -log sigma(+inf) = 0, -log sigma(-inf) = +inf; the gradients sigma - 1 (real) and sigma
    # (fake) stay finite. optax.sigmoid_binary_cross_entropy gives NaN here (0 * -inf).
    real = jnp.array([INF, -INF, INF, INF, 0.0, -INF])
    fake = jnp.array([-INF, -INF, INF, 0.0, -INF, INF])
    np.testing.assert_allclose(gan_discriminator_loss(real, fake),
                               [0.0, INF, INF, LOG2, LOG2, INF], rtol=1e-15)
    gr, gf = jax.grad(lambda r, f: gan_discriminator_loss(r, f).sum(), (0, 1))(real, fake)
    np.testing.assert_allclose(gr, [0, -1, 0, 0, -0.5, -1], rtol=1e-15)
    np.testing.assert_allclose(gf, [0, 0, 1, 0.5, 0, 1], rtol=1e-15)
    x = jnp.array([INF, -INF])
    np.testing.assert_array_equal(gan_generator_loss(x), [0.0, INF])
    np.testing.assert_array_equal(gan_generator_loss(x, non_saturating=False), [-INF, 0.0])
    g_ns = jax.vmap(jax.grad(gan_generator_loss))(x)
    g_mm = jax.vmap(jax.grad(lambda f: gan_generator_loss(f, non_saturating=False)))(x)
    np.testing.assert_array_equal(g_ns, [0.0, -1.0])
    np.testing.assert_array_equal(g_mm, [-1.0, 0.0])
    assert np.isnan(gan_discriminator_loss(jnp.array([jnp.nan]), jnp.array([0.0]))).all()


def test_vae_kl_limits():
    # A variance of 0 or infinity, or an infinite mean, is infinitely far from N(0, 1).
    zeros = jnp.zeros(2)
    for log_var in ([INF, 0.0], [-INF, 0.0]):
        assert float(vae_kl(zeros, jnp.array(log_var))) == INF
    assert float(vae_kl(jnp.array([INF, 0.0]), zeros)) == INF
    g = jax.grad(lambda v: vae_kl(zeros, v))(jnp.array([-INF, 0.0]))
    np.testing.assert_array_equal(g, [-0.5, 0.0])  # (e^v - 1) / 2


def test_adaptive_kl_coefficient_limits():
    kl = jnp.array([INF, -INF, jnp.nan, 0.01])
    np.testing.assert_array_equal(adaptive_kl_coefficient(1.0, kl, 0.01), [2.0, 0.5, np.nan, 1])
    np.testing.assert_array_equal(adaptive_kl_coefficient(1.0, jnp.array([INF, 5.0]), INF),
                                  [1.0, 0.5])
    np.testing.assert_array_equal(adaptive_kl_coefficient(0.0, 1.0, 0.01), 0.0)
    with pytest.raises(JaxRuntimeError, match="adaptive_kl_coefficient: beta"):
        checked(jax.jit(adaptive_kl_coefficient))(-1.0, 0.1, 0.01)


def test_gradient_penalty_edge_cases():
    key = jax.random.key(0)
    out = gradient_penalty(CRITIC, jnp.zeros((0, 3)), jnp.zeros((0, 3)), key)  # empty batch
    assert out.shape == (0,)
    # No features: the input gradient is empty, its norm 0, the penalty the weight.
    np.testing.assert_array_equal(gradient_penalty(CRITIC, jnp.zeros((4, 0)),
                                                   jnp.zeros((4, 0)), key, weight=3.0), 3.0)
    # One scalar feature per example: critic x -> 2x has gradient norm 2, penalty w (2-1)^2.
    np.testing.assert_array_equal(gradient_penalty(lambda x: 2 * x, jnp.ones(5), jnp.zeros(5),
                                                   key), 10.0)


def test_optimal_discriminator_value_is_js():
    # V(D*, G) = E_r log D* + E_g log(1 - D*) = 2 JS(p_r || p_g) - 2 log 2 (Goodfellow et al.).
    p_r, p_g = _dirichlet(14, 7), _dirichlet(15, 7)
    weights = p_r[:, None] * p_g[None, :]  # independent (real, fake) pairs

    def expected_loss(logits):  # E over pairs of the per-pair discriminator loss, = -V
        return jnp.sum(weights * gan_discriminator_loss(
            jnp.broadcast_to(logits[:, None], (7, 7)), jnp.broadcast_to(logits[None], (7, 7))))

    d_star = jnp.log(p_r) - jnp.log(p_g)  # logit of p_r / (p_r + p_g)
    value, grad = jax.jit(jax.value_and_grad(expected_loss))(d_star)
    np.testing.assert_allclose(-value, 2 * js_divergence(p_r, p_g) - 2 * LOG2, rtol=1e-12)
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)  # D* is a stationary point


def test_non_saturating_generator_gradient_identity():
    # Arjovsky & Bottou 2017, Thm 2.5: with D* held fixed at theta0, the gradient of
    # E_g[-log D*] equals that of KL(p_g || p_r) - 2 JS(p_r || p_g); the minimax loss
    # E_g[log(1 - D*)] has the gradient of 2 JS. An identity of gradients, not of values.
    p_r, theta0 = _dirichlet(16, 7), _logits(17, (7,), 1.0)
    d_star = jnp.log(p_r) - jax.nn.log_softmax(theta0)  # fixed: a constant below

    def ns(theta):
        return jnp.sum(jax.nn.softmax(theta) * gan_generator_loss(d_star))

    def mm(theta):
        return jnp.sum(jax.nn.softmax(theta) * gan_generator_loss(d_star, non_saturating=False))

    def kl_minus_2js(theta):
        p_g = jax.nn.softmax(theta)
        return kl_divergence(p_g, p_r) - 2 * js_divergence(p_r, p_g)

    def two_js(theta):
        return 2 * js_divergence(p_r, jax.nn.softmax(theta))

    grad = lambda f: jax.jit(jax.grad(f))(theta0)
    np.testing.assert_allclose(grad(ns), grad(kl_minus_2js), rtol=1e-10,
                               atol=1e-14)  # atol: entries near 0
    np.testing.assert_allclose(grad(mm), grad(two_js), rtol=1e-10, atol=1e-14)
    assert abs(ns(theta0) - kl_minus_2js(theta0)) > 1e-2  # the values differ


@pytest.mark.parametrize("dtype, rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-12)])
def test_gradient_penalty_linear_critic(dtype, rtol, rng):
    # A linear critic has gradient w everywhere: the penalty is weight (|w| - 1)^2 whatever eps.
    w = _logits(11, (3,), 1.0, dtype)
    real, fake = _logits(12, (5, 3), 1.0, dtype), _logits(13, (5, 3), 1.0, dtype)
    norm = np.linalg.norm(np.asarray(w, np.float64))

    def pen(w, key):
        return gradient_penalty(lambda x: x @ w, real, fake, key, weight=3.0)

    for f in (pen, jax.jit(pen)):
        out = f(w, rng)
        assert out.shape == (5,) and out.dtype == dtype
        np.testing.assert_allclose(out, np.full(5, 3.0 * (norm - 1) ** 2), rtol=rtol)
    g = jax.grad(lambda w: pen(w, rng).sum())(w)  # second-order autodiff through the critic
    np.testing.assert_allclose(g, 5 * 2 * 3.0 * (norm - 1) * np.asarray(w) / norm, rtol=rtol)


def test_gradient_penalty_interpolates_per_example(rng):
    # f(x) = x^2 / 2 in 1-D: the gradient at x_hat = eps * 1 + (1 - eps) * 0 is eps, so the
    # penalty (eps - 1)^2 reveals eps: per example, in [0, 1], uniform.
    n = 2000
    out = gradient_penalty(lambda x: 0.5 * x[:, 0] ** 2, jnp.ones((n, 1)), jnp.zeros((n, 1)),
                           rng, weight=1.0)
    eps = 1 - np.sqrt(np.asarray(out))
    assert (eps >= 0).all() and (eps <= 1).all() and len(np.unique(eps)) == n
    assert abs(eps.mean() - 0.5) < 5 / np.sqrt(12 * n)  # 5 standard errors of U[0, 1]
    # Multi-axis examples, [B, 1] scores: with fake = real, x_hat = real for every eps.
    x = _logits(18, (4, 2, 3), 1.0)
    out = gradient_penalty(lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2))[:, None], x, x, rng)
    ref = 10.0 * (np.linalg.norm(np.asarray(x).reshape(4, -1), axis=1) - 1) ** 2
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_gradient_penalty_zero_gradient_is_finite(rng):
    # A flat critic: the norm sits at sqrt(0). A plain jnp.linalg.norm gives a NaN gradient.
    real, fake = _logits(19, (4, 3), 1.0), jnp.zeros((4, 3))

    def pen(theta):
        return gradient_penalty(lambda x: theta * x.sum(-1), real, fake, rng).sum()

    np.testing.assert_allclose(pen(0.0), 4 * 10.0)
    assert np.isfinite(jax.grad(pen)(0.0))
    np.testing.assert_allclose(jax.grad(pen)(0.5), 4 * 10.0 * 2 * (0.5 * np.sqrt(3) - 1)
                               * np.sqrt(3), rtol=1e-12)


Z = np.zeros((2, 3))
CRITIC = lambda x: x.sum(-1)
_BAD_INPUT = [  # (call, exception, message): the function, the argument and the shapes
    (lambda: distillation_loss(Z, Z, temperature=0.0), ValueError,
     r"distillation_loss.*temperature"),
    (lambda: distillation_loss(Z, Z, temperature=-1.0), ValueError,
     r"distillation_loss.*temperature"),
    (lambda: distillation_loss(Z, Z, temperature=float("nan")), ValueError,
     r"distillation_loss.*temperature"),
    (lambda: distillation_loss(Z, Z, temperature=np.ones(2)), ValueError,
     r"distillation_loss.*temperature.*scalar"),
    (lambda: distillation_loss(Z, jnp.zeros((2, 4))), ValueError,
     r"distillation_loss.*student_logits.*\(2, 3\).*\(2, 4\)"),
    (lambda: vae_kl(Z, jnp.zeros((2, 4))), ValueError,
     r"vae_kl.*mean.*\(2, 3\).*log_var.*\(2, 4\)"),
    (lambda: vae_kl(Z, "x"), TypeError, r"vae_kl.*log_var"),
    (lambda: policy_kl(Z, jnp.zeros((2, 4))), ValueError,
     r"policy_kl.*old_logits.*\(2, 3\).*\(2, 4\)"),
    (lambda: approx_kl(Z, estimator="k4"), ValueError, r"approx_kl.*estimator.*'k4'"),
    (lambda: adaptive_kl_coefficient(1.0, 1.0, 1.0, tolerance=0.5), ValueError,
     r"adaptive_kl_coefficient.*tolerance"),
    (lambda: adaptive_kl_coefficient(1.0, 1.0, 1.0, factor=0.5), ValueError,
     r"adaptive_kl_coefficient.*factor"),
    (lambda: adaptive_kl_coefficient(jnp.ones(2), jnp.ones(3), 1.0), ValueError,
     r"adaptive_kl_coefficient.*\(2,\).*\(3,\)"),
    (lambda: gan_discriminator_loss(jnp.zeros(4), jnp.zeros(5)), ValueError,
     r"gan_discriminator_loss.*real_logits.*\(4,\).*\(5,\)"),
    (lambda: wasserstein_critic_loss(jnp.zeros(4), jnp.zeros(5)), ValueError,
     r"wasserstein_critic_loss.*real_scores.*\(4,\).*\(5,\)"),
    (lambda: gan_generator_loss(None), TypeError, r"gan_generator_loss.*fake_logits"),
    (lambda: gradient_penalty(CRITIC, Z, jnp.zeros((2, 4)), jax.random.key(0)), ValueError,
     r"gradient_penalty.*real.*\(2, 3\).*fake.*\(2, 4\)"),
    (lambda: gradient_penalty(CRITIC, 1.0, 2.0, jax.random.key(0)), ValueError,
     r"gradient_penalty.*scalar"),
    (lambda: gradient_penalty(jnp.sum, Z, Z, jax.random.key(0)), ValueError,
     r"gradient_penalty.*critic_fn.*shape \(\)"),
]


@pytest.mark.parametrize("call, error, message", _BAD_INPUT,
                         ids=[m.split(".*")[0] for _, _, m in _BAD_INPUT])
def test_bad_input_raises_naming_function_argument_and_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_traced_temperature_is_checked_under_checked():
    # A traced temperature cannot raise inside jit; jaxdiv.checked reports it.
    with pytest.raises(JaxRuntimeError, match=r"distillation_loss.*temperature"):
        checked(jax.jit(distillation_loss))(Z, Z, temperature=-1.0)


def test_bfloat16_is_computed_in_float32():
    zs, zt = _logits(1, dtype=jnp.bfloat16), _logits(2, dtype=jnp.bfloat16)
    for out, ref in [
        (distillation_loss(zs, zt, temperature=2.0), _kl_ref(zt, zs, 2.0)),
        (policy_kl(zt, zs), _kl_ref(zt, zs)),
        (vae_kl(zs, zt), 0.5 * (_em1mx(zt) + np.asarray(zs, np.float64) ** 2).sum(-1)),
        (approx_kl(zs), _em1mx(zs)),
        (gan_discriminator_loss(zs, zt), -sp.log_expit(np.asarray(zs, np.float64))
         - sp.log_expit(-np.asarray(zt, np.float64))),
    ]:
        assert out.dtype == jnp.bfloat16
        # bfloat16 keeps 8 significant bits: the result is rounded to 2^-8 = 4e-3 relative.
        np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=4e-3)


def test_distillation_experiment_smoke(tmp_path):
    from experiments import distillation

    result = distillation.main(["--out", str(tmp_path), "--steps", "400", "--teacher-steps",
                                "300", "--seeds", "2", "--temperatures", "4"])
    saved = json.loads((tmp_path / "distillation.json").read_text())
    assert (tmp_path / "distillation.png").stat().st_size > 0
    rows = {r["model"]: r for r in saved["models"]}
    assert [r["model"] for r in result["models"]] == list(rows)
    hard, dist = rows["hard labels"], rows["distill T=4"]
    # Loose physics (checked on seeds 0-5 at these settings): chance is 0.1; distilled students
    # end ~2x closer to the teacher than hard-label students.
    assert rows["teacher"]["accuracy"] > 0.8
    assert hard["accuracy"] > 0.5 and dist["accuracy"] > 0.5
    assert dist["kl_to_teacher"] < hard["kl_to_teacher"]
    assert dist["accuracy"] > hard["accuracy"] - 0.02
