"""Tests for jaxdiv.fdiv against float64 numpy formulas written out independently.

The alpha/Renyi core is one jitted computation per shape, so sweeps over alpha are batched
(an alpha per row) to keep the number of compilations, and the file's run time, small.
"""

import functools
import itertools
import logging

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import special as sp

from jaxdiv import checked
from jaxdiv.discrete import js_divergence, kl_divergence
from jaxdiv.fdiv import (
    alpha_divergence,
    alpha_divergence_with_logits,
    chi_square_divergence,
    f_divergence,
    hellinger_distance,
    jeffreys_divergence,
    renyi_divergence,
    renyi_divergence_with_logits,
    total_variation,
)
from tests.conftest import JIT

INF = np.inf
ALPHAS = np.array([-1.5, -0.3, 0.0, 0.2, 0.5, 0.8, 1.0, 1.3, 2.0, 4.0])


TRANSFORMS = pytest.mark.parametrize("transform", [lambda f: f, JIT], ids=["eager", "jit"])


def _pairs(seed, batch=4, n=6):
    r = np.random.default_rng(seed)
    return r.dirichlet(np.ones(n), batch), r.dirichlet(np.ones(n), batch)


def _zero_p(p, cols=(0, 2)):
    """p with zeros at `cols` (where q stays positive), renormalised."""
    p = p.copy()
    p[..., list(cols)] = 0.0
    return p / p.sum(-1, keepdims=True)


def _grid(x, alphas):
    """x repeated once per alpha: shape [len(alphas), *x.shape], for an alpha per row."""
    return np.broadcast_to(x, (len(alphas), *x.shape))


# float64 references ---------------------------------------------------------------------------

def ref_alpha(p, q, a):
    """sum_i [a p + (1 - a) q - p^a q^(1-a)] / (a(1 - a)); = (1 - sum p^a q^(1-a)) / (a(1 - a))
    for normalised p, q."""
    if a == 1:
        return (sp.rel_entr(p, q) - p + q).sum(-1)
    if a == 0:
        return (sp.rel_entr(q, p) - q + p).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where((p == 0) & (q == 0), 0.0, p**a * q ** (1 - a))
    return (a * p + (1 - a) * q - m).sum(-1) / (a * (1 - a))


def ref_renyi(p, q, a):
    """log(sum p^a q^(1-a) / sum p) / (a - 1), with the limits at a = 0 (0+), 1 and inf."""
    s = p.sum(-1)
    with np.errstate(divide="ignore"):
        if a == 1:
            return sp.rel_entr(p, q).sum(-1) / s
        if a == INF:
            return np.where(p > 0, np.log(p) - np.log(q), -INF).max(-1)
        if a == 0:
            return -np.log(np.where(p > 0, q, 0).sum(-1) / s)
        return np.log((p**a * q ** (1 - a)).sum(-1) / s) / (a - 1)


def refs(ref, p, q, alphas):
    return np.stack([ref(p, q, a) for a in alphas])


# alpha and Renyi ------------------------------------------------------------------------------

def test_alpha_divergence_matches_numpy():
    p, q = _pairs(1)
    pz = _zero_p(p)  # p = 0 < q: finite for alpha > 0, KL(q || p) = +inf for alpha <= 0
    a = ALPHAS[:, None]
    for x, y in ((p, q), (pz, q), (q, pz)):
        out = alpha_divergence(_grid(x, a), _grid(y, a), a)
        np.testing.assert_allclose(out, refs(ref_alpha, x, y, ALPHAS), rtol=1e-10)
        if x is p:  # the textbook formula, for normalised inputs
            b = ALPHAS[ALPHAS % 1 != 0][:, None, None]
            textbook = (1 - (p**b * q ** (1 - b)).sum(-1)) / (b * (1 - b))[..., 0]
            np.testing.assert_allclose(out[ALPHAS % 1 != 0], textbook, rtol=1e-10)
        if x is pz:
            assert np.all(out[ALPHAS <= 0] == INF)
        if y is pz:
            assert np.all(out[ALPHAS >= 1] == INF)
    # Disjoint supports: 1 / (a (1 - a)) for a in (0, 1), with its derivative in alpha.
    b = np.array([0.2, 0.5, 0.9])
    val, dval = jax.jit(jax.vmap(jax.value_and_grad(alpha_divergence, 2), (None, None, 0)))(
        np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.3, 0.7]), b)
    np.testing.assert_allclose(val, 1 / (b * (1 - b)), rtol=1e-12)
    np.testing.assert_allclose(dval, -(1 - 2 * b) / (b * (1 - b)) ** 2, rtol=1e-12)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    out = alpha_divergence(p32.T, q32.T, 0.7, axis=0)  # float32, event axis first
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref_alpha(p32.astype(float), q32.astype(float), 0.7),
                               rtol=1e-5)


def test_renyi_divergence_matches_numpy():
    p, q = _pairs(2)
    pz = _zero_p(p)
    al = np.append(ALPHAS, INF)
    a = al[:, None]
    for x, y in ((p, q), (pz, q)):
        out = renyi_divergence(_grid(x, a), _grid(y, a), a, base=2)
        np.testing.assert_allclose(out, refs(ref_renyi, x, y, al) / np.log(2), rtol=1e-10,
                                   atol=1e-15)  # atol: R_0 = -log 1 rounds to +-1e-16
    assert np.all(out[al < 0] == -INF)  # the last pair (pz, q): negative order, p = 0 < q
    out = renyi_divergence(_grid(q, a), _grid(pz, a), a)  # q = 0 < p: +inf from alpha = 1 on
    assert np.all(out[al >= 1] == INF)
    np.testing.assert_allclose(out[al < 1], refs(ref_renyi, q, pz, al[al < 1]), rtol=1e-10,
                               atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_renyi_is_minus_inf_for_every_negative_order_where_p_is_zero(dtype):
    # sum p^a q^(1 - a) is +inf for any a < 0 with some p = 0 < q, so R_a = -inf, down to the
    # smallest normal |a|, where a - 1 rounds to -1 (the order's sign, not a - 1 < -1, decides)
    p, q = (x.astype(dtype) for x in _pairs(4))
    pz = _zero_p(p)
    al = -np.array([1.5, 1e-3, 1e-10, 1e-30, np.finfo(dtype).tiny], dtype)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(pz), np.log(q)
    for a in al:
        for static in (float(a), jnp.asarray(a)):
            assert np.all(renyi_divergence(pz, q, static) == -INF), (a, static)
            assert np.all(renyi_divergence_with_logits(lp, lq, static) == -INF), (a, static)
    # traced, one order per row, and zero derivatives at -inf
    out, g = jax.jit(jax.vmap(jax.value_and_grad(renyi_divergence), (0, None, 0)))(
        _grid(pz[0], al), q[0], al)
    assert np.all(out == -INF)
    np.testing.assert_array_equal(g, 0)
    # a zero order stays R_0 = -log sum_{p > 0} q, finite (and -0.0 is that order too)
    for a in (0.0, -0.0):
        np.testing.assert_allclose(renyi_divergence(pz, q, a),
                                   -np.log(np.where(pz > 0, q, 0).sum(-1)), rtol=1e-5)


def test_renyi_order_derivative_with_a_row_masked_out():
    # A row with nothing kept is the empty sum 0, at every order: it adds 0 to d/dalpha of a
    # batch sum (it was NaN, from log M = -inf). The other row against the closed form
    # dR/da = (M' / M) / (a - 1) - log M / (a - 1)^2, M' = sum p^a q^(1 - a) log(p / q).
    p, q = _pairs(7, batch=2, n=5)
    where = np.array([[False] * 5, [True] * 5])
    a = np.array([0.3, 2.0, -1.0])[:, None]
    w = p[1] ** a * q[1] ** (1 - a)
    m, dm = w.sum(-1), (w * np.log(p[1] / q[1])).sum(-1)
    a = a[:, 0]
    want = dm / m / (a - 1) - np.log(m) / (a - 1) ** 2
    for f, x, y in ((renyi_divergence, p, q),
                    (renyi_divergence_with_logits, np.log(p), np.log(q))):
        g = jax.jit(jax.vmap(jax.grad(lambda a, f=f, x=x, y=y: f(x, y, a, where=where).sum())))(a)
        np.testing.assert_allclose(g, want, rtol=1e-9, err_msg=f.__name__)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_alpha_at_orders_down_to_the_smallest_normal_is_the_limit_at_zero(dtype, tol):
    # |alpha| <= 1e-30: D_alpha is KL(q || p) to far below rounding. Products alpha r that are
    # subnormal are flushed to 0 on XLA CPU; they must not drop the terms (the smallest normal
    # alpha gave 1.29 for 1.57)
    p, q = (x.astype(dtype) for x in _pairs(5))
    want = sp.rel_entr(q.astype(np.float64), p).sum(-1)
    lp, lq = np.log(p), np.log(q)
    tiny = np.finfo(dtype).tiny
    for a in (1e-30, 1e4 * tiny, 4 * tiny, tiny, -tiny, -1e-30):
        a = dtype(a)
        np.testing.assert_allclose(alpha_divergence(p, q, float(a)), want, rtol=tol, err_msg=a)
        np.testing.assert_allclose(alpha_divergence(p, q, jnp.asarray(a)), want, rtol=tol)
        np.testing.assert_allclose(alpha_divergence_with_logits(lp, lq, float(a)), want,
                                   rtol=tol)
        # derivative in q where q > 0 = p: for alpha > 0, 1 / alpha (the value q / alpha there)
        # and log(q / p) where both are > 0 (the limit's); for alpha < 0 the value is +inf and
        # the derivative 0
        pz = _zero_p(p[0].astype(np.float64), cols=(0,)).astype(dtype)
        g = jax.grad(alpha_divergence, 1)(pz, q[0], jnp.asarray(a))
        if a < 0:
            np.testing.assert_array_equal(g, 0)
            continue
        assert g[0] == 1 / a, (a, g[0])
        np.testing.assert_allclose(g[1:], np.log(q[0, 1:] / pz[1:].astype(np.float64)),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_alpha_at_orders_whose_square_overflows_is_inf(dtype):
    # alpha (1 - alpha) overflows for |alpha| > sqrt(max float); the divergence, M / (alpha
    # (alpha - 1)) to first order, is then far past the largest float (log M ~ |alpha| max |r|
    # in float64) for p != q, and exactly 0 for p = q (it was 0 for both)
    p, q = (x.astype(dtype) for x in _pairs(6))
    big = float(np.sqrt(np.finfo(dtype).max)) * 8
    for a in (big, -big):
        s = a * np.log(p.astype(np.float64)) + (1 - a) * np.log(q.astype(np.float64))
        assert np.all(np.max(s, -1) - 2 * np.log(abs(a)) > np.log(np.finfo(dtype).max))
        assert np.all(alpha_divergence(p, q, a) == INF)
        assert np.all(alpha_divergence(p, q, jnp.asarray(a, dtype)) == INF)
        assert np.all(alpha_divergence_with_logits(np.log(p), np.log(q), a) == INF)
        np.testing.assert_array_equal(alpha_divergence(p, p, a), 0)
        # Renyi stays finite there: log M / (alpha - 1), M's logarithm in float64
        want = (sp.logsumexp(s, axis=-1) - np.log(p.astype(np.float64).sum(-1))) / (a - 1)
        for order in (a, jnp.asarray(a, dtype)):
            np.testing.assert_allclose(renyi_divergence(p, q, order), want, rtol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_limits_and_continuity_in_alpha(dtype, tol):
    p, q = (x.astype(dtype) for x in _pairs(3))
    kl_pq, kl_qp = kl_divergence(p, q), kl_divergence(q, p)
    bc = np.sqrt(p.astype(np.float64) * q).sum(-1)
    al = np.array([0.0, 1.0, 0.5, 1 + 1e-6, 1 - 1e-6, 1e-6, -1e-6], dtype)
    a = al[:, None]
    ad, rd = alpha_divergence(_grid(p, a), _grid(q, a), a), renyi_divergence(_grid(p, a),
                                                                            _grid(q, a), a)
    np.testing.assert_allclose(ad[:3], [kl_qp, kl_pq, 4 * (1 - bc)], rtol=tol)
    np.testing.assert_allclose(rd[1:3], [kl_pq, -2 * np.log(bc)], rtol=tol)
    # The continuity requirement, in float32 too.
    np.testing.assert_allclose(ad[3:5], [kl_pq, kl_pq], atol=1e-4)
    np.testing.assert_allclose(rd[3:5], [kl_pq, kl_pq], atol=1e-4)
    np.testing.assert_allclose(ad[5:], [kl_qp, kl_qp], atol=1e-4)


def test_gradient_in_alpha():
    p, q = _pairs(4)
    r = np.log(p / q)
    kl_pq, kl_qp = (p * r).sum(-1), (-q * r).sum(-1)
    m2p, m2q = (p * r**2).sum(-1), (q * r**2).sum(-1)
    h = 1e-5  # central differences at 1/2: truncation O(h^2), rounding O(eps / h)
    fd = [(ref(p, q, 0.5 + h) - ref(p, q, 0.5 - h)) / (2 * h) for ref in (ref_alpha, ref_renyi)]
    # At the ends: closed forms from the Taylor expansion of the log-moment in alpha (by hand).
    want = {alpha_divergence: [kl_qp - m2q / 2, fd[0], m2p / 2 - kl_pq],
            renyi_divergence: [kl_qp, fd[1], (m2p - kl_pq**2) / 2]}
    pz = _zero_p(p)  # a last alpha row with zeros, at 1/2: finite, so its derivative matches
    fd.append((ref_alpha(pz, q, 0.5 + h) - ref_alpha(pz, q, 0.5 - h)) / (2 * h))
    al = np.array([0.0, 0.5, 1.0, INF])  # alpha: 0, 1/2, 1 and 1/2 (zeros); Renyi: inf, grad 0
    for dtype, tol in ((np.float64, 1e-7), (np.float32, 1e-4)):  # 1e-7: the FD at 1/2
        x, y = _grid(p.astype(dtype), al), _grid(q.astype(dtype), al)
        xz = np.concatenate([x[:3], pz[None].astype(dtype)])
        grads = jax.jit(lambda a, x=x, y=y, xz=xz: [
            jax.grad(lambda a: alpha_divergence(xz, y, a).sum())(a.at[3].set(0.5)),
            jax.grad(lambda a: renyi_divergence(x, y, a).sum())(a)])(al[:, None].astype(dtype))
        want_a = [*np.sum(want[alpha_divergence], axis=-1), fd[2].sum()]
        np.testing.assert_allclose(grads[0][:, 0], want_a, rtol=tol)
        np.testing.assert_allclose(grads[1][:3, 0], np.sum(want[renyi_divergence], axis=-1),
                                   rtol=tol)
        assert grads[1][3, 0] == 0


def test_gradients_in_p_q_finite_with_zeros():
    p, q = _pairs(5)
    pz = _zero_p(p)
    funcs = [lambda p, q: alpha_divergence(p, q, jnp.array([0.5, 1.0, 2.0, 0.0])),
             lambda p, q: renyi_divergence(p, q, jnp.array([0.5, 1.0, INF, 3.0])),
             total_variation, hellinger_distance, chi_square_divergence,
             lambda p, q: f_divergence(p, q, lambda t: t * jnp.log(t))]

    def total(p, q):
        vals = jnp.stack([fn(p, q) for fn in funcs])
        return jnp.sum(jnp.where(jnp.isfinite(vals), vals, 0))  # alpha at 0 is KL(q || pz) = inf

    a = 0.3  # interior: d/dp of alpha is (1 - p^(a-1) q^(1-a)) / (1 - a)
    (dp, dq), dp_int = jax.jit(lambda pz, p, q: (
        jax.grad(total, (0, 1))(pz, q),
        jax.grad(lambda p: alpha_divergence(p, q, a).sum())(p)))(pz, p, q)
    assert np.isfinite(dp).all() and np.isfinite(dq).all()  # a single where would NaN here
    np.testing.assert_allclose(dp_int, (1 - p ** (a - 1) * q ** (1 - a)) / (1 - a), rtol=1e-10)


def test_logit_twins_peaked_float32():
    r = np.random.default_rng(6)
    lp32, lq32 = (r.uniform(-100, 100, (64, 10)).astype(np.float32) for _ in range(2))
    lp, lq = (sp.log_softmax(x.astype(np.float64), -1) for x in (lp32, lq32))
    al = np.array([0.0, 0.3, 0.5, 1 - 1e-6, 1.0, 1.2, 2.0, 5.0, INF], np.float32)
    with np.errstate(divide="ignore"):
        L = np.stack([sp.logsumexp(a * lp + (1 - a) * lq, axis=-1) for a in al[:-1]])
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    ref_r = np.vstack([L[:1] / -1, L[1:4] / (al[1:4, None] - 1), kl, L[5:] / (al[5:8, None] - 1),
                       (lp - lq).max(-1)])
    ref_a = np.vstack([(np.exp(lq) * (lq - lp)).sum(-1),
                       -np.expm1(L[1:4]) / (al[1:4] * (1 - al[1:4]))[:, None], kl])
    a = al[:, None]

    def renyi_sum(x, y):
        g = [jnp.broadcast_to(v, (len(a), *v.shape)) for v in (x, y)]
        rd = renyi_divergence_with_logits(*g, a)
        return jnp.where(jnp.isfinite(rd), rd, 0).sum(), rd

    (_, rd), g = jax.jit(jax.value_and_grad(renyi_sum, (0, 1), has_aux=True))(lp32, lq32)
    assert rd.dtype == jnp.float32 and np.isfinite(rd).all()
    assert all(np.isfinite(x).all() for x in g)
    # atol: log_softmax computes log(sum exp) with float32 rounding, an absolute floor of ~1e-7
    # per log-probability (as jax.nn.log_softmax), visible only where D is ~0 (same argmax).
    np.testing.assert_allclose(rd, ref_r, rtol=1e-5, atol=2e-6)
    b = a[:5]  # for alpha > 1 the value itself is ~e^(alpha * 200): only alpha <= 1 is finite
    ad = alpha_divergence_with_logits(_grid(lp32, b), _grid(lq32, b), b)
    np.testing.assert_allclose(ad, ref_a, rtol=1e-5, atol=2e-6)


def test_logit_twins_match_probabilities():
    p, q = _pairs(7)
    pz = _zero_p(p)
    with np.errstate(divide="ignore"):
        lpz = np.log(pz)  # -inf logits are zero probabilities
    al = np.array([-0.5, 0.0, 0.4, 1.0, 2.5, INF])
    a, lq = al[:, None], np.log(q)
    np.testing.assert_allclose(  # logits are unnormalised: a shift changes nothing
        alpha_divergence_with_logits(_grid(lpz + 3, a[:-1]), _grid(lq, a[:-1]), a[:-1]),
        refs(ref_alpha, pz, q, al[:-1]), rtol=1e-10)
    np.testing.assert_allclose(
        renyi_divergence_with_logits(_grid(lpz, a), _grid(lq - 3, a), a),
        refs(ref_renyi, pz, q, al), rtol=1e-10)


# generic f and the named members --------------------------------------------------------------

def _xlogx(t):
    return t * jnp.log(t)


@TRANSFORMS
def test_f_divergence(transform):
    p, q = _pairs(8)
    pz = _zero_p(p)
    fkl = transform(lambda p, q: f_divergence(p, q, _xlogx))
    for x, y in ((p, q), (pz, q)):  # t log t gives KL, with f(0+) = 0 rather than NaN
        np.testing.assert_allclose(fkl(x, y), sp.rel_entr(x, y).sum(-1), rtol=1e-10)
    np.testing.assert_array_equal(fkl(q, pz), INF)  # q = 0 < p, lim f(t)/t = inf
    tv = transform(lambda p, q: f_divergence(p, q, lambda t: jnp.abs(t - 1) / 2,
                                             f_at_infinity=0.5))
    for x, y in ((p, q), (pz, q), (q, pz)):
        np.testing.assert_allclose(tv(x, y), 0.5 * np.abs(x - y).sum(-1), rtol=1e-10)
    if transform is JIT:
        return
    np.testing.assert_array_equal(f_divergence(pz, q, lambda t: -jnp.log(t)), INF)  # f(0) = inf
    np.testing.assert_allclose(f_divergence(p, q, lambda t: (t - 1) ** 2),
                               ((p - q) ** 2 / q).sum(-1), rtol=1e-10)
    # f_at_zero overrides f(0+); entries with p = q = 0 add nothing; `where` drops entries.
    qz = q.copy()
    qz[:, 0] = 0.0  # p = q = 0 in column 0, p = 0 < q in column 2
    np.testing.assert_allclose(f_divergence(pz, qz, _xlogx, f_at_zero=1.0),
                               sp.rel_entr(pz, qz).sum(-1) + qz[:, 2], rtol=1e-10)
    m = np.arange(6) != 3
    np.testing.assert_allclose(f_divergence(p, q, _xlogx, where=m),
                               sp.rel_entr(p, q)[:, m].sum(-1), rtol=1e-10)
    dp = jax.grad(lambda p: f_divergence(p, q, _xlogx).sum())(pz)
    np.testing.assert_array_equal(dp[:, [0, 2]], 0.0)  # the zero-mass convention
    c = [1, 3, 4, 5]
    np.testing.assert_allclose(dp[:, c], np.log(pz[:, c] / q[:, c]) + 1, rtol=1e-10)


def _ref_named():
    def chi2(p, q):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((p == 0) & (q == 0), 0.0, (p - q) ** 2 / q).sum(-1)

    return {total_variation: lambda p, q: 0.5 * np.abs(p - q).sum(-1),
            hellinger_distance: lambda p, q: np.sqrt(
                0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1)),
            jeffreys_divergence: lambda p, q: (sp.rel_entr(p, q) + sp.rel_entr(q, p)).sum(-1),
            chi_square_divergence: chi2}


@TRANSFORMS
def test_named_divergences_match_numpy(transform):
    p, q = _pairs(9)
    pz = _zero_p(p)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    for fn, ref in _ref_named().items():
        f = transform(fn)
        for x, y in ((p, q), (pz, q), (q, pz)):
            np.testing.assert_allclose(f(x, y), ref(x, y), rtol=1e-10)
        if transform is JIT:  # once, compiled (eager runs op by op: slow to compile each)
            np.testing.assert_allclose(jax.vmap(f)(p, q), ref(p, q), rtol=1e-10)
            np.testing.assert_allclose(f(p.T, q.T, axis=0), ref(p, q), rtol=1e-10)
            out32 = f(p32, q32)
            assert out32.dtype == jnp.float32
            np.testing.assert_allclose(out32, ref(p32.astype(float), q32.astype(float)),
                                       rtol=1e-5)
    if transform is JIT:
        return
    np.testing.assert_array_equal(hellinger_distance(p, p), 0.0)
    disjoint = np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.3, 0.7])
    np.testing.assert_allclose(total_variation(*disjoint), 1.0, rtol=1e-12)
    np.testing.assert_allclose(hellinger_distance(*disjoint), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jeffreys_divergence(p, q, base=2),
                               _ref_named()[jeffreys_divergence](p, q) / np.log(2), rtol=1e-10)
    g = jax.grad(lambda x: hellinger_distance(x, pz).sum())(pz)  # sqrt at 0, twice
    np.testing.assert_array_equal(g, 0.0)
    dq = jax.grad(lambda q: chi_square_divergence(p, q).sum())(q)
    np.testing.assert_allclose(dq, 1 - (p / q) ** 2, rtol=1e-10)


def test_where_masks():
    p, q = _pairs(10, n=5)
    pp, qq = np.hstack([p, np.full((4, 3), 0.2)]), np.hstack([q, np.full((4, 3), 0.1)])
    al = np.array([0.3, 1.0, 1.0 + 1e-7, 2.0, INF])  # alpha uses the first four

    @jax.jit
    def all_values(p, q, where):
        a = jnp.asarray(al)[:, None]
        g4, g5 = ([jnp.broadcast_to(x, (k, *x.shape)) for x in (p, q)] for k in (4, 5))
        return (alpha_divergence(*g4, a[:4], where=where), renyi_divergence(*g5, a, where=where),
                [fn(p, q, where=where) for fn in _ref_named()])

    def check(where, k):
        ad, rd, named = all_values(pp, qq, where)
        x, y = p[:, k], q[:, k]
        for val, ref, a in ((ad, ref_alpha, al[:4]), (rd, ref_renyi, al)):
            want = refs(ref, x, y, a)
            np.testing.assert_allclose(np.delete(val, 2, 0), np.delete(want, 2, 0), rtol=1e-10)
            np.testing.assert_allclose(val[2], want[2], rtol=1e-6)  # the float64 ref cancels
        for val, ref in zip(named, _ref_named().values(), strict=True):
            np.testing.assert_allclose(val, ref(x, y), rtol=1e-10)

    # Junk in masked-out padding is ignored, in values and gradients.
    check(np.arange(8) < 5, np.arange(5) < 5)
    dp = jax.jit(jax.grad(lambda x: sum(jnp.sum(v) for v in jax.tree.leaves(
        all_values(x, qq, np.arange(8) < 5)))))(pp)
    np.testing.assert_array_equal(dp[:, 5:], 0.0)
    # A mask that drops mass: the positive-measure alpha form, Renyi's incomplete form, both
    # continuous at alpha = 1.
    check((np.arange(8) < 5) & (np.arange(8) != 1), np.arange(5) != 1)
    np.testing.assert_allclose(alpha_divergence_with_logits(np.log(pp), np.log(qq), 0.3,
                                                            where=np.arange(8) < 5),
                               ref_alpha(p, q, 0.3), rtol=1e-10)


def test_eager_derivatives_compile_once_for_all_orders(caplog):
    # Eager jax.grad / jax.hessian with a Python order take it as an argument, as eager calls
    # do: new orders of the same kind reuse the compiled program (each compiled again before,
    # 1-2 s). Derivatives against float64 autodiff of the plain formulas (M = sum p^a q^(1-a)).
    p, q = jnp.array([0.2, 0.3, 0.5]), jnp.array([0.3, 0.3, 0.4])

    def m(p, q, a):
        return jnp.sum(p**a * q ** (1 - a))

    plain = {alpha_divergence: lambda p, q, a: (a * jnp.sum(p) + (1 - a) * jnp.sum(q)
                                                - m(p, q, a)) / (a * (1 - a)),
             renyi_divergence: lambda p, q, a: jnp.log(m(p, q, a) / jnp.sum(p)) / (a - 1)}
    for fn, ref in plain.items():
        grad, hess = jax.grad(fn, (0, 1)), jax.hessian(fn)
        grad(p, q, 1.7), hess(p, q, 1.7)
        caplog.clear()
        with jax.log_compiles(), caplog.at_level(logging.WARNING):
            got = {a: (grad(p, q, a), hess(p, q, a)) for a in (2.5, 3.0)}
        assert not [r for r in caplog.records if "Compiling" in r.getMessage()], fn.__name__
        for a, (g, h) in got.items():
            for u, v in zip(g, jax.grad(ref, (0, 1))(p, q, a), strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(h, jax.hessian(ref)(p, q, a), rtol=1e-9, atol=1e-12)


def test_jit_and_vmap_with_traced_alpha():
    p, q = _pairs(13)
    al = jnp.asarray([-0.5, 0.0, 0.5, 1.0, 2.0])
    for fn, ref in ((alpha_divergence, ref_alpha), (renyi_divergence, ref_renyi)):
        sweep = jax.jit(jax.vmap(lambda a, fn=fn: fn(p, q, a)))(al)  # an alpha sweep
        np.testing.assert_allclose(sweep, refs(ref, p, q, al), rtol=1e-10, atol=1e-15)  # R_0 = 0
        # One decision for the whole sweep: the rare-row fallback stays a branch under vmap
        # (a batched predicate would make it a select that always runs the slow path).
        assert " cond[" in str(jax.make_jaxpr(jax.vmap(lambda a, fn=fn: fn(p, q, a)))(al))
    lp, lq = np.log(p), np.log(q)
    for fn, ref in ((alpha_divergence_with_logits, ref_alpha),
                    (renyi_divergence_with_logits, ref_renyi)):
        out = jax.vmap(JIT(fn), (0, 0, None))(lp, lq, 2.0)
        np.testing.assert_allclose(out, ref(p, q, 2.0), rtol=1e-10)
        # A sweep over the order alone (one order at a time on CPU), nested in a vmap over
        # pairs, and under grad.
        nested = jax.jit(jax.vmap(jax.vmap(fn, (None, None, 0)), (0, 0, None)))(lp, lq, al)
        want = np.stack([refs(ref, p[i], q[i], al) for i in range(len(p))])
        np.testing.assert_allclose(nested, want, rtol=1e-10, atol=1e-15)
        grads = jax.jit(jax.grad(lambda x, fn=fn: jnp.sum(jax.vmap(fn, (None, None, 0))(
            x, lq, al[2:4]))))(lp)
        one = sum(jax.grad(lambda x, a, fn=fn: jnp.sum(fn(x, lq, a)))(lp, a) for a in al[2:4])
        np.testing.assert_allclose(grads, one, rtol=1e-9, atol=1e-12)


def test_inequalities_on_1000_pairs():
    r = np.random.default_rng(11)
    conc = r.choice([0.1, 0.5, 1.0, 5.0], size=(1000, 1))
    p, q = r.gamma(conc, size=(1000, 8)), r.gamma(conc, size=(1000, 8))
    p[r.random((1000, 8)) < 0.1] = 0.0  # zeros in p only: every Renyi order stays finite
    p[:, 0] += 1e-3
    q += 1e-300
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    al = np.array([0.0, 0.1, 0.5, 0.9, 0.999, 1.0, 1.001, 1.5, 2.0, 5.0, 20.0, INF])

    @jax.jit  # one compilation for the lot
    def values(p, q):
        ren = jax.vmap(lambda a: renyi_divergence(p, q, a))(jnp.asarray(al))
        return (total_variation(p, q), hellinger_distance(p, q), kl_divergence(p, q),
                js_divergence(p, q), chi_square_divergence(p, q), ren,
                alpha_divergence(p, q, 0.5))

    tv, h, kl, js, chi, ren, a_half = values(p, q)
    tol = 1e-12
    assert np.all(tv <= np.sqrt(kl / 2) + tol)  # Pinsker
    assert np.all(h**2 <= tv + tol) and np.all(tv <= np.sqrt(2) * h + tol)
    assert np.all(js <= np.log(2) + tol)
    assert np.all(kl <= np.log1p(chi) * (1 + tol))
    assert np.isfinite(ren).all()
    assert np.all(np.diff(ren, axis=0) >= -1e-10 * (1 + np.abs(ren[1:])))  # non-decreasing
    np.testing.assert_allclose(ren[8], np.log1p(chi), rtol=1e-10)  # R_2 = log(1 + chi^2)
    np.testing.assert_allclose(a_half, 4 * h**2, rtol=1e-9, atol=1e-14)


def test_bad_input():
    p, q = np.full((3, 4), 0.25), np.full((3, 5), 0.2)
    for fn in (alpha_divergence, renyi_divergence, alpha_divergence_with_logits,
               renyi_divergence_with_logits):
        with pytest.raises(ValueError, match=rf"{fn.__name__}: .*\(3, 4\).*\(3, 5\)"):
            fn(p, q, 0.5)
        with pytest.raises(ValueError, match=rf"{fn.__name__}: alpha of shape \(2,\).*\(3,\)"):
            fn(p, p, np.ones(2))
        with pytest.raises(TypeError, match=rf"{fn.__name__}: argument alpha"):
            fn(p, p, "half")
    for fn in (total_variation, hellinger_distance, chi_square_divergence, jeffreys_divergence):
        with pytest.raises(ValueError, match=rf"{fn.__name__}: .*\(3, 4\).*\(3, 5\)"):
            fn(p, q)
        with pytest.raises(ValueError, match=rf"{fn.__name__}: where of shape \(5,\)"):
            fn(p, p, where=np.ones(5, bool))
    with pytest.raises(ValueError, match=r"f_divergence: .*\(3, 4\).*\(3, 5\)"):
        f_divergence(p, q, _xlogx)
    with pytest.raises(TypeError, match="f_divergence: f must be a callable"):
        f_divergence(p, p, "t log t")
    with pytest.raises(ValueError, match="f_divergence: f must act elementwise"):
        f_divergence(p, p, jnp.sum)
    with pytest.raises(ValueError, match=r"f_divergence: f_at_infinity of shape \(4,\)"):
        f_divergence(p, p, _xlogx, f_at_infinity=np.ones(4))


def test_16bit_inputs_keep_dtype():
    p, q = (jnp.asarray(x, jnp.bfloat16) for x in _pairs(12))
    outs = jax.jit(lambda p, q: [
        alpha_divergence(p, q, 0.5), renyi_divergence(p, q, 2.0), total_variation(p, q),
        hellinger_distance(p, q), chi_square_divergence(p, q), jeffreys_divergence(p, q),
        f_divergence(p, q, _xlogx)])(p, q)
    for out in outs:
        assert out.dtype == jnp.bfloat16 and np.isfinite(np.asarray(out, np.float32)).all()


@pytest.mark.parametrize("alpha", [0.5, 2.0, -1.0])
def test_closed_alphas_agree_with_the_general_path(alpha):
    # A Python alpha of 1/2, 2 or -1 takes the Hellinger and Pearson terms; a traced alpha the
    # general path. Values, gradients (zeros, masks: the same conventions) and Hessians agree.
    r = np.random.default_rng(5)
    p, q = r.random((4, 9)), r.random((4, 9))
    p[0, 2] = q[1, 3] = p[2, 4] = q[2, 5] = 0.0  # p = 0 < q, q = 0 < p
    q[3] = p[3] * (1 + 1e-7 * r.normal(size=9))  # nearly equal
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    where = np.ones((4, 9), bool)
    where[:, 0] = False
    _static_agrees_with_traced(alpha_divergence, alpha, p, q, where, row=3)


def _static_agrees_with_traced(fn, alpha, p, q, where, row):
    """``fn(p, q, alpha)`` with alpha a Python number (a special form) against alpha traced (the
    general path): values and gradients in both arguments (rows at +inf: zero in both), with
    and without ``where``, and the Hessian in p of one row."""
    static, order = functools.partial(fn, alpha=alpha), jnp.asarray(alpha)
    for w in (None, where):  # value and gradients in one program each (compiling is the cost)
        (vs, gs), (vt, gt) = _value_and_grads(static, p, q, w), _value_and_grads(fn, p, q, w, order)
        np.testing.assert_allclose(vs, vt, rtol=1e-9)
        for a, b in zip(gs, gt, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    h = [jax.jit(jax.hessian(lambda x: fn(x, q[row], alpha)))(p[row]),
         jax.jit(jax.hessian(lambda x, a: fn(x, q[row], a)))(p[row], order)]
    np.testing.assert_allclose(h[0], h[1], rtol=1e-6, atol=1e-9)


@functools.partial(jax.jit, static_argnames=("f", "rows"))
def _value_and_grads(f, p, q, where, *order, rows=None):
    """``f(p, q, *order, where=where)`` (``order``: none, or one traced) and the gradients of
    the sum of its ``rows`` (a tuple; None: all) in p and q, in one program."""
    def total(p, q):
        v = f(p, q, *order, where=where)
        return jnp.sum(v if rows is None else v[np.array(rows)]), v
    return jax.grad(total, (0, 1), has_aux=True)(p, q)[::-1]


def test_renyi_second_derivatives_where_entries_are_equal():
    # Renyi's gradient reads the fast loops' sums; differentiated, the sign's quotient in their
    # log-ratio gave 0 / 0 where p_i = q_i: NaN Hessians (every mode). Reference: autodiff of
    # log(sum p^a q^(1-a) / sum p) / (a - 1), smooth at these interior points.
    p, q = jnp.array([0.2, 0.3, 0.5]), jnp.array([0.3, 0.3, 0.4])

    def plain(p, q, a):
        return jnp.log(jnp.sum(p**a * q ** (1 - a)) / jnp.sum(p)) / (a - 1)

    both = (0, 1)  # the four blocks, the mixed ones included
    # jitted, the order static (op by op, the two Hessians compiled for 22 s against 16)
    hessians = [jax.jit(h, static_argnums=2) for h in (
        jax.hessian(renyi_divergence, argnums=both),
        jax.jacrev(jax.jacrev(renyi_divergence, both), both))]
    for a in (2.0, 1.7, 0.3):
        ref = jax.hessian(plain, argnums=both)(p, q, a)
        for h in (hessian(p, q, a) for hessian in hessians):
            for i, j in itertools.product(both, both):
                np.testing.assert_allclose(h[i][j], ref[i][j], rtol=1e-9, atol=1e-12)
    lp, lq = jnp.log(p), jnp.log(q)
    h = jax.hessian(renyi_divergence_with_logits, argnums=1)(lp, lq, 2.0)
    ref = jax.hessian(lambda lq: plain(p, jax.nn.softmax(lq), 2.0))(lq)
    np.testing.assert_allclose(h, ref, rtol=1e-9, atol=1e-12)


def test_renyi_gradient_finite_where_the_power_overflows():
    # d/dq_i = -e^{a r_i} / M: e^{a r_i} = 2.5e39 overflows float32, the quotient (-1e20) does
    # not (was -inf). Reference: float64 autodiff of the plain formula.
    p, q = np.array([0.5, 0.5]), np.array([1 - 1e-20, 1e-20])
    g = jax.grad(renyi_divergence, argnums=1)(jnp.float32(p), jnp.float32(q), 2.0)
    ref = jax.grad(lambda q: jnp.log(jnp.sum(p**2 / q)), argnums=0)(jnp.asarray(q))
    np.testing.assert_allclose(g, ref, rtol=1e-5)


def test_forward_mode_finite_where_the_q_coefficient_overflows():
    # q_i / p_i ~ 1e29 in float32: d/dq_i of chi^2 overflows, but a zero tangent in q must not
    # turn it into NaN (jvp, jacfwd); the general alpha path is the reference.
    p = jnp.array([0.5, 0.4, 0.1], jnp.float32)
    q = jnp.array([0.5, 0.5 - 1e-30, 1e-30], jnp.float32)
    for f in (lambda x: alpha_divergence(x, q, 2.0), lambda x: alpha_divergence(q, x, -1.0),
              lambda x: chi_square_divergence(x, q)):
        assert np.all(np.isfinite(jax.jacfwd(f)(p)))
    np.testing.assert_allclose(jax.jacfwd(lambda x: alpha_divergence(x, q, 2.0))(p),
                               jax.jacfwd(lambda x: alpha_divergence(x, q, jnp.asarray(2.0)))(p),
                               rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.05, 0.7])
def test_static_orders_in_zero_one_match_numpy(alpha):
    # A Python alpha in (1e-6, 1 - 1e-6) sums the one-sided entries (p = 0 < q, q = 0 < p,
    # finite there) in the loop of the others; a traced alpha in a loop of their own. Both
    # against float64 numpy, with zeros on either side, disjoint supports, masks, -inf logits.
    r = np.random.default_rng(8)
    p, q = r.random((5, 9)), r.random((5, 9))  # nearly equal inputs: tests/test_accuracy.py
    p[0, 2] = q[1, 3] = p[2, 4] = q[2, 5] = 0.0
    p[3, :4], q[3, 4:] = 0.0, 0.0  # disjoint
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    where = np.ones((5, 9), bool)
    where[:, 6] = False
    order = jnp.asarray(alpha)
    for fn, ref in ((alpha_divergence, ref_alpha), (renyi_divergence, ref_renyi)):
        rows = (0, 1, 2, 3, 4) if fn is alpha_divergence else (0, 1, 2, 4)  # disjoint: log 0
        static, r = functools.partial(fn, alpha=alpha), np.array(rows)
        for w, k in ((None, slice(None)), (where, where[0])):
            want = ref(p[r][:, k], q[r][:, k], alpha)
            # value and gradients in one program each (compiling is the cost)
            vs, gs = _value_and_grads(static, p, q, w, rows=rows)
            vt, gt = _value_and_grads(fn, p, q, w, order, rows=rows)
            np.testing.assert_allclose(vs[r], want, rtol=1e-10)
            np.testing.assert_allclose(vs[r], vt[r], rtol=1e-10)
            for a, b in zip(gs, gt, strict=True):
                assert np.isfinite(a).all()
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p) + 2.0, np.log(q) - 1.0  # -inf logits: zero probabilities
    for fn, ref in ((alpha_divergence_with_logits, ref_alpha),
                    (renyi_divergence_with_logits, ref_renyi)):
        rows = slice(None) if fn is alpha_divergence_with_logits else np.array([0, 1, 2, 4])
        np.testing.assert_allclose(jax.jit(lambda x, y, fn=fn: fn(x, y, alpha))(lp, lq)[rows],
                                   ref(p[rows], q[rows], alpha), rtol=1e-10)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)  # float32: the truncated series
    np.testing.assert_allclose(alpha_divergence(p32, q32, alpha),
                               ref_alpha(p32.astype(float), q32.astype(float), alpha), rtol=2e-5)


def test_static_orders_that_round_to_zero_or_one_in_float32():
    # 1 - 1e-8 is 1 and 1e-46 is 0 in float32: the order must take the loops with the +-inf
    # flags (found by a review: the one-loop form gave -2.6e17 where the limit is +inf).
    p = np.array([0.5, 0.3, 0.2], np.float32)
    q = np.array([0.6, 0.4, 0.0], np.float32)
    for a in (0.99999999, np.float64(1 - 1e-9)):
        assert float(renyi_divergence(p, q, a)) == INF
        with np.errstate(divide="ignore"):
            lp, lq = np.log(p), np.log(q)
        assert float(renyi_divergence_with_logits(lp, lq, a)) == INF
        assert float(alpha_divergence(p, q, a)) == INF
    assert float(alpha_divergence(q, p, 1e-46)) == INF  # D_0 = KL(p || q): +inf at p = 0 < q


@pytest.mark.parametrize("name", ["hellinger", "chi2", "jeffreys", "alpha 0.5", "alpha 2",
                                  "alpha -1", "alpha 0.3"])
def test_gradients_in_one_or_both_arguments_match_finite_differences(name):
    # Each coefficient is computed apart (per_tangent; the alpha loops' JVP): the gradient in
    # p alone, in q alone, in both, and forward mode must all be the derivative. The reference:
    # central differences in float64 on entries away from zero (check_grads).
    f = {"hellinger": hellinger_distance, "chi2": chi_square_divergence,
         "jeffreys": jeffreys_divergence,
         **{f"alpha {a}": functools.partial(alpha_divergence, alpha=float(a))
            for a in ("0.5", "2", "-1", "0.3")}}[name]
    r = np.random.default_rng(11)
    p, q = r.uniform(0.2, 1.0, (3, 6)), r.uniform(0.2, 1.0, (3, 6))
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    w = r.normal(size=3)

    total = jax.jit(lambda p, q: jnp.sum(w * f(p, q)))
    for fn, args in ((total, (p, q)), (lambda p: total(p, q), (p,)),
                     (lambda q: total(p, q), (q,))):
        check_grads(fn, args, order=1, modes=["fwd", "rev"], eps=1e-6, atol=1e-8, rtol=1e-6)


def _logit_grads_ref(lp, lq, alpha):
    """float64 closed forms through the log-softmax: with w = softmax(alpha log p + (1 - alpha)
    log q) and M its normaliser, d/dlp = alpha M (w - p) / (alpha (alpha - 1)) and d/dlq =
    (1 - alpha) M (w - q) / (alpha (alpha - 1)) for alpha; (alpha (w - p), -(w - q) (alpha - 1))
    / (alpha - 1) for Renyi."""
    lp, lq = sp.log_softmax(lp), sp.log_softmax(lq)
    s = alpha * lp + (1 - alpha) * lq
    w = np.exp(s - sp.logsumexp(s))
    renyi = (alpha / (alpha - 1) * (w - np.exp(lp)), -(w - np.exp(lq)))
    with np.errstate(over="ignore", invalid="ignore"):  # M past float64's range (value inf)
        c = np.exp(sp.logsumexp(s)) / (alpha * (alpha - 1))
        return (alpha * c * (w - np.exp(lp)), (1 - alpha) * c * (w - np.exp(lq))), renyi


@pytest.mark.parametrize("gap", [25.0, 50.0, 100.0, 300.0])
def test_logit_gradients_far_apart(gap):
    # Logits far apart in float32: the coefficient e^{alpha r} overflowed and was zeroed (a zero
    # gradient at alpha = 2 and 44 nats, the value finite); the softmax's tail, flushed to 0,
    # tied with its clamp and jnp.maximum halved the log-softmax's derivative (Renyi's general
    # path 100 nats apart: [1, 0, 0] where [0, 0, 0] is right); alpha's general path gave NaN
    # where the value overflows to +inf (zero derivative there, as documented).
    pairs = [([gap, -gap, 0.0], [-gap, gap, 0.0]), ([gap, 0.0, 1.0], [0.0, gap, 1.0])]
    for lp, lq in pairs:
        for alpha in (2.0, 3.0, 1.7, 0.7, 0.3, -0.4, -1.0):
            refs = _logit_grads_ref(np.array(lp), np.array(lq), alpha)
            for fn, ref in zip((alpha_divergence_with_logits, renyi_divergence_with_logits),
                               refs, strict=True):
                x, y = jnp.float32(lp), jnp.float32(lq)
                value = fn(x, y, alpha)
                grads = jax.grad(fn, argnums=(0, 1))(x, y, alpha)
                if np.isinf(value):  # past the largest float: a zero derivative
                    assert all(np.all(np.asarray(g) == 0) for g in grads), (fn, alpha, lp)
                    continue
                # relative to the gradient's scale (e^70 carries 70 eps), and to the value's:
                # entries far below them (a saturated order in (0, 1): gradients ~1e-11) are the
                # softmax Jacobian's cancellations, float32 rounding of 1 - p at p ~ 1
                scale = max(np.abs(ref[0]).max(), np.abs(ref[1]).max())
                tol = 2e-5 * scale + 1e-6 * (1 + abs(float(value)))
                for g, r in zip(grads, ref, strict=True):
                    np.testing.assert_allclose(g, r, rtol=0, atol=tol,
                                               err_msg=f"{fn.__name__} {alpha} {lp} {lq}")


def test_alpha_gradient_zero_where_the_value_overflows():
    # The true value 2.08e48 is past float32's range: +inf, with a zero derivative (exp's inf
    # times a zero cotangent gave NaN in both arguments).
    p, q = jnp.float32([0.5, 0.5]), jnp.float32([1 - 1e-25, 1e-25])
    assert alpha_divergence(p, q, 3.0) == INF
    for g in jax.grad(alpha_divergence, argnums=(0, 1))(p, q, 3.0):
        np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_allclose(alpha_divergence(p.astype(jnp.float64), q.astype(jnp.float64),
                                                3.0), (0.5**3 * 1e50 - 1) / 6, rtol=1e-6)


def test_orders_outside_the_domain_raise():
    # alpha = +-inf or NaN gave NaN without an error (documented: finite for alpha, in
    # (-inf, inf] for Renyi); traced orders are reported under jaxdiv.checked
    p, q = np.array([0.3, 0.7]), np.array([0.5, 0.5])
    cases = [(alpha_divergence, a, "finite") for a in (np.inf, -np.inf, np.nan)]
    cases += [(alpha_divergence_with_logits, np.inf, "finite"),
              (renyi_divergence, -np.inf, r"in \(-inf, inf\]"),
              (renyi_divergence_with_logits, np.nan, r"in \(-inf, inf\]"),
              (alpha_divergence, np.array([0.3, np.inf]), "finite")]
    for fn, alpha, domain in cases:
        with pytest.raises(ValueError, match=f"{fn.__name__}: alpha must be {domain}"):
            fn(p, q, alpha)
    np.testing.assert_allclose(renyi_divergence(p, q, np.inf), np.log(1.4), rtol=1e-12)
    with pytest.raises(Exception, match="alpha_divergence: argument alpha is not finite"):
        checked(jax.jit(alpha_divergence))(p, q, np.inf)


def test_logit_gradients_at_orders_zero_and_one_keep_small_entries():
    # At alpha = 1 (and 0) the p (q) weighted coefficient was formed as (p expm1(t r)) / t with
    # t = 2^-60: the product underflowed before the division, 72x off for an entry of 2e-22.
    # Reference: float64 autodiff of the plain log-softmax form of KL (its limits).
    lp, lq = np.array([0.0, -50.0]), np.array([0.0, 0.0])

    def kl(a, b):
        la, lb = jax.nn.log_softmax(a), jax.nn.log_softmax(b)
        return jnp.sum(jnp.exp(la) * (la - lb))

    for alpha, args, swap in ((1.0, (lp, lq), False), (0.0, (lq, lp), True)):
        ref = jax.grad(kl, argnums=(0, 1))(*args)
        ref = ref[::-1] if swap else ref
        got = jax.grad(alpha_divergence_with_logits, argnums=(0, 1))(
            jnp.float32(lp), jnp.float32(lq), alpha)
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-30)


def test_derivatives_in_batches_that_mix_the_fast_loops_and_the_general_path():
    # The rows the fast loops leave NaN (an overflow there; Renyi's M << sum p) take the general
    # path's value and derivatives, chosen row by row inside one cond with the loops'
    # coefficients: reverse and forward mode and Hessians must give each row its own. References:
    # float64 closed forms through the log-softmax; autodiff of the plain Renyi formula.
    r = np.random.default_rng(12)
    lp, lq = r.normal(size=(4, 3)), r.normal(size=(4, 3))
    lp[1], lq[1] = [0.0, -40.0, 1.0], [0.0, -85.0, 1.0]  # alpha 3: e^{90} overflows the loops
    lp[2], lq[2] = [20.0, 0.0, 1.0], [0.0, 20.0, 1.0]  # Renyi 1/2, 0.3: M << sum p
    w = np.array([0.7, -1.3, 0.4, 1.1])
    for alpha in (3.0, 0.5):
        refs = [_logit_grads_ref(lp[i], lq[i], alpha) for i in range(4)]
        for k, fn in enumerate((alpha_divergence_with_logits, renyi_divergence_with_logits)):
            total = jax.jit(lambda x, y, fn=fn, a=alpha: jnp.sum(w * fn(x, y, jnp.asarray(a))))
            x, y = jnp.float32(lp), jnp.float32(lq)
            ref = np.stack([[w[i] * refs[i][k][j] for i in range(4)] for j in (0, 1)])
            # per row, relative to its gradient's scale and value (test_logit_gradients_far_apart)
            value = np.abs(fn(jnp.float32(lp), jnp.float32(lq), alpha))
            tol = (2e-5 * np.abs(ref).max((0, 2)) + 1e-6 * (1 + value))[:, None]
            for got in (jax.grad(total, argnums=(0, 1))(x, y),
                        jax.jacfwd(total, argnums=(0, 1))(x, y)):
                for j, g in enumerate(got):
                    assert np.all(np.abs(g - ref[j]) <= tol), (fn.__name__, alpha, j)

    p = np.array([[0.2, 0.3, 0.5], [1 - 2e-6, 1e-6, 1e-6], [0.4, 0.4, 0.2]])
    q = np.array([[0.3, 0.3, 0.4], [1e-6, 1 - 2e-6, 1e-6], [0.1, 0.6, 0.3]])
    w = w[:3]

    def plain(p, q, a):
        return jnp.log(jnp.sum(p**a * q ** (1 - a), -1) / jnp.sum(p, -1)) / (a - 1)

    for a in (0.5, jnp.asarray(0.3)):  # 0.5 (static): one loop; traced: two
        f = jax.jit(lambda p, q, a=a: jnp.sum(w * renyi_divergence(p, q, a)))
        np.testing.assert_allclose(renyi_divergence(p, q, a), plain(p, q, a), rtol=1e-12)
        ref = jax.grad(lambda p, q, a=a: jnp.sum(w * plain(p, q, a)), (0, 1))(p, q)
        for got in (jax.grad(f, (0, 1))(p, q), jax.jacfwd(f, (0, 1))(p, q)):
            for g, e in zip(got, ref, strict=True):
                np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
        h = jax.hessian(lambda p, a=a: jnp.sum(w * renyi_divergence(p, q, a)))(p)
        np.testing.assert_allclose(h, jax.hessian(lambda p, a=a: jnp.sum(w * plain(p, q, a)))(p),
                                   rtol=1e-7, atol=1e-9)


def test_renyi_derivatives_on_general_path_rows_in_closed_form():
    # The rows the fast loops leave to the general path (order inf; M << sum p, here with an
    # entry where q = 0 < p) take closed-form derivatives from log M, not autodiff of that
    # path. References: float64 autodiff of the plain formulas (jnp.max shares a tie's
    # derivative: two entries at the largest ratio).
    p, q = np.array([0.4, 0.4, 0.2, 0.0]), np.array([0.2, 0.2, 0.3, 0.3])
    lp, lq = np.log([0.4, 0.4, 0.2, 1e-3]), np.log([0.2, 0.2, 0.3, 0.3])

    def r_inf(p, q):
        return jnp.log(jnp.max(jnp.where(q > 0, p / jnp.where(q > 0, q, 1), 0)))

    def r_inf_logits(a, b):
        return jnp.max(jax.nn.log_softmax(a) - jax.nn.log_softmax(b))

    for f, ref, args, dtype, tol in ((renyi_divergence, r_inf, (p, q), np.float64, 1e-12),
                                     (renyi_divergence_with_logits, r_inf_logits, (lp, lq),
                                      np.float32, 1e-5)):
        x, y = (jnp.asarray(v, dtype) for v in args)
        want = jax.grad(ref, (0, 1))(*args)
        for g, w in zip(jax.grad(f, (0, 1))(x, y, INF), want, strict=True):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)

    p = np.array([[0.997999, 1e-6, 1e-3, 1e-3], [0.3, 0.3, 0.2, 0.2]])  # row 0: M / sum p < 0.02
    q = np.array([[0.0, 0.998, 1e-3, 1e-3], [0.2, 0.3, 0.3, 0.2]])

    def plain(p, q, a):
        both = (p > 0) & (q > 0)
        pw = jnp.where(both, jnp.where(both, p, 1) ** a * jnp.where(both, q, 1) ** (1 - a), 0)
        return jnp.log(jnp.sum(pw, -1) / jnp.sum(p, -1)) / (a - 1)

    w = np.array([0.7, -1.3])
    assert plain(p, q, 0.3)[0] > 3 and plain(p, q, 0.5)[0] > 3  # far: the general path's row
    f = jax.jit(lambda p, q: jnp.sum(w * renyi_divergence(p, q, 0.3)))
    ref = jax.grad(lambda p, q: jnp.sum(w * plain(p, q, 0.3)), (0, 1))(p, q)
    for g, e in zip(jax.grad(f, (0, 1))(p, q), ref, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    h = jax.hessian(lambda q: jnp.sum(w * renyi_divergence(p, q, 0.5)))(q)
    np.testing.assert_allclose(h, jax.hessian(lambda q: jnp.sum(w * plain(p, q, 0.5)))(q),
                               rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("alpha", [2.0, 0.5])
def test_renyi_at_two_and_one_half_agree_with_the_general_loops(alpha):
    # A Python alpha of 2 or 1/2 sums M - sum p term by term (p (p - q) / q, sqrt p (q - p) /
    # (sqrt p + sqrt q)); a traced alpha the general loops. Values against 40-digit mpmath, and
    # values, gradients (zeros, masks, one side 0, unnormalised) and Hessians against the
    # traced path.
    r = np.random.default_rng(6)
    p, q = r.random((5, 9)), r.random((5, 9))
    p[0, 2] = q[1, 3] = p[2, 4] = q[2, 4] = 0.0  # p = 0 < q, q = 0 < p, both 0
    q[3] = p[3] * (1 + 1e-7 * r.normal(size=9))  # nearly equal
    p[:4], q[:4] = p[:4] / p[:4].sum(-1, keepdims=True), q[:4] / q[:4].sum(-1, keepdims=True)
    q[4] *= 3.0  # unnormalised
    where = np.ones((5, 9), bool)
    where[:, 1] = False

    def ref(u, v):  # 40 digits: the nearly equal row's log(1 + 7.6e-15) needs them
        if alpha > 1 and np.any((u > 0) & (v == 0)):
            return INF
        with mpmath.workdps(40):
            m = mpmath.fsum(mpmath.mpf(a) ** alpha * mpmath.mpf(b) ** (1 - alpha)
                            for a, b in zip(u, v, strict=True) if a > 0 and b > 0)
            return float(mpmath.log(m / mpmath.fsum(map(mpmath.mpf, u))) / (alpha - 1))

    want = [ref(u, v) for u, v in zip(p, q, strict=True)]
    np.testing.assert_allclose(renyi_divergence(p, q, alpha), want, rtol=1e-9)
    _static_agrees_with_traced(renyi_divergence, alpha, p, q, where, row=3)
    p32, q32 = jnp.float32(p[3]), jnp.float32(q[3])  # float32: the same accuracy near p = q
    np.testing.assert_allclose(renyi_divergence(p32, q32, alpha),
                               ref(np.float64(p32), np.float64(q32)), rtol=1e-3)


def test_forward_mode_zero_on_general_path_rows_at_infinity():
    # A row the fast loops leave to the general path whose value is +inf (an infinite entry)
    # has a zero derivative, as every row at +-inf: its per-entry coefficients (inf there)
    # times a zero tangent gave NaN in forward mode, and jacfwd of a batch sum was all NaN.
    p = jnp.array([[0.5, 0.5, 0.0], [jnp.inf, 1.0, 0.0]])
    q = jnp.array([[0.5, 0.0, 0.5], [1.0, 0.5, 0.5]])
    f = jax.jit(lambda p: alpha_divergence(p, q, jnp.asarray(0.3)))
    v, t = jax.jvp(f, (p,), (jnp.zeros_like(p).at[0, 1].set(1.0),))
    assert v[1] == INF and t[1] == 0
    np.testing.assert_allclose(t[0], 1 / (1 - 0.3), rtol=1e-12)  # at p_i > 0 = q_i, alpha < 1
    assert np.all(np.isfinite(jax.jacfwd(lambda p: jnp.sum(f(p)))(p)))


@pytest.mark.parametrize("alpha", [2.0, 0.3, -1.0])
def test_logit_twins_in_fused_reductions_match_float64(alpha):
    # At sizes where XLA CPU sums through YNNPACK (jaxlib 0.10.2 computed expm1(c r) there as
    # expm1(r), c a constant: Renyi at a static 2 came out twice its value), rows nearly equal
    # (the fast loops), apart (the direct form) and far apart, values and gradients against
    # float64 numpy: M = sum exp(a log p + (1 - a) log q) and the closed-form derivatives.
    r = np.random.default_rng(21)
    lp = 3 * r.normal(size=(48, 512))
    lq = lp + np.repeat([0.01, 0.3, 3.0], 16)[:, None] * r.normal(size=(48, 512))
    x, y = np.float32(lp), np.float32(lq)
    la, lb = (v - sp.logsumexp(v, -1, keepdims=True) for v in (np.float64(x), np.float64(y)))
    w = np.exp(alpha * la + (1 - alpha) * lb)
    m = w.sum(-1, keepdims=True)
    p, q = np.exp(la), np.exp(lb)
    wants = {alpha_divergence_with_logits: ((1 - m[:, 0]) / (alpha * (1 - alpha)),
                                            (p * m - w) / (1 - alpha), (q * m - w) / alpha),
             renyi_divergence_with_logits: (np.log(m[:, 0]) / (alpha - 1),
                                            alpha * (w / m - p) / (alpha - 1), q - w / m)}
    for fn, (value, gx, gy) in wants.items():
        got, grads = jax.jit(jax.vmap(jax.value_and_grad(
            lambda x, y, fn=fn: fn(x, y, alpha), (0, 1))))(x, y)
        # the nearly equal rows' value cancels in 1 - M: compared through their gradients only
        np.testing.assert_allclose(got[16:], value[16:], rtol=2e-5, err_msg=fn.__name__)
        # relative to each row's largest: the nearly equal rows' float32 log-ratios (0.01 +-
        # 6e-7) carry 1e-4 of their own
        tol = np.repeat([2e-3, 3e-5, 3e-5], 16)[:, None]
        for g, want in zip(grads, (gx, gy), strict=True):
            scale = np.abs(want).max(-1, keepdims=True)
            assert np.all(np.abs(g - want) <= tol * scale), fn.__name__


def test_direct_form_hessians_at_zeros_and_accuracy_at_large_orders():
    # Rows far apart take the direct form, log p clamped at a stand-in: its second derivatives
    # at a zero or masked entry (log 0 times a zero derivative was NaN) against float64
    # autodiff of the plain formula over the kept entries; and orders far from [0, 1] (each
    # term rounds eps |alpha log p| there) against 40-digit mpmath in float32.
    q = jnp.array([0.05, 0.15, 0.8])
    keep = jnp.array([True, True, False])

    def plain(p, a):
        m = jnp.sum(p[:2] ** a * q[:2] ** (1 - a))
        return jnp.log(m / jnp.sum(p[:2])) / (a - 1)

    p = jnp.array([0.7, 0.2, 0.1])
    for a in (0.3, 2.5):
        h = jax.hessian(lambda p, a=a: renyi_divergence(p, q, a, where=keep))(p)
        want = jax.hessian(plain)(p, a)
        np.testing.assert_allclose(h, want, rtol=1e-9, atol=1e-12)
    qz, pz = jnp.array([0.05, 0.0, 0.95]), jnp.array([0.7, 0.3, 0.0])
    h = jax.hessian(lambda p: alpha_divergence(p, qz, 0.3))(pz)
    # p^(a-2) q^(1-a) where both are > 0; the q = 0 < p term is linear in p; 0 where p = 0
    want = np.diag([0.05 ** 0.7 * 0.7 ** -1.7, 0.0, 0.0])
    np.testing.assert_allclose(h, want, rtol=1e-9, atol=1e-12)

    r = np.random.default_rng(1)
    lp = 3 * r.normal(size=256)
    lq = lp + 0.01 * r.normal(size=256)
    p32, q32 = (np.float32(np.exp(v) / np.exp(v).sum()) for v in (lp, lq))
    for a in (100.0, -20.0):
        with mpmath.workdps(40):
            m = mpmath.fsum(mpmath.mpf(float(u)) ** a * mpmath.mpf(float(v)) ** (1 - a)
                            for u, v in zip(p32, q32, strict=True))
            want = float(mpmath.log(m / mpmath.fsum(map(mpmath.mpf, map(float, p32))))
                         / (a - 1))
        np.testing.assert_allclose(renyi_divergence(p32, q32, a), want, rtol=2e-6)
