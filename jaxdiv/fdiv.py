r"""The f-divergence family: TV, Hellinger, chi-square, Jeffreys, alpha, Renyi and generic f.

Conventions of :mod:`jaxdiv.discrete`: probabilities along ``axis`` (static under ``jax.jit``),
leading axes broadcast, ``(p, q)`` reads D(p || q), ``where`` drops entries from the sums (the
``*_with_logits`` twins leave them out of the softmax); zeros follow the limits (+inf, never NaN);
gradients are finite wherever the value is (0 in a zero entry, as ``jax.scipy.special.rel_entr``);
16-bit inputs are computed in float32. The α of the alpha and Renyi divergences is Minka's (2005)
and Cichocki & Amari's (2010); Amari's α′ = 2α − 1. α → 0 gives KL(q || p), mode-seeking like
reverse KL; α → 1 gives KL(p || q), mass-covering like forward KL. ``alpha`` may be traced (vmap
over it for sweeps) and must broadcast to the batch shape (the inputs' shape without ``axis``).
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import expm1_minus_x, finish, log_ratio, mask_of, masked_sum, ratio, safe
from jaxdiv.discrete import _kl_terms, _log_ratio_logits, _log_softmax, _pair, kl_divergence

__all__ = ["alpha_divergence", "alpha_divergence_with_logits", "chi_square_divergence",
           "f_divergence", "hellinger_distance", "jeffreys_divergence", "renyi_divergence",
           "renyi_divergence_with_logits", "total_variation"]

_E2 = [1.0 / math.factorial(k + 2) for k in range(17)]  # (e^x - 1 - x) / x^2, |x| <= 1
_L1 = [(-1.0) ** k / (k + 1) for k in range(15)]  # log1p(y) / y, |y| < 0.1


def _poly(coefs, x):
    y = jnp.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        y = y * x + c
    return y


def _pos(x):
    """x > 0, or NaN: a NaN entry stays in the sums, so NaN in gives NaN out (IEEE)."""
    return ~(x <= 0)


def _ksum(mask, x, ax):
    return jnp.sum(jnp.where(mask, x, 0), axis=ax, keepdims=True)


def _w(la, a, r, t):
    """a r^2 E2(t r) = (a e^{t r} - a - a t r) / t^2 elementwise, with a = e^la, stable at t = 0."""
    x = t * r
    small = jnp.abs(x) <= 1
    xs, xb, ts = jnp.where(small, x, 0), jnp.where(small, 0, x), jnp.where(small, 1, t)
    big = (jnp.exp(la + xb) - a * (1 + xb)) / (ts * ts)  # |x| > 1: no cancellation
    return jnp.where(small, a * r * r * _poly(_E2, xs), big)


def _log1prel(y):
    """log1p(y) / y, smooth through y = 0."""
    small = jnp.abs(y) < 0.1
    ys = jnp.where(small, 1, y)
    return jnp.where(small, _poly(_L1, jnp.where(small, y, 0)), jnp.log1p(ys) / ys)


def _param(fn, name, x, shape, ax, dtype):
    """A per-distribution parameter broadcast to the batch shape, event axis kept as size 1."""
    x = C.as_float(fn, name, x)
    batch = tuple(shape[:ax] + shape[ax + 1:])
    if not C.broadcasts_to(x.shape, batch):
        raise ValueError(f"{fn}: {name} of shape {x.shape} does not broadcast to the batch shape "
                         f"{batch} (the inputs' shape {tuple(shape)} without the event axis {ax})")
    return jnp.expand_dims(jnp.broadcast_to(x.astype(dtype), batch), ax)


# Log-space pieces shared by alpha and Renyi (sums keep the event axis with size 1): p, q; log p,
# log q where `both` (p > 0 and q > 0 and where), 0 elsewhere; whether some p > 0 = q, q > 0 = p;
# (sum p, sum q) over where, (1, 1) for logits; (sum p over p > 0 = q, sum q over q > 0 = p);
# (KL(p || q), KL(q || p)) over `both`; the log-ratio r = log(p / q) formed directly (not as
# lp - lq, which carries the rounding of both logarithms), 0 off `both`; (sum p E(-r), sum q E(r))
# over `both` with E(x) = e^x - 1 - x: KL plus sum q - sum p, term by term >= 0, so without the
# rounding of the sums (None for logits, whose sums are exactly 1); the event axis.
_Parts = namedtuple("_Parts", "p q lp lq both any_p any_q sums edges kls r pms ax")


def _run(fn, body, x, y, axis, where, base=None, alpha=None, logits=False):
    """Converts and checks the arguments, then computes ``body``."""
    names = ("logits_p", "logits_q") if logits else ("p", "q")
    x, y = C.as_float(fn, names[0], x), C.as_float(fn, names[1], y)
    if body in (_alpha, _renyi):  # a real alpha: None raises here, not deep in the body
        alpha = C.as_float(fn, "alpha", alpha)
    if not isinstance(axis, (int, np.integer)):
        C.event_axis(fn, (), axis)  # raises the TypeError for a non-static axis
    C.check_base(fn, base)
    where = None if where is None else jnp.asarray(where)
    return _run_checked(x, y, alpha, where, base, fn=fn, body=body, axis=int(axis), logits=logits)


def _run_checked(x, y, alpha, where, base, *, fn, body, axis, logits):
    names = ("logits_p", "logits_q") if logits else ("p", "q")
    dtype, x, y, where = _pair(fn, x, y, axis, where, None, names, probs=not logits)
    shape = jnp.broadcast_shapes(x.shape, y.shape)
    ax = C.event_axis(fn, shape, axis)
    if alpha is not None:
        alpha = _param(fn, "alpha", alpha, shape, ax, x.dtype)
    return finish(body(x, y, where, ax, alpha, logits), dtype, base)


def _parts(x, y, where, ax, logits):
    if logits:
        (lp, p, P), (lq, q, Q) = _log_softmax(x, ax, where), _log_softmax(y, ax, where)
        mx, my = (x, y) if where is None else (jnp.where(where, v, -jnp.inf) for v in (x, y))
        r = _log_ratio_logits(mx, my, ax, differentiable=True)[2]
    else:
        p, q = x, y
        P, Q = mask_of(_pos(p), where), mask_of(_pos(q), where)
        sp, sq = safe(P & Q, p), safe(P & Q, q)
        lp, lq, r = jnp.log(sp), jnp.log(sq), log_ratio(sp, sq)
    both, p_only, q_only = P & Q, P & ~Q, Q & ~P
    lp, lq, r = safe(both, lp, 0.0), safe(both, lq, 0.0), safe(both, r, 0.0)
    edges = (_ksum(p_only, p, ax), _ksum(q_only, q, ax))
    if logits:  # softmax is normalised: a sum would add only rounding
        # Term by term p u + q - p >= 0 (no cancellation); sum_both p r is that sum plus the
        # mass each side has where the other has none (softmaxes sum to 1).
        pms = (_ksum(both, _kl_terms(p, q, r), ax), _ksum(both, _kl_terms(q, p, -r), ax))
        kls = (pms[0] + edges[1] - edges[0], pms[1] + edges[0] - edges[1])
        sums = (jnp.ones_like(kls[0]),) * 2
    else:
        kls = tuple(jnp.expand_dims(kl_divergence(u, v, axis=ax, where=both), ax)
                    for u, v in ((p, q), (q, p)))
        sums = (_ksum(P, p, ax), _ksum(Q, q, ax))
        pms = (_ksum(both, p * expm1_minus_x(-r), ax), _ksum(both, q * expm1_minus_x(r), ax))
    anys = (jnp.any(p_only, axis=ax, keepdims=True), jnp.any(q_only, axis=ax, keepdims=True))
    return _Parts(p, q, lp, lq, both, *anys, sums, edges, kls, r, pms, ax)


def _moments(la, r, a, s, lse, both, tn, ax):
    """sum a r^2 E2(tn r) over `both`, r = log(a / b), and the rounding-error scale of each
    form."""
    w = _ksum(both, _w(la, a, r, tn), ax)
    # First-order rounding errors in units of eps, only to choose a form: the logsumexp carries
    # eps |s_i| per term (softmax-weighted), the KL-anchored form eps a_i |r_i| per term.
    ls = jnp.where(jnp.isfinite(lse), lse, 0)
    spread = _ksum(both, jnp.exp(jnp.where(both, s - ls, 0)) * jnp.abs(s), ax)
    err_near = _ksum(both, a * jnp.abs(r), ax) + jnp.abs(tn) * w
    return w, jax.lax.stop_gradient(spread), jax.lax.stop_gradient(err_near)


def _alpha(x, y, where, ax, alpha, logits):
    z, inf = _parts(x, y, where, ax, logits), jnp.inf
    # D_alpha(p || q) = D_{1 - alpha}(q || p): evaluate at beta = max(alpha, 1 - alpha) >= 1/2.
    sw = alpha < 0.5
    beta = jnp.where(sw, 1 - alpha, alpha)

    def pick(x, y):
        return jnp.where(sw, y, x)

    a, la, lb, r = pick(z.p, z.q), pick(z.lp, z.lq), pick(z.lq, z.lp), pick(z.r, -z.r)
    (sa, sb), kl, ea = (pick(*z.sums), pick(*z.sums[::-1])), pick(*z.kls), pick(*z.edges)
    any_a = pick(z.any_p, z.any_q)
    t = beta - 1
    s = beta * la + (1 - beta) * lb
    lse = jax.nn.logsumexp(s, axis=ax, where=z.both, keepdims=True)
    ok = lse <= 20  # no overflow in the KL-anchored terms
    tn = jnp.where(ok, t, 0)
    w, spread, err_near = _moments(la, r, a, s, lse, z.both, tn, ax)
    lin = beta * sa + (1 - beta) * sb
    m = jnp.exp(jnp.minimum(lse, 20))
    near = (t == 0) | (ok & (jnp.abs(t) * err_near <= lin + m * (1 + spread)))
    # KL-anchored, exact for any t: sum_i [b - a + a r + t a r^2 E2(t r)] / beta, r = log(a/b).
    neg = tn < 0
    mass = (sb - sa) + ea  # sum of (b - a) over `both`, plus b over b_only
    if z.pms is not None:  # the same KL + mass term by term: no rounding of the sums
        kl, mass = pick(*z.pms), pick(*z.edges[::-1])
    d_near = ((kl + tn * w + mass) / (1 + tn)
              + jnp.where(neg, ea / jnp.where(neg, -tn, 1), jnp.where(any_a, inf, 0)))
    # Direct: (beta S_a + (1 - beta) S_b - sum a^beta b^(1 - beta)) / (beta (1 - beta)).
    c = jnp.where(near, 1, beta * (1 - beta))
    d_dir = (lin / c - jnp.sign(c) * jnp.exp(lse - jnp.log(jnp.abs(c)))
             + jnp.where((beta > 1) & any_a, inf, 0))
    return jnp.squeeze(jnp.where(near, d_near, d_dir), ax)


def _renyi(x, y, where, ax, alpha, logits):
    z, inf = _parts(x, y, where, ax, logits), jnp.inf
    at_inf = alpha == inf
    al = jnp.where(at_inf, 2, alpha)
    t = al - 1
    any_p, any_q = z.any_p, z.any_q
    sp = safe(z.sums[0] > 0, z.sums[0])
    s = al * z.lp + (1 - al) * z.lq
    lse = jax.nn.logsumexp(s, axis=ax, where=z.both, keepdims=True)
    lrel = lse - jnp.log(sp)  # log(M / S_p)
    ok = jnp.abs(lrel) <= 1  # M / S_p in [1/e, e]: no overflow, and 1 + t A > 0
    tn = jnp.where(ok, t, 0)
    w, spread, err_near = _moments(z.lp, z.r, z.p, s, lse, z.both, tn, ax)
    near = ~any_p & ((t == 0) | (ok & (jnp.abs(t) * err_near <= (1 + spread) * sp)))
    # KL-anchored, exact: M / S_p = 1 + t A with A = (KL + t sum p r^2 E2(t r)) / S_p.
    big_a = (z.kls[0] + tn * w) / sp
    out = jnp.where(near, big_a * _log1prel(tn * big_a), lrel / jnp.where(near | (t == 0), 1, t))
    out = jnp.where(any_p & (al >= 1), inf, out)
    out = jnp.where(any_q & (al < 0), -inf, out)
    rmax = jnp.max(jnp.where(z.both, z.lp - z.lq, -inf), axis=ax, keepdims=True)
    out = jnp.where(at_inf, jnp.where(any_p, inf, rmax), out)
    empty = ~(jnp.any(z.both, axis=ax, keepdims=True) | any_p | any_q)
    return jnp.squeeze(jnp.where(empty, 0, out), ax)  # nothing kept: the empty sum, 0


def alpha_divergence(p: ArrayLike, q: ArrayLike, alpha: ArrayLike, *, axis: int = -1,
                     where: ArrayLike | None = None) -> jax.Array:
    r"""The α-divergence, α as in Minka (2005) and Cichocki & Amari (2010); Amari's α′ = 2α − 1.

    .. math:: D_\alpha(p \,\|\, q) = \frac{1 - \sum_i p_i^\alpha q_i^{1-\alpha}}{\alpha(1-\alpha)},
       \quad D_1 = \mathrm{KL}(p \,\|\, q), \quad D_0 = \mathrm{KL}(q \,\|\, p),
       \quad D_{1/2} = 4 \bigl(1 - \textstyle\sum_i \sqrt{p_i q_i}\bigr).

    α → 0 is mode-seeking like reverse KL, α → 1 mass-covering like forward KL;
    :math:`D_\alpha(p \| q) = D_{1-\alpha}(q \| p)`. In :math:`[0, 1/(\alpha(1-\alpha))]` for
    α ∈ (0, 1), else :math:`[0, \infty]`: zero entries add nothing for α ∈ (0, 1); +inf if some
    :math:`q_i = 0 < p_i` and α ≥ 1, or :math:`p_i = 0 < q_i` and α ≤ 0. Summed elementwise as
    :math:`[\alpha p_i + (1-\alpha) q_i - p_i^\alpha q_i^{1-\alpha}] / (\alpha(1-\alpha))` (the
    positive-measure form: equal for normalised inputs, and with ``where`` D_1 is
    :math:`\sum_i p_i \log(p_i/q_i) - p_i + q_i` over the kept entries), either in log space or as
    :math:`[q_i - p_i + p_i r_i + (\alpha-1) p_i r_i^2 E_2((\alpha-1) r_i)] / \alpha`, exact, with
    :math:`r_i = \log(p_i/q_i)`, :math:`E_2(x) = (e^x - 1 - x)/x^2` and the KL part from
    :func:`jaxdiv.kl_divergence` (mirrored for α < ½), whichever rounds less: exact at α ∈ {0, 1},
    smooth in α across them.

    Args:
      p: reference probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      alpha: the order, finite; scalar or broadcastable to the batch shape ``[...]``; may be traced.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sums and get zero gradient.

    Returns:
      The divergence, shape ``[...]``.

    References:
      Minka, Divergence measures and message passing, MSR-TR-2005-173, 2005.
      Cichocki & Amari, Families of Alpha- Beta- and Gamma-Divergences, Entropy 12(6), 2010.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(" ".join(f"{float(jaxdiv.alpha_divergence(p, q, a)):.4f}" for a in (0.0, 0.5, 1.0)))
      0.2367 0.2245 0.2197
      >>> print(f"{float(jaxdiv.kl_divergence(q, p)):.4f} {float(jaxdiv.kl_divergence(p, q)):.4f}")
      0.2367 0.2197
    """
    return _run("alpha_divergence", _alpha, p, q, axis, where, alpha=alpha)


def alpha_divergence_with_logits(logits_p: ArrayLike, logits_q: ArrayLike, alpha: ArrayLike, *,
                                 axis: int = -1, where: ArrayLike | None = None) -> jax.Array:
    r""":func:`alpha_divergence` of ``softmax(logits_p)``, ``softmax(logits_q)``, in log space.

    .. math:: D_\alpha = \frac{1 - \exp \mathrm{logsumexp}_i(\alpha \log p_i
       + (1-\alpha) \log q_i)}{\alpha (1 - \alpha)}, \qquad \log p = \mathrm{log\_softmax}(\ell_p).

    Same α (Amari's α′ = 2α − 1) and limits; logits of -inf are zero probabilities. Probabilities
    that underflow (logit spreads of 200 in float32) enter through their logarithms.

    Args:
      logits_p: reference logits along ``axis``, shape ``[..., n]``.
      logits_q: logits, broadcast-compatible with ``logits_p``.
      alpha: the order, finite; scalar or broadcastable to the batch shape; may be traced.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries are left out of both softmaxes and the sum.

    Returns:
      The divergence, shape ``[...]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> lp, lq = jnp.log(p), jnp.log(q)
      >>> print(f"{float(jaxdiv.alpha_divergence_with_logits(lp, lq, 0.5)):.4f}")
      0.2245
      >>> print(f"{float(jaxdiv.alpha_divergence(p, q, 0.5)):.4f}")
      0.2245
    """
    return _run("alpha_divergence_with_logits", _alpha, logits_p, logits_q, axis, where,
                alpha=alpha, logits=True)


def renyi_divergence(p: ArrayLike, q: ArrayLike, alpha: ArrayLike, *, axis: int = -1,
                     where: ArrayLike | None = None, base: float | None = None) -> jax.Array:
    r"""Rényi divergence of order α (same α as :func:`alpha_divergence`).

    .. math:: R_\alpha(p \,\|\, q) = \frac{1}{\alpha - 1} \log \sum_i p_i^\alpha q_i^{1-\alpha},
       \qquad R_1 = \mathrm{KL}(p \,\|\, q), \quad R_\infty = \log \max_{p_i > 0} \frac{p_i}{q_i}.

    Non-decreasing in α, in :math:`[0, \infty]` for α ≥ 0; :math:`R_0 = -\log \sum_{p_i>0} q_i`
    (the α → 0⁺ limit), :math:`R_{1/2} = -2 \log \sum_i \sqrt{p_i q_i}`, :math:`R_2 = \log(1 +
    \chi^2)`. +inf for α ≥ 1 if some :math:`q_i = 0 < p_i`; for α < 0 it is ≤ 0, and -inf if
    some :math:`p_i = 0 < q_i`; 0 when ``where`` keeps no entry. The sum is divided by
    :math:`\sum_i p_i` (Rényi's form for
    incomplete distributions: with ``where``, R_1 = KL / Σp over the kept entries). Either a
    ``logsumexp`` or, whichever rounds less, the exact
    :math:`A \log(1 + (\alpha-1) A) / ((\alpha-1) A)` with
    :math:`A = \mathrm{KL} + (\alpha-1) \sum_i p_i r_i^2 E_2((\alpha-1) r_i)` (notation of
    :func:`alpha_divergence`): exact at α = 1, smooth across it.

    Args:
      p: reference probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      alpha: the order in (-inf, inf]; scalar or broadcastable to the batch shape; may be traced
        (the gradient at α = inf is 0).
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sums and get zero gradient.
      base: logarithm base; ``None`` for nats, 2 for bits.

    Returns:
      The divergence, shape ``[...]``.

    References:
      Rényi, On Measures of Entropy and Information, Proc. 4th Berkeley Symp., 1961.
      van Erven & Harremoës, Rényi Divergence and KL Divergence, IEEE Trans. IT 60(7), 2014.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(" ".join(f"{float(jaxdiv.renyi_divergence(p, q, a)):.4f}" for a in (0.5, 1.0, 2.0)))
      0.1155 0.2197 0.3773
      >>> print(f"{float(jaxdiv.kl_divergence(p, q)):.4f}")  # alpha = 1
      0.2197
    """
    return _run("renyi_divergence", _renyi, p, q, axis, where, base, alpha)


def renyi_divergence_with_logits(logits_p: ArrayLike, logits_q: ArrayLike, alpha: ArrayLike, *,
                                 axis: int = -1, where: ArrayLike | None = None,
                                 base: float | None = None) -> jax.Array:
    r""":func:`renyi_divergence` of ``softmax(logits_p)``, ``softmax(logits_q)``, in log space.

    .. math:: R_\alpha = \frac{1}{\alpha - 1} \mathrm{logsumexp}_i(\alpha \log p_i
       + (1 - \alpha) \log q_i), \qquad \log p = \mathrm{log\_softmax}(\ell_p).

    Same limits; finite and accurate in float32 for logit spreads of 200 and more, where the
    probabilities underflow and :math:`\sum_i p_i^\alpha q_i^{1-\alpha}` overflows.

    Args:
      logits_p: reference logits along ``axis``, shape ``[..., n]``.
      logits_q: logits, broadcast-compatible with ``logits_p``.
      alpha: the order in (-inf, inf]; scalar or broadcastable to the batch shape.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries are left out of both softmaxes and the sum.
      base: logarithm base; ``None`` for nats, 2 for bits.

    Returns:
      The divergence, shape ``[...]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> lp, lq = jnp.log(p), jnp.log(q)
      >>> print(f"{float(jaxdiv.renyi_divergence_with_logits(lp, lq, 2.0)):.4f}")
      0.3773
      >>> print(f"{float(jaxdiv.renyi_divergence(p, q, 2.0)):.4f}")
      0.3773
    """
    return _run("renyi_divergence_with_logits", _renyi, logits_p, logits_q, axis, where, base,
                alpha, logits=True)


def f_divergence(p: ArrayLike, q: ArrayLike, f: Callable[[jax.Array], jax.Array], *,
                 axis: int = -1, where: ArrayLike | None = None,
                 f_at_zero: ArrayLike | None = None,
                 f_at_infinity: ArrayLike | None = None) -> jax.Array:
    r"""The f-divergence (Csiszár; Ali & Silvey) for a convex ``f`` with f(1) = 0.

    .. math:: D_f(p \,\|\, q) = \sum_i q_i \, f(p_i / q_i).

    :math:`p_i = 0 < q_i` contributes :math:`q_i f(0^+)`, :math:`q_i = 0 < p_i` contributes
    :math:`p_i \lim_{t\to\infty} f(t)/t` (``f_at_infinity``, default +inf), :math:`p_i = q_i = 0`
    nothing; ``f`` sees the ratio only where both are positive (1 elsewhere), so no NaN leaks.
    :math:`f(0^+)` defaults to ``f(0)`` or, where that is NaN, ``f(tiny)`` (the smallest normal
    number of the dtype): :math:`t \log t` gives about -1e-36 in float32, not NaN, and
    :math:`-\log t` gives +inf; pass ``f_at_zero`` otherwise. :math:`t \log t` gives KL(p ‖ q),
    :math:`-\log t` KL(q ‖ p), :math:`|t-1|/2` total variation (limit ½ at infinity),
    :math:`(t-1)^2` chi-square, :math:`(\sqrt t - 1)^2/2` squared Hellinger (limit ½).

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      q: reference probabilities (the measure of the ratio), broadcast-compatible with ``p``.
      f: a Python callable applied elementwise to arrays with ``jax.numpy`` operations,
        returning real values (a complex result raises ``TypeError``).
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.
      f_at_zero: :math:`f(0^+)`; scalar or broadcastable to the batch shape.
      f_at_infinity: :math:`\lim_{t\to\infty} f(t)/t`; scalar or broadcastable to the batch shape.

    Returns:
      The divergence, shape ``[...]``.

    References:
      Csiszár, Studia Sci. Math. Hungar. 2, 1967. Ali & Silvey, J. R. Stat. Soc. B 28(1), 1966.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> kl = jaxdiv.f_divergence(p, q, lambda t: t * jnp.log(t))  # f(t) = t log t: KL(p || q)
      >>> print(f"{float(kl):.4f} {float(jaxdiv.kl_divergence(p, q)):.4f}")
      0.2197 0.2197
      >>> tv = jaxdiv.f_divergence(p, q, lambda t: jnp.abs(t - 1) / 2, f_at_infinity=0.5)
      >>> print(f"{float(tv):.4f} {float(jaxdiv.total_variation(p, q)):.4f}")
      0.3000 0.3000
    """
    fn = "f_divergence"
    if not callable(f):
        raise TypeError(f"{fn}: f must be a callable applied elementwise to arrays, got "
                        f"{type(f).__name__}")
    dtype, p, q, where = _pair(fn, p, q, axis, where, None)
    shape = jnp.broadcast_shapes(p.shape, q.shape)
    ax = C.event_axis(fn, shape, axis)
    P, Q = mask_of(_pos(p), where), mask_of(_pos(q), where)
    both, p_only, q_only = P & Q, P & ~Q, Q & ~P
    sq = safe(both, q)
    ft = jnp.asarray(f(safe(both, p) / sq))
    if not jnp.issubdtype(ft.dtype, jnp.floating) and not jnp.issubdtype(ft.dtype, jnp.integer):
        raise TypeError(f"{fn}: f must return real values, got dtype {ft.dtype} (a complex f "
                        "would lose its imaginary part)")
    if ft.shape != shape:
        raise ValueError(f"{fn}: f must act elementwise, but maps shape {shape} to {ft.shape}")
    if f_at_zero is None:
        f0, ftiny = (jnp.asarray(f(jnp.full((), x, p.dtype)), p.dtype)
                     for x in (0, jnp.finfo(p.dtype).tiny))
        f0 = jnp.where(jnp.isnan(f0), ftiny, f0)
    else:
        f0 = _param(fn, "f_at_zero", f_at_zero, shape, ax, p.dtype)
    finf = (jnp.inf if f_at_infinity is None
            else _param(fn, "f_at_infinity", f_at_infinity, shape, ax, p.dtype))
    edge = jnp.where(q_only, jnp.where(q_only, q, 0) * f0,
                     jnp.where(p_only, jnp.where(p_only, p, 0) * finf, 0))
    return finish(jnp.sum(jnp.where(both, sq * ft, edge), axis=ax), dtype)


def total_variation(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                    where: ArrayLike | None = None) -> jax.Array:
    r"""Total variation distance; symmetric, in [0, 1], 1 for disjoint supports.

    .. math:: \mathrm{TV}(p, q) = \tfrac12 \sum_i |p_i - q_i| \le \sqrt{\mathrm{KL}(p \| q)/2}.

    The f-divergence of :math:`|t - 1|/2`.

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.

    Returns:
      The distance, shape ``[...]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.total_variation(p, q)):.4f}")  # half the L1 distance
      0.3000
      >>> one, other = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
      >>> print(f"{float(jaxdiv.total_variation(one, other)):.4f}")  # disjoint supports
      1.0000
    """
    return _run("total_variation", _tv, p, q, axis, where)


def _tv(p, q, where, ax, *_):
    d = jnp.abs(p - q)
    return 0.5 * (jnp.sum(d, ax) if where is None else masked_sum(where, d, ax))


def hellinger_distance(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                       where: ArrayLike | None = None) -> jax.Array:
    r"""Hellinger distance; symmetric, a metric, in [0, 1], 1 for disjoint supports.

    .. math:: H(p, q) = \Bigl(\tfrac12 \sum_i \bigl(\sqrt{p_i} - \sqrt{q_i}\bigr)^2\Bigr)^{1/2}
       = \Bigl(1 - \sum_i \sqrt{p_i q_i}\Bigr)^{1/2}.

    :math:`H^2 \le \mathrm{TV} \le \sqrt2 H`, :math:`H^2 = D_{1/2}/4`. Both square roots sit in
    a double ``where``: gradients are finite, taken as 0 in a zero entry and at ``p == q``.

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.

    Returns:
      The distance, shape ``[...]``.

    References:
      Hellinger, J. reine angew. Math. 136, 1909.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.hellinger_distance(p, q)):.4f}")
      0.2369
      >>> one, other = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
      >>> print(f"{float(jaxdiv.hellinger_distance(one, other)):.4f}")  # disjoint supports
      1.0000
    """
    return _run("hellinger_distance", _hellinger, p, q, axis, where)


def _hellinger(p, q, where, ax, *_):
    P, Q = mask_of(_pos(p), where), mask_of(_pos(q), where)
    # sqrt p - sqrt q = (p - q) / (sqrt p + sqrt q): no cancellation where p ~ q.
    root = jnp.where(P, jnp.sqrt(safe(P, p)), 0) + jnp.where(Q, jnp.sqrt(safe(Q, q)), 0)
    diff = ratio(jnp.where(P, p, 0) - jnp.where(Q, q, 0), safe(P | Q, root))
    h2 = 0.5 * jnp.sum(diff * diff, axis=ax)
    pos = _pos(h2)
    return jnp.where(pos, jnp.sqrt(safe(pos, h2)), 0)


def chi_square_divergence(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                          where: ArrayLike | None = None) -> jax.Array:
    r"""Pearson's chi-square divergence, with ``q`` the reference.

    .. math:: \chi^2(p \,\|\, q) = \sum_i \frac{(p_i - q_i)^2}{q_i}.

    In [0, inf]: +inf if some :math:`q_i = 0 < p_i`; :math:`p_i = q_i = 0` adds 0. The
    f-divergence of :math:`(t - 1)^2`; :math:`\mathrm{KL} \le \log(1 + \chi^2) = R_2`.

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      q: reference probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sum and get zero gradient.

    Returns:
      The divergence, shape ``[...]``.

    References:
      Pearson, Phil. Mag. 50, 1900.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.chi_square_divergence(p, q)):.4f}")
      0.4583
      >>> print(f"{float(jaxdiv.chi_square_divergence(p, p)):.4f}")
      0.0000
    """
    return _run("chi_square_divergence", _chi_square, p, q, axis, where)


def _chi_square(p, q, where, ax, *_):
    Q, p_only = mask_of(_pos(q), where), mask_of(_pos(p) & ~_pos(q), where)
    d = p - q
    total = masked_sum(Q, d * ratio(d, safe(Q, q)), ax)  # ratio: no q^-2 in the derivatives
    return jnp.where(jnp.any(p_only, axis=ax), jnp.inf, total)


def jeffreys_divergence(p: ArrayLike, q: ArrayLike, *, axis: int = -1,
                        where: ArrayLike | None = None, base: float | None = None) -> jax.Array:
    r"""Jeffreys divergence, the symmetrised KL; in [0, inf], symmetric.

    .. math:: J(p, q) = \mathrm{KL}(p \,\|\, q) + \mathrm{KL}(q \,\|\, p)
       = \sum_i (p_i - q_i) \log \frac{p_i}{q_i}.

    +inf unless p and q share their support. Summed as the second form, whose terms are all
    non-negative (the log-ratio formed directly, accurate where :math:`p \approx q`).

    Args:
      p: probabilities along ``axis``, shape ``[..., n]``.
      q: probabilities, broadcast-compatible with ``p``.
      axis: the event axis (static under jit).
      where: boolean mask; ``False`` entries leave the sums and get zero gradient.
      base: logarithm base; ``None`` for nats, 2 for bits.

    Returns:
      The divergence, shape ``[...]``.

    References:
      Jeffreys, Proc. R. Soc. A 186, 1946.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> p, q = jnp.array([0.1, 0.6, 0.3]), jnp.array([0.3, 0.3, 0.4])
      >>> print(f"{float(jaxdiv.jeffreys_divergence(p, q)):.4f}")
      0.4564
      >>> print(f"{float(jaxdiv.kl_divergence(p, q) + jaxdiv.kl_divergence(q, p)):.4f}")
      0.4564
    """
    return _run("jeffreys_divergence", _jeffreys, p, q, axis, where, base)


def _jeffreys(p, q, where, ax, *_):
    P, Q = mask_of(_pos(p), where), mask_of(_pos(q), where)
    both = P & Q
    sp, sq = safe(both, p), safe(both, q)
    total = masked_sum(both, _jeffreys_term(sp, sq), ax)  # every term >= 0
    return jnp.where(jnp.any(P != Q, axis=ax), jnp.inf, total)


@jax.custom_jvp
def _jeffreys_term(p, q):
    """(p - q) log(p / q), with derivatives log(p/q) + 1 - q/p and -log(p/q) + 1 - p/q whose
    own derivatives never form p^-2 or q^-2 (finite Hessians at tiny entries)."""
    return (p - q) * log_ratio(p, q)


@_jeffreys_term.defjvp
def _jeffreys_term_jvp(primals, tangents):
    (p, q), (dp, dq) = primals, tangents
    lr = log_ratio(p, q)
    return (p - q) * lr, (lr + 1 - ratio(q, p)) * dp + (1 - lr - ratio(p, q)) * dq
