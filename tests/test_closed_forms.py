"""Closed forms against independent float64 references: numpy/scipy formulas for the Gaussian
KL and W2, numerical integration (scipy.integrate) or sums for every family of closed_form_kl,
and finite differences for the gradients."""

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import scipy.linalg as sl
from jax.experimental.checkify import JaxRuntimeError
from jax.test_util import check_grads
from scipy import integrate, special, stats

from jaxdiv import checked
from jaxdiv.closed_forms import closed_form_kl, gaussian_kl, gaussian_w2
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


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_normal_kl_scale_ratios_against_mpmath(dtype, rtol):
    # Both sides of the series' switch at |sigma_p / sigma_q - 1| = 0.1, far ratios, and ratios
    # that under- or overflow: 0.5 (m^2 - 1) - log m with m = sigma_p / sigma_q, to 40 digits.
    mp.mp.dps = 40
    pairs = [(1.0999, 1.0), (1.1001, 1.0), (0.9001, 1.0), (0.8999, 1.0), (3.0, 1.0),
             (1.0, 3.0), (1 + 1e-4, 1.0), (2.5e-4, 7e-4), (1e-30, 1e10), (1e15, 1e-15)]
    for sp, sq in pairs:
        sp, sq = dtype(sp), dtype(sq)  # the reference takes the rounded inputs
        m = mp.mpf(float(sp)) / mp.mpf(float(sq))
        ref = float((m * m - 1) / 2 - mp.log(m))
        kl = gaussian_kl(Normal(jnp.asarray(0, dtype), sp), Normal(jnp.asarray(0, dtype), sq))
        if ref > float(np.finfo(dtype).max):
            assert kl == np.inf
        else:
            np.testing.assert_allclose(float(kl), ref, rtol=rtol, err_msg=f"{sp}, {sq}")


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


# ---------------------------------------------------------------------------------------------
# closed_form_kl: every family against numerical integration (scipy.integrate) or a sum.


def _obj(name, **params):
    """A distribution object of family ``name``, read by duck typing (class name, attributes)."""
    obj = type(name, (), {})()
    obj.__dict__.update({k: v if hasattr(v, "__dict__") else jnp.asarray(v)
                         for k, v in params.items()})
    return obj


def _quad(logp, logq, lo, hi, points=None):
    f = lambda x: np.exp(logp(x)) * (logp(x) - logq(x))
    if points is None:
        return integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    return integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200, points=points)[0]


def _ref_normal(p, q):
    lp, lq = (stats.norm(d["loc"], d["scale"]).logpdf for d in (p, q))
    return _quad(lp, lq, -np.inf, np.inf)


def _ref_laplace(p, q):
    lp, lq = (stats.laplace(d["loc"], d["scale"]).logpdf for d in (p, q))
    m, s = p["loc"], 60 * p["scale"]
    return _quad(lp, lq, m - s, m + s, points=[p["loc"], q["loc"]])


def _ref_gamma(p, q):
    lp, lq = (stats.gamma(d["concentration"], scale=1 / d["rate"]).logpdf for d in (p, q))
    return _quad(lp, lq, 0, np.inf)


def _ref_exponential(p, q):
    lp, lq = (stats.expon(scale=1 / d["rate"]).logpdf for d in (p, q))
    return _quad(lp, lq, 0, np.inf)


def _ref_beta(p, q):
    lp, lq = (stats.beta(d["concentration1"], d["concentration0"]).logpdf for d in (p, q))
    return _quad(lp, lq, 0, 1)


def _ref_uniform(p, q):
    lp, lq = (stats.uniform(d["low"], d["high"] - d["low"]).logpdf for d in (p, q))
    return _quad(lp, lq, p["low"], p["high"])


def _ref_poisson(p, q):
    k = np.arange(400)
    lp, lq = stats.poisson(p["rate"]).logpmf(k), stats.poisson(q["rate"]).logpmf(k)
    return np.sum(np.exp(lp) * (lp - lq))


def _ref_categorical(p, q):
    return np.sum(special.rel_entr(p["probs"], q["probs"]))


def _ref_bernoulli(p, q):
    return _ref_categorical({"probs": [1 - p["probs"], p["probs"]]},
                            {"probs": [1 - q["probs"], q["probs"]]})


def _ref_dirichlet(p, q):
    def logpdf(a):
        c = special.gammaln(a.sum()) - special.gammaln(a).sum()
        a1, a2, a3 = a - 1
        return lambda x2, x1: (a1 * math.log(x1) + a2 * math.log(x2)
                               + a3 * math.log(1 - x1 - x2) + c)
    lp, lq = logpdf(p["concentration"]), logpdf(q["concentration"])
    f = lambda x2, x1: np.exp(lp(x2, x1)) * (lp(x2, x1) - lq(x2, x1))
    return integrate.dblquad(f, 0, 1, 0, lambda x1: 1 - x1, epsabs=1e-12, epsrel=1e-10)[0]


def _ref_mvn(p, q):
    """2-D quadrature over +-12 standard deviations of p."""
    def logpdf(d):
        (a, _), (b, c) = np.linalg.inv(d["scale_tril"])  # z = L^{-1}(x - m), lower triangular
        m0, m1 = d["loc"]
        const = -np.log(2 * np.pi) - np.sum(np.log(np.abs(np.diag(d["scale_tril"]))))
        return lambda y, x: const - 0.5 * ((a * (x - m0)) ** 2 + (b * (x - m0) + c * (y - m1)) ** 2)
    lp, lq = logpdf(p), logpdf(q)
    f = lambda y, x: np.exp(lp(y, x)) * (lp(y, x) - lq(y, x))
    sd = np.sqrt(np.diag(p["scale_tril"] @ p["scale_tril"].T))
    lo, hi = p["loc"] - 12 * sd, p["loc"] + 12 * sd
    return integrate.dblquad(f, lo[0], hi[0], lo[1], hi[1], epsabs=1e-11, epsrel=1e-10)[0]


def _draw_params(rng):
    """Random parameters for p and q of each family (shapes > 1 where a density is singular)."""
    u = lambda lo, hi, *s: rng.uniform(lo, hi, s)
    pos = lambda: u(1.2, 4.0)
    cat = lambda: rng.dirichlet(np.ones(4))
    tril = lambda: np.tril(u(-0.5, 0.5, 2, 2), -1) + np.diag(u(0.5, 1.5, 2))
    lo_p = u(-1.0, 0.0)
    return {
        "Normal": [dict(loc=u(-1, 1), scale=u(0.5, 2)) for _ in range(2)],
        "Laplace": [dict(loc=u(-1, 1), scale=u(0.5, 2)) for _ in range(2)],
        "Gamma": [dict(concentration=pos(), rate=u(0.5, 2)) for _ in range(2)],
        "Exponential": [dict(rate=u(0.5, 2)) for _ in range(2)],
        "Beta": [dict(concentration1=pos(), concentration0=pos()) for _ in range(2)],
        "Uniform": [dict(low=lo_p, high=lo_p + u(0.5, 1)), dict(low=lo_p - u(0, 1),
                                                               high=lo_p + u(1.5, 2))],
        "Poisson": [dict(rate=u(0.5, 5)) for _ in range(2)],
        "Categorical": [dict(probs=cat()) for _ in range(2)],
        "Bernoulli": [dict(probs=u(0.05, 0.95)) for _ in range(2)],
        "Dirichlet": [dict(concentration=u(1.2, 4, 3)) for _ in range(2)],
        "MultivariateNormal": [dict(loc=u(-1, 1, 2), scale_tril=tril()) for _ in range(2)],
    }


PARAMS = _draw_params(np.random.default_rng(0))
REFS = {"Normal": _ref_normal, "Laplace": _ref_laplace, "Gamma": _ref_gamma,
        "Exponential": _ref_exponential, "Beta": _ref_beta, "Uniform": _ref_uniform,
        "Poisson": _ref_poisson, "Categorical": _ref_categorical, "Bernoulli": _ref_bernoulli,
        "Dirichlet": _ref_dirichlet, "MultivariateNormal": _ref_mvn}


@functools.cache
def _reference(family):
    return REFS[family](*PARAMS[family])


@pytest.mark.parametrize("family", list(REFS))
def test_closed_form_kl_against_quadrature(family):
    p, q = (_obj(family, **d) for d in PARAMS[family])
    # quadrature (or the truncated Poisson sum) is accurate to about 1e-10 here
    np.testing.assert_allclose(closed_form_kl(p, q), _reference(family), rtol=1e-8)


def test_closed_form_kl_other_representations():
    # logits instead of probabilities; Bernoulli logits; Gamma against Exponential
    (cp, cq), (bp, bq) = PARAMS["Categorical"], PARAMS["Bernoulli"]
    ref = _reference("Categorical")
    for p, q in ((_obj("Categorical", logits=np.log(cp["probs"]) + 3), _obj("Categorical",
                                                                           **cq)),
                 (_obj("Categorical", logits=np.log(cp["probs"])),
                  _obj("Categorical", logits=np.log(cq["probs"]) - 1))):
        np.testing.assert_allclose(closed_form_kl(p, q), ref, rtol=1e-12)
    logit = lambda x: np.log(x / (1 - x))
    np.testing.assert_allclose(closed_form_kl(_obj("Bernoulli", logits=logit(bp["probs"])),
                                              _obj("Bernoulli", **bq)),
                               _reference("Bernoulli"), rtol=1e-12)
    ep, gq = PARAMS["Exponential"][0], PARAMS["Gamma"][1]
    lp = stats.expon(scale=1 / ep["rate"]).logpdf
    lq = stats.gamma(gq["concentration"], scale=1 / gq["rate"]).logpdf
    np.testing.assert_allclose(closed_form_kl(_obj("Exponential", **ep), _obj("Gamma", **gq)),
                               _quad(lp, lq, 0, np.inf), rtol=1e-8)
    # a diagonal normal: Independent(Normal, 1), against a full one and against a diagonal one
    mp, mq = PARAMS["MultivariateNormal"]
    diag = np.diag(np.diag(mp["scale_tril"]))
    ind = _obj("Independent", distribution=_obj("Normal", loc=mp["loc"],
                                                 scale=np.diag(diag)), reinterpreted_batch_ndims=1)
    full = _obj("MultivariateNormal", loc=mq["loc"], scale_tril=mq["scale_tril"])
    np.testing.assert_allclose(closed_form_kl(ind, full),
                               _ref_mvn(dict(loc=mp["loc"], scale_tril=diag), mq), rtol=1e-8)
    dq = _obj("MultivariateNormalDiag", loc=mq["loc"], scale_diag=np.diag(mq["scale_tril"]))
    ref = sum(_ref_normal(dict(loc=a, scale=b), dict(loc=c, scale=e)) for a, b, c, e in zip(
        mp["loc"], np.diag(diag), mq["loc"], np.diag(mq["scale_tril"]), strict=True))
    np.testing.assert_allclose(closed_form_kl(ind, dq), ref, rtol=1e-10)


def test_closed_form_kl_supports_and_limits():
    n, lap = _obj("Normal", loc=0.0, scale=1.0), _obj("Laplace", loc=0.0, scale=1.0)
    ex, ga = _obj("Exponential", rate=1.0), _obj("Gamma", concentration=2.0, rate=1.0)
    be, un = _obj("Beta", concentration1=2.0, concentration0=2.0), _obj("Uniform", low=0.0,
                                                                         high=1.0)
    for p, q in ((n, ex), (n, be), (lap, ga), (lap, un), (ex, un), (ga, be)):
        assert closed_form_kl(p, q) == np.inf
    for p, q in ((ex, n), (un, n), (be, un), (n, _obj("Poisson", rate=1.0))):
        with pytest.raises(TypeError, match=rf"no closed form .* {type(p).__name__} .* "
                                            rf"{type(q).__name__} .*jaxdiv.estimators"):
            closed_form_kl(p, q)
    assert closed_form_kl(_obj("Uniform", low=0.0, high=2.0), un) == np.inf
    assert closed_form_kl(_obj("Uniform", low=-0.5, high=0.5), un) == np.inf
    # Poisson at rate 0: a point mass at 0
    pz, p2 = _obj("Poisson", rate=0.0), _obj("Poisson", rate=2.0)
    np.testing.assert_allclose(closed_form_kl(pz, p2), 2.0, rtol=1e-15)
    assert closed_form_kl(p2, pz) == np.inf and closed_form_kl(pz, pz) == 0.0
    # nearby parameters: the closed forms stay accurate (series for e^x - 1 - x, log1p)
    eps = 1e-6
    np.testing.assert_allclose(closed_form_kl(_obj("Exponential", rate=1.0 + eps), ex),
                               eps**2 / 2 - 2 * eps**3 / 3, rtol=1e-8)
    np.testing.assert_allclose(closed_form_kl(_obj("Poisson", rate=1.0 + eps),
                                              _obj("Poisson", rate=1.0)),
                               eps**2 / 2 - eps**3 / 6, rtol=1e-8)
    np.testing.assert_allclose(closed_form_kl(_obj("Laplace", loc=eps, scale=1.0), lap),
                               eps**2 / 2 - eps**3 / 6, rtol=1e-8)
    # categorical zeros: 0 log 0 = 0, and +inf where q = 0 < p
    c1, c2 = _obj("Categorical", probs=[0.5, 0.5, 0.0]), _obj("Categorical", probs=[0.5, 0, 0.5])
    assert closed_form_kl(c1, c2) == np.inf
    np.testing.assert_allclose(closed_form_kl(c1, _obj("Categorical", probs=[0.25, 0.25, 0.5])),
                               np.log(2), rtol=1e-15)


def test_closed_form_kl_batches_jit_vmap():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(1, 3, (3, 1)), rng.uniform(0.5, 2, (3, 1))
    c, e = rng.uniform(1, 3, 4), rng.uniform(0.5, 2, 4)
    p, q = _obj("Gamma", concentration=a, rate=b), _obj("Gamma", concentration=c, rate=e)
    ref = (special.gammaln(c) - special.gammaln(a) + (a - c) * special.digamma(a)
           + c * np.log(b / e) + a * (e - b) / b)  # Penny (2001), independent of the code
    out = closed_form_kl(p, q)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out, ref, rtol=1e-10)
    f = jax.jit(lambda a, b, c, e: closed_form_kl(_obj("Gamma", concentration=a, rate=b),
                                                  _obj("Gamma", concentration=c, rate=e)))
    np.testing.assert_allclose(f(a, b, c, e), ref, rtol=1e-10)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(0, 0, None, None))(a, b, c, e), ref,
                               rtol=1e-10)
    # a batch of Dirichlets against one; float32 in, float32 out
    al = rng.uniform(0.5, 3, (5, 3))
    out = closed_form_kl(_obj("Dirichlet", concentration=al.astype(np.float32)),
                         _obj("Dirichlet", concentration=np.ones(3, np.float32)))
    assert out.dtype == jnp.float32 and out.shape == (5,)
    ref = [special.gammaln(x.sum()) - special.gammaln(x).sum() - special.gammaln(3)
           + np.sum((x - 1) * (special.digamma(x) - special.digamma(x.sum()))) for x in al]
    np.testing.assert_allclose(out, ref, rtol=2e-5)  # float32 lgamma/digamma: a few ulp


GRAD_CASES = {
    "Normal": ("loc", "scale"), "Laplace": ("loc", "scale"), "Gamma": ("concentration", "rate"),
    "Exponential": ("rate",), "Beta": ("concentration1", "concentration0"),
    "Uniform": ("low", "high"), "Poisson": ("rate",), "Bernoulli": ("probs",),
    "Dirichlet": ("concentration",), "MultivariateNormal": ("loc", "scale_tril"),
}


def test_closed_form_kl_gradients():
    # one jitted sum over the families, so check_grads compiles once: a random direction in
    # all the parameters at once, against central differences
    args = {f: [np.asarray(d[n], np.float64) for d in PARAMS[f] for n in names]
            for f, names in GRAD_CASES.items()}
    (cp, cq) = PARAMS["Categorical"]
    args["Categorical"] = [np.log(cp["probs"]), np.log(cq["probs"])]

    def total(args):
        out = 0.0
        for family, names in (*GRAD_CASES.items(), ("Categorical", ("logits",))):
            k, a = len(names), args[family]
            out += closed_form_kl(_obj(family, **dict(zip(names, a[:k], strict=True))),
                                  _obj(family, **dict(zip(names, a[k:], strict=True))))
        return out

    check_grads(jax.jit(total), (args,), order=1, modes=["rev"], eps=1e-5)
    # categorical probabilities with a zero in p: the derivative stays finite
    g = jax.grad(lambda a: closed_form_kl(_obj("Categorical", probs=a),
                                          _obj("Categorical", **cq)))(
        jnp.asarray(cp["probs"]).at[0].set(0.0))
    assert np.isfinite(g).all()


# ---------------------------------------------------------------------------------------------
# Other libraries' distribution objects (optional peers: skipped when not installed).


def _library(name):
    with warnings.catch_warnings():  # distrax touches a deprecated jax.core name on import
        warnings.simplefilter("ignore", DeprecationWarning)
        if name == "tfp":
            return pytest.importorskip("tensorflow_probability.substrates.jax").distributions
        return pytest.importorskip({"numpyro": "numpyro.distributions"}.get(name, name))


def _builders(name, lib):
    a = jnp.asarray
    common = {
        "Normal": lambda d: lib.Normal(a(d["loc"]), a(d["scale"])),
        "Laplace": lambda d: lib.Laplace(a(d["loc"]), a(d["scale"])),
        "Gamma": lambda d: lib.Gamma(a(d["concentration"]), a(d["rate"])),
        "Beta": lambda d: lib.Beta(a(d["concentration1"]), a(d["concentration0"])),
        "Uniform": lambda d: lib.Uniform(a(d["low"]), a(d["high"])),
        "Categorical": lambda d: lib.Categorical(probs=a(d["probs"])),
        "Bernoulli": lambda d: lib.Bernoulli(probs=a(d["probs"])),
        "Dirichlet": lambda d: lib.Dirichlet(a(d["concentration"])),
    }
    if name != "distrax":
        common["Exponential"] = lambda d: lib.Exponential(a(d["rate"]))
        common["Poisson"] = lambda d: lib.Poisson(a(d["rate"]))
    common["MultivariateNormal"] = {
        "numpyro": lambda d: lib.MultivariateNormal(a(d["loc"]), scale_tril=a(d["scale_tril"])),
        "distrax": lambda d: lib.MultivariateNormalTri(a(d["loc"]), a(d["scale_tril"])),
        "tfp": lambda d: lib.MultivariateNormalTriL(a(d["loc"]), a(d["scale_tril"]))}[name]
    diag = {"numpyro": lambda m, s: lib.Normal(a(m), a(s)).to_event(1),
            "distrax": lambda m, s: lib.MultivariateNormalDiag(a(m), a(s)),
            "tfp": lambda m, s: lib.MultivariateNormalDiag(a(m), a(s))}[name]
    return common, diag


@functools.cache
def _diag_reference():
    mp, mq = PARAMS["MultivariateNormal"]
    return _ref_mvn(dict(loc=mp["loc"], scale_tril=np.diag(np.diag(mp["scale_tril"]))), mq)


@pytest.mark.parametrize("name", ["numpyro", "distrax", "tfp"])
def test_other_libraries(name):
    lib = _library(name)
    build, diag = _builders(name, lib)
    for family, make in build.items():
        p, q = (make(d) for d in PARAMS[family])
        np.testing.assert_allclose(closed_form_kl(p, q), _reference(family), rtol=1e-8,
                                   err_msg=f"{name} {family}")
    # the Gaussian closed forms take the library's normals (issue: "got Normal and Normal")
    (np_, nq), (mp, mq) = PARAMS["Normal"], PARAMS["MultivariateNormal"]
    p, q = build["Normal"](np_), build["Normal"](nq)
    np.testing.assert_allclose(gaussian_kl(p, q), _reference("Normal"), rtol=1e-8)
    w2 = np.hypot(np_["loc"] - nq["loc"], np_["scale"] - nq["scale"])
    np.testing.assert_allclose(gaussian_w2(p, Normal(nq["loc"], nq["scale"])), w2, rtol=1e-12)
    # a diagonal normal against a full one
    p = diag(mp["loc"], np.diag(mp["scale_tril"]))
    q = build["MultivariateNormal"](mq)
    np.testing.assert_allclose(closed_form_kl(p, q), _diag_reference(), rtol=1e-8)
    np.testing.assert_allclose(gaussian_kl(p, q), _diag_reference(), rtol=1e-8)
    # TFP's MultivariateNormalDiag(loc) / TriL(loc) without a scale: the identity (rejected
    # before as having "none of scale_diag, scale_tril, ...")
    if name == "tfp":
        eye = dict(loc=mq["loc"], scale_tril=np.eye(len(mq["loc"])))
        for make in (lib.MultivariateNormalDiag, lib.MultivariateNormalTriL):
            np.testing.assert_allclose(closed_form_kl(make(jnp.asarray(mq["loc"])), p),
                                       _ref_mvn(eye, dict(loc=mp["loc"], scale_tril=np.diag(
                                           np.diag(mp["scale_tril"])))), rtol=1e-8)
    # their objects are pytrees: jit and grad through them
    g = jax.jit(jax.grad(lambda s: closed_form_kl(build["Gamma"](dict(concentration=s, rate=1.0)),
                                                  build["Gamma"](PARAMS["Gamma"][1]))))(2.0)
    b = PARAMS["Gamma"][1]
    ref = (2.0 - b["concentration"]) * special.polygamma(1, 2.0) + (b["rate"] - 1.0)
    np.testing.assert_allclose(g, ref, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# Limits and domains (issue 18), float32 accuracy of nearby MVNs (issue 13).


def test_gaussian_limits():
    inf = np.inf
    n01 = Normal(0.0, 1.0)
    for f in (gaussian_kl, closed_form_kl):
        assert f(Normal(0.0, jnp.inf), n01) == inf  # sigma_p -> inf
        assert f(n01, Normal(0.0, jnp.inf)) == inf  # sigma_q -> inf: log(sigma_q) wins
        assert f(n01, Normal(3.0, jnp.array(0.0))) == inf  # sigma_q -> 0
        assert f(Normal(jnp.inf, 1.0), n01) == inf  # means infinitely apart
        assert np.isnan(f(Normal(0.0, jnp.inf), Normal(0.0, jnp.inf)))  # no limit: the ratio
        assert np.isnan(f(Normal(0.0, jnp.array(-1.0)), n01))  # outside the domain: NaN
    g = jax.grad(lambda s: gaussian_kl(Normal(0.0, s), n01))(jnp.inf)
    assert np.isfinite(g)
    eye = jnp.eye(2)
    m = MVN(jnp.zeros(2), eye)
    assert gaussian_kl(MVN(jnp.zeros(2), eye.at[1, 0].set(inf)), m) == inf
    assert gaussian_kl(m, MVN(jnp.zeros(2), eye.at[1, 1].set(inf))) == inf
    assert gaussian_kl(m, MVN(jnp.array([0.0, inf]), eye)) == inf
    assert np.isnan(gaussian_kl(MVN(jnp.zeros(2), eye * inf), MVN(jnp.zeros(2), eye * inf)))
    assert np.isnan(gaussian_kl(MVN(jnp.zeros(2), eye.at[0, 0].set(-1.0)), m))
    # W2: a negative scale is NaN, as in the KL (it used to give |sigma_p - sigma_q|); a zero
    # scale is the distance to a point mass; one infinite scale gives +inf
    assert np.isnan(gaussian_w2(Normal(0.0, jnp.array(-1.0)), n01))
    assert np.isnan(gaussian_w2(MVN(jnp.zeros(2), eye.at[0, 0].set(-1.0)), m))
    np.testing.assert_allclose(gaussian_w2(Normal(0.0, jnp.array(0.0)), Normal(0.0, 2.0)), 2.0)
    assert gaussian_w2(Normal(0.0, jnp.inf), n01) == inf
    assert gaussian_w2(MVN(jnp.zeros(2), eye.at[1, 0].set(inf)), m) == inf
    with pytest.raises(JaxRuntimeError, match=r"gaussian_w2: argument p.scale must be > 0"):
        checked(jax.jit(lambda s: gaussian_w2(Normal(0.0, s), n01)))(-1.0)
    with pytest.raises(JaxRuntimeError, match=r"closed_form_kl: argument q.concentration "):
        checked(lambda c: closed_form_kl(_obj("Gamma", concentration=1.0, rate=1.0),
                                         _obj("Gamma", concentration=c, rate=1.0)))(-2.0)


def test_nearby_mvn_kl_float32_d64():
    # KL ~ 7e-6 while its terms (traces, log-determinants) are ~64: TF32 or a difference of
    # traces would lose it all. The sum of squares formed from L_p - L_q gets ~2e-8 here on CPU
    # (forming L_q^{-1} L_p first, the previous version, ~3e-6); 1e-5 leaves room for a GPU
    d, rng = 64, np.random.default_rng(13)
    a = rng.normal(size=(d, d))
    lq = np.linalg.cholesky(a @ a.T / d + np.eye(d)).astype(np.float32)
    lp = (lq + 1e-4 * np.tril(rng.normal(size=(d, d)))).astype(np.float32)
    mq = rng.normal(size=d).astype(np.float32)
    mp = (mq + 1e-4 * rng.normal(size=d)).astype(np.float32)
    s1, s2 = lp.astype(np.float64) @ lp.T.astype(np.float64), lq.astype(np.float64) @ lq.T
    ref = _kl_ref(mp.astype(np.float64), s1, mq.astype(np.float64), s2)
    out = gaussian_kl(MVN(jnp.asarray(mp), jnp.asarray(lp)), MVN(jnp.asarray(mq),
                                                                 jnp.asarray(lq)))
    assert out.dtype == jnp.float32 and ref < 1e-5
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def _mp_gamma(a, b, c, e):
    a, b, c, e = (mp.mpf(float(v)) for v in (a, b, c, e))
    return float((a - c) * mp.digamma(a) - mp.loggamma(a) + mp.loggamma(c)
                 + c * (mp.log(b) - mp.log(e)) + a * (e - b) / b)


def _mp_dirichlet(a, b):
    a, b = [mp.mpf(float(v)) for v in a], [mp.mpf(float(v)) for v in b]
    a0, b0 = sum(a), sum(b)
    pairs = list(zip(a, b, strict=True))
    return float(mp.loggamma(a0) - mp.loggamma(b0)
                 - sum(mp.loggamma(x) - mp.loggamma(y) for x, y in pairs)
                 + sum((x - y) * (mp.digamma(x) - mp.digamma(a0)) for x, y in pairs))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_gamma_beta_dirichlet_keep_relative_accuracy_near_p(dtype, rtol):
    # Differences of log-gammas of nearly equal arguments: Gamma(10) against Gamma(10.001)
    # gave -9.5e-7 in float32 (true 5.3e-8), Gamma(1e4) against Gamma(1.0001e4) 0.0, and
    # Beta(5, 3) against Beta(5.000005, 3) 1.7e-6 (true 1.0e-12). Reference: 50-digit mpmath
    # on the same rounded inputs; the far pairs check the switch back to the closed form.
    mp.mp.dps = 50
    gammas = [(10, 1, 10.001, 1), (1e4, 1, 1.0001e4, 1), (100, 1, 101, 1), (0.3, 1, 0.31, 1.02),
              (1e4, 1e4, 1.0001e4, 1.0001e4), (2, 3, 2.5, 2), (5, 1, 50, 3), (0.5, 2, 0.2, 9)]
    for params in gammas:
        a, b, c, e = (dtype(v) for v in params)
        out = closed_form_kl(_obj("Gamma", concentration=a, rate=b),
                             _obj("Gamma", concentration=c, rate=e))
        assert out.dtype == dtype
        np.testing.assert_allclose(out, _mp_gamma(a, b, c, e), rtol=rtol, err_msg=str(params))
    dirichlets = [([5, 3], [5.000005, 3]), ([2, 3, 4], [2.1, 3, 4.2]),
                  ([1e3, 2e3], [1.001e3, 2.002e3]), ([0.5, 0.5], [5, 0.1]), ([1, 2, 3], [3, 2, 1])]
    for a, b in dirichlets:
        a, b = np.array(a, dtype), np.array(b, dtype)
        ref = _mp_dirichlet(a, b)
        for name, p, q in (("Dirichlet", dict(concentration=a), dict(concentration=b)),
                           ("Beta", dict(concentration1=a[0], concentration0=a[1]),
                            dict(concentration1=b[0], concentration0=b[1]))):
            if name == "Beta" and a.size != 2:
                continue
            np.testing.assert_allclose(closed_form_kl(_obj(name, **p), _obj(name, **q)), ref,
                                       rtol=rtol, err_msg=f"{name} {a} {b}")


def _mp_w2(lp, lq):
    """W2 between centred MVNs with factors lp, lq: the Bures distance with 40-digit sqrtm."""
    a, b = mp.matrix(lp.astype(np.float64)), mp.matrix(lq.astype(np.float64))
    sp, sq = a * a.T, b * b.T
    r = mp.sqrtm(sq)
    m = mp.sqrtm(r * sp * r)
    return float(mp.sqrt(sum(sp[i, i] + sq[i, i] - 2 * m[i, i] for i in range(sp.rows))))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_gaussian_w2_near_p_and_at_p(dtype, rtol):
    # One SVD's polar factor carries eps of rounding: W2 had a relative error of eps / W2
    # (float32: 1.6e-2 at a 1e-5 perturbation, 0.25 at 1e-6), and W2(p, p) was rounding noise
    # (2.5e-7) with a unit-norm gradient. Reference: 40-digit mpmath on the same inputs.
    mp.mp.dps = 40
    rng = np.random.default_rng(7)
    base = [np.array([[1.0, 0.0], [0.5, 2.0]])]
    for _ in range(2):
        lo = np.tril(rng.normal(size=(5, 5)))
        lo[np.diag_indices(5)] = np.abs(np.diag(lo)) + 0.5
        base.append(lo)
    for lp in base:
        for eps in (1e-1, 1e-6):
            lq = (lp + eps * np.tril(rng.normal(size=lp.shape))).astype(dtype)
            lp_ = lp.astype(dtype)
            z = jnp.zeros(len(lp), dtype)
            out = gaussian_w2(MultivariateNormal(z, lp_), MultivariateNormal(z, lq))
            np.testing.assert_allclose(out, _mp_w2(lp_, lq), rtol=rtol, err_msg=f"{eps} {lp}")
        lp_, z = lp.astype(dtype), jnp.zeros(len(lp), dtype)

        def w2(m, lq, lp_=lp_, z=z):
            return gaussian_w2(MultivariateNormal(z, lp_), MultivariateNormal(m, lq))

        assert w2(z, lp_) == 0
        for g in jax.grad(w2, argnums=(0, 1))(z, jnp.asarray(lp_)):
            np.testing.assert_array_equal(g, 0.0)


def test_gaussian_w2_at_extreme_scales():
    # The squares were formed unscaled: 0 at scales of 1e-25 and inf at 3e19 in float32
    f32 = np.float32
    np.testing.assert_allclose(gaussian_w2(Normal(f32(0), f32(1e-25)), Normal(f32(0), f32(2e-25))),
                               1e-25, rtol=1e-6)
    np.testing.assert_allclose(gaussian_w2(Normal(f32(0), f32(1)), Normal(f32(3e19), f32(1))),
                               3e19, rtol=1e-6)
    eye = np.eye(2, dtype=f32)
    for s in (1e-25, 1e20):
        out = gaussian_w2(MultivariateNormal(np.zeros(2, f32), f32(s) * eye),
                          MultivariateNormal(np.full(2, s, f32), f32(2 * s) * eye))
        np.testing.assert_allclose(out, 2 * s, rtol=1e-6)  # sqrt(2 s^2 + 2 s^2)


def test_gamma_beta_dirichlet_at_tiny_concentrations_and_strict_dtypes():
    # Review findings on the quadrature: 1 / x^2 overflowed float32 below x ~ 1e-19 (inf for
    # Gamma(1e-20) against Gamma(1.2e-20)); its derivative leaked through a single where into
    # pairs that are not near (NaN); float64 nodes promoted float32 inputs under x64.
    mp.mp.dps = 50
    f32 = np.float32
    for a, c in ((1e-20, 1.2e-20), (1e-10, 1.2e-10), (1e-10, 1.0)):
        a, c = f32(a), f32(c)
        ref = _mp_gamma(a, 1.0, c, 1.0)
        np.testing.assert_allclose(closed_form_kl(_obj("Gamma", concentration=a, rate=f32(1)),
                                                  _obj("Gamma", concentration=c, rate=f32(1))),
                                   ref, rtol=1e-5)
        np.testing.assert_allclose(
            closed_form_kl(_obj("Beta", concentration1=a, concentration0=f32(2)),
                           _obj("Beta", concentration1=c, concentration0=f32(2))),
            _mp_dirichlet([a, 2.0], [c, 2.0]), rtol=1e-5)
    for a, c in ((1e-10, 1.2e-10), (1e-10, 1.0)):
        g = jax.grad(lambda a, c: closed_form_kl(_obj("Gamma", concentration=a, rate=f32(1)),
                                                 _obj("Gamma", concentration=c, rate=f32(1))),
                     argnums=(0, 1))(f32(a), f32(c))
        assert np.isfinite(g).all(), (a, c, g)
    with jax.numpy_dtype_promotion("strict"):
        for name, p, q in (("Gamma", dict(concentration=f32(2), rate=f32(1)),
                            dict(concentration=f32(2.1), rate=f32(1.05))),
                           ("Dirichlet", dict(concentration=np.array([1, 2], f32)),
                            dict(concentration=np.array([1.1, 2], f32)))):
            assert closed_form_kl(_obj(name, **p), _obj(name, **q)).dtype == np.float32
