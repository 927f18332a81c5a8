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
from tests.conftest import DEFAULT_LEVEL

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



# Sample-based distances: point clouds of random sizes, with ties (repeated points), at random
# scales. Shapes come from a fixed set so that each jitted function compiles three times.

SHAPES = [(2, 3, 1), (5, 5, 2), (17, 9, 3)]  # (n, m, d)
KEY = jax.random.key(7)
SINK = dict(threshold=1e-8, max_iterations=20_000)
SDIV = jax.jit(functools.partial(J.sinkhorn_divergence, **SINK), compiler_options=DEFAULT_LEVEL)
SDIV_GRAD = jax.jit(jax.value_and_grad(functools.partial(J.sinkhorn_divergence, **SINK), (0, 1)),
                    compiler_options=DEFAULT_LEVEL)
SW = {p: jax.jit(functools.partial(J.sliced_wasserstein, KEY, p=p)) for p in (1, 2)}
W1D = {p: jax.jit(functools.partial(J.wasserstein_1d, p=p)) for p in (1, 2)}
MMD = {k: jax.jit(functools.partial(J.mmd, kernel=k)) for k in ("gaussian", "laplacian")}
ENERGY = jax.jit(J.energy_distance)


def _eps(x, y):
    """An epsilon fixed by the pair (0.1 x its mean cost), held when a test moves a cloud."""
    return 0.1 * float(jnp.mean(jnp.sum((x[:, None] - y[None]) ** 2, -1))) + 1e-3


def _scale(*clouds):
    """Cost scale of the clouds, for absolute tolerances."""
    return 1.0 + float(jnp.max(jnp.abs(jnp.concatenate(clouds)))) ** 2


# name -> (x, y -> value, relative tolerance of its solver)
CLOUD = {
    "sinkhorn_divergence": (lambda x, y: SDIV(x, y, epsilon=_eps(x, y)), 1e-6),
    "sliced_w1": (SW[1], 1e-12), "sliced_w2": (SW[2], 1e-12),
    "mmd_gaussian": (MMD["gaussian"], 1e-12), "mmd_laplacian": (MMD["laplacian"], 1e-12),
    "energy": (ENERGY, 1e-12),
}
# Metrics on empirical measures: SW_p with its root (fixed directions: an L^p mean of 1-D
# metrics) and the square root of the energy distance (a Hilbert-space norm of embeddings).
METRICS = {"sliced_w1": SW[1], "sliced_w2": SW[2],
           "energy_root": lambda x, y: jnp.sqrt(jnp.maximum(ENERGY(x, y), 0.0))}
CLOUD_GRADS = {name: jax.jit(jax.value_and_grad(f, (0, 1))) for name, f in
               [("sliced_w1", SW[1]), ("sliced_w2", SW[2]), ("mmd_gaussian", MMD["gaussian"]),
                ("mmd_laplacian", MMD["laplacian"]), ("energy", ENERGY)]}


@st.composite
def clouds(draw, n, d):
    """n points in d dimensions at a random scale, some of them repeated (ties)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = draw(st.sampled_from([1e-2, 1.0, 30.0])) * rng.standard_normal((n, d))
    if draw(st.booleans()):
        dup = rng.random(n) < 0.5
        x[dup] = x[rng.integers(0, max(1, n // 2), size=n)[dup]]
    return jnp.asarray(x)


@st.composite
def cloud_pairs(draw, same_size=False, k=2):
    n, m, d = draw(st.sampled_from(SHAPES))
    sizes = [n, n if same_size else m, m][:k]
    return tuple(draw(clouds(s, d)) for s in sizes)


def _weights(seed, n):
    w = np.random.default_rng(seed).uniform(0.1, 1.0, n)
    return jnp.asarray(w / w.sum())


@given(cloud_pairs())
def test_clouds_non_negative_zero_on_self_and_symmetric(xy):
    x, y = xy
    n, m = x.shape[0], y.shape[0]
    for name, (f, rtol) in CLOUD.items():
        v, atol = float(f(x, y)), rtol * _scale(x, y)
        np.testing.assert_allclose(v, float(f(y, x)), rtol=rtol, atol=atol, err_msg=name)
        if name.startswith("mmd"):
            # Unbiased, so it may be negative: it is the (non-negative) biased estimate plus
            # (mean k_xx - 1) / (n - 1) + (mean k_yy - 1) / (m - 1), and 0 < k <= 1.
            assert -(1 / (n - 1) + 1 / (m - 1)) - TOL <= v <= 2 + TOL, (name, v)
            assert float(f(x, x)) <= TOL, name  # = 2 (mean k_xx - 1) / (n - 1)
        else:
            assert v >= -atol, (name, v)
            assert abs(float(f(x, x))) <= atol, name


@given(cloud_pairs(k=3))
def test_triangle_inequality(xyz):
    x, y, z = xyz
    for name, f in METRICS.items():
        xz, xy, yz = float(f(x, z)), float(f(x, y)), float(f(y, z))
        assert xz <= xy + yz + 1e-7 * (1 + xy + yz), (name, xz, xy, yz)


@given(cloud_pairs(), st.integers(0, 2**32 - 1))
def test_clouds_invariant_under_rigid_motions_and_permutations(xy, seed):
    # Each distance sees the points only through their pairwise distances (sliced Wasserstein
    # through fixed random directions: translations only).
    x, y = xy
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(rng.standard_normal((x.shape[1],) * 2))
    t = rng.standard_normal(x.shape[1])
    shifted = (x + t, y + t)
    permuted = tuple(jnp.asarray(rng.permutation(np.asarray(c))) for c in (x, y))
    rotated = tuple(jnp.asarray(np.asarray(c) @ rot) for c in (x, y))
    for name, (f, rtol) in CLOUD.items():
        ref, atol = float(f(x, y)), max(rtol, 1e-9) * _scale(x, y, *shifted)
        for u, v in [shifted, permuted] + ([] if name.startswith("sliced") else [rotated]):
            np.testing.assert_allclose(float(f(u, v)), ref, rtol=max(rtol, 1e-9), atol=atol,
                                       err_msg=name)


@given(cloud_pairs(), st.integers(0, 2**32 - 1))
def test_sinkhorn_divergence_under_translation(xy, seed):
    # For the squared Euclidean cost, moving y by t adds |t|^2 - 2 t.(x_bar - y_bar), a sum
    # of a function of x and one of y, to the x-y cost; on plans with fixed marginals that is a
    # constant, and the self terms do not move: S(x, y + t) = S(x, y) + |t|^2 - 2 t.(x_bar -
    # y_bar) at a fixed epsilon, for any weights. With y = x: S(x, x + t) = |t|^2.
    x, y = xy
    a, b = _weights(seed, x.shape[0]), _weights(seed + 1, y.shape[0])
    t = jnp.asarray(np.random.default_rng(seed).standard_normal(x.shape[1]))
    eps, tt = _eps(x, y), float(t @ t)
    expect = float(SDIV(x, y, a=a, b=b, epsilon=eps)) + tt - 2 * float(t @ (a @ x - b @ y))
    atol = 1e-6 * (_scale(x, y) + tt)
    np.testing.assert_allclose(SDIV(x, y + t, a=a, b=b, epsilon=eps), expect, rtol=1e-6,
                               atol=atol)
    np.testing.assert_allclose(SDIV(x, x + t, a=a, b=a, epsilon=eps), tt, rtol=1e-6, atol=atol)


@given(clouds(9, 1), st.floats(-50.0, 50.0), st.integers(0, 2**32 - 1), st.sampled_from([1, 2]))
def test_one_dimensional_distances_of_a_shift(x, t, seed, p):
    # Moving a 1-D sample by t moves every quantile by t: W_p = SW_p = |t|, for any weights.
    w = _weights(seed, 9)
    u = x[:, 0]
    np.testing.assert_allclose(W1D[p](u, u + t), abs(t), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(W1D[p](u, u + t, x_weights=w, y_weights=w), abs(t), rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(SW[p](x, x + t), abs(t), rtol=1e-9, atol=1e-9)


@given(cloud_pairs())
def test_cloud_gradients_finite_wherever_values_are(xy):
    # Ties and coincident clouds included: the kink of the norm at 0 and sorting with ties.
    x, y = xy
    for u, v in [(x, y), (x, x)]:
        results = {name: g(u, v) for name, g in CLOUD_GRADS.items()}
        results["sinkhorn_divergence"] = SDIV_GRAD(u, v, epsilon=_eps(u, v))
        for name, (value, (gu, gv)) in results.items():
            if np.isfinite(value):
                assert _finite(gu) and _finite(gv), name


def _sdiv_at(x, y, epsilon):
    return J.sinkhorn_divergence(x, y, epsilon=epsilon, **SINK)


SAME = {  # jitted, and vmapped then jitted
    "sinkhorn_divergence": (jax.jit(_sdiv_at, compiler_options=DEFAULT_LEVEL),
                            jax.jit(jax.vmap(_sdiv_at, (0, 0, None)),
                                    compiler_options=DEFAULT_LEVEL)),
    "sliced_w2": (SW[2], jax.jit(jax.vmap(SW[2]))),
    "mmd_gaussian": (MMD["gaussian"], jax.jit(jax.vmap(J.mmd))),
    "energy": (ENERGY, jax.jit(jax.vmap(J.energy_distance))),
}


@given(cloud_pairs(same_size=True))
def test_clouds_jit_vmap_and_eager_agree(xy):
    x, y = xy
    bx, by = jnp.stack([x, y, x]), jnp.stack([y, x, x])
    eps = _eps(x, y)
    for name, (jitted, vmapped) in SAME.items():
        sink = name == "sinkhorn_divergence"
        args = (eps,) if sink else ()
        one = np.array([jitted(u, v, *args) for u, v in zip(bx, by, strict=True)])
        if not sink:  # eager op-by-op (ott's solver is a compiled loop either way)
            f = {"sliced_w2": functools.partial(J.sliced_wasserstein, KEY),
                 "mmd_gaussian": J.mmd, "energy": J.energy_distance}[name]
            eager = np.array([f(u, v) for u, v in zip(bx, by, strict=True)])
            np.testing.assert_allclose(one, eager, rtol=1e-9, atol=1e-12 * _scale(bx),
                                       err_msg=name)
        rtol = 1e-6 if sink else 1e-9
        np.testing.assert_allclose(vmapped(bx, by, *args), one, rtol=rtol,
                                   atol=rtol * _scale(bx), err_msg=name)
