"""jaxdiv.discrete against scipy in float64, plus the boundaries and the transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance as ssd
import scipy.special as sp
import scipy.stats as ss
from jax.test_util import check_grads

import jaxdiv
from jaxdiv import (
    binary_entropy,
    cross_entropy,
    cross_entropy_with_logits,
    entropy,
    entropy_with_logits,
    information,
    js_divergence,
    js_divergence_with_logits,
    kl_divergence,
    kl_divergence_with_logits,
)
from tests.conftest import JIT

TRANSFORMS = [lambda f: f, JIT]
IDS = ["eager", "jit"]
LOG2 = np.log(2.0)


def _pair(key, shape=(4, 6), zeros=True, dtype=jnp.float64):
    """Random Dirichlet pairs; with zeros: p = 0 at entries 0, 1; q = 0 at entry 0 and, in even
    rows, at entry 3 where p > 0 (so KL is +inf in even rows and finite in odd rows)."""
    kp, kq = jax.random.split(key)
    p = jax.random.dirichlet(kp, jnp.ones(shape[-1]), shape[:-1])
    q = jax.random.dirichlet(kq, jnp.ones(shape[-1]), shape[:-1])
    if zeros:
        p, q = p.at[:, :2].set(0.0), q.at[:, 0].set(0.0).at[::2, 3].set(0.0)
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    return p.astype(dtype), q.astype(dtype)


def _np(x):
    return np.asarray(x, np.float64)


# --- values against scipy ---------------------------------------------------------------------


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
@pytest.mark.parametrize("zeros", [False, True])
def test_kl_ce_entropy_js_against_scipy(transform, dtype, rtol, zeros, rng):
    p, q = _pair(rng, zeros=zeros, dtype=dtype)
    P, Q = _np(p), _np(q)
    kl_ref = sp.rel_entr(P, Q).sum(-1)  # +inf in the rows where q_3 = 0 < p_3
    h_ref = ss.entropy(P, axis=-1)
    ce_ref = h_ref + kl_ref
    js_ref = ssd.jensenshannon(P, Q, axis=-1) ** 2
    for f, ref in [(kl_divergence, kl_ref), (cross_entropy, ce_ref), (js_divergence, js_ref)]:
        out = transform(f)(p, q)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=0)
    np.testing.assert_allclose(transform(entropy)(p), h_ref, rtol=rtol)
    if zeros:
        assert np.isinf(kl_ref).any() and np.isfinite(kl_ref).any()  # both kinds of row tested


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_base2_and_axis0(transform, rng):
    p, q = _pair(rng, zeros=False)
    P, Q = _np(p), _np(q)
    kw = dict(axis=0, base=2)
    np.testing.assert_allclose(transform(kl_divergence)(p.T, q.T, **kw),
                               sp.rel_entr(P, Q).sum(-1) / LOG2, rtol=1e-10)
    np.testing.assert_allclose(transform(js_divergence)(p.T, q.T, **kw),
                               ssd.jensenshannon(P, Q, axis=-1, base=2) ** 2, rtol=1e-10)
    np.testing.assert_allclose(transform(entropy)(p.T, **kw), ss.entropy(P, axis=-1, base=2),
                               rtol=1e-10)
    np.testing.assert_allclose(transform(cross_entropy)(p.T, q.T, **kw),
                               -(P * np.log2(Q)).sum(-1), rtol=1e-10)


def test_information_and_binary_entropy():
    x = jnp.array([0.0, 1e-30, 0.25, 0.5, 1.0])
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(information(x), -np.log(_np(x)))
    np.testing.assert_allclose(information(x, base=2)[1:], -np.log2(_np(x)[1:]), rtol=1e-12)
    X = _np(x)
    ref = ss.entropy(np.stack([X, 1 - X]), axis=0)
    np.testing.assert_allclose(binary_entropy(x), ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(binary_entropy(0.5, base=2), 1.0, rtol=1e-12)
    g = jax.grad(lambda x: binary_entropy(x).sum())(x)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g[2], np.log(0.75 / 0.25), rtol=1e-12)  # h'(p) = log((1-p)/p)


def test_with_masks(rng):
    p, q = _pair(rng, zeros=False)
    where = jnp.arange(6) % 3 != 1
    P, Q, W = _np(p), _np(q), np.asarray(where)
    np.testing.assert_allclose(kl_divergence(p, q, where=where),
                               sp.rel_entr(P, Q)[:, W].sum(-1), rtol=1e-10)
    np.testing.assert_allclose(entropy(p, where=where), sp.entr(P)[:, W].sum(-1), rtol=1e-10)
    np.testing.assert_allclose(cross_entropy(p, q, where=where),
                               -(P * np.log(Q))[:, W].sum(-1), rtol=1e-10)
    M = (P + Q) / 2
    js_ref = 0.5 * (sp.rel_entr(P, M) + sp.rel_entr(Q, M))[:, W].sum(-1)
    np.testing.assert_allclose(js_divergence(p, q, where=where), js_ref, rtol=1e-10)
    # Masked entries get zero gradient, even where they would be infinite or NaN.
    q0 = q.at[:, 1].set(0.0)
    for f in (kl_divergence, cross_entropy, js_divergence):
        assert np.isfinite(f(p, q0, where=where)).all()
        dp, dq = jax.grad(lambda p, q, f=f: f(p, q, where=where).sum(), (0, 1))(p, q0)
        np.testing.assert_array_equal(dp[:, ~W], 0.0)
        np.testing.assert_array_equal(dq[:, ~W], 0.0)
    d = jax.grad(lambda p: entropy(p, where=where).sum())(p)
    np.testing.assert_array_equal(d[:, ~W], 0.0)
    # A masked NaN (a padded slot) leaves the value and every other gradient entry alone.
    pn, qn = p.at[:, 1].set(jnp.nan), q.at[:, 1].set(jnp.nan)
    for f in (kl_divergence, cross_entropy, js_divergence):
        np.testing.assert_allclose(f(pn, qn, where=where), f(p, q, where=where), rtol=1e-12)
        for k in (0, 1):
            g = jax.grad(lambda p, q, f=f: f(p, q, where=where).sum(), k)(pn, qn)
            np.testing.assert_array_equal(np.isfinite(g), True)
            np.testing.assert_array_equal(g[:, ~W], 0.0)


# --- boundaries ----------------------------------------------------------------------------


def test_zero_conventions():
    onehot = jnp.array([0.0, 1.0, 0.0])
    other = jnp.array([0.0, 0.0, 1.0])
    assert entropy(onehot) == 0.0
    assert entropy_with_logits(jnp.log(onehot)) == 0.0
    assert kl_divergence(onehot, onehot) == 0.0
    assert kl_divergence(onehot, other) == np.inf  # never NaN
    assert cross_entropy(onehot, other) == np.inf
    assert js_divergence(onehot, other) == np.float64(LOG2)  # exactly log 2
    assert kl_divergence_with_logits(jnp.log(onehot), jnp.log(other)) == np.inf
    assert js_divergence_with_logits(jnp.log(onehot), jnp.log(other)) == np.float64(LOG2)
    # Disjoint supports with several entries: log 2 to rounding in float32.
    p = jnp.array([0.2, 0.8, 0.0, 0.0], jnp.float32)
    q = jnp.array([0.0, 0.0, 0.7, 0.3], jnp.float32)
    np.testing.assert_allclose(js_divergence(p, q), LOG2, rtol=1e-7)
    np.testing.assert_allclose(js_divergence_with_logits(jnp.log(p), jnp.log(q)), LOG2, rtol=1e-7)


@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-5), (jnp.float64, 1e-12)])
def test_kl_equals_ce_minus_entropy(dtype, rtol, rng):
    p, q = _pair(rng, shape=(64, 33), zeros=False, dtype=dtype)
    np.testing.assert_allclose(kl_divergence(p, q), cross_entropy(p, q) - entropy(p), rtol=rtol,
                               atol=10 * float(jnp.finfo(dtype).eps))  # atol: KL near 0 rows


def test_gradients_finite_at_zero_and_exact(rng):
    p, q = _pair(rng, zeros=True)
    q = q.at[:, 3].set(0.1)  # every value finite: q = 0 only where p = 0
    q = q / q.sum(-1, keepdims=True)
    for f in (kl_divergence, cross_entropy, js_divergence):
        assert np.isfinite(f(p, q)).all()
        dp, dq = jax.grad(lambda p, q, f=f: f(p, q).sum(), (0, 1))(p, q)
        assert np.isfinite(dp).all() and np.isfinite(dq).all(), f.__name__
    dp, dq = jax.grad(lambda p, q: kl_divergence(p, q).sum(), (0, 1))(p, q)
    P, Q = _np(p), _np(q)
    pos = P > 0
    np.testing.assert_array_equal(dp[~pos], 0.0)  # the zero-mass convention
    np.testing.assert_allclose(np.asarray(dp)[pos], np.log(P[pos] / Q[pos]) + 1, rtol=1e-10)
    np.testing.assert_allclose(dq, -np.divide(P, Q, out=np.zeros_like(P), where=Q > 0),
                               rtol=1e-10)  # dKL/dq = -p/q
    # Vs the naive single-where formulation (optax's), which is NaN at p = 0.
    naive = jax.grad(lambda p: jnp.sum(jnp.where(p > 0, p * jnp.log(p / q), 0)))(p)
    assert np.isnan(naive).any()
    d = jax.grad(lambda p: entropy(p).sum())(p)
    np.testing.assert_array_equal(d[~pos], 0.0)
    np.testing.assert_allclose(np.asarray(d)[pos], -(np.log(P[pos]) + 1), rtol=1e-10)


def test_js_gradient_against_formula(rng):
    p, q = _pair(rng, zeros=False)
    dp = jax.grad(lambda p: js_divergence(p, q).sum())(p)
    P, Q = _np(p), _np(q)
    np.testing.assert_allclose(dp, 0.5 * np.log(2 * P / (P + Q)), rtol=1e-10)
    check_grads(lambda p: js_divergence(p, q), (p,), order=1)
    check_grads(lambda q: kl_divergence(p, q), (q,), order=2, eps=1e-7)


# --- logits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transform", TRANSFORMS, ids=IDS)
def test_logit_twins_match_probability_forms(transform, rng):
    k1, k2 = jax.random.split(rng)
    lp, lq = 3 * jax.random.normal(k1, (5, 7)), 3 * jax.random.normal(k2, (5, 7)) + 1.0
    P, Q = sp.softmax(_np(lp), -1), sp.softmax(_np(lq), -1)
    np.testing.assert_allclose(transform(entropy_with_logits)(lp), ss.entropy(P, axis=-1),
                               rtol=1e-10)
    np.testing.assert_allclose(transform(kl_divergence_with_logits)(lp, lq),
                               sp.rel_entr(P, Q).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(transform(cross_entropy_with_logits)(lp, lq),
                               -(P * np.log(Q)).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(transform(js_divergence_with_logits)(lp, lq),
                               ssd.jensenshannon(P, Q, axis=-1) ** 2, rtol=1e-10)
    # Exact for log-probabilities: the twin on log p equals the probability form on p.
    np.testing.assert_allclose(kl_divergence_with_logits(jnp.log(P), jnp.log(Q)),
                               kl_divergence(P, Q), rtol=1e-12)
    # where= masks entries out of the softmax itself.
    w = jnp.arange(7) < 5
    Pw, Qw = sp.softmax(_np(lp)[:, :5], -1), sp.softmax(_np(lq)[:, :5], -1)
    np.testing.assert_allclose(kl_divergence_with_logits(lp, lq, where=w),
                               sp.rel_entr(Pw, Qw).sum(-1), rtol=1e-10)


@pytest.mark.parametrize("scale", [1e4, 1e2])
def test_logit_twins_extreme_logits_float32(scale, rng):
    k1, k2 = jax.random.split(rng)
    lp = (scale * jax.random.uniform(k1, (8, 5), minval=-1, maxval=1)).astype(jnp.float32)
    lq = (scale * jax.random.uniform(k2, (8, 5), minval=-1, maxval=1)).astype(jnp.float32)
    LP, LQ = _np(lp), _np(lq)
    logP, logQ = sp.log_softmax(LP, -1), sp.log_softmax(LQ, -1)
    P, Q = np.exp(logP), np.exp(logQ)
    refs = {
        entropy_with_logits: -(P * logP).sum(-1),
        kl_divergence_with_logits: (P * (logP - logQ)).sum(-1),
        cross_entropy_with_logits: -(P * logQ).sum(-1),
        js_divergence_with_logits: ssd.jensenshannon(P, Q, axis=-1) ** 2,
    }
    for f, ref in refs.items():
        two = f is not entropy_with_logits
        out = f(lp, lq) if two else f(lp)
        assert out.dtype == jnp.float32
        # atol: entropies of near-one-hot rows are ~0 and rounded at float32 eps.
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6, err_msg=f.__name__)
        g = jax.grad(lambda a, b, f=f, two=two: (f(a, b) if two else f(a)).sum(), (0, 1))(lp, lq)
        assert all(np.isfinite(x).all() for x in g), f.__name__
    # -inf logits are zero-probability entries.
    lp_inf = lp.at[:, 0].set(-jnp.inf)
    lq_inf = lq.at[:, 0].set(-jnp.inf)
    for f in (kl_divergence_with_logits, js_divergence_with_logits, cross_entropy_with_logits):
        v, g = jax.value_and_grad(lambda a, b, f=f: f(a, b).sum(), (0, 1))(lp_inf, lq_inf)
        assert np.isfinite(v) and all(np.isfinite(x).all() for x in g), f.__name__


# --- transforms, dtypes, bad input ---------------------------------------------------------------


def test_vmap_and_vmap_of_grad(rng):
    p, q = _pair(rng, zeros=True)
    ref = sp.rel_entr(_np(p), _np(q)).sum(-1)
    np.testing.assert_allclose(jax.vmap(kl_divergence)(p, q), ref, rtol=1e-10)
    np.testing.assert_allclose(jax.vmap(kl_divergence, in_axes=(1, 1))(p.T, q.T), ref,
                               rtol=1e-10)
    for f in (js_divergence, entropy_with_logits):
        args = (p, q) if f is js_divergence else (p,)
        g = jax.vmap(jax.grad(f))(*args)
        g_ref = jax.grad(lambda *a, f=f: f(*a).sum())(*args)
        np.testing.assert_allclose(g, g_ref, rtol=1e-12)
    # Batch axes broadcast: one q against a batch of p.
    np.testing.assert_allclose(kl_divergence(p, p[0]), sp.rel_entr(_np(p), _np(p[0])).sum(-1),
                               rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_16bit_inputs(dtype, rng):
    p, q = _pair(rng, shape=(4, 300), zeros=False)
    for f in (kl_divergence, js_divergence, cross_entropy):
        out = f(p.astype(dtype), q.astype(dtype))
        assert out.dtype == dtype
        ref = f(p.astype(dtype).astype(jnp.float64), q.astype(dtype).astype(jnp.float64))
        # float32 accumulation: the only error left is the final rounding to 16 bits.
        np.testing.assert_allclose(_np(out), ref, rtol=float(jnp.finfo(dtype).eps))
    assert entropy(p.astype(dtype)).dtype == dtype


def test_integer_input_is_promoted():
    counts = jnp.array([0, 1, 0])
    assert jnp.issubdtype(entropy(counts).dtype, jnp.floating)
    assert kl_divergence(counts, jnp.array([0.5, 0.5, 0.0])) == np.float64(np.log(2.0))


BAD = [
    (kl_divergence, (jnp.ones(3) / 3, jnp.ones(4) / 4), ValueError, ["kl_divergence", "(3,)",
                                                                      "(4,)", "axis -1"]),
    (js_divergence, (jnp.ones((2, 3)) / 3, jnp.ones((5, 3)) / 3), ValueError,
     ["js_divergence", "(2, 3)", "(5, 3)"]),
    (cross_entropy, (jnp.ones(3) / 3, jnp.ones((3, 1)) / 3), ValueError, ["cross_entropy", "(3,)",
                                                                          "(3, 1)"]),
    (kl_divergence, (jnp.ones(3, jnp.complex64), jnp.ones(3)), TypeError, ["kl_divergence", "p",
                                                                          "complex"]),
    (entropy, ("abc",), TypeError, ["entropy", "p"]),
    (entropy, (None,), TypeError, ["entropy", "p"]),
    (entropy, (jnp.ones(0),), ValueError, ["entropy", "empty"]),
    (entropy, (jnp.float32(1.0),), ValueError, ["entropy", "scalar"]),
    (kl_divergence_with_logits, (jnp.zeros(3), jnp.zeros(2)), ValueError,
     ["kl_divergence_with_logits", "logits_p", "(3,)", "(2,)"]),
]


@pytest.mark.parametrize("f,args,err,words", BAD, ids=[f"{b[0].__name__}-{i}"
                                                      for i, b in enumerate(BAD)])
def test_bad_input(f, args, err, words):
    for g in (f, JIT(f)):
        with pytest.raises(err) as info:
            g(*args)
        for w in words:
            assert w in str(info.value), (w, str(info.value))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        entropy(jnp.ones(3) / 3, axis=2)
    with pytest.raises(ValueError, match="where of shape"):
        entropy(jnp.ones(3) / 3, where=jnp.ones(4, bool))


def test_checked_reports_bad_values():
    p, q = jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75])
    kl = jaxdiv.checked(jax.jit(kl_divergence))
    np.testing.assert_allclose(kl(p, q), sp.rel_entr(_np(p), _np(q)).sum(), rtol=1e-12)
    with pytest.raises(Exception, match="kl_divergence: argument q has negative"):
        kl(p, jnp.array([-0.25, 1.25]))
    with pytest.raises(Exception, match="argument p does not sum to 1"):
        kl(jnp.array([0.5, 0.6]), q)
    with pytest.raises(Exception, match="argument p contains NaN"):
        kl(jnp.array([jnp.nan, 0.5]), q)
    # Without the wrapper: IEEE semantics, no exception.
    assert np.isnan(kl_divergence(jnp.array([jnp.nan, 0.5]), q))


def test_logit_twins_infinite_where_p_underflows_and_q_vanishes():
    # softmax([0, -1e4]) underflows to [1, 0] in float32, but the logits say p_2 > 0 = q_2:
    # KL and cross-entropy are +inf (not NaN, not the 0 of the rounded probabilities).
    lp = jnp.array([0.0, -1e4], jnp.float32)
    lq = jnp.array([0.0, -jnp.inf], jnp.float32)
    assert kl_divergence_with_logits(lp, lq) == jnp.inf
    assert cross_entropy_with_logits(lp, lq) == jnp.inf
    np.testing.assert_allclose(js_divergence_with_logits(lp, lq), 0.0, atol=1e-30)
    # Finite logits far apart (q_2 underflows too, but is > 0), and -inf in both: finite.
    for lq in (jnp.array([0.0, -1e10], jnp.float32), jnp.array([0.0, -1e17], jnp.float32)):
        assert kl_divergence_with_logits(lp, lq) < 1e-30
        assert cross_entropy_with_logits(lp, lq) < 1e-30
    both = jnp.array([0.0, -jnp.inf], jnp.float32)
    assert kl_divergence_with_logits(both, both) == 0
    assert cross_entropy_with_logits(both, both) == 0


@pytest.mark.parametrize("where", [None, np.array([True, True, False, True, True])])
def test_logit_twins_derivatives_to_second_order(where):
    # The twins carry closed-form JVPs; check them, and their own derivatives (Hessian-vector
    # products), against finite differences in float64, with a -inf logit and a mask.
    r = np.random.default_rng(11)
    lp = jnp.asarray(r.normal(size=(3, 5)) * 2).at[1, 3].set(-jnp.inf)
    lq = jnp.asarray(r.normal(size=(3, 5)) * 2)
    kw = {} if where is None else {"where": jnp.asarray(where)}
    finite = jnp.isfinite(lp)

    def fill(x):  # differentiate only the finite logits; the -inf one stays -inf
        return jnp.where(finite, x, -jnp.inf)

    x0 = jnp.where(finite, lp, 0.0)
    for f in (kl_divergence_with_logits, js_divergence_with_logits, cross_entropy_with_logits):
        check_grads(lambda a, b, f=f: f(fill(a), b, **kw), (x0, lq), order=2, modes=["fwd", "rev"])
    check_grads(lambda a: entropy_with_logits(fill(a), **kw), (x0,), order=2,
                modes=["fwd", "rev"])


# --- round-two limits (issue 18) ----------------------------------------------------------------

_ALL = {  # every (p, q) function of discrete and fdiv, with its probability / logit inputs
    "kl_divergence": kl_divergence, "cross_entropy": cross_entropy, "js_divergence": js_divergence,
    "kl_divergence_with_logits": kl_divergence_with_logits,
    "cross_entropy_with_logits": cross_entropy_with_logits,
    "js_divergence_with_logits": js_divergence_with_logits,
    "entropy": lambda p, q, **k: entropy(p, **k),
    "entropy_with_logits": lambda p, q, **k: entropy_with_logits(p, **k),
    "alpha_divergence": lambda p, q, **k: jaxdiv.alpha_divergence(p, q, 0.5, **k),
    "alpha_divergence_with_logits": lambda p, q, **k: jaxdiv.alpha_divergence_with_logits(
        p, q, 2.0, **k),
    "renyi_divergence": lambda p, q, **k: jaxdiv.renyi_divergence(p, q, 0.5, **k),
    "renyi_divergence_with_logits": lambda p, q, **k: jaxdiv.renyi_divergence_with_logits(
        p, q, 2.0, **k),
    "chi_square_divergence": jaxdiv.chi_square_divergence,
    "hellinger_distance": jaxdiv.hellinger_distance,
    "jeffreys_divergence": jaxdiv.jeffreys_divergence,
    "total_variation": jaxdiv.total_variation,
    "f_divergence": lambda p, q, **k: jaxdiv.f_divergence(p, q, lambda t: (t - 1) ** 2, **k),
}


def test_every_entry_masked_is_the_empty_sum():
    # The logit twins returned NaN here (a softmax over nothing); the limit is the empty sum, 0,
    # as for the probability forms, with zero (finite) gradients.
    p, q = jnp.array([[0.2, 0.3, 0.5]]), jnp.array([[0.4, 0.4, 0.2]])
    none = jnp.zeros((1, 3), bool)
    for name, f in _ALL.items():
        assert float(f(p, q, where=none)[0]) == 0.0, name
        g = jax.grad(lambda a, b, f=f: f(a, b, where=none).sum(), (0, 1))(p, q)
        assert all(bool(jnp.all(t == 0)) for t in g), name


def test_empty_batch_gives_an_empty_result():
    # (0, n) inputs crashed in an eager min that only built a check message.
    e = jnp.ones((0, 3))
    for name, f in _ALL.items():
        assert f(e, e).shape == (0,), name
        assert jaxdiv.checked(f)(e, e).shape == (0,), name


def test_derivatives_at_tiny_entries_float32():
    # Entries of 1e-20 in float32: autodiff of log(p / q) forms q^-2 = 1e40 (inf), so the KL
    # gradient in q was -inf and the Hessians inf or NaN, though every true value is below 1e21.
    p = jnp.array([0.5, 1e-20, 0.5 - 1e-20], jnp.float32)
    q = jnp.array([0.5 - 1e-20, 2e-20, 0.5 - 1e-20], jnp.float32)
    pn, qn = _np(p), _np(q)
    np.testing.assert_allclose(jax.grad(kl_divergence, 1)(p, q), -pn / qn, rtol=1e-5)
    hess = {  # diagonal second derivatives, closed forms
        (entropy, 0): -1 / pn,
        (kl_divergence, 0): 1 / pn, (kl_divergence, 1): pn / qn ** 2,
        (cross_entropy, 1): pn / qn ** 2,
        (js_divergence, 0): 0.5 * (1 / pn - 1 / (pn + qn)),
        (jaxdiv.jeffreys_divergence, 0): 1 / pn + qn / pn ** 2,
        (jaxdiv.jeffreys_divergence, 1): 1 / qn + pn / qn ** 2,
    }
    for (f, arg), want in hess.items():
        args = (p,) if f is entropy else (p, q)
        h = jnp.diagonal(jax.hessian(f, arg)(*args))
        np.testing.assert_allclose(h, want, rtol=1e-5, err_msg=f.__name__)
    d = jax.grad(jaxdiv.chi_square_divergence, (0, 1))(p, q)
    np.testing.assert_allclose(d[0], 2 * (pn - qn) / qn, rtol=1e-5, atol=1e-6)  # 0 at 0.5
    np.testing.assert_allclose(d[1], 1 - (pn / qn) ** 2, rtol=1e-5, atol=1e-6)


def test_entropy_terms_at_the_edges_of_the_lift():
    # p log p's logarithm reads max(p, tiny - |p| 2^(e-1)): p itself for p > 0 (positive
    # measures above 1 too), log(tiny) at 0; negative and NaN entries give NaN, not a finite
    # number. Reference: scipy's entr; a point mass gives +0, not -0.
    for dtype in (np.float32, np.float64):
        tiny = np.finfo(dtype).tiny
        p = np.array([[0.5, 0.5, 0.0], [tiny, 1.0, 0.0], [3.0, 1e30, 7.5], [1.0, 0.0, 0.0]],
                     dtype)
        got = np.asarray(entropy(p))
        np.testing.assert_allclose(got, sp.entr(p.astype(np.float64)).sum(-1), rtol=1e-6)
        assert got[-1] == 0 and not np.signbit(got[-1])
        for bad in (-1e-30, -0.5, np.nan):
            assert np.isnan(entropy(np.array([0.5, 0.5 - bad, bad], dtype)))
