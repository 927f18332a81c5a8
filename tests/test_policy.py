"""jaxdiv.losses.kl_penalty against categorical policies, where KL(pi || pi_ref) and its gradient
in pi's logits have closed forms; and a tiny run of experiments.kl_estimators.

Monte Carlo checks use the central limit theorem: every average must lie within 5 standard
errors (estimated from the same sample) of its exact expectation, and the biased forms must
lie more than 10 standard errors away from the quantity they are sometimes mistaken for.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp

from jaxdiv.losses import approx_kl, kl_penalty, vae_kl

EST = ("k1", "k2", "k3")
GRAD = ("none", "naive", "unbiased")
AGG = ("token-mean", "sequence-mean-token-sum", "sequence-mean-token-mean")
K = 6
THETA_REF = np.random.default_rng(0).normal(size=K)
DIRECTION = np.random.default_rng(1).normal(size=K)
SCALES = (0.2, 1.0, 3.5)  # KL(pi || pi_ref) about 0.008, 0.11 and 0.52
# A batch of 4 sequences of 8 tokens with lengths 8, 5, 0 (fully masked) and 2.
LENGTHS = np.array([8, 5, 0, 2])
MASK = np.arange(8)[None, :] < LENGTHS[:, None]
# What each aggregation estimates, in units of the per-token KL: the sequence sum averages
# the lengths of the sequences that have a token, (8 + 5 + 2) / 3.
AGG_SCALE = {"token-mean": 1.0, "sequence-mean-token-sum": 5.0, "sequence-mean-token-mean": 1.0}
REPLICAS = 4000  # independent batches: 4000 x 15 = 60,000 tokens per policy


def _exact(theta):
    """Closed forms for the categorical pi = softmax(theta) against pi_ref = softmax(THETA_REF):
    the expectations under a ~ pi of each estimator's value, of each gradient form's gradient
    in theta (grad log pi(a) = e_a - pi), and of k * grad log pi (k used as a reward)."""
    pi, rho = sp.softmax(theta), sp.softmax(THETA_REF)
    ell = np.log(pi) - np.log(rho)  # -log r per action
    kl = pi @ ell

    def score_mean(f):  # E_pi[f(a) (e_a - pi)] = pi * (f - E_pi f)
        return pi * (f - pi @ f)

    per_action = {"k1": ell, "k2": 0.5 * ell**2, "k3": np.expm1(-ell) + ell}
    value = {e: pi @ per_action[e] for e in EST}
    g = score_mean(ell)  # grad KL(pi || pi_ref)
    grad = {(e, "none"): np.zeros(K) for e in EST}
    grad.update({(e, "unbiased"): g for e in EST})
    grad[("k1", "naive")] = np.zeros(K)  # grad k1 = grad log pi: mean 0
    grad[("k2", "naive")] = g  # -log r grad log pi
    grad[("k3", "naive")] = pi - rho  # (1 - r) grad log pi: grad KL(pi_ref || pi)
    reward = {e: score_mean(per_action[e]) for e in EST}
    return kl, value, grad, reward, g


@jax.jit
def _monte_carlo(thetas, keys):
    """For each policy (rows of ``thetas``) and each key, one batch of tokens a ~ pi: the value
    and theta-gradient of every (aggregation, estimator, gradient form), and the gradient of
    the token mean of sg(k) * log pi(a) (the penalty used as a reward)."""
    log_rho = jax.nn.log_softmax(jnp.asarray(THETA_REF))
    mask = jnp.asarray(MASK)

    def one(theta, key):
        a = jax.random.categorical(key, theta, shape=MASK.shape)
        ref = log_rho[a]

        def log_probs(th):
            return jax.nn.log_softmax(th)[a]

        values, grads, rewards = [], [], []
        for agg in AGG:
            for est in EST:
                for form in GRAD:
                    def f(th, est=est, form=form, agg=agg):
                        return kl_penalty(log_probs(th), ref, mask=mask, estimator=est,
                                          gradient=form, aggregation=agg)
                    v, g = jax.value_and_grad(f)(theta)
                    values.append(v)
                    grads.append(g)
        for est in EST:  # per-token values with gradient="none", then REINFORCE
            k = jax.vmap(jax.vmap(lambda lp, r, est=est: kl_penalty(
                lp[None, None], r[None, None], estimator=est, gradient="none")))(
                    log_probs(theta), ref)

            def reinforce(th, k=k):
                return jnp.sum(jnp.where(mask, k * log_probs(th), 0.0)) / jnp.sum(mask)
            rewards.append(jax.grad(reinforce)(theta))
        shape = (len(AGG), len(EST), len(GRAD))
        return (jnp.stack(values).reshape(shape), jnp.stack(grads).reshape(*shape, K),
                jnp.stack(rewards))

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(thetas, keys)


@pytest.fixture(scope="module")
def monte_carlo():
    thetas = np.stack([THETA_REF + s * DIRECTION for s in SCALES])
    keys = jax.random.split(jax.random.key(42), REPLICAS)
    return thetas, jax.tree.map(np.asarray, _monte_carlo(jnp.asarray(thetas), keys))


def _mean_se(x):
    return x.mean(0), x.std(0, ddof=1) / np.sqrt(x.shape[0])


def _within(x, expected, n_se=5.0):
    mean, se = _mean_se(x)
    return np.all(np.abs(mean - expected) <= n_se * se + 1e-12)


def test_monte_carlo_values(monte_carlo):
    thetas, (values, _, _) = monte_carlo
    kls = []
    for i, theta in enumerate(thetas):
        kl, value, _, _, _ = _exact(theta)
        kls.append(kl)
        v = values[i]  # [replicas, agg, est, form]
        for form in range(1, len(GRAD)):  # the value does not depend on the gradient form
            np.testing.assert_array_equal(v[..., form], v[..., 0])
        for a, agg in enumerate(AGG):
            for e, est in enumerate(EST):
                assert _within(v[:, a, e, 0], AGG_SCALE[agg] * value[est]), (kl, agg, est)
        np.testing.assert_allclose([value["k1"], value["k3"]], kl, rtol=1e-12)  # unbiased
        k2 = v[:, 0, 1, 0]
        if i == len(thetas) - 1:  # k2's bias is resolved: k2 misses the KL by > 10 s.e.
            assert not _within(k2, kl, 10.0)
    assert kls[0] < 0.01 < 0.05 < kls[1] < 0.2 < 0.4 < kls[2] < 0.7


def test_monte_carlo_gradients(monte_carlo):
    thetas, (_, grads, rewards) = monte_carlo
    for i, theta in enumerate(thetas):
        kl, _, grad, reward, g = _exact(theta)
        for a, agg in enumerate(AGG):
            for e, est in enumerate(EST):
                np.testing.assert_array_equal(grads[i, :, a, e, 0], 0.0)  # "none"
                for f, form in enumerate(GRAD[1:], start=1):
                    assert _within(grads[i, :, a, e, f], AGG_SCALE[agg] * grad[(est, form)]), (
                        kl, agg, est, form)
        for e, est in enumerate(EST):
            assert _within(rewards[i, :, e], reward[est]), (kl, est)
        # Unbiased forms: one and the same gradient per sample, whatever the estimator.
        np.testing.assert_allclose(grads[i, :, :, 0, 2], grads[i, :, :, 2, 2], rtol=1e-12)
        if i == len(thetas) - 1:  # where the forms part ways, the tests can tell them apart
            naive_k3, naive_k1 = grads[i, :, 0, 2, 1], grads[i, :, 0, 0, 1]
            assert not _within(naive_k3, g, 10.0) and not _within(naive_k1, g, 10.0)
            assert not _within(rewards[i, :, 2], g, 10.0)  # k3 as a reward is biased too
            assert _within(rewards[i, :, 0], g)  # k1 as a reward is not


def test_per_token_gradients_in_closed_form():
    # One token: the gradient in log pi(a) of each form, exactly.
    lp = jnp.log(jnp.array([[0.5, 0.2, 0.05, 0.6]]))
    ref = jnp.log(jnp.array([[0.3, 0.4, 0.5, 0.6]]))
    log_r = np.asarray(ref - lp, np.float64)
    n = lp.size

    def grad(est, form):
        return jax.grad(lambda x: kl_penalty(x, ref, estimator=est, gradient=form))(lp) * n

    expected = {("k1", "naive"): np.ones_like(log_r), ("k2", "naive"): -log_r,
                ("k3", "naive"): -np.expm1(log_r)}
    expected.update({(e, "unbiased"): -log_r for e in EST})
    for (est, form), ref_grad in expected.items():
        np.testing.assert_allclose(grad(est, form), ref_grad, rtol=1e-12, atol=1e-15)
    # The value of every form is the estimator's value, to the last bit.
    for est in EST:
        vals = [float(kl_penalty(lp, ref, estimator=est, gradient=f)) for f in GRAD]
        assert vals[0] == vals[1] == vals[2]


def test_aggregations_against_a_reference():
    rng = np.random.default_rng(3)
    lp = np.log(rng.uniform(0.05, 1.0, (5, 7)))
    ref = np.log(rng.uniform(0.05, 1.0, (5, 7)))
    mask = rng.uniform(size=(5, 7)) < 0.6
    mask[1] = False  # a fully masked sequence
    log_r = ref - lp
    ks = {"k1": -log_r, "k2": 0.5 * log_r**2, "k3": np.expm1(log_r) - log_r}
    rows = mask.any(1)
    for est, k in ks.items():
        km = np.where(mask, k, 0.0)
        expected = {"token-mean": km.sum() / mask.sum(),
                    "sequence-mean-token-sum": km.sum(1)[rows].mean(),
                    "sequence-mean-token-mean": (km.sum(1)[rows] / mask.sum(1)[rows]).mean()}
        for agg, val in expected.items():
            out = kl_penalty(lp, ref, mask=mask, estimator=est, aggregation=agg)
            np.testing.assert_allclose(out, val, rtol=1e-12)
            # A fully masked sequence contributes nothing: the same as leaving it out.
            keep = np.arange(5) != 1
            np.testing.assert_allclose(kl_penalty(lp[keep], ref[keep], mask=mask[keep],
                                                  estimator=est, aggregation=agg), val,
                                       rtol=1e-12)


@pytest.mark.parametrize("agg", AGG)
def test_fully_masked_batch_is_zero_with_zero_gradient(agg):
    lp = jnp.log(jnp.full((2, 3), 0.5))
    ref = jnp.array([[-jnp.inf, 0.0, jnp.nan], [-1.0, -2.0, -3.0]])  # masked: never read
    mask = jnp.zeros((2, 3), bool)
    for est in EST:
        value, grad = jax.value_and_grad(lambda x, est=est: kl_penalty(
            x, ref, mask=mask, estimator=est, aggregation=agg))(lp)
        assert float(value) == 0.0
        np.testing.assert_array_equal(grad, 0.0)
    assert float(kl_penalty(jnp.zeros((0, 4)), jnp.zeros((0, 4)), aggregation=agg)) == 0.0


def test_infinite_log_ratios_give_the_limits_and_finite_gradients():
    inf = jnp.inf
    # A token pi_ref cannot produce (log r = -inf), one pi cannot (log r = +inf), a finite one.
    lp = jnp.array([[-1.0, -inf, -0.5]])
    ref = jnp.array([[-inf, -1.0, -0.7]])
    finite_r = -0.7 + 0.5
    for est, limits in {"k1": (inf, -inf), "k2": (inf, inf), "k3": (inf, inf)}.items():
        for form in GRAD:
            for j, lim in enumerate(limits):
                m = jnp.array([[j == 0, j == 1, False]])
                v = kl_penalty(lp, ref, mask=m, estimator=est, gradient=form)
                assert float(v) == lim, (est, form, j)
            m = jnp.array([[True, False, True]])
            v, g = jax.value_and_grad(lambda x, est=est, form=form, m=m: kl_penalty(
                x, ref, mask=m, estimator=est, gradient=form))(lp)
            assert float(v) == inf
            assert np.isfinite(g).all() and g[0, 0] == 0 and g[0, 1] == 0
            if form == "unbiased":
                np.testing.assert_allclose(g[0, 2], -finite_r / 2, rtol=1e-12)
    # An undefined log-ratio (both log-probabilities -inf) is NaN.
    assert np.isnan(kl_penalty(jnp.array([[-inf]]), jnp.array([[-inf]])))


def test_jit_vmap_and_dtypes():
    rng = np.random.default_rng(4)
    lp = np.log(rng.uniform(0.05, 1.0, (3, 2, 5)))
    ref = np.log(rng.uniform(0.05, 1.0, (3, 2, 5)))
    f = jax.jit(kl_penalty, static_argnames=("estimator", "gradient", "aggregation"))
    eager = np.array([float(kl_penalty(a, b, aggregation="sequence-mean-token-mean"))
                      for a, b in zip(lp, ref, strict=True)])
    vm = jax.vmap(lambda a, b: f(a, b, aggregation="sequence-mean-token-mean"))(lp, ref)
    np.testing.assert_allclose(vm, eager, rtol=1e-12)
    lp32, ref32 = jnp.asarray(lp[0], jnp.float32), jnp.asarray(ref[0], jnp.float32)
    assert f(lp32, ref32).dtype == jnp.float32
    np.testing.assert_allclose(f(lp32, ref32), kl_penalty(lp[0], ref[0]), rtol=1e-5)
    bf = f(lp32.astype(jnp.bfloat16), ref32.astype(jnp.bfloat16))
    assert bf.dtype == jnp.bfloat16
    # bfloat16 inputs keep 8 significant bits; the log-ratio of two rounded log-probabilities
    # of size ~1 carries ~2^-8 absolute error: compare loosely.
    np.testing.assert_allclose(float(bf), float(kl_penalty(lp[0], ref[0])), rtol=0.05)



def test_kl_estimators_experiment_tiny(tmp_path):
    from experiments import kl_estimators

    result = kl_estimators.main(["--num-kl", "3", "--num-samples", "16384", "--quadrature",
                                 "48", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "kl_estimators.json").read_text())
    assert (tmp_path / "kl_estimators.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["schulman"] == result["schulman"]
    # Exact columns against the Gaussian closed forms (q = N(0, 1), p = N(mu, 1), KL = mu^2/2):
    # relative std of k1 = 2/mu, of k3 = sqrt(e^{mu^2} - 1 - mu^2) / KL; k2's relative bias
    # mu^2 / 4; the Monte Carlo bias within 5 of its standard errors.
    for row in saved["schulman"]:
        mu = np.sqrt(2 * row["kl"])
        np.testing.assert_allclose(row["k1_rel_std_exact"], 2 / mu, rtol=1e-10)
        np.testing.assert_allclose(row["k3_rel_std_exact"],
                                   np.sqrt(np.expm1(mu**2) - mu**2) / row["kl"], rtol=1e-10)
        np.testing.assert_allclose(row["k2_rel_bias_exact"], mu**2 / 4, rtol=1e-10)
        assert abs(row["k2_rel_bias_mc"] - mu**2 / 4) < 5 * row["k2_rel_bias_mc_se"]
    # Naive k3's expected gradient is that of KL(pi_ref || pi): in (m, s) it is (-mu, -mu^2)
    # against the true (-mu, 0), a relative bias of mu. The unbiased form: 0 up to noise.
    kls = np.asarray(saved["kl"])
    gauss = saved["families"]["gaussian"]["gradient"]
    np.testing.assert_allclose(gauss["naive"]["k3"]["rel_bias_exact"], np.sqrt(2 * kls),
                               rtol=1e-10)
    for fam in ("gaussian", "categorical"):
        unbiased = saved["families"][fam]["gradient"]["unbiased"]["k3"]
        assert np.all(np.asarray(unbiased["rel_bias_exact"]) < 1e-10)
        assert np.all(np.asarray(unbiased["rel_bias_mc"])
                      < 5 * np.asarray(unbiased["rel_bias_mc_se"]))
    text = (tmp_path / "kl_estimators.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: every number finite


def test_k3_and_vae_kl_relative_accuracy_on_a_dense_grid():
    # e^x - 1 - x: the series stopped at |x| = 0.1, and above it expm1(x) - x cancels (20x at
    # 0.1) on top of XLA CPU's float32 expm1 error: 4.3e-6 relative in float32 (70 ulps) and
    # 5.7e-15 in float64 just above the cut. Reference: long double (64-bit mantissa on x86),
    # the series to x^30 below |x| = 1 (expm1(x) - x would cancel there too).
    x64 = np.concatenate([np.linspace(-3, 3, 6001), np.geomspace(1e-6, 3, 2000),
                          -np.geomspace(1e-6, 3, 2000)])
    for dtype, tol in ((np.float32, 3e-7), (np.float64, 1e-15)):
        x = x64.astype(dtype)
        xl = x.astype(np.longdouble)
        series = sum(xl**k / np.longdouble(math.factorial(k)) for k in range(30, 1, -1))
        ref = np.where(np.abs(xl) < 1, series, np.expm1(xl) - xl).astype(np.float64)
        keep = ref != 0
        for out in (approx_kl(x, estimator="k3"),  # k3 of the log-ratio x: e^x - 1 - x
                    2 * vae_kl(jnp.zeros((x.size, 1), dtype), jnp.asarray(x)[:, None])):
            rel = np.abs(np.asarray(out, np.float64) - ref)[keep] / ref[keep]
            assert rel.max() <= tol, (dtype, rel.max(), x[keep][rel.argmax()])
