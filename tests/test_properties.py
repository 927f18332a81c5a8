"""Invariants over every divergence and distance, on generated distributions (hypothesis).

The "ci" profile (tests/conftest.py) runs at least 200 examples per property, derandomised so
that a failure reproduces. Sizes are drawn from a fixed set spanning 2..64 so that each jitted
function compiles four times rather than once per size.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import jaxdiv as J

SIZES = [2, 3, 7, 64]
LOG2 = math.log(2.0)
TOL = 1e-9  # float64 rounding slack for inequalities between sums


def _jit(f, **kw):
    return jax.jit(functools.partial(f, **kw))


KL, JS, CE, H = _jit(J.kl_divergence), _jit(J.js_divergence), _jit(J.cross_entropy), _jit(J.entropy)
TV, HEL = _jit(J.total_variation), _jit(J.hellinger_distance)
CHI2, JEF = _jit(J.chi_square_divergence), _jit(J.jeffreys_divergence)
ALPHA, RENYI = jax.jit(J.alpha_divergence), jax.jit(J.renyi_divergence)


def _support(p):
    return jnp.arange(p.shape[-1], dtype=p.dtype)


def W1(p, q):  # Wasserstein-1 between the two histograms on the support 0, 1, ..., n-1
    x = _support(p)
    return J.wasserstein_1d(x, x, x_weights=p, y_weights=q)


W1 = jax.jit(W1)


def _hellinger_f(t):  # squared Hellinger as an f-divergence: f(t) = (sqrt t - 1)^2 / 2
    return 0.5 * (jnp.sqrt(t) - 1) ** 2


F_HEL = jax.jit(lambda p, q: J.f_divergence(p, q, _hellinger_f, f_at_infinity=0.5))

# name -> (function, symmetric, upper bound or None)
DIVERGENCES = {
    "kl": (KL, False, None),
    "js": (JS, True, LOG2),
    "tv": (TV, True, 1.0),
    "hellinger": (HEL, True, 1.0),
    "chi2": (CHI2, False, None),
    "jeffreys": (JEF, True, None),
    "alpha_0.3": (lambda p, q: ALPHA(p, q, 0.3), False, None),
    "alpha_1.7": (lambda p, q: ALPHA(p, q, 1.7), False, None),
    "renyi_0.5": (lambda p, q: RENYI(p, q, 0.5), False, None),
    "renyi_2": (lambda p, q: RENYI(p, q, 2.0), False, None),
    "f_hellinger2": (F_HEL, True, 1.0),
    "w1": (W1, True, None),
}
GRADS = {name: jax.jit(jax.value_and_grad(f, (0, 1))) for name, (f, _, _) in DIVERGENCES.items()}
GRAD_H, GRAD_H_LOGITS = jax.jit(jax.grad(J.entropy)), jax.jit(jax.grad(J.entropy_with_logits))


@st.composite
def distributions(draw, n=None, zeros=True):
    """A probability vector of a random size, with random zeros and random peakedness."""
    n = draw(st.sampled_from(SIZES)) if n is None else n
    seed = draw(st.integers(0, 2**32 - 1))
    peak = draw(st.sampled_from([0.1, 1.0, 3.0, 10.0]))
    rng = np.random.default_rng(seed)
    p = np.exp(peak * rng.standard_normal(n))
    if zeros and draw(st.booleans()):
        p[rng.random(n) < draw(st.floats(0.0, 0.7))] = 0.0
        if p.sum() == 0:
            p[rng.integers(n)] = 1.0
    return jnp.asarray(p / p.sum())


@st.composite
def pairs(draw, zeros=True):
    n = draw(st.sampled_from(SIZES))
    return draw(distributions(n, zeros)), draw(distributions(n, zeros))


def _finite(x):
    return bool(np.isfinite(np.asarray(x)).all())


@given(pairs())
def test_non_negative_and_bounded(pq):
    p, q = pq
    for name, (f, _, bound) in DIVERGENCES.items():
        v = float(f(p, q))
        assert v >= -TOL, (name, v)
        if bound is not None:
            assert v <= bound + TOL, (name, v)


@given(distributions())
def test_zero_on_identical_inputs(p):
    for name, (f, _, _) in DIVERGENCES.items():
        assert abs(float(f(p, p))) <= 1e-12, name


@given(pairs())
def test_symmetry(pq):
    p, q = pq
    for name, (f, symmetric, _) in DIVERGENCES.items():
        if symmetric:
            np.testing.assert_allclose(f(p, q), f(q, p), rtol=1e-12, atol=1e-15, err_msg=name)


@given(pairs())
def test_pinsker_and_hellinger_tv_bounds(pq):
    p, q = pq
    tv, kl, h = float(TV(p, q)), float(KL(p, q)), float(HEL(p, q))
    assert tv <= math.sqrt(kl / 2) + TOL
    assert h**2 <= tv + TOL and tv <= math.sqrt(2) * h + TOL


@given(pairs())
def test_kl_is_cross_entropy_minus_entropy(pq):
    p, q = pq
    kl, ce, h = float(KL(p, q)), float(CE(p, q)), float(H(p))
    if math.isinf(kl):
        assert math.isinf(ce)
    else:
        np.testing.assert_allclose(kl, ce - h, rtol=1e-9, atol=1e-12)


@given(pairs())
def test_renyi_non_decreasing_in_alpha(pq):
    p, q = pq
    alphas = jnp.array([0.0, 0.2, 0.5, 0.9, 1.0, 1.1, 2.0, 5.0, jnp.inf])
    r = np.asarray(jax.vmap(RENYI, (None, None, 0))(p, q, alphas))
    finite = np.isfinite(r)
    assert (np.diff(r[finite]) >= -1e-9).all(), r
    assert finite[: finite.sum()].all()  # once infinite, infinite for every larger alpha


@given(pairs())
def test_alpha_divergence_tends_to_kl_at_both_ends(pq):
    p, q = pq
    for a, ref in [(1.0, KL(p, q)), (0.0, KL(q, p))]:
        ref = float(ref)
        # The end points, to rounding (atol: values near 0 carry absolute rounding).
        np.testing.assert_allclose(ALPHA(p, q, a), ref, rtol=1e-12, atol=1e-15)
        if math.isfinite(ref):
            for e in (1e-6, -1e-6):
                np.testing.assert_allclose(ALPHA(p, q, a + e), ref, rtol=1e-4, atol=1e-5)


@given(pairs(), st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_data_processing_inequality(pq, seed, m):
    # The same stochastic map (a random Markov kernel, e.g. merging bins) applied to p and q
    # never increases an f-divergence.
    p, q = pq
    kernel = np.random.default_rng(seed).dirichlet(np.full(m, 0.3), size=p.shape[0])
    kernel = jnp.asarray(kernel)
    p2, q2 = p @ kernel, q @ kernel
    for name in ("kl", "js", "tv", "hellinger", "chi2", "alpha_0.3", "alpha_1.7",
                 "f_hellinger2", "jeffreys"):
        f = DIVERGENCES[name][0]
        before, after = float(f(p, q)), float(f(p2, q2))
        assert after <= before + 1e-9 * max(1.0, abs(before)), (name, before, after)


@given(pairs(), pairs(), st.floats(0.0, 1.0))
def test_joint_convexity_of_kl(pq1, pq2, lam):
    (p1, q1), (p2, q2) = pq1, pq2
    if p1.shape != p2.shape:
        p2, q2 = p1[::-1], q1[::-1]
    mixed = float(KL(lam * p1 + (1 - lam) * p2, lam * q1 + (1 - lam) * q2))
    parts = [w * float(KL(a, b)) for w, a, b in [(lam, p1, q1), (1 - lam, p2, q2)] if w > 0]
    assert mixed <= sum(parts) + TOL


@jax.jit
def TWINS(lp, lq):
    return (J.kl_divergence_with_logits(lp, lq), J.js_divergence_with_logits(lp, lq),
            J.cross_entropy_with_logits(lp, lq), J.entropy_with_logits(lp),
            J.alpha_divergence_with_logits(lp, lq, 0.3),
            J.renyi_divergence_with_logits(lp, lq, 2.0))


@jax.jit
def PROBS(p, q):
    return KL(p, q), JS(p, q), CE(p, q), H(p), ALPHA(p, q, 0.3), RENYI(p, q, 2.0)


@given(st.sampled_from(SIZES), st.integers(0, 2**32 - 1), st.sampled_from([0.5, 3.0, 30.0]))
def test_logit_twins_equal_probability_forms(n, seed, scale):
    rng = np.random.default_rng(seed)
    lp, lq = (jnp.asarray(scale * rng.standard_normal(n)) for _ in range(2))
    p, q = jax.nn.softmax(lp), jax.nn.softmax(lq)
    for i, (a, b) in enumerate(zip(TWINS(lp, lq), PROBS(p, q), strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12, err_msg=str(i))


@given(pairs())
def test_gradients_finite_wherever_values_are(pq):
    p, q = pq
    for name, (_, _, _) in DIVERGENCES.items():
        v, (dp, dq) = GRADS[name](p, q)
        if np.isfinite(v):
            assert _finite(dp) and _finite(dq), (name, p, q)
    assert _finite(GRAD_H(p)) and _finite(GRAD_H_LOGITS(p))


@given(pairs())
def test_jit_vmap_and_eager_agree(pq):
    p, q = pq
    batch_p, batch_q = jnp.stack([p, q, p]), jnp.stack([q, p, p])
    for name, f in [("kl", J.kl_divergence), ("js", J.js_divergence),
                    ("tv", J.total_variation), ("hellinger", J.hellinger_distance)]:
        eager = np.array([f(a, b) for a, b in zip(batch_p, batch_q, strict=True)])
        np.testing.assert_allclose(jax.vmap(DIVERGENCES[name][0])(batch_p, batch_q), eager,
                                   rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(DIVERGENCES[name][0](batch_p, batch_q), eager, rtol=1e-12,
                                   err_msg=name)
