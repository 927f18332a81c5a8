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

import functools
import math
from collections import namedtuple
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.experimental import checkify
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import (
    abs_log_ratio,
    all_of,
    expm1_minus_x,
    finish,
    guarded_sum,
    lifted,
    log_ratio,
    mask_of,
    masked_sum,
    per_tangent,
    polynomial,
    ratio,
    safe,
)
from jaxdiv.discrete import (
    _kl_terms,
    _log_ratio_logits,
    _log_softmax,
    _logit_support,
    _pair,
    _stand_in,
    kl_divergence,
)

__all__ = ["alpha_divergence", "alpha_divergence_with_logits", "chi_square_divergence",
           "f_divergence", "hellinger_distance", "jeffreys_divergence", "renyi_divergence",
           "renyi_divergence_with_logits", "total_variation"]

_E2 = [1.0 / math.factorial(k + 2) for k in range(17)]  # (e^x - 1 - x) / x^2, |x| <= 1
_L1 = [(-1.0) ** k / (k + 1) for k in range(15)]  # log1p(y) / y, |y| < 0.1


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
    return jnp.where(small, a * r * r * polynomial(_E2, xs), big)


def _log1prel(y):
    """log1p(y) / y, smooth through y = 0."""
    small = jnp.abs(y) < 0.1
    ys = jnp.where(small, 1, y)
    return jnp.where(small, polynomial(_L1, jnp.where(small, y, 0)), jnp.log1p(ys) / ys)


def _param(fn, name, x, shape, ax, dtype):
    """A per-distribution parameter broadcast to the batch shape, event axis kept as size 1."""
    x = C.as_float(fn, name, x)
    batch = tuple(shape[:ax] + shape[ax + 1:])
    if x.ndim == 0:
        # kept a scalar: as an operand of a lax.cond, a broadcast becomes a full [..., 1]
        # array, which XLA CPU's fused loops then read per row (alpha(0.3)'s fast loops from
        # logits: 31 -> 61 ms at (4096, 1024))
        return x.astype(dtype)
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
    renyi = (_renyi, _renyi_inside, _renyi2, _renyi_half)
    if body in (_alpha, _alpha_inside, *renyi):  # None raises here, not deep
        static = float(alpha) if _static_real(alpha) else None
        alpha = C.as_float(fn, "alpha", alpha)
        _check_order(fn, alpha, renyi=body in renyi)
        if static is not None:  # a constant of the computation (see _cond)
            alpha = static
    if not isinstance(axis, (int, np.integer)):
        C.event_axis(fn, (), axis)  # raises the TypeError for a non-static axis
    C.check_base(fn, base)
    where = None if where is None else jnp.asarray(where)
    return _run_checked(x, y, alpha, where, base, fn=fn, body=body, axis=int(axis), logits=logits)


def _check_order(fn, alpha, *, renyi):
    """A concrete order in the domain, else ValueError: finite for alpha, in (-inf, inf] for
    Renyi (NaN, and -inf for both, gave NaN); traced ones are reported under checked."""
    domain = "in (-inf, inf]" if renyi else "finite"

    def ok(a, xp):
        return (~xp.isnan(a) & (a > -xp.inf)) if renyi else xp.isfinite(a)

    if not isinstance(alpha, jax.core.Tracer):
        if not np.all(ok(np.asarray(alpha), np)):
            raise ValueError(f"{fn}: alpha must be {domain}, got {alpha}")
    elif C.checking():
        checkify.debug_check(jnp.all(ok(alpha, jnp)), f"{fn}: argument alpha is not {domain}")


def _run_checked(x, y, alpha, where, base, *, fn, body, axis, logits):
    names = ("logits_p", "logits_q") if logits else ("p", "q")
    dtype, x, y, where = _pair(fn, x, y, axis, where, None, names, probs=not logits)
    shape = jnp.broadcast_shapes(x.shape, y.shape)
    ax = C.event_axis(fn, shape, axis)
    if alpha is not None and not isinstance(alpha, float):
        alpha = _param(fn, "alpha", alpha, shape, ax, x.dtype)
    return finish(body(x, y, where, ax, alpha, logits), dtype, base)


def _parts(x, y, where, ax, logits):
    if logits:
        (lp, p, P), (lq, q, Q) = _log_softmax(x, ax, where), _log_softmax(y, ax, where)
        mx, my = (x, y) if where is None else (jnp.where(where, v, -jnp.inf) for v in (x, y))
        r = _log_ratio_logits(mx, my, ax)[2]
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


def _log_sum_exp(s, both, ax):
    r"""log sum over ``both`` of e^s, kept within its bounds :math:`[\max s, \max s + \log n]`
    by selects (the sum's derivative inside them). XLA may round s one way for the maximum and
    another for the sum; past |s| = 1 / eps the largest term was then 0 or inf (orders near
    1e30: alpha_divergence 0, not inf)."""
    lse = jax.nn.logsumexp(s, axis=ax, where=both, keepdims=True)
    top = jnp.max(s, axis=ax, where=both, initial=-jnp.inf, keepdims=True)
    cap = top + math.log(s.shape[ax])
    return jnp.where(lse < top, top, jnp.where(lse > cap, cap, lse))


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


def _alpha_general(x, y, where, ax, alpha, logits, done=None):
    # done: the rows the fast loops have (unused: one path for all rows)
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
    lse = _log_sum_exp(s, z.both, ax)
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
    cb, cs = jnp.where(near, 1, beta), jnp.where(near, 1, 1 - beta)
    c = cb * cs
    # M / |c| past the largest float (then c < 0): +inf, the correctly rounded value, with a
    # zero derivative (exp's inf times a zero cotangent was NaN). log |c| from its factors: c
    # itself overflows at |alpha| > 1.8e19 in float32, and M / c was then 0, not +inf
    e = lse - (jnp.log(jnp.abs(cb)) + jnp.log(jnp.abs(cs)))
    over = e > math.log(jnp.finfo(e.dtype).max)
    d_dir = jnp.where(over, inf, lin / c - jnp.sign(c) * jnp.exp(jnp.where(over, 0, e)))
    d_dir = d_dir + jnp.where((beta > 1) & any_a, inf, 0)
    return jnp.squeeze(jnp.where(near, d_near, d_dir), ax)


def _renyi_general(x, y, where, ax, alpha, logits, done=None):
    """:func:`_renyi_far` where it has the value, the whole path (:func:`_renyi_full`) for the
    other rows not ``done`` (the fast loops' rows), under a lax.cond skipped when there are
    none: far rows (M / S_p below 1/16, as for distributions far apart: the fast loops leave
    them NaN) cost a log-space sum, not the KL-anchored machinery (Renyi(0.3) of softmaxes of
    independent 3 N(0, 1) logits at (4096, 1024) float32: 64 ms before)."""
    far = _renyi_far(x, y, where, ax, alpha, logits)
    ok = ~jnp.isnan(far)
    full = jax.lax.cond(all_of(ok if done is None else ok | done),
                        lambda *_: jnp.zeros_like(far),
                        lambda x, y, a: _renyi_full(x, y, where, ax, a, logits), x, y, alpha)
    return jnp.where(ok, far, full)


def _renyi_far(x, y, where, ax, alpha, logits):
    """:func:`_renyi_full`'s value where it is (log M - log S_p) / t with M / S_p outside
    [1/e, e] (no cancellation there), or a limit (+-inf, R_inf, an empty row); NaN elsewhere.
    The KL parts of :func:`_parts` are left unused (not computed under jit)."""
    z = _parts(x, y, where, ax, logits)
    at_inf, al, t, _, _, _, lrel = _renyi_log_space(z, alpha, ax)
    out = jnp.where((jnp.abs(lrel) <= 1) | (t == 0), jnp.nan, lrel / jnp.where(t == 0, 1, t))
    return _renyi_limits(z, out, at_inf, al, ax)


def _renyi_full(x, y, where, ax, alpha, logits):
    z = _parts(x, y, where, ax, logits)
    at_inf, al, t, sp, s, lse, lrel = _renyi_log_space(z, alpha, ax)
    ok = jnp.abs(lrel) <= 1  # M / S_p in [1/e, e]: no overflow, and 1 + t A > 0
    tn = jnp.where(ok, t, 0)
    w, spread, err_near = _moments(z.lp, z.r, z.p, s, lse, z.both, tn, ax)
    near = ~z.any_p & ((t == 0) | (ok & (jnp.abs(t) * err_near <= (1 + spread) * sp)))
    # KL-anchored, exact: M / S_p = 1 + t A with A = (KL + t sum p r^2 E2(t r)) / S_p.
    big_a = (z.kls[0] + tn * w) / sp
    out = jnp.where(near, big_a * _log1prel(tn * big_a), lrel / jnp.where(near | (t == 0), 1, t))
    return _renyi_limits(z, out, at_inf, al, ax)


def _renyi_log_space(z, alpha, ax):
    """(at_inf, the order with inf as 2, t = order - 1, S_p (1 if 0), s = a log p + (1 - a)
    log q, log M by logsumexp over both supports, log(M / S_p)); log M = 0 on a row with
    nothing kept (its value is the empty sum 0, and -inf there made d/dalpha NaN)."""
    at_inf = alpha == jnp.inf
    al = jnp.where(at_inf, 2, alpha)
    sp = safe(z.sums[0] > 0, z.sums[0])
    s = al * z.lp + (1 - al) * z.lq
    lse = jnp.where(_nothing_kept(z, ax), 0, _log_sum_exp(s, z.both, ax))
    return at_inf, al, al - 1, sp, s, lse, lse - jnp.log(sp)


def _nothing_kept(z, ax):
    return ~(jnp.any(z.both, axis=ax, keepdims=True) | z.any_p | z.any_q)


def _renyi_limits(z, out, at_inf, al, ax):
    """``out`` with Renyi's limits: +inf for order >= 1 with some q = 0 < p, -inf for order < 0
    with some p = 0 < q, log max p / q at order inf, 0 for a row with nothing kept."""
    inf = jnp.inf
    out = jnp.where(z.any_p & (al >= 1), inf, out)
    out = jnp.where(z.any_q & (al < 0), -inf, out)
    rmax = jnp.max(jnp.where(z.both, z.lp - z.lq, -inf), axis=ax, keepdims=True)
    out = jnp.where(at_inf, jnp.where(z.any_p, inf, rmax), out)
    return jnp.squeeze(jnp.where(_nothing_kept(z, ax), 0, out), ax)  # nothing kept: 0


# The fast path (probabilities): the divergence from sums over the entries, each sum one fused
# loop (XLA CPU's YNNPACK loops run log1p, expm1, floor, min, max and arithmetic at full speed,
# while a compare-and-select or a sign costs 2-17x the whole loop, and a loop past about 50
# operations is split into passes over memory). Per entry, with r = log(p/q) formed directly
# (never log p - log q), the alpha-divergence is summed as
#   (1 - beta) T = c rho^2 sum_k (1 - beta^(k+1)) rho^k / (k+2)!   for |rho|, |beta rho| < 1/4,
#   (1 - beta) T = s (p - q) - c expm1(beta rho) / beta             elsewhere,
# beta = min(alpha, 1 - alpha), c = q, s = 1, rho = r if alpha <= 1/2, else c = p, s = -1,
# rho = -r (the mirror D_alpha(p||q) = D_(1-alpha)(q||p)), both computed and blended by a
# floor; Renyi as sum p expm1(t r) / t, t = alpha - 1 (M - sum p over t: the KL-anchored form,
# rounding eps p |r| per term). Entries with one side 0 contribute their limits through a
# second cheap loop (edges, and flags weighted by the largest float for +-inf); for an order
# given as a Python number in (1e-6, 1 - 1e-6) those limits are finite and ride in the first loop
# (`inside`: one pass over memory fewer; alpha(0.3) at (4096, 1024) 7.3 -> 5.5 ms). A row that a
# loop cannot do exactly (an overflow, a NaN, Renyi's M << sum p, nothing kept) comes out NaN
# and is redone by the general path above, under a lax.cond that is skipped when no row needs
# it (under vmap both branches run: still exact).

# stands in for |beta|, |t| below it, 0 included, in the quotients expm1(x r) / x: r (1 + x r / 2),
# r to a few ulps for every |r| below 1500 (log-ratios past the float range are not formed),
# where a nonzero x as small as the smallest normal float made x r subnormal, flushed to 0 on
# XLA CPU (alpha_divergence at alpha = 1e-37 in float32: 1.29, not KL(q || p) = 1.57). Not in
# the one-sided limits 1 / alpha, which read alpha itself.
_EPS0 = 2.0**-60


def _on(x):
    """1 where x > 0, 0 where x <= 0, NaN at NaN: ceil and min, no compare-and-select."""
    return jnp.minimum(jnp.ceil(jnp.maximum(x, 0)), 1)


def _ratio_terms(p, q):
    """(p - q, log(p/q), 1) where both are > 0, (0, 0, 0) elsewhere, and the supports (None:
    ``p > 0``, ``q > 0``), in a few select-free operations: r = sign(d) log1p(|d| / min(p, q)),
    exact to a few ulps for nearly equal entries; the minimum lifted to the smallest normal
    float (finite r at one zero), both masked by ``m = ceil(min(p, q))``. A ratio past the
    largest float gives inf (then the general path)."""
    m = jnp.ceil(jnp.minimum(jnp.minimum(p, q), 0.5))
    return (p - q) * m, _masked_log_ratio(p, q, m), m, None


@jax.custom_jvp
def _masked_log_ratio(p, q, m):
    """m log(p / q) as :func:`_ratio_terms` forms it. JVP m (dp / p - dq / q) (autodiff of the
    sign's quotient gave 0 / 0 where p = q: NaN Hessians of Renyi, whose gradient reads the
    loops' sums); the denominators lifted by 1 - m, select-free, where m = 0."""
    lo = jnp.minimum(p, q)
    tiny = jnp.finfo(p.dtype).tiny
    d = p - q
    ad = jnp.abs(d)
    return d / jnp.maximum(ad, tiny) * jnp.log1p(ad / jnp.maximum(lo, tiny)) * m


@_masked_log_ratio.defjvp
def _masked_log_ratio_jvp(primals, tangents):
    (p, q, m), (dp, dq, _) = primals, tangents
    off = 1 - m
    return _masked_log_ratio(p, q, m), m * (ratio(dp, p + off) - ratio(dq, q + off))


def _edges(p, q, ep, fp, eq, fq, ax, on=None):
    """sum over p > 0 = q of (ep p + fp), plus over q > 0 = p of (eq q + fq); ``on``: the
    supports (1 on, 0 off) when not p > 0 and q > 0 (logits: p may underflow to 0 on them)."""
    op, oq = (_on(p), _on(q)) if on is None else on
    both = op * oq
    terms = (op - both) * (p * ep + fp) + (oq - both) * (q * eq + fq)
    return jnp.sum(terms, axis=ax, keepdims=True)


def _nonzero(x):
    return jnp.where(jnp.abs(x) < _EPS0, _EPS0, x)


def _logit_parts(lp, lq, ax):
    """p, q = softmax(lp), softmax(lq) and the fast loops' (p - q, r, joint support, supports)
    from logits (:func:`_ratio_terms`):
    r = log(p / q) from the logits (the tails form of :func:`_log_ratio_logits`: exact where
    p ~ q, finite where p or q underflows), both masked to the joint support."""
    p, q, u, a, b = _log_ratio_logits(lp, lq, ax)
    op, oq = _logit_support(a), _logit_support(b)
    m = op * oq
    return p, q, ((p - q) * m, u * m, m, (op, oq))


def _alpha_fast(p, q, alpha, ax, parts=None, inside=False):
    big = jnp.finfo(p.dtype).max
    lo = alpha <= 0.5
    w = lo.astype(p.dtype)
    s = 2 * w - 1
    beta = jnp.where(lo, alpha, 1 - alpha)
    b0 = _nonzero(beta)
    n = 11 if p.dtype == jnp.float64 else 7  # truncation below eps for |rho| max(1, |beta|) < 1/4
    coefs = [(1 - b0 ** (k + 1)) / math.factorial(k + 2) for k in range(n)]
    d, r, m, on = _ratio_terms(p, q) if parts is None else parts
    c, rho = w * q + (1 - w) * p, s * r
    # 1 if |rho| max(1, |beta|) <= 1/4, else 0; no constant of _edges' loop (XLA would write a
    # shared broadcast of it out in full)
    near = jnp.floor(1.5 - jnp.minimum(jnp.abs(r) * (2 * jnp.maximum(jnp.abs(beta), 1)), 1.5))
    closed = s * d - c * jnp.expm1(b0 * rho) * (1 / b0)
    k = closed + near * (c * rho * rho * polynomial(coefs, rho) - closed)

    if inside:
        # 1e-6 < alpha < 1 - 1e-6 (static): the limits where one side is 0, p / (1 - alpha) and
        # q / alpha, are finite and ride in the same loop (a second loop: 7.3 -> 5.5 ms).
        k = k + (1 - m) * (p * ((1 - beta) / (1 - alpha)) + q * ((1 - beta) / alpha))
        total = jnp.sum(k, axis=ax, keepdims=True)
        return jnp.squeeze(jnp.where(jnp.isfinite(total), total / (1 - beta), jnp.nan), ax), None
    total = jnp.sum(k, axis=ax, keepdims=True)
    below, above = alpha < 1, alpha > 0
    edge = _edges(p, q, jnp.where(below, (1 - beta) / jnp.where(below, 1 - alpha, 1), 0),
                  jnp.where(alpha >= 1, big, 0),
                  jnp.where(above, (1 - beta) / jnp.where(above, alpha, 1), 0),
                  jnp.where(alpha <= 0, big, 0), ax, on)
    out = jnp.where(jnp.isfinite(total), (total + edge) / (1 - beta), jnp.nan)
    return jnp.squeeze(jnp.where(edge >= big / 2, jnp.inf, out), ax), None


def _alpha_grads(p, q, alpha, aux, parts=None):
    """d/dp_i = expm1((alpha - 1) r_i) / (alpha - 1), d/dq_i = -expm1(alpha r_i) / alpha where
    both are > 0; 1 / (1 - alpha) at p_i > 0 = q_i (alpha < 1), 1 / alpha at q_i > 0 = p_i
    (alpha > 0); 0 elsewhere (the zero-mass convention). Elementwise: selects cost nothing.

    With the logits' ``parts`` (:func:`_logit_parts`): (p_i d/dp_i, q_i d/dq_i) instead, for
    the softmax's chain rule, on the logits' supports and log-ratio, with
    p e^{t r} = q e^{alpha r} formed in log space where the exponent passes 1: e^{alpha r} alone
    overflows at alpha r > 88.7 in float32 (logits 44 nats apart at alpha = 2) although the
    product is finite."""
    both, p_only, q_only, r, power = _grad_parts(p, q, alpha, parts)
    t, a0 = _nonzero(alpha - 1), _nonzero(alpha)
    inv_a = 1 / jnp.where(alpha > 0, alpha, 1)  # the q-only limit 1 / alpha: alpha itself
    if parts is None:
        gp = jnp.where(both, jnp.expm1(t * r) / t, jnp.where(p_only & (alpha < 1), -1 / t, 0))
        gq = jnp.where(both, -jnp.expm1(a0 * r) / a0,
                       jnp.where(q_only & (alpha > 0), inv_a, 0))
        return gp, gq
    far_p, far_q, pw = t * r > 1, a0 * r > 1, power(0)
    # p (expm1(t r) / t), not (p expm1(t r)) / t: at alpha = 1 (t = 2^-60) the product
    # underflows before the division
    wp = jnp.where(far_p, (pw - p) / t, p * (jnp.expm1(jnp.where(far_p, 0, t * r)) / t))
    wq = -jnp.where(far_q, (pw - q) / a0, q * (jnp.expm1(jnp.where(far_q, 0, a0 * r)) / a0))
    return (jnp.where(both, wp, jnp.where(p_only & (alpha < 1), -p / t, 0)),
            jnp.where(both, wq, jnp.where(q_only & (alpha > 0), q * inv_a, 0)))


def _grad_parts(p, q, alpha, parts=None):
    """The supports (both, p only, q only) and r = log(p / q) on both (0 elsewhere), from p and
    q, or from the logits' ``parts`` (p or q may underflow to 0 on the supports); and
    ``power(c)`` = p^alpha q^(1 - alpha) e^{-c} on both, from the log of the larger of p and q
    (the other may have underflowed); ``power(c, log=True)`` its logarithm."""
    if parts is None:
        P, Q = _pos(p), _pos(q)
        both = P & Q
        lp, lq = jnp.log(jnp.where(both, p, 1)), jnp.log(jnp.where(both, q, 1))
        r = lp - lq
    else:
        _, r, _, (op, oq) = parts
        P, Q = op > 0, oq > 0
        both = P & Q
    up = p >= q

    def power(c, log=False):
        big = jnp.log(jnp.where(both, jnp.where(up, p, q), 1))
        e = big + jnp.where(up, alpha - 1, alpha) * r - c
        return e if log else jnp.exp(e)

    return both, P & ~Q, Q & ~P, r, power


def _renyi_far_aux(p, q, alpha, ax, parts=None):
    """The row sums :func:`_renyi_far_grads` reads: (S_p (1 from logits), log M by a
    log-sum-exp over both supports (0 where nothing is on both), the largest r = log(p / q) on
    both and how many entries reach it); alpha = inf read as 2 for M."""
    both, _, _, r, power = _grad_parts(p, q, jnp.where(alpha == jnp.inf, 2, alpha), parts)
    log_m = jax.nn.logsumexp(power(0, log=True), axis=ax, where=both, keepdims=True)
    rm = jnp.where(both, r, -jnp.inf)
    top = jnp.max(rm, axis=ax, keepdims=True)
    ties = jnp.sum((both & (rm >= top)).astype(p.dtype), axis=ax, keepdims=True)
    sp = jnp.sum(p, axis=ax, keepdims=True) if parts is None else jnp.ones_like(top)
    return sp, jnp.where(jnp.isfinite(log_m), log_m, 0), top, jnp.maximum(ties, 1)


def _renyi_far_grads(p, q, alpha, aux, parts=None):
    """Renyi's derivatives for the rows the fast loops leave to the general path (M / S_p
    below 1/16, an overflow, order inf) in closed form from the row sums of
    :func:`_renyi_far_aux`, not autodiff of that path, which was a third of a gradient program's
    compile time (Renyi(1.7)'s gradient 1.7 -> 1.2 s, its Hessian 2.6 -> 1.5 s). With
    t = alpha - 1: d/dp_i = (alpha e^{t r_i - log M} - 1 / S_p) / t,
    d/dq_i = -e^{alpha r_i - log M} where both are > 0; -1 / (t S_p) at p_i > 0 = q_i; 0
    elsewhere (:func:`_renyi_grads`' conventions). At order inf, R = max r over both:
    1 / p_i and -1 / q_i at the maximum, ties sharing it (as jnp.max's derivative). With the
    logits' ``parts``: (p_i d/dp_i, q_i d/dq_i), as :func:`_renyi_grads`."""
    sp, log_m, top, ties = aux
    at_inf = alpha == jnp.inf
    alpha = jnp.where(at_inf, 2, alpha)
    both, p_only, _, r, power = _grad_parts(p, q, alpha, parts)
    t = _nonzero(alpha - 1)
    at_top = jnp.where(both & (r >= top), 1 / ties, 0)
    if parts is None:
        sp = safe(sp > 0, sp)
        gp = jnp.where(both, (alpha * jnp.exp(t * r - log_m) - 1 / sp) / t,
                       jnp.where(p_only, -1 / (t * sp), 0))
        gq = jnp.where(both, -jnp.exp(alpha * r - log_m), 0)
        return (jnp.where(at_inf, at_top / safe(both, p), gp),
                jnp.where(at_inf, -at_top / safe(both, q), gq))
    wm = jnp.where(both, power(log_m), 0)
    gp = jnp.where(both, (alpha * wm - p) / t, jnp.where(p_only, -p / t, 0))
    return jnp.where(at_inf, at_top, gp), jnp.where(at_inf, -at_top, -wm)


def _renyi_fast(p, q, alpha, ax, parts=None, inside=False):
    big, inf = jnp.finfo(p.dtype).max, jnp.inf
    at_inf = alpha == inf
    t = jnp.where(at_inf, 1, alpha - 1)
    t0 = _nonzero(t)
    _, r, m, on = _ratio_terms(p, q) if parts is None else parts
    # (M - sum p) / t over both. From logits, r carries the normalisers' common rounding, which
    # sum p expm1(t r) would see at first order: add sum p expm1(-r) (= sum q - sum p over
    # both, which the softmaxes make the difference of the one-sided masses, taken back out
    # through the edges); the pair's first-order changes cancel. expm1(-r) as
    # -expm1(r) e^{-r} (r clamped at 80, where it is -1 to rounding): jaxlib 0.10.2's XLA CPU
    # YNNPACK reductions compute expm1(c r) as expm1(r) when both are in one sum (c a
    # constant; a static alpha = 2 gave Renyi twice its value).
    terms, k = jnp.expm1(t0 * r), 0.0
    if parts is not None:
        rc = jnp.minimum(r, 80.0)
        terms, k = terms - t0 * (jnp.expm1(rc) * jnp.exp(-rc)), 1.0
    if inside:  # static alpha in (1e-6, 1 - 1e-6): the one-sided limits are finite, one loop
        y = jnp.sum(p * terms * (1 / t0) + (1 - m) * (p * (-1 / t0 - k) + q * k), axis=ax,
                    keepdims=True)
        edge = jnp.zeros_like(y)
    else:
        y = jnp.sum(p * terms, axis=ax, keepdims=True) / t0
        # -inf for alpha < 0 where p = 0 < q: alpha's sign, not t < -1 (t = alpha - 1 rounds to
        # -1 for |alpha| under half an ulp of 1, and Renyi(-1e-10) was R_0 > 0 in float32)
        edge = _edges(p, q, jnp.where(t < 0, -1 / t0, 0) - k, jnp.where(t >= 0, big, 0), k,
                      jnp.where(alpha < 0, -big, 0), ax, on)
    sp = 0.5 * jnp.sum(p + jnp.abs(p), axis=ax, keepdims=True)  # no constant shared with _edges
    y_all = y + edge
    x = t0 * y_all / sp  # M / sum p - 1
    out = jnp.log1p(x) / t0
    # M << sum p: M = sum p (1 + x) has lost its relative accuracy; the general path has M.
    out = jnp.where(jnp.isfinite(y) & (sp > 0) & (x >= -15 / 16), out, jnp.nan)
    out = jnp.where(edge >= big / 2, inf, jnp.where(edge <= -big / 2, -inf, out))
    return jnp.squeeze(jnp.where(at_inf, jnp.nan, out), ax), (sp, y_all)  # R_inf: general


def _renyi2_fast(p, q, alpha, ax, parts=None, inside=False):
    """:func:`_renyi_fast` at alpha = 2 (static; probabilities): M - S_p = sum p (p - q) / q,
    one quotient per entry (q lifted where p = 0: 0 there; +inf at q = 0 < p), against the
    general loops' log1p, expm1 and second pass for the one-sided entries (4.3 -> 1.6 ms at
    (4096, 1024) float32). As accurate near p = q: each term carries eps of its own size, the
    first-order parts sum to S_p - S_q as in the general loops. The same aux (S_p, M - S_p)."""
    return _renyi_special(p, jnp.sum(p * ((p - q) / lifted(q, p)), axis=ax, keepdims=True),
                          1.0, ax)


def _renyi2_grads(p, q, alpha, aux, parts=None):
    """:func:`_renyi_grads` at alpha = 2 (probabilities): 2 (p / q) / M - 1 / S_p and
    -(p / q)^2 / M, two quotients per entry against the general form's log, expm1 and exp
    (M = S_p + y >= S_p^2 / S_q: no cancellation); the same conventions where one side is 0
    (-1 / S_p in p where q = 0 < p, 0 where p = 0, 0 in q where q = 0), finite everywhere."""
    sp, y = aux
    m = sp + y
    pos = q > 0
    rho = jnp.where(pos, ratio(p, safe(pos, q)), 0)  # ratio: no q^2 in its derivatives
    w = rho / m  # <= 1 / p (M >= p rho): (rho / M) rho, not rho^2 / M, which overflowed at
    # p = 1/2, q = 1e-20 in float32 (rho^2 = 2.5e39) where the derivative is -1e20
    return jnp.where(p > 0, 2 * w - 1 / sp, 0), jnp.where(pos, -w * rho, 0)


def _renyi_special(p, y, t, ax):
    """The value log1p(t y / S_p) / t and aux (S_p, y) of the special orders' fast terms from
    y = (M - S_p) / t; NaN (the general path) where M << S_p (t y / S_p < -15/16: the log1p has
    lost its relative accuracy), with no mass, or at NaN."""
    sp = 0.5 * jnp.sum(p + jnp.abs(p), axis=ax, keepdims=True)  # S_p as the general loops'
    x = t * y / sp
    out = jnp.where((sp > 0) & (x >= -15 / 16), jnp.log1p(x) / t, jnp.nan)
    return jnp.squeeze(out, ax), (sp, y)


def _renyi_grads(p, q, alpha, aux, parts=None):
    """With M = sum p^alpha q^(1 - alpha), S = sum p, Y = (M - S) / t, t = alpha - 1:
    d/dp_i = (1 + alpha expm1(t r_i) / t - Y / S) / M, d/dq_i = -e^{alpha r_i} / M where
    both are > 0; -1 / (t S) at p_i > 0 = q_i; 0 elsewhere. With the logits' ``parts``:
    (p_i d/dp_i, q_i d/dq_i), the powers in log space as :func:`_alpha_grads`'s
    (q_i d/dq_i is minus the weight p_i^alpha q_i^(1 - alpha) / M)."""
    sp, y = aux
    both, p_only, _, r, power = _grad_parts(p, q, alpha, parts)
    t = _nonzero(alpha - 1)
    m = sp + t * y
    # e^{alpha r} / M with log M per row: e^{alpha r} alone overflows where M is large too
    # (p = 1/2, q = 1e-20, alpha = 2: -inf for -1e20). M > 0 on the rows kept (the rest NaN).
    log_m = jnp.log(m)
    edge = jnp.where(p_only, -1 / (t * sp), 0)
    if parts is None:
        gp = jnp.where(both, (1 + alpha * (jnp.expm1(t * r) / t) - y / sp) / m, edge)
        return gp, jnp.where(both, -jnp.exp(alpha * r - log_m), 0)
    far = t * r > 1
    pm = power(log_m)
    near = p * (1 + alpha * (jnp.expm1(jnp.where(far, 0, t * r)) / t) - y / sp) / m
    wp = jnp.where(far, p * (1 - y / sp) / m + (alpha / t) * (pm - p / m), near)
    return jnp.where(both, wp, p * edge), jnp.where(both, -pm, 0)


def _renyi_half_fast(p, q, alpha, ax, parts=None, inside=False):
    """:func:`_renyi_fast` at alpha = 1/2 (static; probabilities): M - S_p = sum sqrt(p)
    (q - p) / (sqrt(p) + sqrt(q)), two square roots and one quotient per entry (the denominator
    lifted where p = q = 0), against the general loops' log-ratio and expm1; as accurate near
    p = q (each term carries eps of its own size). The same aux (S_p, (M - S_p) / t)."""
    rp, rq = jnp.sqrt(p), jnp.sqrt(q)
    d = (q - p) / jnp.maximum(rp + rq, jnp.finfo(p.dtype).tiny)
    return _renyi_special(p, -2 * jnp.sum(rp * d, axis=ax, keepdims=True), -0.5, ax)


# The direct form: for distributions far apart, M = sum p^alpha q^(1 - alpha) in log space is as
# accurate as the fast loops (what they exist for, nearly equal inputs, cancels in alpha S_p +
# (1 - alpha) S_q - M, and is left to them), at one exp per entry: the log-space one-liner's
# cost (alpha(0.3) from independent logits at (4096, 1024) float32: 32 -> 5 ms). Rows where it
# cancels, overflows or meets a limit come out NaN and go on to the fast loops.

@jax.custom_jvp
def _clamped_log(x, lo):
    """max(log x, lo), select-free; derivative 1 / x where x > 0, 0 at x = 0 (log's inf times
    max's 0 made the Hessians NaN at zero entries)."""
    return jnp.maximum(jnp.log(x), lo)


@_clamped_log.defjvp
def _clamped_log_jvp(primals, tangents):
    (x, lo), (dx, _) = primals, tangents
    pos = x > 0
    return _clamped_log(x, lo), jnp.where(pos, dx / safe(pos, x), 0)


def _log_space(x, y, alpha, ax, logits):
    """(log p, log q, s = alpha log p + (1 - alpha) log q), the logs clamped at the stand-in S
    (log 0 = -inf times a negative order gave NaN against +inf), and (S_p, S_q) = (sum p,
    sum q), 1 from logits (the log-softmaxes)."""
    lo = _stand_in(x.dtype)
    if logits:
        # the plain log-softmax, not discrete._log_softmax: its tail's log1p (log p exact for
        # peaked rows) is not needed on rows this far apart, and cost 25-35% here (alpha(0.3)
        # from independent logits at (4096, 1024) float32: 4.7 -> 6.2 ms, gradient 18 -> 24)
        la, lb = (jnp.maximum(jax.nn.log_softmax(v, ax), lo) for v in (x, y))
        sums = (1.0, 1.0)
    else:
        la, lb = _clamped_log(x, lo), _clamped_log(y, lo)
        sums = (jnp.sum(x, axis=ax, keepdims=True), jnp.sum(y, axis=ax, keepdims=True))
    return la, lb, alpha * la + (1 - alpha) * lb, sums


def _direct_ok(alpha, lo):
    """The orders that take the direct form: in [-3, 4], where each term's rounding, eps
    (|alpha log p| + |(1 - alpha) log q|), stays within a few times the fast loops' eps |t r|
    (at alpha = 100 it was 100 times: Renyi(100) lost 2.8e-5 in float32); and |alpha S|,
    |(1 - alpha) S| at least 4096, past exp's range by more than the largest |log q| (709 in
    float64), so the stand-in's terms vanish or overflow and alpha = 0 and 1 never take it."""
    small = jnp.minimum(jnp.abs(alpha), jnp.abs(1 - alpha))
    return (alpha >= -3) & (alpha <= 4) & (small * -lo >= 4096)


def _direct_sum(x, y, alpha, ax, logits):
    """M = sum p^alpha q^(1 - alpha) in log space (one sum: a second split the loop, 3x),
    (S_p, S_q) as :func:`_log_space`'s, and whether the order takes the direct form."""
    _, _, s, sums = _log_space(x, y, alpha, ax, logits)
    m = jnp.sum(jnp.exp(s), axis=ax, keepdims=True)
    return m, sums, _direct_ok(alpha, _stand_in(x.dtype))


def _alpha_direct(x, y, alpha, ax, logits):
    """The alpha-divergence (alpha S_p + (1 - alpha) S_q - M) / (alpha (1 - alpha)) where the
    subtraction loses at most 3 bits (the terms' absolute values sum to at most 8 times the
    difference: M / S outside (7/9, 9/7) for normalised inputs); NaN elsewhere (nearly equal
    inputs, an overflow, an order outside :func:`_direct_ok`, NaN). Also M."""
    m, (sp, sq), order_ok = _direct_sum(x, y, alpha, ax, logits)
    beta = 1 - alpha
    gap = alpha * sp + beta * sq - m
    ok = ((jnp.abs(alpha * sp) + jnp.abs(beta * sq) + m <= 8 * jnp.abs(gap))
          & order_ok & jnp.isfinite(m))
    return jnp.squeeze(jnp.where(ok, gap / jnp.where(ok, alpha * beta, 1), jnp.nan), ax), m


def _renyi_direct(x, y, alpha, ax, logits):
    """Renyi's log(M / S_p) / (alpha - 1) where |log(M / S_p)| is at least 1/4 (its rounding
    then at most 4 times the logarithm's); NaN elsewhere (nearly equal inputs, an overflow or
    underflow, no mass, an order outside :func:`_direct_ok`). Also M."""
    m, (sp, _), order_ok = _direct_sum(x, y, alpha, ax, logits)
    lr = jnp.log(m / sp)
    ok = (jnp.abs(lr) >= 0.25) & jnp.isfinite(lr) & order_ok
    return jnp.squeeze(jnp.where(ok, lr / jnp.where(ok, alpha - 1, 1), jnp.nan), ax), m


def _direct_grads(x, y, alpha, m, ax, logits, renyi):
    """The direct form's derivatives in x and y with w = p^alpha q^(1 - alpha), as the fast
    loops' conventions (0 in an entry with no mass; where one side is 0, the limit).
    From logits (softmax chain rule): alpha (p M - w) / (1 - alpha), (q M - w) / alpha; Renyi
    alpha (w / M - p) / (alpha - 1), q - w / M. From probabilities: (1 - w / p) / (1 - alpha),
    (1 - w / q) / alpha; Renyi (alpha w / (p M) - 1 / S_p) / (alpha - 1), -w / (q M). None
    overflows where M is finite, but w / p and w / q where p or q is subnormal."""
    la, lb, s, (sp, _) = _log_space(x, y, alpha, ax, logits)
    beta = 1 - alpha
    if logits:
        w, p, q = jnp.exp(s), jnp.exp(la), jnp.exp(lb)
        if renyi:
            return alpha * (w / m - p) / (alpha - 1), q - w / m
        return (p * m - w) / beta, (q * m - w) / alpha
    # w / p, w / q; the exponent 0 in the entries zeroed below (their inf, times a zero
    # cotangent, was NaN in Hessians)
    P, Q = x > 0, y > 0
    wp = jnp.exp(jnp.where(P, beta * (lb - la), 0))
    wq = jnp.exp(jnp.where(Q, alpha * (la - lb), 0))
    if renyi:
        gp, gq = (alpha * wp / m - 1 / sp) / (alpha - 1), -wq / m
    else:
        gp, gq = (1 - wp) / beta, (1 - wq) / alpha
    return jnp.where(P, gp, 0), jnp.where(Q, gq, 0)


_RENYI = ("renyi", "renyi_inside", "renyi2", "renyi_half")
# the direct (log-space) form, where it is as accurate, before the fast loops
_DIRECT = {"alpha": (_alpha_direct, False), "alpha_inside": (_alpha_direct, False),
           "renyi": (_renyi_direct, True), "renyi_inside": (_renyi_direct, True)}
_KINDS = {"alpha": (_alpha_fast, _alpha_grads, _alpha_general),
          "alpha_inside": (functools.partial(_alpha_fast, inside=True), _alpha_grads,
                           _alpha_general),
          "renyi": (_renyi_fast, _renyi_grads, _renyi_general),
          "renyi2": (_renyi2_fast, _renyi2_grads, _renyi_general),
          "renyi_half": (_renyi_half_fast, _renyi_grads, _renyi_general),
          "renyi_inside": (functools.partial(_renyi_fast, inside=True), _renyi_grads,
                           _renyi_general)}


def _inputs(x, y, ax, logits):
    """(p, q, parts) for the fast loops: probabilities as given (parts None: from p and q), or
    the softmaxes of logits with the log-ratio and supports from the logits."""
    return _logit_parts(x, y, ax) if logits else (x, y, None)


def _fast_loops(x, y, alpha, *, ax, kind, logits):
    p, q, parts = _inputs(x, y, ax, logits)
    return _KINDS[kind][0](p, q, alpha, ax, parts)[0]


@functools.cache
def _fast_value(ax, kind, logits):
    """The fast loops' value (the JVP rule has its own), batched under vmap over the orders
    alone (a sweep over alpha of the same p, q) one order at a time on CPU: vmapped, XLA CPU
    wrote p and q out once per order and the order-free parts once more (4 orders at
    (1024, 1024): 29 ms, against 4 x 1.6 one at a time)."""
    loops = functools.partial(_fast_loops, ax=ax, kind=kind, logits=logits)
    value = jax.custom_batching.custom_vmap(loops)

    @value.def_vmap
    def _(axis_size, in_batched, x, y, alpha):
        xb, yb, ab = in_batched
        vmapped = jax.vmap(loops, (0 if xb else None, 0 if yb else None, 0 if ab else None))
        if xb or yb or not ab:
            return vmapped(x, y, alpha), True

        def one_by_one(x, y, alpha):
            # The barrier ties p and q to each order: XLA would hoist the order-free parts
            # out of the loop and write them out.
            return jax.lax.map(lambda a: loops(*jax.lax.optimization_barrier((x, y, a))), alpha)

        out = jax.lax.platform_dependent(x, y, alpha, cpu=one_by_one, default=vmapped)
        return out, True

    return value


def _order(alpha, fixed):
    """The order: ``fixed`` (a Python number) as a constant of the computation, else ``alpha``."""
    return alpha if fixed is None else jnp.asarray(fixed, alpha.dtype)


def _cond(pred, on_true, on_false, x, y, alpha, fixed):
    """``lax.cond(pred, on_true, on_false, x, y, alpha)``, a static order made a constant again
    inside the branches: an operand of a cond is a parameter of its branches, and XLA CPU's
    fused loops ran 1.4x slower at a traced order than at a constant one, whose coefficients
    it folds (alpha(0.3) from nearby logits at (4096, 1024): 52 ms against 38)."""
    return jax.lax.cond(pred, lambda x, y, a: on_true(x, y, _order(a, fixed)),
                        lambda x, y, a: on_false(x, y, _order(a, fixed)), x, y, alpha)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4, 5, 6))
def _fast_or_general(x, y, alpha, ax, kind, logits, fixed):
    """The direct form where it is as accurate (:data:`_DIRECT`), else the fast loops, and the
    general path for the rows both leave NaN, each under a lax.cond that is skipped when no row
    needs it (under vmap too: :func:`all_of`). ``fixed``: the order as a Python number, or
    None (then traced)."""
    alpha = _order(alpha, fixed)
    if kind not in _DIRECT:
        return _fast_then_general(x, y, alpha, None, ax, kind, logits, fixed)
    v = _DIRECT[kind][0](x, y, alpha, ax, logits)[0]
    ok = ~jnp.isnan(v)
    redo = _cond(all_of(ok), lambda *_: jnp.zeros_like(v),
                 lambda x, y, a: _fast_then_general(x, y, a, ok, ax, kind, logits, fixed),
                 x, y, alpha, fixed)
    return jnp.where(ok, v, redo)


def _fast_then_general(x, y, alpha, done, ax, kind, logits, fixed):
    """The fast loops, and the general path for their NaN rows not ``done``."""
    v = _fast_value(ax, kind, logits)(x, y, alpha)
    ok = ~jnp.isnan(v)
    general = _KINDS[kind][2]
    skip = ok if done is None else ok | done
    redo = _cond(all_of(skip), lambda *_: jnp.zeros_like(v),
                 lambda x, y, a: general(x, y, None, ax, a, logits, skip), x, y, alpha, fixed)
    return jnp.where(ok, v, redo)


def _fast_or_general_jvp(ax, kind, logits, fixed, primals, tangents):
    # Closed-form derivatives in p and q (elementwise: no autodiff of the loops), through the
    # softmaxes for logits: d/dl_j = p_j (g_j - sum_i p_i g_i) (g's constants per row, as the
    # positive-measure form's, cancel); for the rows left to the general path, the same closed
    # forms (alpha) or Renyi's from log M (:func:`_renyi_far_grads`), never autodiff of that
    # path, chosen with the value inside one cond on the primals. The tangents then meet only the
    # chosen coefficients: with the cond on the tangents, its linearisation carried p and q out
    # of it as copies and its transpose wrote zeros for both (alpha(0.3)'s gradient at
    # (4096, 1024): 25 ms, 7.6 of them the cond). The one in alpha from the general path.
    # The value and M from the direct form where it has them (:data:`_DIRECT`); its
    # derivatives only when every row is direct (then the fast loops are not run at all).
    fast, grads, general_path = _KINDS[kind]

    def general(x, y, alpha, done=None):
        return general_path(x, y, None, ax, alpha, logits, done)

    x, y, alpha = primals
    alpha = _order(alpha, fixed)
    live = [k for k in range(2) if not isinstance(tangents[k], SymbolicZero)]

    # Each coefficient from its own barriered copy (as per_tangent): merged with the value's
    # loops by CSE, XLA CPU wrote shared constants out in full and split the loops (grad of
    # alpha(1/2): 35 -> 29 ms); shared by the two coefficients, it wrote log p and log q out.
    def coefficient(k, x, y, alpha, keep, aux, grads=grads):
        x_, y_, ab, keep_, aux_ = jax.lax.optimization_barrier(
            (x, y, alpha, keep, aux) + (x,) * (k + 1))[:5]
        p_, q_, parts_ = _inputs(x_, y_, ax, logits)
        g = grads(p_, q_, ab, aux_, parts_)[k]
        if logits:  # w g formed by grads (where w underflows to 0 and g overflows: not 0 inf)
            wg = jnp.where(jnp.isfinite(g), g, 0)
            g = wg - (p_, q_)[k] * jnp.sum(wg, axis=ax, keepdims=True)
        return jnp.where(keep_, g, 0)

    def fast_rows(x, y, alpha):
        p, q, parts = _inputs(x, y, ax, logits)
        v, aux = fast(p, q, alpha, ax, parts)
        ok = ~jnp.isnan(v)
        keep = jnp.isfinite(jnp.expand_dims(v, ax))  # +-inf: zero tangent (NaN-free)

        def all_fast(x, y, alpha):
            return v, [coefficient(k, x, y, alpha, keep, aux) for k in live]

        def some_general(x, y, alpha):
            # The general path's value; its rows' derivatives in closed form, as the loops'
            # (alpha's need no row sums: the same formulas; Renyi's from log M), zero at +-inf
            value = jnp.where(ok, v, general(x, y, alpha, ok))
            fin = jnp.isfinite(jnp.expand_dims(value, ax))
            if kind not in _RENYI:
                return value, [coefficient(k, x, y, alpha, fin, aux) for k in live]
            okx = jnp.expand_dims(ok, ax)
            far = _renyi_far_aux(p, q, alpha, ax, parts)  # fast_rows' p, q: not formed again
            return value, [jnp.where(okx, coefficient(k, x, y, alpha, keep, aux),
                                     coefficient(k, x, y, alpha, fin, far, _renyi_far_grads))
                           for k in live]

        value, coefs = _cond(all_of(ok), all_fast, some_general, x, y, alpha, fixed)
        return value, coefs, keep, ok

    if kind not in _DIRECT:
        value, coefs, keep, ok = fast_rows(x, y, alpha)
    else:
        # The direct form's rows: its value and derivatives (each from its own barriered copy,
        # as coefficient's); the others' from the fast loops and general path as above.
        direct, renyi = _DIRECT[kind]
        v0, m = direct(x, y, alpha, ax, logits)
        ok0 = ~jnp.isnan(v0)

        def direct_coefs(x, y, alpha):
            def one(k):
                x_, y_, a_, m_ = jax.lax.optimization_barrier((x, y, alpha, m) + (x,) * (k + 1))[:4]
                return _direct_grads(x_, y_, a_, m_, ax, logits, renyi)[k]
            return [one(k) for k in live]

        def all_direct(x, y, alpha):
            keep = jnp.ones(jnp.shape(jnp.expand_dims(ok0, ax)), bool)  # finite where kept
            return v0, direct_coefs(x, y, alpha), keep, ok0

        def some_fast(x, y, alpha):
            # The direct rows keep the direct value; their derivatives are the fast loops' (the
            # same to rounding): merging in the direct ones, with their two passes and
            # full-array selects, took Renyi(2)'s gradient from 64 to 105 ms at (4096, 1024)
            # with 7 rows of 4096 direct.
            value, coefs, keep, ok = fast_rows(x, y, alpha)
            return jnp.where(ok0, v0, value), coefs, keep, ok

        value, coefs, keep, ok = _cond(all_of(ok0), all_direct, some_fast, x, y, alpha, fixed)
    terms = [c * tangents[k] for c, k in zip(coefs, live, strict=True)]
    out = jnp.sum(sum(terms[1:], terms[0]), axis=ax) if terms else jnp.zeros_like(value)
    if not isinstance(tangents[2], SymbolicZero):
        da = jax.jvp(lambda a: general(x, y, a), (alpha,), (tangents[2],))[1]
        out = out + jnp.where(jnp.squeeze(keep, ax) | ~ok, da, 0)
    return value, out


_fast_or_general.defjvp(_fast_or_general_jvp, symbolic_zeros=True)


def _alpha(x, y, where, ax, alpha, logits):
    return _fast_or_general_jit("alpha", x, y, where, ax, alpha, logits)


def _alpha_inside(x, y, where, ax, alpha, logits):
    return _fast_or_general_jit("alpha_inside", x, y, where, ax, alpha, logits)


def _renyi(x, y, where, ax, alpha, logits):
    return _fast_or_general_jit("renyi", x, y, where, ax, alpha, logits)


def _renyi2(x, y, where, ax, alpha, logits):
    return _fast_or_general_jit("renyi2", x, y, where, ax, alpha, logits)


def _renyi_half(x, y, where, ax, alpha, logits):
    return _fast_or_general_jit("renyi_half", x, y, where, ax, alpha, logits)


def _renyi_inside(x, y, where, ax, alpha, logits):
    return _fast_or_general_jit("renyi_inside", x, y, where, ax, alpha, logits)


def _inside(alpha, body, inside):
    """``inside`` (one loop fewer over memory) for a static order in (1e-6, 1 - 1e-6), else
    ``body``."""
    # Kept away from 0 and 1 by more than float32 rounding: an order that rounds to 0 or 1 in
    # the compute dtype must take the loops with the flags (+-inf limits there).
    return inside if _static_real(alpha) and 1e-6 < float(alpha) < 1 - 1e-6 else body


def _staged(v):
    """Whether ``v`` is traced for a compiled computation (jit, vmap, scan): not a concrete
    value, as under eager ``jax.grad`` (its tracers carry one)."""
    concrete = getattr(v, "to_concrete_value", None)
    return isinstance(v, jax.core.Tracer) and (concrete is None or concrete() is None)


def _fast_or_general_jit(kind, p, q, where, ax, alpha, logits):
    """:func:`_fast_or_gen`, an order given as a Python number a constant of the computation
    (see :func:`_cond`) when staged (the caller's jit compiles it once with the rest), an
    argument when called eagerly, eager ``jax.grad`` and ``jax.hessian`` included (a constant
    would compile again for each new order: 0.5 s each for a value, 1-2 s for a gradient;
    eight orders 4.2 s against 5 ms)."""
    if _static_real(alpha):
        if any(_staged(v) for v in (p, q, where)):
            return _fast_or_gen(kind, p, q, where, ax, None, logits, float(alpha))
        alpha = jnp.asarray(alpha, p.dtype)
    return _fast_or_gen(kind, p, q, where, ax, alpha, logits, None)


@functools.partial(jax.jit, static_argnums=(0, 4, 6, 7))
def _fast_or_gen(kind, p, q, where, ax, alpha, logits, fixed):
    """:func:`_fast_or_general` after the mask. Jitted at module level (kind, axis and logits
    static): outside jit the cond, made of new lambdas at each call, was compiled again at each
    call (alpha_divergence at a general order: 220 ms an eager call, 175 of them compiling),
    and the loops ran op by op (6.6 ms)."""
    p, q = _zeroed(p, q, where, -jnp.inf if logits else 0)  # masked logits: -inf
    if fixed is not None:
        alpha = jnp.asarray(fixed, p.dtype)
    return _fast_or_general(p, q, alpha, ax, kind, logits, fixed)


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
    smooth in α across them. An α given as a Python or NumPy number of ½, 2 or −1 takes the
    per-term forms :math:`2(\sqrt{p_i} - \sqrt{q_i})^2`, :math:`(p_i - q_i)^2 / (2 q_i)` and
    :math:`(q_i - p_i)^2 / (2 p_i)` (Hellinger's and Pearson's, the same values, zero cases and
    derivatives, in a tenth of the time); one in (10⁻⁶, 1 − 10⁻⁶) adds the one-sided entries in
    the same pass over memory as the others (a traced α takes a second pass for them).

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
    special = _ALPHA_CLOSED.get(float(alpha)) if _static_real(alpha) else None
    if special is not None:
        return _run("alpha_divergence", special, p, q, axis, where)
    body = _inside(alpha, _alpha, _alpha_inside)
    return _run("alpha_divergence", body, p, q, axis, where, alpha=alpha)


def _static_real(x) -> bool:
    return (isinstance(x, (int, float, np.integer, np.floating))
            and not isinstance(x, (bool, np.bool_)))


def _flat_at_inf(v):
    """``v``, with a zero derivative where it is infinite (as the general path's)."""
    return jnp.where(jnp.isfinite(v), v, jax.lax.stop_gradient(v))


# alpha given as a Python or NumPy number at 1/2, 2 or -1: the positive-measure terms are
# Hellinger's and Pearson's, per entry (same zero cases, exact for nearly equal entries), with
# their closed-form derivatives: 2 (sqrt p - sqrt q)^2, (p - q)^2 / (2 q), (q - p)^2 / (2 p).
# The general path at these alphas took 8-15x the time of the one-line forms.
_ALPHA_CLOSED = {
    0.5: lambda p, q, where, ax, *_: 2 * jnp.sum(_hellinger_term(*_zeroed(p, q, where)), ax),
    2.0: lambda p, q, where, ax, *_: _flat_at_inf(
        jnp.sum(_pearson_term(*_zeroed(p, q, where)), ax)),
    -1.0: lambda p, q, where, ax, *_: _flat_at_inf(
        jnp.sum(_pearson_term(*_zeroed(q, p, where)), ax)),
}


@jax.custom_jvp
def _pearson_term(p, q):
    """(p - q)^2 / (2 q), the alpha = 2 term (+inf at q = 0 < p, 0 at p = q = 0); the 2 as
    ``l + l``, no constant shared with the JVP's (below)."""
    d = p - q
    lq = lifted(q, p)
    return d * (d / (lq + lq))


def _pearson_term_jvp(primals, tangents):
    # alpha = 2 of _alpha_grads: r dp - r (r + 2) / 2 dq with r = p / q - 1 where both are
    # > 0; 1/2 dq at q > 0 = p, 0 dp there (the zero-mass convention); 0 where q = 0.
    # Under grad the value is needed too (_flat_at_inf's zero rows): it is computed from its
    # own copy of p and q as well, and shares no constant with the coefficients. XLA CPU had
    # written p - q, r and two broadcast constants out as full arrays for them to share (13 ms
    # against 3.3 at (4096, 1024)).
    def in_p(t, p, q):
        return jnp.where(p > 0, _pearson_ratio(p, q), 0) * t

    def in_q(t, p, q):
        r = _pearson_ratio(p, q)
        return -_times(0.5 * r * (r + 2), t)

    value = _pearson_term(*jax.lax.optimization_barrier(primals))
    return value, per_tangent(primals, tangents, (in_p, in_q))


def _pearson_ratio(p, q):
    """p / q - 1 where q > 0, else 0."""
    Q = q > 0
    return jnp.where(Q, ratio(p - q, jnp.where(Q, q, 1)), 0)


_pearson_term.defjvp(_pearson_term_jvp, symbolic_zeros=True)


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
    body = _inside(alpha, _alpha, _alpha_inside)
    return _run("alpha_divergence_with_logits", body, logits_p, logits_q, axis, where,
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
    :func:`alpha_divergence`): exact at α = 1, smooth across it. An α given as a Python or
    NumPy 2 or ½ sums :math:`M - \sum_i p_i` term by term, as :math:`\sum_i p_i (p_i - q_i) /
    q_i` or :math:`\sum_i \sqrt{p_i} (q_i - p_i) / (\sqrt{p_i} + \sqrt{q_i})` (the same
    values and derivatives, in a third of the time).

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
    body = _inside(alpha, _renyi, _renyi_inside)
    if _static_real(alpha) and float(alpha) in (2, 0.5):  # _renyi2_fast, _renyi_half_fast
        body = _renyi2 if float(alpha) == 2 else _renyi_half
    return _run("renyi_divergence", body, p, q, axis, where, base, alpha)


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
    body = _inside(alpha, _renyi, _renyi_inside)
    return _run("renyi_divergence_with_logits", body, logits_p, logits_q, axis, where, base,
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


def _zeroed(p, q, where, fill=0):
    """p and q broadcast together, with the entries ``where`` drops set to ``fill`` (0: a 0, 0
    entry adds nothing to the per-entry sums and gets zero derivatives; -inf for logits)."""
    p, q = jnp.broadcast_arrays(p, q)
    if where is None:
        return p, q
    return jnp.where(where, p, fill), jnp.where(where, q, fill)


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
    h2 = 0.5 * jnp.sum(_hellinger_term(*_zeroed(p, q, where)), axis=ax)
    pos = _pos(h2)
    return jnp.where(pos, jnp.sqrt(safe(pos, h2)), 0)


@jax.custom_jvp
def _hellinger_term(p, q):
    """(sqrt p - sqrt q)^2 as ((p - q) / (sqrt p + sqrt q))^2: no cancellation where p ~ q, and
    no select (the denominator is 0 only at p = q = 0, where it is lifted)."""
    d = (p - q) / jnp.maximum(jnp.sqrt(p) + jnp.sqrt(q), jnp.finfo(p.dtype).tiny)
    return d * d


def _hellinger_term_jvp(primals, tangents):
    # d/dp (sqrt p - sqrt q)^2 = 1 - sqrt(q / p), taken as 0 at p = 0 (where it is -inf or
    # undefined); mirrored in q. Elementwise: double wheres cost nothing here on XLA CPU.
    def in_p(t, p, q):
        P, Q = p > 0, q > 0
        rp, rq = jnp.sqrt(jnp.where(P, p, 1)), jnp.sqrt(jnp.where(Q, q, 1))
        return jnp.where(P, 1 - ratio(jnp.where(Q, rq, 0), rp), 0) * t

    return _hellinger_term(*primals), per_tangent(
        primals, tangents, (in_p, lambda t, p, q: in_p(t, q, p)))


_hellinger_term.defjvp(_hellinger_term_jvp, symbolic_zeros=True)


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
    return jnp.sum(_chi_square_term(*_zeroed(p, q, where)), axis=ax)


@jax.custom_jvp
def _chi_square_term(p, q):
    """(p - q)^2 / q: +inf at q = 0 < p, 0 at p = q = 0 (the denominator lifted), no select."""
    d = p - q
    return d * (d / lifted(q, p))


def _chi_square_term_jvp(primals, tangents):
    # With r = (p - q) / q: 2 r dp - r (r + 2) dq where q > 0 (no q^-2 formed: finite second
    # derivatives at tiny q), 0 where q = 0 (_pearson_ratio's r).
    def in_q(t, p, q):
        r = _pearson_ratio(p, q)
        return -_times(r * (r + 2), t)

    return _chi_square_term(*primals), per_tangent(
        primals, tangents, (lambda t, p, q: 2 * _pearson_ratio(p, q) * t, in_q))


_chi_square_term.defjvp(_chi_square_term_jvp, symbolic_zeros=True)


def _times(c, t):
    """``c * t`` with the coefficient capped at the largest float: where it overflows (q/p past
    ~1e19 in float32) a zero tangent stays 0, not inf * 0 = NaN (jvp, jacfwd), and a unit
    tangent gives the largest float instead of inf. Linear in ``t``."""
    return jnp.clip(c, -jnp.finfo(c.dtype).max, jnp.finfo(c.dtype).max) * t


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


def _jeffreys(p, q, where, ax, *_):  # every term >= 0
    return guarded_sum(_fast_jeffreys_term, _jeffreys_term, ax, *_zeroed(p, q, where))


def _fast_jeffreys_term(p, q):
    """:func:`_jeffreys_term` where |p - q| / min(p, q) is finite, +inf or NaN elsewhere (then
    :func:`guarded_sum` redoes the row with it): no second logarithm and quotient for the
    ratios past the float range (as :func:`jaxdiv._numerics.fast_kl_term`)."""
    a = jnp.abs(p - q)
    # the largest float where p = q = 0: then 0
    lo = lifted(jnp.minimum(p, q), jnp.maximum(p, q), jnp.finfo(a.dtype).max)
    return a * jnp.log1p(a / lo)


@jax.custom_jvp
def _jeffreys_term(p, q):
    """(p - q) log(p / q) = |p - q| |log(p / q)|, the log-ratio formed directly (log1p of the
    relative difference, finite past the float range: :func:`abs_log_ratio`); +inf where one
    of p, q is 0 and the other is not, 0 where both are. No select, no sign."""
    a = jnp.abs(p - q)
    return a * abs_log_ratio(a, jnp.minimum(p, q), jnp.maximum(p, q))


def _jeffreys_term_jvp(primals, tangents):
    # log(p/q) + 1 - q/p and -log(p/q) + 1 - p/q where both are > 0, 0 elsewhere (the value
    # is +inf or 0 there). The log of the quotient: the O(1) coefficients need no accurate
    # log-ratio; the quotients through `ratio` keep every derivative order finite.
    def parts(p, q):
        both = (p > 0) & (q > 0)
        sp, sq = jnp.where(both, p, 1), jnp.where(both, q, 1)
        r = ratio(sp, sq)
        return both, sp, sq, r, jnp.log(r)

    def in_p(t, p, q):
        both, sp, sq, _, lr = parts(p, q)
        return jnp.where(both, lr + 1 - ratio(sq, sp), 0) * t

    def in_q(t, p, q):
        both, _, _, r, lr = parts(p, q)
        return jnp.where(both, 1 - lr - r, 0) * t

    return _jeffreys_term(*primals), per_tangent(primals, tangents, (in_p, in_q))


_jeffreys_term.defjvp(_jeffreys_term_jvp, symbolic_zeros=True)
