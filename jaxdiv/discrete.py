r"""Information, entropy, cross-entropy, KL and Jensen-Shannon for discrete distributions.

Probability vectors lie along ``axis`` (default -1, static under ``jax.jit``: use
``jax.jit(f, static_argnames="axis")``); leading axes are batch axes and broadcast. Results are
in nats, or in the logarithm ``base`` given (``base=2``: bits). ``(p, q)`` reads D(p || q): ``p``
is the reference ("true", "target") distribution, as in scipy.

Zero handling follows the limits: :math:`0 \log 0 = 0`, terms with :math:`p_i > 0 = q_i` are
:math:`+\infty` (never NaN). Gradients are finite wherever the value is; the derivative of a
:math:`p_i \log p_i` term at :math:`p_i = 0` is taken as 0, as in ``jax.scipy.special.rel_entr``.

Every entry masked out by ``where`` gives the empty sum, 0, for the ``*_with_logits`` twins
too; a batch of shape ``(0, n)`` gives an empty result.

Inputs are not renormalised (scipy's ``entropy`` renormalises, these do not). Integer inputs
are promoted to the default float; float16/bfloat16 inputs are computed and accumulated in
float32 and the result is cast back to the input dtype.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import (
    LOG2,
    fast_kl_term,
    finish,
    guarded_sum,
    kl_term,
    ratio,
    safe,
    upcast,
    xlogx,
    xlogy,
)

__all__ = [
    "binary_entropy",
    "cross_entropy",
    "cross_entropy_with_logits",
    "entropy",
    "entropy_with_logits",
    "information",
    "js_divergence",
    "js_divergence_with_logits",
    "kl_divergence",
    "kl_divergence_with_logits",
]


def _pair(fn, p, q, axis, where, base, names=("p", "q"), probs=True):
    """Shared argument handling for two-distribution functions."""
    p, q = C.check_pair(fn, p, q, axis, names)
    C.check_base(fn, base)
    where = C.check_where(fn, where, jnp.broadcast_shapes(p.shape, q.shape))
    if probs:
        C.check_probabilities(fn, names[0], p, axis, normalized=where is None)
        C.check_probabilities(fn, names[1], q, axis, normalized=where is None)
    dtype, (p, q) = upcast(p, q)
    return dtype, p, q, where


def information(p: ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Self-information (surprisal) of an outcome of probability ``p``, elementwise.

    .. math:: I(p) = -\log p.

    :math:`I(0) = +\infty`, :math:`I(1) = 0`.

    Args:
      p: probabilities, any shape.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      ``-log p`` in the chosen unit, same shape and dtype as ``p``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> print(np.asarray(jaxdiv.information(jnp.array([0.5, 0.25, 0.0]))).round(4))
      [0.6931 1.3863    inf]
      >>> print(np.asarray(jaxdiv.information(jnp.array([0.5, 0.25]), base=2)).round(4))
      [1. 2.]
    """
    p = C.as_float("information", "p", p)
    C.check_base("information", base)
    C.check_unit_interval("information", "p", p)
    dtype, (p,) = upcast(p)
    return finish(-jnp.log(p), dtype, base)


def entropy(p: ArrayLike, *, axis: int = -1, where: ArrayLike | None = None,
            base: float | None = None) -> jax.Array:
    r"""Shannon entropy of discrete distributions.

    .. math:: H(p) = -\sum_i p_i \log p_i, \qquad 0 \log 0 := 0.

    Ranges over :math:`[0, \log n]`; 0 for a one-hot ``p``. The gradient of a zero entry is 0.

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      axis: the event axis (static under jit).
      where: boolean mask broadcastable to ``p``; ``False`` entries leave the sum (no
        renormalisation) and get zero gradient.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The entropy with ``axis`` reduced.

    References:
      Shannon, A Mathematical Theory of Communication, Bell System Technical Journal, 1948.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> print(f"{float(jaxdiv.entropy(jnp.array([0.25, 0.25, 0.25, 0.25]))):.4f}")  # log 4
      1.3863
      >>> print(f"{float(jaxdiv.entropy(jnp.array([0.5, 0.5, 0.0]), base=2)):.4f}")  # 0 log 0 = 0
      1.0000
      >>> print(np.asarray(jaxdiv.entropy(jnp.array([[1.0, 0.0], [0.5, 0.5]]))).round(4))  # per row
      [0.     0.6931]
    """
    fn = "entropy"
    p = C.check_one(fn, p, axis)
    C.check_base(fn, base)
    where = C.check_where(fn, where, p.shape)
    C.check_probabilities(fn, "p", p, axis, normalized=where is None)
    dtype, (p,) = upcast(p)
    if where is not None:  # masked entries become p = 0 terms: value and derivatives 0
        p = jnp.where(where, p, 0)
    # 0 - sum, not a sum of negated terms: one operation per entry fewer, and +0 (not -0)
    # for a point mass
    return finish(0.0 - jnp.sum(xlogx(p), axis=axis), dtype, base)


def binary_entropy(p: ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Entropy of a Bernoulli(p) variable, elementwise.

    .. math:: h(p) = -p \log p - (1 - p) \log (1 - p).

    :math:`h(0) = h(1) = 0` and :math:`h(\tfrac12) = \log 2`. At the end points the derivative
    of the vanishing :math:`x \log x` term is taken as 0.

    Args:
      p: success probabilities, any shape.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The entropy, same shape and dtype as ``p``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> print(np.asarray(jaxdiv.binary_entropy(jnp.array([0.1, 0.5, 0.9]))).round(4))
      [0.3251 0.6931 0.3251]
      >>> print(float(jaxdiv.binary_entropy(0.0)) == 0.0)  # 0 log 0 = 0
      True
      >>> print(f"{float(jaxdiv.binary_entropy(0.5, base=2)):.4f}")
      1.0000
    """
    p = C.as_float("binary_entropy", "p", p)
    C.check_base("binary_entropy", base)
    C.check_unit_interval("binary_entropy", "p", p)
    dtype, (p,) = upcast(p)
    r = 1 - p
    mp, mr = p != 0, r != 0
    sp, sr = safe(mp, p), safe(mr, r)
    h = -jnp.where(mp, xlogx(sp), 0) - jnp.where(mr, xlogx(sr), 0)
    return finish(h, dtype, base)


def cross_entropy(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                  where: ArrayLike | None = None, base: float | None = None) -> jax.Array:
    r"""Cross-entropy of ``q`` relative to the reference ``p``.

    .. math:: H(p, q) = -\sum_i p_i \log q_i = H(p) + \mathrm{KL}(p \,\|\, q).

    Terms with :math:`p_i = 0` are 0 (whatever :math:`q_i`, with zero gradient); terms with
    :math:`p_i > 0 = q_i` are :math:`+\infty`. :math:`\partial H / \partial q_i = -p_i / q_i`.

    Args:
      p: reference probabilities along ``axis``, shape ``[..., n]``.
      q: model probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The cross-entropy with ``axis`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.cross_entropy(p, q)):.4f}")  # H(p) + KL(p || q)
      1.1177
      >>> print(f"{float(jaxdiv.entropy(p) + jaxdiv.kl_divergence(p, q)):.4f}")
      1.1177
      >>> print(f"{float(jaxdiv.cross_entropy(jnp.array([0.5, 0.5]), jnp.array([1.0, 0.0]))):.4f}")
      inf
    """
    dtype, p, q, where = _pair("cross_entropy", p, q, axis, where, base)
    if where is not None:  # masked entries become p = 0 terms: value and derivatives 0
        p, q = jnp.where(where, p, 0), jnp.where(where, q, 1)
    return finish(-jnp.sum(xlogy(p, q), axis=axis), dtype, base)


def kl_divergence(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                  where: ArrayLike | None = None, base: float | None = None) -> jax.Array:
    r"""Kullback-Leibler divergence KL(p || q) between discrete distributions.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_i p_i \log \frac{p_i}{q_i},
       \qquad 0 \log \tfrac{0}{q_i} := 0.

    Non-negative for normalised inputs, 0 iff ``p == q``. Terms with :math:`p_i > 0 = q_i`
    are :math:`+\infty`. Gradients are finite wherever the value is: at :math:`p_i = 0` the
    derivative in :math:`p_i` is taken as 0 (as in ``jax.scipy.special.rel_entr``) and the
    derivative in :math:`q_i` is :math:`-p_i / q_i = 0`. One logarithm per element, of the
    ratio formed directly (:math:`\operatorname{sign}(p_i - q_i) \operatorname{log1p}(|p_i -
    q_i| / \min(p_i, q_i))`), so a KL of :math:`10^{-14}` between nearly equal inputs keeps its
    relative accuracy; a ratio past the largest float is taken in two factors (no overflow).
    Second derivatives are finite at tiny entries (e.g. :math:`10^{-20}` in float32).

    Args:
      p: reference probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The divergence with ``axis`` reduced.

    References:
      Kullback & Leibler, On Information and Sufficiency, Ann. Math. Statist. 22(1), 1951.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.kl_divergence(p, q)):.4f}")
      0.2197
      >>> print(f"{float(jaxdiv.kl_divergence(p, q, base=2)):.4f}")  # in bits
      0.3170
      >>> print(f"{float(jaxdiv.kl_divergence(q, p)):.4f}")  # not symmetric
      0.2367
      >>> p0 = jnp.array([0.0, 0.5, 0.5])
      >>> print(f"{float(jaxdiv.kl_divergence(p0, q)):.4f}")  # 0 log 0 = 0
      0.3670
      >>> print(f"{float(jaxdiv.kl_divergence(q, p0)):.4f}")  # q > 0 = p0 somewhere
      inf
      >>> print(np.asarray(jax.grad(jaxdiv.kl_divergence)(p0, q)).round(4))  # finite at p = 0
      [0.     1.5108 1.2231]
    """
    dtype, p, q, where = _pair("kl_divergence", p, q, axis, where, base)
    if where is not None:  # masked entries become p = 0 terms: value and derivatives 0
        p, q = jnp.where(where, p, 0), jnp.where(where, q, 1)
    return finish(guarded_sum(fast_kl_term, kl_term, axis, p, q), dtype, base)


def js_divergence(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                  where: ArrayLike | None = None, base: float | None = None) -> jax.Array:
    r"""Jensen-Shannon divergence (not its square root, which scipy's ``jensenshannon`` returns).

    .. math:: \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m)
       + \tfrac12 \mathrm{KL}(q \,\|\, m), \qquad m = \tfrac12 (p + q).

    Symmetric, within :math:`[0, \log 2]` nats (1 bit); exactly :math:`\log 2` for disjoint
    supports, where KL is infinite. Always finite, with finite gradients. An entry where only
    one of :math:`p_i, q_i` is 0 contributes :math:`\tfrac12 (p_i + q_i) \log 2`, and its
    derivative in both is taken as :math:`\tfrac12 \log 2` (exact in the non-zero argument;
    the one-sided derivative in the vanishing one is :math:`-\infty`).

    Summed per entry as :math:`p_i \operatorname{log1p}(d_i) + q_i \operatorname{log1p}(-d_i)`,
    :math:`d_i = (p_i - q_i)/(p_i + q_i)`: accurate relative to a JS of :math:`10^{-15}`
    between nearly equal inputs, and without any select in the loop (on XLA CPU a
    compare-and-select splits the fused pass over memory).

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The divergence with ``axis`` reduced.

    References:
      Lin, Divergence Measures Based on the Shannon Entropy, IEEE Trans. Inf. Theory 37(1), 1991.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.js_divergence(p, q)):.4f}")
      0.0552
      >>> print(f"{float(jaxdiv.js_divergence(q, p)):.4f}")  # symmetric
      0.0552
      >>> one, other = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
      >>> print(f"{float(jaxdiv.js_divergence(one, other)):.4f}")  # disjoint supports: log 2
      0.6931
      >>> print(np.asarray(jax.grad(jaxdiv.js_divergence)(p, q)).round(4))
      [-0.3466  0.1438 -0.0771]
    """
    dtype, p, q, where = _pair("js_divergence", p, q, axis, where, base)
    if where is not None:  # masked entries become p = q = 0 terms: value and derivatives 0
        p, q = jnp.where(where, p, 0), jnp.where(where, q, 0)
    return finish(0.5 * jnp.sum(_js_term(p, q), axis=axis), dtype, base)


def _js_parts(p, q):
    r"""Per entry :math:`p \log(2p/(p+q)) + q \log(2q/(p+q))`, and its derivatives in p and q.

    With :math:`d = (p - q)/(p + q)`: :math:`p \operatorname{log1p}(d) + q
    \operatorname{log1p}(-d)`. The difference is exact where :math:`p \approx q`, and the term
    is stationary in :math:`d`, so the rounding of :math:`p + q` does not reach it: relative
    accuracy near :math:`p = q`, where :math:`\log(2p/(p+q))` from a quotient would carry an
    absolute error :math:`\epsilon`. Each ``log1p`` argument is floored at :math:`\epsilon - 1`
    (its value where the other entry is :math:`\epsilon/2` times this one), so one zero gives
    :math:`p \log 2` and two give 0, with no select.
    """
    fi = jnp.finfo(p.dtype)
    d = ratio(p - q, jnp.maximum(p + q, fi.tiny))
    a_p, a_q = jnp.log1p(jnp.maximum(d, fi.epsneg - 1)), jnp.log1p(jnp.maximum(-d, fi.epsneg - 1))
    return p * a_p + q * a_q, a_p, a_q


@jax.custom_jvp
def _js_term(p, q):
    return _js_parts(p, q)[0]


@_js_term.defjvp
def _js_term_jvp(primals, tangents):
    (p, q), (dp, dq) = primals, tangents
    t, a_p, a_q = _js_parts(p, q)
    # d/dp = log(2p / (p + q)); at a zero entry the convention (1/2 log 2 for JS) in both.
    zero = jnp.minimum(p, q) == 0
    return t, jnp.where(zero, LOG2, a_p) * dp + jnp.where(zero, LOG2, a_q) * dq


# ---------------------------------------------------------------------------------------------
# Logit twins. Entries with logit -inf have probability 0; `where` masks entries out of the
# softmax itself (as jax.nn.log_softmax(where=)), so the distributions live on the kept entries.


def _logits_pair(fn, logits_p, logits_q, axis, where, base):
    return _pair(fn, logits_p, logits_q, axis, where, base, ("logits_p", "logits_q"), False)


def _masked(logits, where):
    """``logits`` with the entries outside ``where`` at -inf (out of the softmax)."""
    return logits if where is None else jnp.where(where, logits, -jnp.inf)


def _log_softmax(logits: jax.Array, axis: int, where: jax.Array | None):
    r"""Returns ``(log p, p, support)`` for ``p = softmax(logits)`` along ``axis``.

    ``support`` holds the entries with a logit above :math:`-\infty` (and in ``where``): those
    with :math:`p_i > 0` in exact arithmetic, even where :math:`p_i` underflows to 0. Off the
    support :math:`\log p` is a finite stand-in for :math:`-\infty`,
    :math:`-\sqrt{\text{max float}}/16` (float32: :math:`-1.2 \cdot 10^{18}`): :math:`p \log p = 0`
    there, with finite derivatives, and no mask is needed. Finite log-probabilities stay exact
    (KL needs :math:`\log q` exactly even where :math:`q` underflows) unless below it, and
    :math:`e^{\text{stand-in}}` is negligible beside any :math:`p > 0` (JS's mixture); it is not
    the lowest float so that products of two (in second derivatives) stay finite instead of
    overflowing into inf times 0 = NaN. (A stand-in computed per row would need a select.)

    The normaliser is :math:`\log(1 + t)` with :math:`t` the sum over all but the largest
    entries, taken with ``log1p``: for peaked logits the largest log-probability, :math:`-t`,
    stays accurate where :math:`\log(\sum e)` would round it to 0 (and so lose the entropy).
    The largest entries are those with :math:`e = \exp(\ell - \max \ell) = 1`, found as
    ``floor(e)`` (1 there, 0 elsewhere since :math:`0 \le e \le 1`); ``e - floor(e)`` has the
    derivatives of ``e`` to every order. No compare-and-select: on XLA CPU a select inside
    these loops splits them into several passes over memory, 4-7x slower.
    """
    shifted, e, tail, support = _softmax_parts(logits, axis, where)
    logp = jnp.maximum(shifted - jnp.log1p(tail), _stand_in(shifted.dtype))
    return logp, e / (1 + tail), support


def _stand_in(dtype):
    return -math.sqrt(jnp.finfo(dtype).max) / 16


def _at_least(x, low):
    """``max(x, low)`` with the derivative of ``x`` at a tie: ``jnp.maximum`` halves it there,
    and a softmax's tail or sum ties with its clamp whenever the other entries underflow (logits
    ~100 nats apart in float32: log-softmax gradients off by 1/2)."""
    return x + lax.stop_gradient(jnp.maximum(x, low) - x)


def _softmax_parts(logits, axis, where):
    r"""``(l - max l, e^{l - max l}, tail, support)`` of :func:`_log_softmax`: ``tail`` is
    :math:`\sum_i e_i - 1`, 0 for a row without support (all masked: then :math:`p = 0`, the
    empty sums vanish, not NaN); :math:`-\infty` logits stay :math:`-\infty` in
    ``l - max l`` (the caller's clamp at the stand-in, as in log p, makes them finite)."""
    logits = _masked(logits, where)
    support = logits != -jnp.inf  # NaN logits stay in (NaN out)
    shifted, e = _shifted_exp(logits, axis)
    top = jnp.floor(e)
    tail = (jnp.sum(e - top, axis=axis, keepdims=True)
            + (jnp.sum(top, axis=axis, keepdims=True) - 1))
    return shifted, e, _at_least(tail, 0), support


def _shifted_exp(logits, axis):
    """``(l - max l, e^{l - max l})`` along ``axis``; -inf logits stay -inf (e = 0), callers
    clamp where a finite value is needed (one max per entry less where none is)."""
    m = jnp.max(logits, axis=axis, keepdims=True)
    # The shift cancels analytically; a row of -inf gets the lowest float (then e = 0): a max,
    # not a select, which would split XLA CPU's fused loop.
    m = lax.stop_gradient(jnp.maximum(m, jnp.finfo(m.dtype).min))
    shifted = logits - m
    return shifted, jnp.exp(shifted)


def _log_ratio_logits(lp, lq, axis):
    r"""``(p, q, u, a, b)`` with :math:`u = \log p - \log q` and ``a``, ``b`` the shifted
    logits of p and q, -inf logits at the stand-in (for :func:`_logit_support` and
    :func:`_sum_or_inf`).

    :math:`u = G - (b - a)`, :math:`a, b` the shifted logits (each minus its maximum: their
    difference is exact for nearly equal logits) and :math:`G = \log(Z_b / Z_a)` from the plain
    sums :math:`Z = \sum_i e^{a_i} \ge 1` (0 for a row without support, taken as 1: then p = 0).
    G's rounding is common to every :math:`u_i`; the sums built on u (:func:`_kl_terms`, fdiv's
    per-term α and Rényi sums) do not see it at first order, so G needs neither the softmax
    tails' ``log1p`` (which :func:`_log_softmax` needs for log p itself) nor an exact
    difference of exponentials: one sum per row, as a plain log-softmax. Smooth autodiff (no
    sign or absolute value): the JVPs may differentiate it again.
    """
    (a, ea), (b, eb) = _shifted_exp(lp, axis), _shifted_exp(lq, axis)
    za, zb = (_at_least(jnp.sum(e, axis=axis, keepdims=True), 1) for e in (ea, eb))
    a, b = (jnp.maximum(s, _stand_in(s.dtype)) for s in (a, b))  # -inf - -inf would be NaN
    u = jnp.log(zb / za) - (b - a)
    return ea * (1 / za), eb * (1 / zb), u, a, b


def _kl_terms(p: jax.Array, q: jax.Array, u: jax.Array) -> jax.Array:
    r"""Per entry :math:`p u + q - p = p\,(u + e^{-u} - 1)`, for :math:`u = \log(p / q)`: they
    sum to KL(p || q) when p and q are both normalised.

    Against :math:`\sum_i p_i u_i`, a cancellation of :math:`G = \log(Z_q / Z_p)` against
    :math:`\sum_i p_i \delta_i` (both far larger than a KL of :math:`10^{-8}`), a rounding
    common to every :math:`u_i` (the normaliser's) changes this sum only at second order:
    float32 logits 1e-3 apart, KL 1.5e-8, lost 3e-4 of it on a CPU and 1.1e-3 on a GPU
    before, 1.3e-6 now. ``expm1(-u) + u`` rather than a series: XLA CPU's fused loop took the
    select-free series 12x slower. Past :math:`-u = 80`, :math:`p e^{-u}` is q itself (no
    overflow).
    """
    x = jnp.minimum(-u, 80.0)
    return p * (jnp.expm1(x) + u) + jnp.maximum(q - p * math.exp(80.0), 0)


def _logit_support(shifted: jax.Array) -> jax.Array:
    """1 on the support (a logit above -inf), 0 off it, from the clamped shifted logits: no
    compare (a compare-and-select splits XLA CPU's fused loop)."""
    return jnp.minimum(shifted - _stand_in(shifted.dtype), 1)


def _sum_or_inf(terms: jax.Array, gap: jax.Array, axis: int) -> jax.Array:
    r"""``sum(terms)``, or +inf where somewhere p > 0 = q in exact arithmetic (p may underflow).

    ``gap`` is :math:`a - b` up to a row constant of size :math:`O(\log n)`: ``a`` p's shifted
    logit (-inf off its support), ``b`` q's shifted logit or log-probability clamped at the
    stand-in :math:`S` (:func:`_log_softmax`; :math:`S` exactly off q's support). The KL passes
    its log-ratio :math:`u = G - (b - a)` itself, with :math:`|G| \le \log n`: one subtraction
    per entry less, and a, b need not stay live in the loop (3.5 ms against 3.9 at (4096, 1024)).
    The flag :math:`\max(\text{gap} + S/2, 0) \cdot \text{max float}` is inf where p's logit
    is above :math:`S/2` and q's at :math:`S`, 0 where the logits are within :math:`|S|/2` of
    each other or p's is -inf (float32: logits :math:`5.8 \cdot 10^{17}` apart count as
    disjoint supports). It rides in the same sum (then inf), so the loop stays one fused pass:
    a separate ``any`` over the supports cost XLA CPU a second one (about 40% more time), and
    the flag from two clamped support indicators six operations per entry more than this one
    (0.3 ms of 2.9 at (4096, 1024)). No clamp (``jnp.clip``): XLA CPU splits the fused loop at
    it (12 ms).
    """
    big = jnp.finfo(terms.dtype).max
    flag = jnp.maximum(gap + _stand_in(terms.dtype) / 2, 0) * big
    total = jnp.sum(terms + lax.stop_gradient(flag), axis=axis)  # a flag: no derivative
    return jnp.where(total >= big / 2, jnp.inf, total)


# Each logit twin's core carries its derivative in closed form (a custom JVP, itself
# differentiable): through the log-softmax, d/dl_j of a sum of f(p_i) terms is
# p_j (f'(p_j) - sum_i p_i f'(p_i)). Autodiff of the select-free forward pass is correct
# too, but on XLA CPU its backward pass took 2-3x the time of these formulas.
# `where` is applied before the core (masked logits are -inf: zero tangent through the select).


def _logits(axis, *logits):
    return [_log_softmax(lg, axis, None) for lg in logits]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _entropy_logits(logits, axis):
    ((logp, p, _),) = _logits(axis, logits)
    return -jnp.sum(p * logp, axis=axis)


@_entropy_logits.defjvp
def _entropy_logits_jvp(axis, primals, tangents):
    ((logp, p, _),) = _logits(axis, primals[0])
    h = -jnp.sum(p * logp, axis=axis, keepdims=True)
    return jnp.squeeze(h, axis), -jnp.sum(p * (logp + h) * tangents[0], axis=axis)


def _ce_parts(lp, lq, axis):
    # log q needs q's softmax tail (peaked q); p only its plain sum (a relative error of eps).
    (sa, ea), (sb, eb, tb, _) = _shifted_exp(lp, axis), _softmax_parts(lq, axis, None)
    za = _at_least(jnp.sum(ea, axis=axis, keepdims=True), 1)  # 0 without support: p = 0
    logq = jnp.maximum(sb - jnp.log1p(tb), _stand_in(sb.dtype))
    return ea * (1 / za), eb / (1 + tb), logq, sa


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _cross_entropy_logits(lp, lq, axis):
    p, _, logq, sa = _ce_parts(lp, lq, axis)
    return _sum_or_inf(-p * logq, sa - logq, axis)


def _tangent(parts, axis, like):
    """Sums the (coefficient, tangent) pairs whose tangent is not a symbolic zero: the gradient
    in one argument only (a student's logits) skips the other's work."""
    live = [c() * t for c, t in parts if not isinstance(t, SymbolicZero)]
    return jnp.sum(sum(live[1:], live[0]), axis=axis) if live else jnp.zeros_like(like)


def _barriered(primals, tangents):
    """Two copies of the logits behind distinct optimization barriers when both tangents are
    live, so that each coefficient is computed from its own copy (CSE cannot merge them): XLA
    CPU then fuses each into one loop, where shared softmaxes split the backward pass into
    ~10 passes (2x slower than both apart). The same logits when one tangent is zero."""
    both = not any(isinstance(t, SymbolicZero) for t in tangents)
    if not both:
        return primals, primals
    return lax.optimization_barrier(primals), lax.optimization_barrier(primals[::-1])[::-1]


def _cross_entropy_logits_jvp(axis, primals, tangents):
    p, _, logq, sa = _ce_parts(*primals, axis)
    value = _sum_or_inf(-p * logq, sa - logq, axis)
    first, second = _barriered(primals, tangents)

    def dp():
        p, _, logq, _ = _ce_parts(*first, axis)
        return -p * (logq - jnp.sum(p * logq, axis=axis, keepdims=True))

    def dq():
        p, q, _, _ = _ce_parts(*second, axis)
        return q - p

    return value, _tangent([(dp, tangents[0]), (dq, tangents[1])], axis, value)


_cross_entropy_logits.defjvp(_cross_entropy_logits_jvp, symbolic_zeros=True)


def _kl_logits_value(lp, lq, axis):
    """KL from logits in two passes over the data (the maxima, then one fused loop): the
    per-term sum of :func:`_kl_terms` (float32 logits 1e-3 apart: 1.3e-6 of the KL, 1.2e-9 in
    float64)."""
    p, q, u, _, _ = _log_ratio_logits(lp, lq, axis)
    return _sum_or_inf(_kl_terms(p, q, u), u, axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _kl_logits(lp, lq, axis):
    return _kl_logits_value(lp, lq, axis)


def _kl_logits_jvp(axis, primals, tangents):
    value = _kl_logits_value(*primals, axis)
    (lp, lq), (lp2, lq2) = _barriered(primals, tangents)

    def dp():
        # From the two log-softmaxes, not from u: their rounding (eps log n, absolute) is far
        # below the O(1) coefficient, and u's extra sum nested in this one costs XLA CPU's
        # backward pass another pass over memory.
        (la, pa, _), (lb, _, _) = _logits(axis, lp, lq)
        lr = la - lb
        return pa * (lr - jnp.sum(pa * lr, axis=axis, keepdims=True))

    def dq():
        (_, pa, _), (_, pb, _) = _logits(axis, lp2, lq2)
        return pb - pa

    return value, _tangent([(dp, tangents[0]), (dq, tangents[1])], axis, value)


_kl_logits.defjvp(_kl_logits_jvp, symbolic_zeros=True)


def _js_from_logits(lp, lq, axis):
    (_, p, _), (_, q, _) = _logits(axis, lp, lq)
    return p, q, *_js_parts(p, q)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _js_logits(lp, lq, axis):
    t = _js_from_logits(lp, lq, axis)[2]  # the probability form: p, q are exact to rounding
    return 0.5 * jnp.sum(t, axis=axis)


@_js_logits.defjvp
def _js_logits_jvp(axis, primals, tangents):
    p, q, t, a, b = _js_from_logits(*primals, axis)  # d/dp_i, d/dq_i of JS: a_i / 2, b_i / 2
    kp, kq = (jnp.sum(w * v, axis=axis, keepdims=True) for w, v in ((p, a), (q, b)))
    dlp, dlq = tangents
    djs = 0.5 * jnp.sum(p * (a - kp) * dlp + q * (b - kq) * dlq, axis=axis)
    return 0.5 * jnp.sum(t, axis=axis), djs


@functools.partial(jax.jit, static_argnums=(0, 4))
def _twin(core, lp, lq, where, axis):
    """``core(lp, lq, axis)`` on the two logit arrays broadcast to one shape and masked, the
    axis made >= 0. Jitted (``core`` and ``axis`` static) so that an eager call compiles one
    program: op by op, an eager ``kl_divergence_with_logits`` compiled 28 and took 1.7 ms a call
    at (3, 7), its gradient 43 and 24.5 ms. Under a caller's jit it is inlined."""
    lp, lq = jnp.broadcast_arrays(lp, lq)
    return core(_masked(lp, where), _masked(lq, where), axis % lp.ndim)


def entropy_with_logits(logits: ArrayLike, *, axis: int = -1, where: ArrayLike | None = None,
                        base: float | None = None) -> jax.Array:
    r"""Entropy of ``softmax(logits)``, computed in log space.

    .. math:: H = -\sum_i p_i \log p_i, \qquad \log p = \mathrm{log\_softmax}(\ell).

    Exact for log-probabilities too (their log-softmax is themselves). Logits of
    :math:`-\infty` are zero-probability entries; finite at logits of :math:`\pm 10^4` in
    float32, values and gradients.

    Args:
      logits: unnormalised log-probabilities along ``axis``, shape ``[..., n]``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries are left out of the softmax and the sum.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The entropy with ``axis`` reduced.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> logits = jnp.array([2.0, 1.0, 0.0])
      >>> print(f"{float(jaxdiv.entropy_with_logits(logits)):.4f}")
      0.8324
      >>> print(f"{float(jaxdiv.entropy(jax.nn.softmax(logits))):.4f}")
      0.8324
      >>> masked = jnp.array([0.0, 0.0, -jnp.inf])  # a -inf logit has probability 0
      >>> print(f"{float(jaxdiv.entropy_with_logits(masked)):.4f}")  # log 2
      0.6931
    """
    fn = "entropy_with_logits"
    logits = C.check_one(fn, logits, axis, "logits")
    C.check_base(fn, base)
    where = C.check_where(fn, where, logits.shape)
    dtype, (logits,) = upcast(logits)
    return finish(_entropy_logits(_masked(logits, where), axis % logits.ndim), dtype, base)


def cross_entropy_with_logits(logits_p: ArrayLike, logits_q: ArrayLike, *, axis: int = -1,
                              where: ArrayLike | None = None,
                              base: float | None = None) -> jax.Array:
    r"""Cross-entropy :math:`H(p, q) = -\sum_i p_i \log q_i` with ``p, q = softmax(logits)``.

    For integer labels or fixed probability targets, ``optax.softmax_cross_entropy`` and
    ``optax.softmax_cross_entropy_with_integer_labels`` are the same quantity; this twin takes
    the target as logits too. Terms with :math:`p_i = 0` are 0; :math:`p_i > 0` with a logit
    :math:`\log q_i = -\infty` gives :math:`+\infty`.

    Args:
      logits_p: reference logits along ``axis``, shape ``[..., n]``.
      logits_q: model logits, broadcast-compatible with ``logits_p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries are left out of both softmaxes and the sum.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The cross-entropy with ``axis`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> lp, lq = jnp.log(p), jnp.log(q)  # log-probabilities are logits too
      >>> print(f"{float(jaxdiv.cross_entropy_with_logits(lp, lq)):.4f}")
      1.1177
      >>> print(f"{float(jaxdiv.cross_entropy(p, q)):.4f}")
      1.1177
      >>> print(f"{float(jaxdiv.cross_entropy_with_logits(lp + 3.0, lq - 1.0)):.4f}")  # shifts
      1.1177
    """
    dtype, lp, lq, where = _logits_pair("cross_entropy_with_logits", logits_p, logits_q, axis,
                                        where, base)
    ce = _twin(_cross_entropy_logits, lp, lq, where, axis)
    return finish(ce, dtype, base)


def kl_divergence_with_logits(logits_p: ArrayLike, logits_q: ArrayLike, *, axis: int = -1,
                              where: ArrayLike | None = None,
                              base: float | None = None) -> jax.Array:
    r"""KL(p || q) with ``p = softmax(logits_p)``, ``q = softmax(logits_q)``, in log space.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_i p_i (\log p_i - \log q_i).

    Exact for log-probabilities as inputs. Entries with :math:`\log p_i = -\infty` contribute
    0 with zero gradient; :math:`\log q_i = -\infty < \log p_i` gives :math:`+\infty`, also
    where :math:`p_i` underflows to 0 (the logits say :math:`p_i > 0`). Finite and accurate at
    logits of :math:`\pm 10^4` in float32. A row of ``logits_p`` that is all :math:`-\infty`
    is no distribution (the value is then :math:`\sum q = 1`, not 0): leave padded rows out
    with ``where``, which gives 0 with zero gradient.

    Args:
      logits_p: reference logits along ``axis``, shape ``[..., n]``.
      logits_q: logits, broadcast-compatible with ``logits_p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries are left out of both softmaxes and the sum.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The divergence with ``axis`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> lp, lq = jnp.log(p), jnp.log(q)
      >>> print(f"{float(jaxdiv.kl_divergence_with_logits(lp, lq)):.4f}")
      0.2197
      >>> print(f"{float(jaxdiv.kl_divergence(p, q)):.4f}")
      0.2197
      >>> teacher, student = jnp.array([[4.0, 1.0, -2.0]]), jnp.array([[3.0, 2.0, -1.0]])
      >>> print(np.asarray(jaxdiv.kl_divergence_with_logits(teacher, student)).round(4))
      [0.1763]
    """
    dtype, lp, lq, where = _logits_pair("kl_divergence_with_logits", logits_p, logits_q, axis,
                                        where, base)
    kl = _twin(_kl_logits, lp, lq, where, axis)
    return finish(kl, dtype, base)


def js_divergence_with_logits(logits_p: ArrayLike, logits_q: ArrayLike, *, axis: int = -1,
                              where: ArrayLike | None = None,
                              base: float | None = None) -> jax.Array:
    r"""Jensen-Shannon divergence of ``softmax(logits_p)`` and ``softmax(logits_q)``.

    .. math:: \mathrm{JS} = \tfrac12 \sum_i p_i (\log p_i - \log m_i) + q_i (\log q_i - \log m_i),
       \qquad \log m = \mathrm{logaddexp}(\log p, \log q) - \log 2.

    Within :math:`[0, \log 2]`; finite, with finite gradients, at any logits.

    Args:
      logits_p: logits along ``axis``, shape ``[..., n]``.
      logits_q: logits, broadcast-compatible with ``logits_p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries are left out of both softmaxes and the sum.
      base: logarithm base, a real scalar; ``None`` for nats, 2 for bits.

    Returns:
      The divergence with ``axis`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.js_divergence_with_logits(jnp.log(p), jnp.log(q))):.4f}")
      0.0552
      >>> print(f"{float(jaxdiv.js_divergence(p, q)):.4f}")
      0.0552
      >>> one, other = jnp.array([0.0, -jnp.inf]), jnp.array([-jnp.inf, 0.0])
      >>> print(f"{float(jaxdiv.js_divergence_with_logits(one, other)):.4f}")  # log 2
      0.6931
    """
    dtype, lp, lq, where = _logits_pair("js_divergence_with_logits", logits_p, logits_q, axis,
                                        where, base)
    js = _twin(_js_logits, lp, lq, where, axis)
    return finish(js, dtype, base)
