"""Normal, MultivariateNormal and Mixture against scipy, as pytrees, and their argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from scipy import integrate, stats

from jaxdiv._checks import checked
from jaxdiv.distributions import Mixture, MultivariateNormal, Normal


def _spd(rng, d, n=None):
    shape = (d, d) if n is None else (n, d, d)
    a = rng.normal(size=shape)
    return a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_normal_against_scipy(transform):
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(3, 1)), rng.uniform(0.5, 2.0, size=(4,))
    x = rng.normal(size=(5, 3, 4)) * 2
    d = Normal(jnp.asarray(loc), jnp.asarray(scale))
    assert d.batch_shape == (3, 4) and d.event_shape == ()
    np.testing.assert_allclose(transform(lambda d, x: d.log_prob(x))(d, x),
                               stats.norm.logpdf(x, loc, scale), rtol=1e-12)
    np.testing.assert_allclose(transform(lambda d: d.entropy())(d),
                               stats.norm.entropy(loc, np.broadcast_to(scale, (3, 4))), rtol=1e-12)
    np.testing.assert_allclose(d.mean(), np.broadcast_to(loc, (3, 4)), rtol=0)
    np.testing.assert_allclose(d.variance(), np.broadcast_to(scale**2, (3, 4)), rtol=1e-14)
    # vmap over a batch of locations (in_axes spec with a None leaf) gives the same numbers
    per = jax.vmap(lambda d, x: d.log_prob(x), in_axes=(Normal(0, None), 1), out_axes=1)
    np.testing.assert_allclose(per(Normal(jnp.asarray(loc[:, 0]), 1.5), x[..., 0]),
                               stats.norm.logpdf(x[..., 0], loc[:, 0], 1.5), rtol=1e-12)


def test_normal_float32_and_bfloat16():
    d = Normal(jnp.float32(0.5), jnp.float32(2.0))
    x = np.linspace(-3, 3, 7).astype(np.float32)
    out = d.log_prob(x)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, stats.norm.logpdf(x.astype(np.float64), 0.5, 2.0), rtol=1e-5)
    h = Normal(jnp.bfloat16(0.5), jnp.bfloat16(2.0))
    assert h.log_prob(jnp.bfloat16(1.0)).dtype == jnp.bfloat16
    assert h.sample(jax.random.key(0), (3,)).dtype == jnp.bfloat16


def test_normal_sample_reparameterised(rng):
    d = Normal(jnp.array([0.0, 3.0]), jnp.array([1.0, 0.5]))
    x = jax.jit(lambda d, k: d.sample(k, (200_000,)))(d, rng)
    assert x.shape == (200_000, 2)
    # moments within 5 standard errors of the sample mean / variance
    np.testing.assert_allclose(x.mean(0), [0.0, 3.0], atol=5 * 1.0 / np.sqrt(2e5))
    np.testing.assert_allclose(x.var(0), [1.0, 0.25], rtol=5 * np.sqrt(2 / 2e5))
    assert d.sample(rng).shape == (2,) and d.sample(rng, 4).shape == (4, 2)
    # x = loc + scale * eps: d mean(x) / d loc = 1, d mean(x) / d scale = mean(eps)
    g = jax.jit(jax.grad(lambda d: d.sample(rng, (1000,)).mean(0).sum()))(d)
    eps = (jax.jit(lambda d: d.sample(rng, (1000,)))(d) - d.loc) / d.scale
    np.testing.assert_allclose(g.loc, [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(g.scale, eps.mean(0), rtol=1e-10)


@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_mvn_against_scipy(transform):
    rng = np.random.default_rng(1)
    d = 3
    covs, locs = _spd(rng, d, 2), rng.normal(size=(2, d))
    dist = MultivariateNormal.from_covariance(locs, covs)
    assert dist.batch_shape == (2,) and dist.event_shape == (3,)
    x = rng.normal(size=(6, 2, d))
    ref = np.stack([stats.multivariate_normal(locs[i], covs[i]).logpdf(x[:, i]) for i in (0, 1)],
                   axis=1)
    np.testing.assert_allclose(transform(lambda m, x: m.log_prob(x))(dist, x), ref, rtol=1e-11)
    ent = [stats.multivariate_normal(locs[i], covs[i]).entropy() for i in (0, 1)]
    np.testing.assert_allclose(transform(lambda m: m.entropy())(dist), ent, rtol=1e-12)
    mean, cov, var = jax.jit(lambda m: (m.mean(), m.covariance(), m.variance()))(dist)
    np.testing.assert_allclose(cov, covs, rtol=1e-12)
    np.testing.assert_allclose(var, np.diagonal(covs, 0, -2, -1), rtol=1e-12)
    np.testing.assert_allclose(mean, locs, rtol=0)
    # one factor shared by a batch of means, and x broadcast against the batch
    shared = MultivariateNormal(jnp.asarray(locs), np.linalg.cholesky(covs[0]))
    ref0 = np.stack([stats.multivariate_normal(locs[i], covs[0]).logpdf(x[0, 0]) for i in (0, 1)])
    per = jax.vmap(lambda m: m.log_prob(x[0, 0]), in_axes=(MultivariateNormal(0, None),))
    np.testing.assert_allclose(transform(lambda m: m.log_prob(x[0, 0]))(shared), ref0, rtol=1e-11)
    np.testing.assert_allclose(jax.jit(per)(shared), ref0, rtol=1e-11)


def test_mvn_upper_triangle_ignored_and_sampling(rng):
    rng_np = np.random.default_rng(2)
    cov = _spd(rng_np, 3)
    tril = np.linalg.cholesky(cov)
    junk = tril + np.triu(rng_np.normal(size=(3, 3)), 1)
    m = MultivariateNormal(jnp.ones(3), jnp.asarray(junk))
    x = rng_np.normal(size=(4, 3))
    np.testing.assert_allclose(m.log_prob(x), stats.multivariate_normal(np.ones(3), cov).logpdf(x),
                               rtol=1e-12)
    g = jax.jit(jax.grad(lambda t: MultivariateNormal(jnp.ones(3), t).log_prob(x).sum()))(junk)
    np.testing.assert_array_equal(np.triu(g, 1), 0.0)
    s = jax.jit(lambda m, k: m.sample(k, (200_000,)))(m, rng)
    assert s.shape == (200_000, 3)
    np.testing.assert_allclose(np.cov(s.T), cov, atol=0.03 * np.abs(cov).max())  # MC error


def _mixture_1d():
    return Mixture(jnp.log(jnp.array([0.3, 0.7])),
                   Normal(jnp.array([-2.0, 1.5]), jnp.array([0.5, 1.2])))


@pytest.mark.parametrize("kind", ["normal", "mvn"])
def test_sample_and_log_prob_is_log_prob_of_the_sample(kind, rng):
    # The same draws as sample(key), and log q from the noise equal to scipy's log-density at
    # them; as functions of the parameters the two routes have the same gradient.
    r = np.random.default_rng(3)
    if kind == "normal":
        params = (jnp.asarray(r.normal(size=3)), jnp.asarray(r.uniform(0.5, 2.0, size=3)))
        make = Normal
        ref = lambda x, p: stats.norm.logpdf(x, np.asarray(p[0]), np.asarray(p[1]))
    else:
        params = (jnp.asarray(r.normal(size=3)), jnp.asarray(np.linalg.cholesky(_spd(r, 3))))
        make = MultivariateNormal
        cov = np.asarray(params[1] @ params[1].T)
        ref = lambda x, p: stats.multivariate_normal.logpdf(x, np.asarray(p[0]), cov)
    d = make(*params)
    x, lq = jax.jit(lambda d: d.sample_and_log_prob(rng, (7,)))(d)
    np.testing.assert_allclose(x, d.sample(rng, (7,)), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(lq, ref(np.asarray(x), params), rtol=1e-12)

    def via_noise(*p):
        return jnp.sum(make(*p).sample_and_log_prob(rng, (7,))[1])

    def via_log_prob(*p):
        d = make(*p)
        return jnp.sum(d.log_prob(d.sample(rng, (7,))))

    for a, b in zip(jax.grad(via_noise, (0, 1))(*params), jax.grad(via_log_prob, (0, 1))(*params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_mixture_of_normals_against_scipy(rng):
    x = np.linspace(-6, 6, 41)

    @jax.jit
    def run(mix, x, key):
        grads = jax.grad(lambda m: m.sample(key, (100,)).sum())(mix)
        return mix.log_prob(x), mix.mean(), mix.variance(), mix.sample(key, (200_000,)), grads

    lp, mean, var, s, g = run(_mixture_1d(), x, rng)
    pdf = lambda x: 0.3 * stats.norm.pdf(x, -2, 0.5) + 0.7 * stats.norm.pdf(x, 1.5, 1.2)
    np.testing.assert_allclose(lp, np.log(pdf(x)), rtol=1e-12)
    ref_mean = integrate.quad(lambda x: x * pdf(x), -30, 30, epsabs=1e-13)[0]
    ref_var = integrate.quad(lambda x: (x - ref_mean) ** 2 * pdf(x), -30, 30, epsabs=1e-13)[0]
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10)
    # sample moments within about 5 standard errors
    np.testing.assert_allclose(s.mean(), mean, atol=5 * np.sqrt(var / 2e5))
    np.testing.assert_allclose(s.var(), var, rtol=0.02)
    left = 0.3 * stats.norm.cdf(-0.5, -2, 0.5) + 0.7 * stats.norm.cdf(-0.5, 1.5, 1.2)
    np.testing.assert_allclose(np.mean(s < -0.5), left, atol=0.005)
    # no gradient to the logits through sampling; the components do get one
    np.testing.assert_array_equal(g.logits, 0.0)
    assert np.all(g.components.loc > 0)


def test_mixture_of_mvn_and_batched_mixture(rng):
    rng_np = np.random.default_rng(3)
    covs, locs, w = _spd(rng_np, 2, 3), rng_np.normal(size=(3, 2)) * 3, np.array([0.2, 0.5, 0.3])
    x = rng_np.normal(size=(7, 2)) * 3
    locs1, scales1 = rng_np.normal(size=(3, 2)), rng_np.uniform(0.5, 1.5, size=(3, 2))
    logits = rng_np.normal(size=(3, 2))
    xb = rng_np.normal(size=(5, 2))

    @jax.jit
    def run(key):
        mix = Mixture(jnp.log(jnp.asarray(w)), MultivariateNormal.from_covariance(locs, covs))
        # a batch of two 1-D mixtures: logits (K, 2), components batch (K, 2)
        bm = Mixture(jnp.asarray(logits), Normal(jnp.asarray(locs1), jnp.asarray(scales1)))
        assert mix.batch_shape == () and mix.event_shape == (2,) and bm.batch_shape == (2,)
        return (mix.log_prob(x), mix.sample(key, (200_000,)), mix.mean(), mix.variance(),
                mix.covariance(), bm.log_prob(xb), bm.sample(key, (4,)), bm.mean())

    lp, s, mean, var, cov, lpb, sb, meanb = run(rng)
    ref = np.log(sum(w[k] * stats.multivariate_normal(locs[k], covs[k]).pdf(x) for k in range(3)))
    np.testing.assert_allclose(lp, ref, rtol=1e-11)
    dev = locs - w @ locs
    ref_cov = np.einsum("k,kij->ij", w, covs + dev[:, :, None] * dev[:, None, :])
    np.testing.assert_allclose(mean, w @ locs, rtol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-12)
    np.testing.assert_allclose(var, np.diagonal(ref_cov), rtol=1e-12)
    assert s.shape == (200_000, 2)
    np.testing.assert_allclose(s.mean(0), mean, atol=0.05)  # about 5 standard errors
    np.testing.assert_allclose(np.cov(s.T), cov, rtol=0.03)
    wb = np.exp(logits) / np.exp(logits).sum(0)
    refb = np.log(np.sum(wb * stats.norm.pdf(xb[:, None], locs1, scales1), axis=1))
    np.testing.assert_allclose(lpb, refb, rtol=1e-12)
    assert sb.shape == (4, 2)
    np.testing.assert_allclose(meanb, np.sum(wb * locs1, 0), rtol=1e-12)


def test_pytree_transformations(rng):
    d = Normal(jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0]))
    # grad with respect to the distribution: the cotangent's "scale" may be negative
    g = jax.grad(lambda d: d.log_prob(0.3).sum())(d)
    np.testing.assert_allclose(g.scale, [0.3**2 - 1, (0.7**2 / 4 - 1) / 2], rtol=1e-12)
    # optax with a distribution as parameters: zero moments, signed updates
    opt = optax.adam(0.1)
    state = opt.init(d)
    updates, state = jax.jit(opt.update)(g, state, d)
    assert isinstance(optax.apply_updates(d, updates), Normal)
    # tree_map, scan carries and vmap with in_axes / out_axes specs
    assert jax.tree.map(jnp.zeros_like, d).scale.shape == (2,)
    out, _ = jax.lax.scan(lambda c, _: (Normal(c.loc + 1, c.scale), None), d, None, length=3)
    np.testing.assert_allclose(out.loc, [3.0, 4.0])
    f = jax.vmap(lambda s: Normal(0.0, s), out_axes=Normal(None, 0))
    assert f(jnp.ones(3)).scale.shape == (3,)
    mvn = jax.vmap(lambda l: MultivariateNormal(l, jnp.eye(2)))(jnp.zeros((4, 2)))
    assert mvn.batch_shape == (4,)
    # integer specs are not parameters: in_axes built by hand or by tree_map
    spec = jax.tree.map(lambda _: 0, mvn)
    assert spec == MultivariateNormal(0, 0)
    ent = jax.vmap(lambda m: m.entropy(), in_axes=(spec,))(mvn)
    np.testing.assert_allclose(ent, stats.multivariate_normal(np.zeros(2)).entropy(), rtol=1e-12)
    assert jax.vmap(lambda d: d.mean(), in_axes=(Normal(0, 0),))(d).shape == (2,)
    mix = jax.jit(lambda m: m)(_mixture_1d())
    assert isinstance(mix.components, Normal)
    # a stack of mixtures, vmapped: the component axis stays the leading axis inside
    stack = jax.tree.map(lambda a, b: jnp.stack([a, b]), mix, Mixture(mix.logits[::-1],
                                                                      mix.components))
    lp = jax.vmap(lambda m: m.log_prob(0.5))(stack)
    pdf = [w * stats.norm.pdf(0.5, -2, 0.5) + (1 - w) * stats.norm.pdf(0.5, 1.5, 1.2)
           for w in (0.3, 0.7)]
    np.testing.assert_allclose(lp, np.log(pdf), rtol=1e-12)


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"MultivariateNormal: loc of shape \(3,\) and scale_tril"):
        MultivariateNormal(jnp.zeros(3), jnp.eye(2))
    with pytest.raises(ValueError, match="square"):
        MultivariateNormal(jnp.zeros(2), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="event axis"):
        MultivariateNormal(0.0, jnp.eye(1))
    with pytest.raises(ValueError, match="diagonal of scale_tril must be > 0"):
        MultivariateNormal(np.zeros(2), np.diag([1.0, 0.0]))
    with pytest.raises(ValueError, match="not positive definite"):
        MultivariateNormal.from_covariance(jnp.zeros(2), jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    for scale in (0.0, -1.0, np.array([1.0, 0.0]), [2.0, -1.0]):
        with pytest.raises(ValueError, match="Normal: scale must be > 0"):
            Normal(0.0, scale)
    with pytest.raises(ValueError, match="do not broadcast"):
        Normal(jnp.zeros(3), jnp.ones(2))
    with pytest.raises(TypeError, match="Normal: argument loc"):
        Normal("a", 1.0)
    with pytest.raises(ValueError, match="3 components"):
        Mixture(jnp.zeros(3), Normal(jnp.zeros(2), jnp.ones(2)))
    with pytest.raises(ValueError, match="leading component axis"):
        Mixture(jnp.zeros(1), Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="components must be"):
        Mixture(jnp.zeros(2), (jnp.zeros(2), jnp.ones(2)))
    with pytest.raises(TypeError, match=r"Mixture\.covariance"):
        _mixture_1d().covariance()
    with pytest.raises(ValueError, match="event size 2"):
        MultivariateNormal(jnp.zeros(2), jnp.eye(2)).log_prob(jnp.zeros(3))
    # batch mismatches name the method and both shapes (raw JAX errors before, and Mixture's
    # named its internally reshaped x)
    with pytest.raises(ValueError, match=r"MultivariateNormal\.log_prob: batch shapes of x "
                                         r"\(4,\) and the distribution \(3,\)"):
        MultivariateNormal(jnp.zeros((3, 2)), jnp.eye(2)).log_prob(jnp.zeros((4, 2)))
    mix = Mixture(jnp.zeros(2), MultivariateNormal(jnp.zeros((2, 3)), jnp.eye(3)))
    with pytest.raises(ValueError, match=r"Mixture\.log_prob: x of shape \(2,\) does not end "
                                         r"with the event shape \(3,\)"):
        mix.log_prob(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"Mixture\.log_prob: batch shapes of x \(5, 4\) and "
                                         r"the distribution \(3,\)"):
        Mixture(jnp.zeros(2), Normal(jnp.zeros((2, 3)), 1.0)).log_prob(jnp.zeros((5, 4)))
    with pytest.raises(TypeError, match="sample_shape"):
        Normal(0.0, 1.0).sample(jax.random.key(0), 2.5)
    # under jit a traced scale cannot be inspected: the shape is still checked ...
    with pytest.raises(ValueError, match="do not broadcast"):
        jax.jit(lambda s: Normal(jnp.zeros(3), s))(jnp.ones(2))
    # ... and the value is checked by checkify, opt-in through `checked`
    bad = Normal(0.0, jnp.array(-1.0))  # a JAX array is not value-checked at construction
    with pytest.raises(checkify.JaxRuntimeError, match=r"Normal\.log_prob: argument scale"):
        checked(jax.jit(lambda d: d.log_prob(0.0)))(bad)
    with pytest.raises(checkify.JaxRuntimeError, match="scale_tril"):
        checked(lambda t: MultivariateNormal(jnp.zeros(2), t).entropy())(-jnp.eye(2))
    assert np.isfinite(checked(lambda d: d.log_prob(0.0))(Normal(0.0, jnp.array(1.0))))


def test_round_two_boundaries():
    # integer literals: an axis spec when all are >= 0, parameters (checked) otherwise
    with pytest.raises(ValueError, match=r"Normal: scale must be > 0, got -1.0"):
        Normal(0, -1)
    assert Normal(0, 0) == Normal(0, 0)  # in_axes=Normal(0, 0) still works (test above)
    # empty batches: empty results, and the opt-in checks do not reduce an empty array
    key = jax.random.key(0)
    e = Normal(jnp.zeros(0), jnp.ones(0))
    assert e.log_prob(jnp.zeros(0)).shape == (0,) and e.sample(key, (2,)).shape == (2, 0)
    assert checked(lambda s: Normal(jnp.zeros(0), s).entropy())(jnp.ones(0)).shape == (0,)
    m = MultivariateNormal(jnp.zeros((0, 2)), jnp.ones((0, 2, 2)))
    assert m.log_prob(jnp.zeros(2)).shape == (0,)
    # empty events raise, naming the class and the argument
    with pytest.raises(ValueError, match=r"MultivariateNormal: loc of shape \(0,\) .* d = 0"):
        MultivariateNormal(jnp.zeros(0), jnp.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"Mixture: logits of shape \(0,\) give K = 0"):
        Mixture(jnp.zeros(0), Normal(jnp.zeros(0), jnp.ones(0)))


def test_from_covariance_reads_the_lower_triangle_only():
    # jnp.linalg.cholesky averages the two triangles: [[2, 0], [1, 2]] gave covariance
    # [[2, .5], [.5, 2]], and a PD lower triangle with junk above raised "not positive definite"
    d = MultivariateNormal.from_covariance(jnp.zeros(2), jnp.array([[2.0, 0.0], [1.0, 2.0]]))
    np.testing.assert_allclose(d.covariance(), [[2.0, 1.0], [1.0, 2.0]], rtol=1e-6)
    d = MultivariateNormal.from_covariance(jnp.zeros(2), jnp.array([[1.0, 99.0], [0.5, 1.0]]))
    np.testing.assert_allclose(d.covariance(), [[1.0, 0.5], [0.5, 1.0]], rtol=1e-6)
