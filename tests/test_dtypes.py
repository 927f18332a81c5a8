"""Every public function in float16, bfloat16, float32 and float64: finite values, the output
dtype, float32 arithmetic for 16-bit inputs, and the relative error against float64.

One table, ``CASES``: a name, a function of floating inputs, and a builder of typical inputs
(float64 NumPy, fixed seed). For each dtype the inputs are rounded to it and the result is
compared with the float64 result **on the same rounded inputs** cast to float64, so the error
measures the computation, not the quantisation of the inputs. The error is normwise per output
leaf, ``max |out - ref| / max |ref|`` (the largest over the leaves); the float64 column is the
reference itself (its accuracy against scipy, POT and closed forms is in the per-module tests).

Results keep the input floating dtype (STYLE.md). 16-bit inputs compute and accumulate in
float32 and round once at the end, so their error is at most about half an eps of the dtype
plus float32 rounding. Measuring cannot show where a 16-bit sum accumulates (XLA on CPU sums
16-bit floats in float32 anyway), so ``test_16bit_inputs_compute_in_float32`` reads the traced
program instead: no sum, product or transcendental function may run on 16-bit floats.

Monte Carlo cases (``mc=True``) draw different random numbers in float64 than in float32
(``jax.random`` uses the bits of the dtype): against float64 their error is the Monte Carlo
error of two independent estimates, bounded loosely by ``MC_BOUND``. Their 16-bit draws are the
float32 draws (16-bit inputs sample in float32), so they are also compared with float32 on the
same key, with the 16-bit bound. Samplers are compared on the sample mean and standard deviation.

``python -m tests.test_dtypes`` prints the table (function x dtype: max relative error, output
dtype) in markdown.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

jax.config.update("jax_enable_x64", True)  # also when run as `python -m tests.test_dtypes`

import jaxdiv as D  # noqa: E402
from jaxdiv import estimators as est  # noqa: E402
from jaxdiv import losses as L  # noqa: E402
from jaxdiv.distributions import Mixture, MultivariateNormal, Normal  # noqa: E402
from tests.conftest import DEFAULT_LEVEL  # noqa: E402

DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16, "float32": jnp.float32,
          "float64": jnp.float64}
# Bounds in eps of the dtype, from the measured table (largest: 16-bit 0.8 eps, float32 9 eps).
# 16-bit: one final rounding (0.5 eps) plus float32 rounding, up to 0.8 eps for gradient_penalty
# (the critic gets x-hat and returns its gradient in the 16-bit dtype: three roundings).
# float32: sums of up to 512 terms and iterative solvers (fit, 20 gradient steps: 9 eps).
# float64 is the reference: 0 (the same program twice).
BOUND = {"float16": 1.0, "bfloat16": 1.0, "float32": 16.0, "float64": 0.0}
# The jitted cases' errors are measured on the machine code users get: XLA's default
# optimisation level, not the tests' level 0 (tests/conftest.py), whose unoptimised loops round
# differently (mmd in float32: 22.6 eps at level 0, within 16 at the default). The two cases
# that cannot be jitted (sweep, checked) run at level 0 and pass within the same bounds.
MC_BOUND = 0.2  # relative: two independent 2048-draw estimates (measured at most 0.15)
KEY = jax.random.key(0)
N = 2048  # Monte Carlo draws


@dataclasses.dataclass(frozen=True)
class Case:
    """``fn(*inputs)`` on the inputs ``build(rng)`` rounded to a dtype."""

    name: str
    fn: Callable
    build: Callable[[np.random.Generator], tuple[np.ndarray, ...]]
    mc: bool = False  # Monte Carlo: different draws in float64 (MC_BOUND against float64)
    post: Callable | None = None  # a summary (of samples) compared instead of the raw output
    jit: bool = True  # False for wrappers that cannot be jitted (`checked` raises in Python)
    f16_ops: str = ""  # why 16-bit arithmetic is expected, if it is


# Typical inputs ---------------------------------------------------------------------------------


def _probs(rng, zero=False):
    p = rng.dirichlet(np.ones(512), 2)  # 512 terms: a 16-bit sum would show
    if zero:
        p[:, :8] = 0.0
        p /= p.sum(-1, keepdims=True)
    return p


def _pq(rng):
    return _probs(rng, zero=True), _probs(rng)


def _logits(rng):
    return rng.normal(size=(2, 512)) * 2, rng.normal(size=(2, 512)) * 2


def _dyadic(rng):
    """Probabilities exact in every dtype, so that they pass the float64 checks of `checked`."""
    p = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    return rng.permutation(p), rng.permutation(p)


def _normal(rng):
    return rng.normal(size=(4,)), rng.uniform(0.5, 2.0, size=(4,))


def _normal_pair(rng):
    return (*_normal(rng), *_normal(rng))


def _mc_pair(rng):
    """Normals 1.5 apart with similar scales: KL near 1 and log-ratios of moderate variance."""
    loc = rng.normal(size=(4,)) * 0.3
    return loc, rng.uniform(0.8, 1.25, 4), loc + 1.5, rng.uniform(0.8, 1.25, 4)


def _tril(rng, d=3):
    return np.tril(rng.normal(size=(d, d)) * 0.3, -1) + np.diag(rng.uniform(0.5, 1.5, d))


def _mvn(rng):
    return rng.normal(size=(3,)), _tril(rng)


def _mixture(rng):
    return rng.normal(size=(3,)), rng.normal(size=(3,)) * 2, rng.uniform(0.5, 1.5, size=(3,))


def _mixture_mvn(rng):
    return rng.normal(size=(3,)), rng.normal(size=(3, 2)) * 2, np.stack([_tril(rng, 2)] * 3)


def _grid(rng):
    loc_p, loc_q = rng.normal(size=2)
    scale_p, scale_q = rng.uniform(0.8, 1.6, size=2)
    return (*(np.asarray(v) for v in (loc_p, scale_p, loc_q, scale_q)), np.linspace(-8, 8, 81))


def _clouds(rng, n=24, m=20):
    return rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + 0.5


def _samples_1d(rng, n=30, m=30):
    return rng.normal(size=(n,)), rng.normal(size=(m,)) * 1.5 + 0.5


def _stats(x):
    """Sample mean and standard deviation, in float64: what a sampler is compared on."""
    x = np.asarray(x).astype(np.float64)
    return np.mean(x, axis=0), np.std(x, axis=0)


def _draws_and_log_prob(out):
    """A sampler with its log-density: both compared on their mean and standard deviation."""
    return (*_stats(out[0]), *_stats(out[1]))


def _critic(x):
    """A smooth critic with input-gradient norms near 3.5 (far from 1), computing in float32."""
    x32 = x.astype(jnp.float32)
    return jnp.sum(2 * x32 + 0.25 * jnp.tanh(x32), axis=-1).astype(x.dtype)


def _fit(target, params):
    def loss(params, key):
        del key
        return D.kl_divergence_with_logits(target, params)

    return D.fit(loss, params, optax.sgd(0.5), steps=20, key=KEY)


def _grid_dists(a, b, c, d):
    return Normal(a, b), Normal(c, d)


_CHECKED_KL = D.checked(jax.jit(D.kl_divergence))
_OPTAX = "fit: the optimiser's update runs in the parameters' dtype (optax)"

CASES = [
    # discrete
    Case("information", lambda p: D.information(p), lambda r: (_probs(r),)),
    Case("entropy", lambda p: D.entropy(p), lambda r: (_probs(r, zero=True),)),
    Case("binary_entropy", lambda p: D.binary_entropy(p), lambda r: (r.uniform(0.05, 0.95, 64),)),
    Case("cross_entropy", D.cross_entropy, _pq),
    Case("kl_divergence", D.kl_divergence, _pq),
    Case("js_divergence", D.js_divergence, _pq),
    Case("entropy_with_logits", lambda l: D.entropy_with_logits(l), lambda r: _logits(r)[:1]),
    Case("cross_entropy_with_logits", D.cross_entropy_with_logits, _logits),
    Case("kl_divergence_with_logits", D.kl_divergence_with_logits, _logits),
    Case("js_divergence_with_logits", D.js_divergence_with_logits, _logits),
    # f-divergences
    Case("alpha_divergence", lambda p, q: D.alpha_divergence(p, q, 0.7), _pq),
    Case("alpha_divergence_with_logits",
         lambda p, q: D.alpha_divergence_with_logits(p, q, 0.7), _logits),
    Case("renyi_divergence", lambda p, q: D.renyi_divergence(p, q, 2.0), _pq),
    Case("renyi_divergence_with_logits",
         lambda p, q: D.renyi_divergence_with_logits(p, q, 2.0), _logits),
    Case("chi_square_divergence", D.chi_square_divergence, _pq),
    Case("f_divergence", lambda p, q: D.f_divergence(p, q, lambda t: (t - 1) ** 2 / (t + 1)), _pq),
    Case("hellinger_distance", D.hellinger_distance, _pq),
    Case("jeffreys_divergence", D.jeffreys_divergence, lambda r: (_probs(r), _probs(r))),
    Case("total_variation", D.total_variation, _pq),
    # Gaussian closed forms
    Case("gaussian_kl (Normal)",
         lambda a, b, c, d: D.gaussian_kl(Normal(a, b), Normal(c, d)), _normal_pair),
    Case("gaussian_kl (MultivariateNormal)", lambda a, b, c, d: D.gaussian_kl(
        MultivariateNormal(a, b), MultivariateNormal(c, d)), lambda r: (*_mvn(r), *_mvn(r))),
    Case("gaussian_w2 (Normal)",
         lambda a, b, c, d: D.gaussian_w2(Normal(a, b), Normal(c, d)), _normal_pair),
    Case("gaussian_w2 (MultivariateNormal)", lambda a, b, c, d: D.gaussian_w2(
        MultivariateNormal(a, b), MultivariateNormal(c, d)), lambda r: (*_mvn(r), *_mvn(r))),
    # distributions
    Case("Normal.log_prob", lambda m, s, x: Normal(m, s).log_prob(x),
         lambda r: (*_normal(r), r.normal(size=(5, 4)) * 2)),
    Case("Normal.sample", lambda m, s: Normal(m, s).sample(KEY, (N,)), _normal,
         mc=True, post=_stats),
    Case("Normal.sample_and_log_prob", lambda m, s: Normal(m, s).sample_and_log_prob(
        KEY, (N,)), _normal, mc=True, post=_draws_and_log_prob),
    Case("Normal.mean", lambda m, s: Normal(m, s).mean(), _normal),
    Case("Normal.variance", lambda m, s: Normal(m, s).variance(), _normal),
    Case("Normal.entropy", lambda m, s: Normal(m, s).entropy(), _normal),
    Case("MultivariateNormal.log_prob", lambda m, t, x: MultivariateNormal(m, t).log_prob(x),
         lambda r: (*_mvn(r), r.normal(size=(5, 3)) * 2)),
    Case("MultivariateNormal.from_covariance", lambda m, c: MultivariateNormal.from_covariance(
        m, c).scale_tril, lambda r: (r.normal(size=(3,)), (lambda t: t @ t.T)(_tril(r)))),
    Case("MultivariateNormal.sample", lambda m, t: MultivariateNormal(m, t).sample(KEY, (N,)),
         _mvn, mc=True, post=_stats),
    Case("MultivariateNormal.sample_and_log_prob", lambda m, t: MultivariateNormal(
        m, t).sample_and_log_prob(KEY, (N,)), _mvn, mc=True, post=_draws_and_log_prob),
    Case("MultivariateNormal.mean", lambda m, t: MultivariateNormal(m, t).mean(), _mvn),
    Case("MultivariateNormal.covariance",
         lambda m, t: MultivariateNormal(m, t).covariance(), _mvn),
    Case("MultivariateNormal.variance", lambda m, t: MultivariateNormal(m, t).variance(), _mvn),
    Case("MultivariateNormal.entropy", lambda m, t: MultivariateNormal(m, t).entropy(), _mvn),
    Case("Mixture.log_prob", lambda w, m, s, x: Mixture(w, Normal(m, s)).log_prob(x),
         lambda r: (*_mixture(r), r.normal(size=(7,)) * 3)),
    Case("Mixture.sample", lambda w, m, s: Mixture(w, Normal(m, s)).sample(KEY, (N,)),
         _mixture, mc=True, post=_stats),
    Case("Mixture.mean", lambda w, m, s: Mixture(w, Normal(m, s)).mean(), _mixture),
    Case("Mixture.variance", lambda w, m, s: Mixture(w, Normal(m, s)).variance(), _mixture),
    Case("Mixture.covariance",
         lambda w, m, t: Mixture(w, MultivariateNormal(m, t)).covariance(), _mixture_mvn),
    # estimators
    Case("estimators.forward_kl", lambda a, b, c, d: est.forward_kl(
        KEY, Normal(a, b), Normal(c, d), N), _mc_pair, mc=True),
    Case("estimators.reverse_kl", lambda a, b, c, d: est.reverse_kl(
        KEY, Normal(a, b), Normal(c, d), N), _mc_pair, mc=True),
    Case("estimators.js_divergence", lambda a, b, c, d: est.js_divergence(
        KEY, Normal(a, b), Normal(c, d), N), _mc_pair, mc=True),
    Case("estimators.alpha_divergence", lambda a, b, c, d: est.alpha_divergence(
        KEY, Normal(a, b), Normal(c, d), N, 0.5), _mc_pair, mc=True),
    Case("estimators.grid_kl",
         lambda a, b, c, d, g: est.grid_kl(*_grid_dists(a, b, c, d), g), _grid),
    Case("estimators.grid_js",
         lambda a, b, c, d, g: est.grid_js(*_grid_dists(a, b, c, d), g), _grid),
    Case("estimators.grid_alpha",
         lambda a, b, c, d, g: est.grid_alpha(*_grid_dists(a, b, c, d), g, 0.5), _grid),
    # losses
    Case("losses.distillation_loss",
         lambda s, t: L.distillation_loss(s, t, temperature=2.0), _logits),
    Case("losses.vae_kl", L.vae_kl, lambda r: (r.normal(size=(2, 512)), r.normal(size=(2, 512)))),
    Case("losses.policy_kl", L.policy_kl, _logits),
    Case("losses.approx_kl", lambda x: L.approx_kl(x), lambda r: (r.normal(size=(64,)) * 0.3,)),
    Case("losses.adaptive_kl_coefficient", L.adaptive_kl_coefficient,
         lambda r: (r.uniform(0.5, 2, 6), np.array([0.001, 0.002, 0.01, 0.011, 0.05, 0.1]),
                    np.full(6, 0.01)),
         f16_ops="adaptive_kl_coefficient: one division or comparison per entry, in the dtype"),
    Case("losses.gan_discriminator_loss", L.gan_discriminator_loss,
         lambda r: (r.normal(size=(64,)) * 3, r.normal(size=(64,)) * 3)),
    Case("losses.gan_generator_loss", lambda f: L.gan_generator_loss(f),
         lambda r: (r.normal(size=(64,)) * 3,)),
    Case("losses.wasserstein_critic_loss", L.wasserstein_critic_loss,
         lambda r: (r.normal(size=(64,)), r.normal(size=(64,)) + 2),
         f16_ops="wasserstein_critic_loss: one subtraction, correctly rounded in the dtype"),
    Case("losses.gradient_penalty", lambda x, y: L.gradient_penalty(_critic, x, y, KEY),
         lambda r: (r.normal(size=(8, 3)), r.normal(size=(8, 3)))),
    # transport
    Case("wasserstein_1d", lambda x, y: D.wasserstein_1d(x, y), _samples_1d),
    Case("wasserstein_1d (weights)", lambda x, y, a, b: D.wasserstein_1d(
        x, y, x_weights=a, y_weights=b),
        lambda r: (*_samples_1d(r, 30, 25), r.uniform(0.1, 1, 30), r.uniform(0.1, 1, 25))),
    Case("sliced_wasserstein", lambda x, y: D.sliced_wasserstein(KEY, x, y),
         lambda r: _clouds(r, 20, 20), mc=True),
    Case("mmd", lambda x, y: D.mmd(x, y), _clouds),
    Case("energy_distance", D.energy_distance, _clouds),
    Case("sinkhorn (reg_cost, transport_cost)", lambda x, y: (lambda s: (
        s.reg_cost, s.transport_cost))(D.sinkhorn(x, y, epsilon=0.5, threshold=1e-6)), _clouds),
    Case("sinkhorn_divergence",
         lambda x, y: D.sinkhorn_divergence(x, y, epsilon=0.5, threshold=1e-6), _clouds),
    # fitting and wrappers
    Case("fit", _fit, lambda r: (r.normal(size=(5,)), np.zeros(5)), f16_ops=_OPTAX),
    Case("sweep", lambda p, q: D.sweep(D.kl_divergence, p, q), _pq, jit=False),
    Case("checked", lambda p, q: _CHECKED_KL(p, q), _dyadic, jit=False),
]
CASE = {c.name: c for c in CASES}


# Measurement ------------------------------------------------------------------------------------


def _inputs(name: str, dtype) -> list[np.ndarray]:
    """The case's inputs rounded to ``dtype`` (NumPy: no device work before the call)."""
    rng = np.random.default_rng(sum(map(ord, name)))  # fixed, and distinct per case
    return [np.asarray(x).astype(dtype) for x in CASE[name].build(rng)]


@functools.cache
def program(name: str, dtype_name: str):
    """(the traced jaxpr or None, the function compiled once for the dtype's input types)."""
    case = CASE[name]
    if not case.jit:
        return None, case.fn
    traced = jax.jit(case.fn).trace(*_inputs(name, DTYPES[dtype_name]))
    return traced.jaxpr, traced.lower().compile(compiler_options=DEFAULT_LEVEL)


def _leaves(out) -> list[np.ndarray]:
    return [np.asarray(x).astype(np.float64) for x in jax.tree.leaves(out)]


def _rel_err(out, ref, post=None) -> float:
    """Normwise relative error, the largest over the output leaves."""
    if post is not None:
        out, ref = post(out), post(ref)
    errs = []
    for o, r in zip(_leaves(out), _leaves(ref), strict=True):
        scale = np.max(np.abs(r))
        errs.append(np.max(np.abs(o - r)) / scale if scale > 0 else np.max(np.abs(o)))
    return float(max(errs))


@dataclasses.dataclass(frozen=True)
class Result:
    dtypes: tuple[str, ...]  # of the output leaves
    finite: bool
    err: float  # against float64 on the same rounded inputs
    err_same_draws: float | None  # Monte Carlo, 16-bit: against float32 with the same draws


@functools.cache
def measure(name: str, dtype_name: str) -> Result:
    """Runs case ``name`` in ``dtype_name``, and in float64 on the same (rounded) inputs."""
    case = CASE[name]
    xs = _inputs(name, DTYPES[dtype_name])
    out = program(name, dtype_name)[1](*xs)
    ref = program(name, "float64")[1](*[x.astype(np.float64) for x in xs])
    same = None
    if case.mc and dtype_name in ("float16", "bfloat16"):
        same = _rel_err(out, program(name, "float32")[1](*[x.astype(np.float32) for x in xs]),
                        case.post)
    return Result(tuple(sorted({str(x.dtype) for x in jax.tree.leaves(out)})),
                  all(np.isfinite(x).all() for x in _leaves(out)),
                  _rel_err(out, ref, case.post), same)


# Primitives that accumulate or round (a 16-bit operand loses accuracy), as opposed to exact
# ones (max, min, abs, neg, comparisons, select, sort, gather) and layout changes.
_ARITHMETIC = {"add", "sub", "mul", "div", "rem", "pow", "integer_pow", "square", "exp", "exp2",
               "log", "log1p", "expm1", "tanh", "logistic", "sqrt", "rsqrt", "cbrt", "sin", "cos",
               "erf", "erfc", "erf_inv", "lgamma", "digamma", "atan2", "reduce_sum",
               "reduce_prod", "cumsum", "cumprod", "cumlogsumexp", "dot_general", "logsumexp"}


def _sub_jaxprs(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def ops_16bit(jaxpr) -> set[str]:
    """Names of the arithmetic primitives with a 16-bit float operand or result in ``jaxpr``."""
    found = set()
    for eqn in jaxpr.eqns:
        avals = [v.aval for v in (*eqn.invars, *eqn.outvars) if hasattr(v, "aval")]
        if eqn.primitive.name in _ARITHMETIC and any(
                getattr(a, "dtype", None) in (jnp.float16, jnp.bfloat16) for a in avals):
            found.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in _sub_jaxprs(param):
                found |= ops_16bit(sub)
    return found


# Tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(CASE))
def test_dtype_finite_and_accurate(name, dtype):
    case, res = CASE[name], measure(name, dtype)
    assert res.dtypes == (dtype,), f"{name}: {dtype} inputs give {res.dtypes}"
    assert res.finite, f"{name}: non-finite output in {dtype}"
    eps = float(jnp.finfo(DTYPES[dtype]).eps)
    if case.mc and dtype != "float64":
        assert res.err <= MC_BOUND, (name, dtype, res.err)
        if res.err_same_draws is not None:
            assert res.err_same_draws <= BOUND[dtype] * eps, (name, dtype, res.err_same_draws)
    else:
        assert res.err <= BOUND[dtype] * eps, (name, dtype, res.err / eps)


@pytest.mark.parametrize("name", [c.name for c in CASES if c.jit])
def test_16bit_inputs_compute_in_float32(name):
    found = ops_16bit(program(name, "bfloat16")[0])
    if CASE[name].f16_ops:  # a documented exception: something must be found
        assert found, f"{name}: documented 16-bit arithmetic is gone; drop the exception"
    else:
        assert not found, f"{name}: 16-bit arithmetic {sorted(found)}"


def test_the_16bit_check_can_fail():
    """The jaxpr check sees a 16-bit log and a 16-bit dot product, also inside nested jits.

    (``jnp.sum`` itself accumulates 16-bit floats in float32; ``lax.reduce_sum`` does not.)
    """
    x = jnp.ones(4, jnp.bfloat16)
    f = jax.jit(lambda x: (jnp.log(x) @ x, jax.lax.reduce_sum(x, (0,))))
    assert ops_16bit(jax.make_jaxpr(f)(x).jaxpr) == {"log", "dot_general", "reduce_sum"}
    assert not ops_16bit(jax.make_jaxpr(lambda x: jnp.log(x.astype(jnp.float32)))(x).jaxpr)


# The table for the README -----------------------------------------------------------------------


def markdown_table() -> str:
    """Function x dtype: the largest relative error and the output dtype, in markdown."""
    lines = ["| function | " + " | ".join(DTYPES) + " |", "|---" * (len(DTYPES) + 1) + "|"]
    for case in CASES:
        cells = []
        for dtype in DTYPES:
            res = measure(case.name, dtype)
            err = "ref" if dtype == "float64" else f"{res.err:.1e}"
            if res.err_same_draws is not None:
                err += f" ({res.err_same_draws:.1e})"
            cells.append(f"{err} `{','.join(res.dtypes)}`")
        lines.append(f"| {case.name}{' (MC)' if case.mc else ''} | " + " | ".join(cells) + " |")
    eps = " · ".join(f"{d} {float(jnp.finfo(t).eps):.1e}" for d, t in DTYPES.items())
    lines += ["", f"eps: {eps}. MC: Monte Carlo; against float64 the draws differ (the error "
              "is Monte Carlo error); in parentheses, against float32 with the same draws."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
