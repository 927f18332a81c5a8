"""Tests for jaxdiv.transport (Sinkhorn through ott-jax) against float64 references: POT."""

import dataclasses
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from jax.experimental import checkify
from scipy.special import logsumexp

from jaxdiv._checks import checked
from jaxdiv.transport import SinkhornResult, _ott, sinkhorn, sinkhorn_divergence

TIGHT = dict(threshold=1e-9)
OPTIONS = ("cost", "max_iterations", "inner_iterations", "batch_size", "anderson", "momentum",
           "epsilon_init", "epsilon_decay", "initializer")
# Jitted entry points with epsilon, threshold and the weights traced, so that tests share
# compilations (compiling ott's solver dominates the run time).
SOLVE = functools.partial(jax.jit(sinkhorn, static_argnames=OPTIONS), max_iterations=20000)
DIV = jax.jit(sinkhorn_divergence, static_argnames=("cost", "max_iterations", "batch_size"))
DIV_GRAD_AB = jax.jit(jax.grad(
    lambda x, y, a, b: sinkhorn_divergence(x, y, a=a, b=b, epsilon=0.5, threshold=1e-13,
                                           max_iterations=20000), (2, 3)))
DIV_GRAD = jax.jit(jax.grad(sinkhorn_divergence),
                   static_argnames=("cost", "max_iterations", "batch_size"))


def clouds(seed, n=40, m=30, d=2, shift=1.0):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, d)), 0.8 * r.normal(size=(m, d)) + shift


def weights(seed, n):
    w = np.random.default_rng(seed).uniform(0.2, 1.0, size=n)
    return w / w.sum()


def pot_plan(x, y, a, b, eps, cost="sqeuclidean"):
    M = ot.dist(x, y, metric=cost)
    return ot.sinkhorn(a, b, M, eps, method="sinkhorn_log", stopThr=1e-11, numItermax=100000), M


def symmetric_plan(x, a, eps):
    """OT_eps(a, a) plan by Feydy's averaged symmetric iteration, f <- (f + T(f)) / 2, in numpy
    (POT's alternating updates oscillate on symmetric problems and converge slowly)."""
    M = ot.dist(x, x)
    f = np.zeros(len(a))
    for _ in range(500):
        f = 0.5 * (f - eps * logsumexp((f[None, :] - M) / eps, b=a[None, :], axis=1))
    P = np.outer(a, a) * np.exp((f[:, None] + f[None, :] - M) / eps)
    assert np.abs(P.sum(1) - a).sum() < 1e-13
    return P, M


def reg_cost_ref(P, M, a, b, eps):
    """<P, M> + eps KL(P || a b^T), the quantity ott calls reg_ot_cost."""
    Q = np.outer(a, b)
    m = P > 0
    return np.sum(P * M) + eps * np.sum(P[m] * np.log(P[m] / Q[m]))


# --------------------------------------------------------------------------------------------
# ott-jax compatibility shim and online mode


def test_import_is_lazy_and_shim_provides_is_vmappable_to_ott():
    # `import jaxdiv` imports neither ott-jax nor its dependencies: the first transport call does
    code = ("import sys, jaxdiv; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('ott', 'lineax', 'jaxopt')]; assert not bad, bad")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    _ott()  # the cached loader: imports ott once and applies the shims
    import ott.utils

    assert callable(ott.utils.batching.is_vmappable)
    if not hasattr(jax.interpreters.batching, "is_vmappable"):  # JAX >= 0.10: shim active
        assert ott.utils.batching is not jax.interpreters.batching
    assert not ott.utils.batching.is_vmappable(jnp.ones(3))


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_online_equals_dense(cost):
    x, y = clouds(1)
    a, b = weights(2, 40), weights(3, 30)
    dense = SOLVE(x, y, a=a, b=b, epsilon=0.1, cost=cost, threshold=1e-8)
    online = SOLVE(x, y, a=a, b=b, epsilon=0.1, cost=cost, threshold=1e-8, batch_size=16)
    for field in ("transport_cost", "reg_cost", "f", "g"):
        np.testing.assert_allclose(getattr(online, field), getattr(dense, field), rtol=1e-5)
    assert int(online.iterations) == int(dense.iterations)


def test_online_float32_and_divergence():
    x, y = clouds(4)
    ref = SOLVE(x, y, epsilon=0.1, **TIGHT)
    out = SOLVE(x.astype(np.float32), y.astype(np.float32), epsilon=0.1, threshold=1e-6,
                batch_size=16)
    assert out.transport_cost.dtype == jnp.float32
    np.testing.assert_allclose(out.transport_cost, ref.transport_cost, rtol=1e-5)
    x, y = clouds(4, m=40)
    np.testing.assert_allclose(DIV(x, y, epsilon=0.1, batch_size=16), DIV(x, y, epsilon=0.1),
                               rtol=1e-5)


def test_divergence_of_nearby_clouds_float32_matches_float64():
    # Precision policy: S is ~80x smaller than its three terms (OT_eps ~ 1.5 each), so a 1e-3
    # relative error in the cost matrix (TF32 matmuls on NVIDIA GPUs) would show as ~1e-1
    # here. Full float32 keeps the float32 result within 2e-5 of float64, dense and online
    # (over 12 seeds: median 3e-6, largest 1.1e-5, with the clouds centred or not).
    r = np.random.default_rng(0)
    x = r.normal(size=(64, 3))
    y = x + 0.1 * r.normal(size=(64, 3)) + 0.1
    ref = DIV(x, y, epsilon=0.5, threshold=1e-12)
    assert ref < 0.03 * SOLVE(x, y, epsilon=0.5, threshold=1e-12).reg_cost
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    for batch_size in (None, 16):
        out = DIV(x32, y32, epsilon=0.5, threshold=1e-7, batch_size=batch_size)
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, ref, rtol=2e-5, err_msg=f"batch_size={batch_size}")


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_float32_clouds_far_from_the_origin(cost):
    # Both costs are translation-invariant; float32's |x|^2 + |y|^2 - 2 x.y is not: clouds
    # shifted by 1000 gave a transport cost 8% low (1.0513 against 1.1474) and a divergence 5%
    # low. Centred on the pooled mean, float32 matches float64 on the same rounded inputs.
    x, y = clouds(8, n=12, m=10)
    x32, y32 = (x + 1000).astype(np.float32), (y + 1000).astype(np.float32)
    x64, y64 = x32.astype(np.float64), y32.astype(np.float64)
    out, ref = (SOLVE(u, v, epsilon=0.1, threshold=t, cost=cost)
                for u, v, t in ((x32, y32, 1e-7), (x64, y64, 1e-12)))
    np.testing.assert_allclose(out.transport_cost, ref.transport_cost, rtol=1e-5)
    # and POT's float64 on the same rounded points, moved back to the origin (exact shifts)
    P, M = pot_plan(x64 - 1000, y64 - 1000, np.full(12, 1 / 12), np.full(10, 0.1), 0.1, cost)
    np.testing.assert_allclose(out.transport_cost, np.sum(P * M), rtol=1e-5)
    np.testing.assert_allclose(out.plan(), ref.plan(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(DIV(x32, y32, epsilon=0.1, threshold=1e-7, cost=cost),
                               DIV(x64, y64, epsilon=0.1, threshold=1e-12, cost=cost), rtol=1e-5)
    # the gradient in the points: the same as for the clouds at the origin
    g32 = DIV_GRAD(x32, y32, epsilon=0.1, threshold=1e-7, cost=cost)
    g64 = DIV_GRAD(x64 - 1000, y64 - 1000, epsilon=0.1, threshold=1e-12, cost=cost)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------
# sinkhorn


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_sinkhorn_matches_pot(cost):
    # Weighted here; uniform weights (a=None) are compared with POT in the tests that follow.
    x, y = clouds(5)
    a, b = weights(6, 40), weights(7, 30)
    P, M = pot_plan(x, y, a, b, 0.1, cost)
    # default threshold (1e-3 on the L1 marginal error): the tolerance
    loose = SOLVE(x, y, a=a, b=b, epsilon=0.1, cost=cost)
    np.testing.assert_allclose(loose.transport_cost, np.sum(P * M), rtol=2e-3)
    out = SOLVE(x, y, a=a, b=b, epsilon=0.1, cost=cost, **TIGHT)
    assert bool(out.converged) and int(out.iterations) % 10 == 0
    np.testing.assert_allclose(out.transport_cost, np.sum(P * M), rtol=1e-9)
    np.testing.assert_allclose(out.reg_cost, reg_cost_ref(P, M, a, b, 0.1), rtol=1e-9)
    np.testing.assert_allclose(out.plan(), P, rtol=1e-7, atol=1e-12)


def test_sinkhorn_approaches_emd2_as_epsilon_shrinks():
    x, y = clouds(8)
    a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
    exact = ot.emd2(a, b, ot.dist(x, y))
    gaps = []
    for eps in (1.0, 0.1, 0.01):
        out = SOLVE(x, y, epsilon=eps, threshold=1e-6, momentum="adaptive")
        assert bool(out.converged)
        gaps.append(float(out.transport_cost) - exact)
    assert all(g > -1e-9 for g in gaps)  # <P, C> of a feasible P is >= the OT cost
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2 * exact


@pytest.mark.parametrize("option", [
    dict(anderson=5), dict(momentum=1.5), dict(momentum="adaptive"),
    dict(epsilon_init=20.0, epsilon_decay=0.8), dict(initializer="gaussian"),
    dict(initializer="sorting"),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_accelerations_keep_the_solution(option):
    x, y = clouds(9, n=30, m=30)
    a = np.full(30, 1 / 30)
    P, M = pot_plan(x, y, a, a, 0.1)
    out = SOLVE(x, y, epsilon=0.1, threshold=1e-8, **option)
    assert bool(out.converged)
    np.testing.assert_allclose(out.transport_cost, np.sum(P * M), rtol=1e-7)
    if "epsilon_init" not in option and "initializer" not in option:
        assert int(out.iterations) < int(SOLVE(x, y, epsilon=0.1, threshold=1e-8).iterations)


def test_sinkhorn_default_epsilon_is_005_std_of_cost():
    # (Eager sinkhorn works but compiles each of ott's inner loops apart, ~4x a jit compile.)
    x, y = clouds(10)
    out = SOLVE(x, y, **TIGHT)
    M = ot.dist(x, y)
    np.testing.assert_allclose(out.epsilon, 0.05 * np.std(M), rtol=1e-10)
    a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
    P, _ = pot_plan(x, y, a, b, 0.05 * np.std(M))
    np.testing.assert_allclose(out.transport_cost, np.sum(P * M), rtol=1e-8)


def test_sinkhorn_vmap_and_pytree():
    pairs = [clouds(s) for s in range(3)]
    xs, ys = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    batched = jax.vmap(lambda x, y: SOLVE(x, y, epsilon=0.2, threshold=1e-8))(xs, ys)
    assert isinstance(batched, SinkhornResult) and batched.f.shape == (3, 40)
    a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
    for i in range(3):
        P, M = pot_plan(xs[i], ys[i], a, b, 0.2)
        np.testing.assert_allclose(batched.transport_cost[i], np.sum(P * M), rtol=1e-8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batched.epsilon = 1.0


def test_sinkhorn_transport_cost_gradient_matches_finite_differences():
    # transport_cost is not stationary in the potentials: its gradient goes through ott-jax's
    # implicit differentiation. (reg_cost's envelope gradient: test_sinkhorn_zero_weights.)
    x, y = clouds(11)
    g = jax.jit(jax.grad(lambda x: sinkhorn(x, y, epsilon=0.1, **TIGHT).transport_cost))(x)
    assert np.isfinite(g).all()
    h = 1e-5
    for i, k in [(0, 0), (7, 1), (23, 0)]:
        e = np.zeros_like(x)
        e[i, k] = h
        fd = (SOLVE(x + e, y, epsilon=0.1, **TIGHT).transport_cost
              - SOLVE(x - e, y, epsilon=0.1, **TIGHT).transport_cost) / (2 * h)
        # central differences of a solve converged to 1e-9: about 1e-6 relative
        np.testing.assert_allclose(g[i, k], fd, rtol=1e-5, atol=1e-8)


def test_sinkhorn_gradients_through_the_potentials_in_float32():
    # The implicit system is singular; lineax's CG on it raised "A linear solver returned
    # non-finite output" in float32 on these 6 of 12 problems. Small problems are solved by
    # SVD: every gradient finite and within float32's reach of float64's.
    def grad_of(threshold):
        return jax.jit(jax.grad(lambda x, y: sinkhorn(x, y, epsilon=0.1, threshold=threshold,
                                                      max_iterations=20000).transport_cost))

    grad, grad64 = grad_of(1e-6), grad_of(1e-12)
    grad_f = jax.jit(jax.grad(lambda x, y: jnp.sum(sinkhorn(x, y, epsilon=0.1).f)))
    for seed in (0, 3, 4, 7, 8, 9):  # the six on which CG raised
        r = np.random.default_rng(seed)
        x, y = r.normal(size=(10, 2)), r.normal(size=(10, 2)) + 0.5
        ref = grad64(x, y)
        g = grad(x.astype(np.float32), y.astype(np.float32))
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-2 * np.abs(ref).max(),
                                   err_msg=f"seed {seed}")
        assert np.isfinite(grad_f(x.astype(np.float32), y.astype(np.float32))).all()
    # given weights keep CG: a zero weight gives the documented NaN gradient, no error (an SVD
    # of the whole system, NaN there, raised)
    a = np.full(10, 1 / 9, np.float32)
    a[0] = 0
    g = jax.grad(lambda x: sinkhorn(x, y.astype(np.float32), a=a, epsilon=0.5).transport_cost)(
        x.astype(np.float32))
    assert np.isnan(g[0]).all()


def test_sinkhorn_zero_weights():
    x, y = clouds(12)
    a = weights(13, 40)
    a[:5] = 0.0
    a /= a.sum()
    b = np.full(30, 1 / 30)
    out = SOLVE(x, y, a=a, b=b, epsilon=0.1, **TIGHT)
    P, M = pot_plan(x[5:], y, a[5:], b, 0.1)
    np.testing.assert_allclose(out.transport_cost, np.sum(P * M), rtol=1e-9)
    np.testing.assert_allclose(out.reg_cost, reg_cost_ref(P, M, a[5:], b, 0.1), rtol=1e-9)
    plan = out.plan()
    assert np.isfinite(plan).all() and np.all(plan[:5] == 0)
    # reg_cost's gradient (envelope theorem) is finite; the gradients of f, g and transport_cost
    # are NaN with zero weights (ott-jax's implicit differentiation), as documented
    g = jax.jit(jax.grad(lambda y: SOLVE(x, y, a=a, b=b, epsilon=0.1, **TIGHT).reg_cost))(y)
    np.testing.assert_allclose(g, 2 * (P.sum(0)[:, None] * y - P.T @ x[5:]), rtol=1e-6)


def test_sinkhorn_low_precision():
    x, y = clouds(14)
    ref = SOLVE(x, y, epsilon=0.1, **TIGHT)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    out32 = SOLVE(x32, y32, epsilon=0.1, threshold=1e-6)
    assert out32.transport_cost.dtype == jnp.float32
    np.testing.assert_allclose(out32.transport_cost, ref.transport_cost, rtol=1e-5)
    # float32 with Anderson under x64 is solved in float64 (ott's history dtype), cast back
    and32 = SOLVE(x32, y32, epsilon=0.1, anderson=3, threshold=1e-6)
    assert and32.transport_cost.dtype == jnp.float32
    np.testing.assert_allclose(and32.transport_cost, ref.transport_cost, rtol=1e-5)
    bf = SOLVE(x.astype(jnp.bfloat16), y.astype(jnp.bfloat16), epsilon=0.1)
    assert bf.transport_cost.dtype == jnp.bfloat16
    # bfloat16 inputs carry ~3 significant digits; the solve itself runs in float32
    np.testing.assert_allclose(float(bf.transport_cost), ref.transport_cost, rtol=2e-2)


def test_sinkhorn_bad_input():
    x, y = clouds(15, n=10, m=8)
    with pytest.raises(ValueError, match=r"sinkhorn: x has shape \(10, 2\) and y has shape"):
        sinkhorn(x, y[:, :1])
    with pytest.raises(ValueError, match=r"weights a have shape \(9,\).*shape \(10, 2\)"):
        sinkhorn(x, y, a=np.ones(9) / 9)
    with pytest.raises(ValueError, match=r"weights b have shape \(10,\)"):
        sinkhorn(x, y, b=np.ones(10) / 10)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        sinkhorn(x, y, epsilon=-0.1)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        sinkhorn(x, y, epsilon=0.0)
    with pytest.raises(ValueError, match=r"x has shape \(10,\)"):
        sinkhorn(x[:, 0], y)
    with pytest.raises(ValueError, match="cost must be one of"):
        sinkhorn(x, y, cost="cityblock")
    with pytest.raises(ValueError, match="momentum must be"):
        sinkhorn(x, y, momentum=2.5)
    with pytest.raises(ValueError, match="anderson or momentum"):
        sinkhorn(x, y, anderson=3, momentum=1.2)
    with pytest.raises(ValueError, match="initializer='sorting' needs n == m"):
        sinkhorn(x, y, initializer="sorting")
    with pytest.raises(ValueError, match="epsilon_decay"):
        sinkhorn(x, y, epsilon_init=10.0)
    with pytest.raises(ValueError, match=r"sinkhorn_divergence: x has shape"):
        sinkhorn_divergence(x, y[:, :1])
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        sinkhorn_divergence(x, y, epsilon=-1.0)
    # value checks are opt-in (they cannot raise inside jit)
    with pytest.raises(checkify.JaxRuntimeError, match="epsilon is not finite"):
        checked(jax.jit(lambda x, y, e: sinkhorn(x, y, epsilon=e).reg_cost))(x, y, np.inf)


# --------------------------------------------------------------------------------------------
# sinkhorn_divergence


def test_sinkhorn_divergence_matches_pot_and_gradient():
    x, y = clouds(16, m=40)
    a, b, eps = np.full(40, 1 / 40), np.full(40, 1 / 40), 0.1
    (Pxy, Mxy), (Pxx, Mxx), (Pyy, Myy) = (pot_plan(x, y, a, b, eps), symmetric_plan(x, a, eps),
                                          symmetric_plan(y, b, eps))
    ref = (reg_cost_ref(Pxy, Mxy, a, b, eps) - 0.5 * reg_cost_ref(Pxx, Mxx, a, a, eps)
           - 0.5 * reg_cost_ref(Pyy, Myy, b, b, eps))
    np.testing.assert_allclose(DIV(x, y, epsilon=eps, threshold=1e-9), ref, rtol=1e-7)
    # envelope theorem on the three terms; the x-x term depends on x twice
    gx = DIV_GRAD(x, y, epsilon=eps, threshold=1e-9)
    gref = 2 * (Pxy.sum(1)[:, None] * x - Pxy @ y) - 2 * (Pxx.sum(1)[:, None] * x - Pxx @ x)
    np.testing.assert_allclose(gx, gref, rtol=1e-5, atol=1e-10)


def test_sinkhorn_divergence_properties():
    x, y = clouds(17, m=40, shift=2.0)
    assert abs(float(DIV(x, x, epsilon=0.1, threshold=1e-6))) < 1e-6  # 0 up to the tolerance
    s = DIV(x, y, epsilon=0.1, threshold=1e-6)
    assert s > 0.5
    gx = DIV_GRAD(x, y, epsilon=0.1, threshold=1e-6)
    assert np.isfinite(gx).all()
    direction = -gx.sum(0)  # descent moves the cloud toward the target
    target = y.mean(0) - x.mean(0)
    assert direction @ target / (np.linalg.norm(direction) * np.linalg.norm(target)) > 0.9
    assert DIV(x - 5.0 * gx, y, epsilon=0.1, threshold=1e-6) < s
    # coincident points (x against itself): the Euclidean cost's norm at 0 keeps finite gradients
    assert np.isfinite(DIV_GRAD(x, x, epsilon=0.1, cost="euclidean")).all()


def test_sinkhorn_divergence_vmap_equals_loop():
    pairs = [clouds(s, m=40) for s in range(3)]
    xs, ys = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    batched = jax.vmap(lambda x, y: DIV(x, y, epsilon=0.2, threshold=1e-8))(xs, ys)
    loop = np.array([DIV(xs[i], ys[i], epsilon=0.2, threshold=1e-8) for i in range(3)])
    np.testing.assert_allclose(batched, loop, rtol=1e-8)


def test_sinkhorn_divergence_weight_gradient_finite_at_zero_weights():
    # ott-jax's implicit system gives NaN in a zero weight; the divergence's gradient in the
    # weights is the difference of c-transformed potentials instead. Checked along a
    # mass-preserving direction (moving mass from a_1 to the empty a_0) against a one-sided
    # finite difference of the value, and against the interior gradient at positive weights.
    x, y = clouds(40, n=6, m=5)
    a, b = weights(41, 6), weights(42, 5)
    a0 = np.r_[0.0, a[1:] / a[1:].sum()]
    ga, gb = DIV_GRAD_AB(x, y, a0, b)
    assert np.isfinite(ga).all() and np.isfinite(gb).all()
    d = np.eye(6)[0] - np.eye(6)[1]
    h = 1e-7
    fd = (DIV(x, y, a=a0 + h * d, b=b, epsilon=0.5, threshold=1e-13)
          - DIV(x, y, a=a0, b=b, epsilon=0.5, threshold=1e-13)) / h
    np.testing.assert_allclose(ga @ d, fd, rtol=1e-5)
    e = np.eye(5)[0] - np.eye(5)[1]  # an interior direction in b, central differences
    fd = (DIV(x, y, a=a0, b=b + h * e, epsilon=0.5, threshold=1e-13)
          - DIV(x, y, a=a0, b=b - h * e, epsilon=0.5, threshold=1e-13)) / (2 * h)
    np.testing.assert_allclose(gb @ e, fd, rtol=1e-5)
