r"""Distillation: a student's softened distribution fitted to a teacher's, per example.

The teacher's distribution changes from example to example, so the loss is a KL, not a
cross-entropy. :func:`distillation_loss` takes logits and reuses
:func:`jaxdiv.kl_divergence_with_logits`; for a hard-label term next to it use
``optax.softmax_cross_entropy_with_integer_labels``. :func:`linear_distillation_loss` takes the
hidden states and output heads of a language model and never materialises the ``[tokens,
vocabulary]`` logits: it works chunk by chunk over the tokens, value and gradient.
float16/bfloat16 inputs are computed in float32 and the result is cast back.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import checkify
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import compute_dtype, upcast
from jaxdiv.discrete import _log_softmax, _masked, kl_divergence_with_logits

__all__ = ["distillation_loss", "linear_distillation_loss"]


def _infinite_where(p_only: jax.Array, value: jax.Array, axis: int) -> jax.Array:
    """``value``, or +inf where some entry has p > 0 = q (KL and cross-entropy diverge)."""
    return jnp.where(jnp.any(p_only, axis=axis), jnp.inf, value)


def _temperature(fn: str, temperature) -> None:
    """A concrete temperature must be a finite real scalar > 0 (traced ones: under checked)."""
    if isinstance(temperature, (str, bytes)) or (
            not isinstance(temperature, jax.core.Tracer)
            and not np.issubdtype(np.asarray(temperature).dtype, np.number)):
        raise TypeError(f"{fn}: temperature must be a real scalar, got "
                        f"{type(temperature).__name__}")
    C.static_scalar(fn, "temperature", temperature, lambda t: bool(0 < t < np.inf),
                    "> 0 and finite (T -> inf is the logit-matching limit: see the docstring)")


def distillation_loss(student_logits: ArrayLike, teacher_logits: ArrayLike, *,
                      temperature: float | ArrayLike = 1.0, axis: int = -1,
                      where: ArrayLike | None = None) -> jax.Array:
    r"""Knowledge-distillation loss: the temperature-softened KL from teacher to student.

    .. math:: L = T^2 \, \mathrm{KL}\big(\mathrm{softmax}(z_t / T) \,\big\|\,
       \mathrm{softmax}(z_s / T)\big).

    Why :math:`T^2`: the gradient in the student logits is
    :math:`T\,(\mathrm{softmax}(z_s/T) - \mathrm{softmax}(z_t/T))`, which shrinks like
    :math:`1/T^2` for large T (the soft targets differ by :math:`O(1/T)`, times the :math:`1/T`
    of the chain rule). Multiplying by :math:`T^2` keeps the gradient magnitudes comparable
    across temperatures, so the weight of this term against a hard-label cross-entropy need
    not be retuned when T changes (Hinton et al. 2015, Sec. 2). At :math:`T = 1` this is
    :func:`jaxdiv.kl_divergence_with_logits` ``(teacher_logits, student_logits)``: the
    cross-entropy to the teacher minus the teacher's entropy, with the same student gradient as
    ``optax.softmax_cross_entropy(student_logits, softmax(teacher_logits))``.

    Gradients flow into both arguments; for a fixed teacher pass
    ``jax.lax.stop_gradient(teacher_logits)`` (or differentiate in the student only). For the
    usual mixture with a hard-label term add
    ``optax.softmax_cross_entropy_with_integer_labels(student_logits, labels)``.

    At :math:`T \to \infty` the loss tends to
    :math:`\tfrac{1}{2n} \sum_i (\delta_i - \bar\delta)^2`, :math:`\delta = z_t - z_s`, over the
    :math:`n` classes: matching the centred logits (Hinton et al. 2015, Sec. 2.1). An infinite
    :math:`T` is rejected (its softmaxes are uniform and the product :math:`T^2 \cdot 0` is
    undefined); compute that limit directly if it is what you want.

    Args:
      student_logits: student logits along ``axis``, shape ``[..., n]``.
      teacher_logits: teacher logits, broadcast-compatible with ``student_logits``.
      temperature: scalar :math:`T > 0` (may be traced, e.g. under ``vmap``; a concrete value
        :math:`\le 0`, infinite or NaN raises ValueError, a string TypeError; a traced one is
        checked under :func:`jaxdiv.checked`).
      axis: the class axis (static under jit).
      where: boolean mask; ``False`` classes are left out of both softmaxes and the sum.

    Returns:
      The loss per example, with ``axis`` reduced.

    References:
      Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, NIPS Deep
      Learning Workshop, 2015 (arXiv:1503.02531).

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import distillation_loss
      >>> teacher = jnp.array([[4.0, 1.0, -2.0], [0.0, 2.0, 1.0]])
      >>> student = jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
      >>> print(np.asarray(distillation_loss(student, teacher)).round(4))  # per example
      [0.2526 0.1196]
      >>> print(np.asarray(distillation_loss(student, teacher, temperature=4.0)).round(4))
      [1.1274 0.1198]
      >>> print(np.asarray(distillation_loss(teacher, teacher)).round(4))
      [0. 0.]
    """
    fn = "distillation_loss"
    zs, zt = C.check_pair(fn, student_logits, teacher_logits, axis,
                          ("student_logits", "teacher_logits"))
    _temperature(fn, temperature)
    where = C.check_where(fn, where, jnp.broadcast_shapes(zs.shape, zt.shape))
    dtype, (zs, zt) = upcast(zs, zt)
    t = jnp.asarray(temperature, zs.dtype)
    C.check_positive(fn, "temperature", t)
    C.check_finite(fn, "temperature", t)
    kl = kl_divergence_with_logits(zt / t, zs / t, axis=axis, where=where)
    return (t * t * kl).astype(dtype)


# ---------------------------------------------------------------------------------------------
# linear_distillation_loss: chunked over tokens, value and gradient.

_DIVERGENCES = ("forward_kl", "reverse_kl", "jsd", "tvd")
_REDUCTIONS = ("none", "sum", "mean")
# 1/k with alternating signs, k = 17, ..., 2: u - log1p(u) = u^2 sum_k (-1)^k u^(k-2) / k.
_PHI = tuple((-1.0) ** k / k for k in range(17, 1, -1))


class _Config(NamedTuple):
    divergence: str
    reduction: str
    chunk: int
    unit_temperature: bool  # T is the Python number 1: skip the division and reuse the softmax
    labels: bool
    dtypes: tuple  # of the student's hidden, head and bias (None without a bias)


def _side(gamma, rest, x, y, a):
    r"""One side of the generalised JSD, stably: returns ``(gamma * term, lam)``.

    With :math:`m = \gamma y + (1 - \gamma) x`, ``rest`` :math:`= 1 - \gamma` (passed, not
    formed: :math:`1 - \gamma` rounds away a small β) and :math:`a = \log y - \log x`:
    :math:`\lambda = \log(m / x) = \log(1 + \gamma(e^a - 1))` and the term
    :math:`x\,\varphi(\gamma(y/x - 1))`, :math:`\varphi(u) = u - \log(1 + u) \ge 0`, summing to
    :math:`\gamma \mathrm{KL}(x \| m)` (the :math:`u` parts sum to 0). :math:`\varphi` by its
    series for :math:`|u| < 0.1`, where :math:`u - \log(1 + u)` would cancel; :math:`\lambda` as
    ``log1p(u)`` for :math:`u \ge -1/2`, :math:`a \le 60`, else as
    :math:`\operatorname{logaddexp}(\log\gamma + a, \log(1 - \gamma))` (then
    :math:`\lambda \le -\log 2` or large): above, :math:`e^a` would overflow; below,
    :math:`1 + u` cancels (:math:`\gamma \to 1`) or :math:`e^a` underflows (:math:`\lambda =
    a` exactly at :math:`\gamma = 1`, the KL limit, not :math:`\log 0`).
    """
    u = gamma * jnp.expm1(jnp.minimum(a, 60.0))
    lam = jnp.where((a <= 60.0) & (u >= -0.5), jnp.log1p(jnp.maximum(u, -0.5)),
                    jnp.logaddexp(jnp.log(gamma) + a, jnp.log(rest)))
    small = jnp.abs(u) < 0.1
    us = jnp.where(small, u, 0.0)
    poly = jnp.zeros_like(us)
    for c in _PHI:
        poly = poly * us + c
    return jnp.where(small, x * poly * us * us, gamma * (y - x) - x * lam), lam


def _divergence(div, zt, zs, vmask, beta):
    """Per-token divergence D(p || q), p = softmax(zt), q = softmax(zs), and ``w`` with
    dD/dzs = w - q sum(w); and (log q, q) for reuse."""
    logp, p, sp = _log_softmax(zt, -1, vmask)
    logq, q, sq = _log_softmax(zs, -1, vmask)
    if div == "forward_kl":
        value = _infinite_where(sp & ~sq, jnp.sum(p * (logp - logq), axis=-1), -1)
        return value, -p, logq, q
    if div == "reverse_kl":
        w = q * (logq - logp)
        return _infinite_where(sq & ~sp, jnp.sum(w, axis=-1), -1), w, logq, q
    if div == "tvd":
        return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1), 0.5 * q * jnp.sign(q - p), logq, q
    b, b1 = beta, 1 - beta  # jsd: KL(q || m) / beta + KL(p || m) / (1 - beta)
    ta, lam = _side(b, b1, q, p, logp - logq)
    tb, _ = _side(b1, b, p, q, logq - logp)
    safe_b, safe_b1 = jnp.where(b > 0, b, 1), jnp.where(b1 > 0, b1, 1)
    value = jnp.sum(jnp.where(b > 0, ta / safe_b, 0) + jnp.where(b1 > 0, tb / safe_b1, 0), -1)
    w = jnp.where(b > 0, -q * lam / safe_b, q - p)  # q dD/dq = q log(q / m) / beta
    return value, w, logq, q


def _chunk(cfg, zs, zt, labels, vmask, t, beta, lw):
    """Per-token loss [C] and its gradient in the student's raw logits [C, V]."""
    if cfg.unit_temperature:
        value, w, logq, q = _divergence(cfg.divergence, zt, zs, vmask, beta)
        grad = w - q * jnp.sum(w, axis=-1, keepdims=True)
    else:
        value, w, _, qt = _divergence(cfg.divergence, zt / t, zs / t, vmask, beta)
        value, grad = t * t * value, t * (w - qt * jnp.sum(w, axis=-1, keepdims=True))
        if cfg.labels:
            logq, q, _ = _log_softmax(zs, -1, vmask)
    if cfg.labels:
        onehot = lax.broadcasted_iota(labels.dtype, zs.shape, 1) == labels[:, None]
        inside = (labels >= 0) & (labels < zs.shape[-1])  # outside: NaN, as a gather's fill
        ce = jnp.where(inside, -jnp.sum(jnp.where(onehot, logq, 0), axis=-1), jnp.nan)
        # a label off the student's support (-inf logit, or masked): -log 0 = +inf, not the
        # log-softmax's finite stand-in (1.15e18); no term at all at label_weight 0
        off = onehot & (_masked(zs, vmask) == -jnp.inf)
        ce = lw * _infinite_where(off, ce, -1)
        value, grad = value + jnp.where(lw == 0, 0, ce), grad + lw * (q - onehot)
    return value, grad


def _token_shards(h):
    """How many ways the token axis of ``h`` is split over Explicit mesh axes (1 otherwise)."""
    sharding = jax.typeof(h).sharding
    spec, mesh = getattr(sharding, "spec", None), getattr(sharding, "mesh", None)
    if not spec or spec[0] is None or mesh is None:
        return 1
    names = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
    return math.prod(mesh.shape[name] for name in names)


def _sharding(x, other):
    """``x``'s sharding, on ``other``'s mesh where ``x`` has none (a head from outside the mesh:
    its empty mesh made the contraction over sharded tokens ambiguous, and JAX raised)."""
    sharding = jax.typeof(x).sharding
    mesh = jax.typeof(other).sharding.mesh
    return sharding.update(mesh=mesh) if not sharding.mesh.axis_names else sharding


def _dot(a, b, contract, dtype, out_sharding=None):
    return lax.dot_general(a, b, (contract, ((), ())), precision=lax.Precision.HIGHEST,
                           preferred_element_type=dtype, out_sharding=out_sharding)


def _assemble(stacked, n, c, sharding):
    """``[chunks, C, ...]`` outputs back to ``[N, ...]`` (with the tokens' ``sharding``): the
    last chunk was clamped to end at row N, so only its last ``N - (chunks - 1) C`` rows are
    new."""
    k, rest = stacked.shape[0], stacked.shape[2:]
    sharding = sharding.update(spec=jax.sharding.PartitionSpec(
        *sharding.spec[:1], *sharding.spec[1:1 + len(rest)]))
    if k * c == n:
        return lax.reshape(stacked, (n, *rest), out_sharding=sharding)
    head = lax.reshape(stacked[:-1], ((k - 1) * c, *rest), out_sharding=sharding)
    return jnp.concatenate([head, stacked[-1, c - (n - (k - 1) * c):]], axis=0)


def _loop(cfg, student, teacher, aux, scale):
    """Runs the chunks: per-token losses, and with ``scale`` (per token, or a scalar) the
    gradients (dh, dW, db) of sum(scale * loss)."""
    h, w, b = student
    mask, labels, vmask, t, beta, lw = aux
    n, c = h.shape[0], cfg.chunk
    cdt = compute_dtype(jnp.result_type(h.dtype, w.dtype))
    w32 = w.astype(cdt)
    want = scale is not None

    def logits(hc, head, bias):
        z = _dot(hc, head, ((1,), (0,)), cdt)
        return z if bias is None else z + bias.astype(cdt)

    def body(carry, j):
        start = jnp.minimum(j * c, n - c)
        new = start + jnp.arange(c) >= j * c  # rows the clamped last chunk repeats are out
        sl = functools.partial(lax.dynamic_slice_in_dim, start_index=start, slice_size=c)
        hc = sl(h)
        zs = logits(hc, w, b)
        if len(teacher) == 1:
            zt = sl(teacher[0]).astype(cdt)
        else:
            zt = logits(sl(teacher[0]), teacher[1], teacher[2])
        valid = new if mask is None else new & sl(mask)
        loss, grad = _chunk(cfg, zs, zt, None if labels is None else sl(labels), vmask, t,
                            beta, lw)
        loss = jnp.where(valid, loss, 0)
        if not want:
            return carry, loss
        s = scale if jnp.ndim(scale) == 0 else sl(scale)
        grad = jnp.where(valid[:, None], grad * jnp.reshape(s, (-1, 1)).astype(cdt), 0)
        hc = hc.astype(cdt)
        dw = carry[0] + _dot(hc, grad, ((0,), (0,)), cdt, _sharding(w32, hc))
        db = carry[1] + jnp.sum(grad, axis=0)
        dh = _dot(grad, w32, ((1,), (1,)), cdt, _sharding(hc, w32))
        return (dw, db), (loss, dh)

    steps = jnp.arange(-(-n // c))
    tokens = jax.typeof(h).sharding
    if not want:
        return _assemble(lax.scan(body, None, steps)[1], n, c, tokens), None
    init = (jnp.zeros_like(w32), jnp.zeros_like(w32[0]))  # keep the head's sharding
    (dw, db), (loss, dh) = lax.scan(body, init, steps)
    return _assemble(loss, n, c, tokens), (_assemble(dh, n, c, tokens), dw, db)


def _count(aux, n, dtype):
    return jnp.asarray(n, dtype) if aux[0] is None else jnp.sum(aux[0], dtype=dtype)


def _reduce(cfg, loss, aux):
    if cfg.reduction == "none":
        return loss
    total = jnp.sum(loss)
    if cfg.reduction == "sum":
        return total
    return total / jnp.maximum(_count(aux, loss.shape[0], loss.dtype), 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunked(cfg, student, teacher, aux):
    return _reduce(cfg, _loop(cfg, student, teacher, aux, None)[0], aux)


def _chunked_fwd(cfg, student, teacher, aux):
    if cfg.reduction == "none":  # the per-token cotangent comes later: recompute in _bwd
        return _chunked(cfg, student, teacher, aux), (student, teacher, aux)
    h, w, _ = student
    cdt = compute_dtype(jnp.result_type(h.dtype, w.dtype))
    scale = (1.0 if cfg.reduction == "sum"
             else 1 / jnp.maximum(_count(aux, h.shape[0], cdt), 1))
    loss, grads = _loop(cfg, student, teacher, aux, scale)
    return _reduce(cfg, loss, aux), grads


def _chunked_bwd(cfg, res, g):
    if cfg.reduction == "none":
        student, teacher, aux = res
        grads = _loop(cfg, student, teacher, aux, g)[1]
    else:
        grads = tuple(g.astype(x.dtype) * x for x in res)
    out = tuple(None if d is None else x.astype(d) for x, d in zip(grads, cfg.dtypes, strict=True))
    return out, None, None


_chunked.defvjp(_chunked_fwd, _chunked_bwd)

# Jitted at module level, the static config the cache key: outside jit, the scan over the
# chunks (a new closure at each call) was compiled again at each call (an eager call took
# 140 ms, 124 of them compiling).
_chunked_jit = jax.jit(_chunked, static_argnums=0)


def _matrix(fn, name, x, ndim):
    x = C.as_float(fn, name, x)
    if x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must have {ndim} dimension(s), got shape {x.shape}")
    return x


def _vector(fn, name, x, n, kind):
    """A boolean (``kind="bool"``) or integer vector of length ``n``, or None."""
    if x is None:
        return None
    x = jnp.asarray(x)
    ok = x.dtype == jnp.bool_ if kind == "bool" else jnp.issubdtype(x.dtype, jnp.integer)
    if not ok:
        raise TypeError(f"{fn}: {name} must be a {'boolean' if kind == 'bool' else 'integer'} "
                        f"array, got dtype {x.dtype}")
    if x.shape != (n,):
        raise ValueError(f"{fn}: {name} has shape {x.shape}; expected ({n},)")
    return x


def linear_distillation_loss(
        student_hidden: ArrayLike, student_head: ArrayLike, *,
        teacher_logits: ArrayLike | None = None, teacher_hidden: ArrayLike | None = None,
        teacher_head: ArrayLike | None = None, student_bias: ArrayLike | None = None,
        teacher_bias: ArrayLike | None = None, divergence: str = "forward_kl",
        beta: float | ArrayLike = 0.5, temperature: float | ArrayLike = 1.0,
        token_mask: ArrayLike | None = None, labels: ArrayLike | None = None,
        label_weight: float | ArrayLike = 0.0, vocab_mask: ArrayLike | None = None,
        reduction: str = "mean", chunk_size: int | None = None) -> jax.Array:
    r"""Distillation loss on a language model's output layer, without materialising its logits.

    The student's logits are :math:`z_s = h W + b` (``student_hidden @ student_head +
    student_bias``), the teacher's :math:`z_t` are given, or are ``teacher_hidden @ teacher_head
    + teacher_bias``. Per token, with :math:`p = \mathrm{softmax}(z_t / T)` (teacher) and
    :math:`q = \mathrm{softmax}(z_s / T)` (student),

    .. math:: \ell = T^2 D(p, q) + \lambda\, \big(-\log \mathrm{softmax}(z_s)_{y}\big),

    :math:`\lambda` = ``label_weight``, :math:`y` = ``labels``, and ``divergence`` :math:`D`:

    - ``"forward_kl"``: :math:`\mathrm{KL}(p \| q)` (mass-covering);
    - ``"reverse_kl"``: :math:`\mathrm{KL}(q \| p)` (mode-seeking);
    - ``"tvd"``: :math:`\tfrac12 \sum_i |p_i - q_i|`;
    - ``"jsd"``: the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024),
      normalised so that it is continuous in :math:`\beta \in [0, 1]` with the two KLs at
      the ends:

      .. math:: D_\beta(p, q) = \frac{\beta\,\mathrm{KL}(p \| m)
         + (1 - \beta)\,\mathrm{KL}(q \| m)}{\beta (1 - \beta)}, \qquad
         m = \beta p + (1 - \beta) q.

      The numerator, :math:`\mathrm{JSD}_\beta`, is the form other libraries use; it tends to 0
      at both ends (at rate :math:`\beta\,\mathrm{KL}(p\|q)` as :math:`\beta \to 0` and
      :math:`(1-\beta)\,\mathrm{KL}(q\|p)` as :math:`\beta \to 1`, the other term being
      second order), so code that switches to a KL at :math:`\beta \in \{0, 1\}` jumps there.
      Divided by :math:`\beta(1-\beta)`: :math:`D_0 = \mathrm{KL}(p \| q)` (forward),
      :math:`D_1 = \mathrm{KL}(q \| p)` (reverse), continuously, and
      :math:`D_{1/2} = 4\,\mathrm{JS}(p, q)`, four times the Jensen-Shannon divergence
      (:func:`jaxdiv.js_divergence_with_logits`). Computed as
      :math:`\sum_i q_i \varphi(\beta(p_i/q_i - 1))/\beta + p_i
      \varphi((1-\beta)(q_i/p_i - 1))/(1-\beta)`, :math:`\varphi(u) = u - \log(1 + u)`, so
      that it stays accurate near the ends (at :math:`\beta = 10^{-6}` the direct form loses
      every digit in float32).

    The hard-label term uses the student's logits at :math:`T = 1`. ``token_mask`` drops
    tokens (padding, prompt): they contribute 0 and get zero gradient; ``reduction="mean"``
    divides by the number of kept tokens (a batch with none gives 0, not NaN). ``vocab_mask``
    drops vocabulary entries (padding of the vocabulary) from both softmaxes; a bias of
    :math:`-\infty` does the same for one model. Where :math:`p_i > 0 = q_i` forward KL is
    :math:`+\infty`, and reverse KL where :math:`q_i > 0 = p_i`, as in
    :func:`jaxdiv.kl_divergence_with_logits`.

    **Memory.** The tokens are processed ``chunk_size`` at a time (``lax.scan``); a
    ``custom_vjp`` computes each chunk's gradient in the student's logits as soon as its loss,
    and folds it into the gradients of the hidden states, head and bias, so no
    ``[N, V]`` array (logits, probabilities or gradients) is ever alive: peak temporary memory
    is :math:`O(\text{chunk} \cdot V + N H + H V)`. For ``reduction="sum"`` or ``"mean"`` the
    gradient is computed in the forward pass of ``jax.grad`` / ``jax.value_and_grad`` (one pass,
    as Liger-Kernel does); for ``"none"`` the backward pass recomputes each chunk's logits,
    since the per-token cotangents arrive only then. Reverse mode only (no ``jax.jvp``).

    **Precision.** Every matrix product runs at ``Precision.HIGHEST`` with float32 accumulation
    (``preferred_element_type``); for bfloat16/float16 inputs the log-softmax, the divergence
    and all sums are float32, the gradients are accumulated in float32 and cast back, and the
    result has the student's dtype.

    **Gradients** flow into ``student_hidden``, ``student_head`` and ``student_bias``. The
    teacher is a constant: its inputs are wrapped in ``jax.lax.stop_gradient`` and get zero
    gradient, as do ``temperature``, ``beta`` and ``label_weight``.

    **Sharding.** Tokens sharded over a data axis and the heads' vocabulary over a model axis
    (Explicit axes) give the same values and gradients as one device; the log-softmax
    reductions over a sharded vocabulary become all-reduces. ``chunk_size`` is rounded up to a
    multiple of the data axes' size, so that each chunk splits evenly over them.

    Args:
      student_hidden: student hidden states, shape ``[N, H]``.
      student_head: student output head, shape ``[H, V]``.
      teacher_logits: teacher logits, shape ``[N, V]``; or else give both of
      teacher_hidden: teacher hidden states, shape ``[N, H_t]``, and
      teacher_head: teacher output head, shape ``[H_t, V]``.
      student_bias: optional student output bias, shape ``[V]``.
      teacher_bias: optional teacher output bias, shape ``[V]`` (with ``teacher_head``).
      divergence: ``"forward_kl"``, ``"reverse_kl"``, ``"jsd"`` or ``"tvd"``.
      beta: :math:`\beta \in [0, 1]` of ``"jsd"`` (ignored otherwise).
      temperature: :math:`T > 0`, finite; may be traced (then checked under
        :func:`jaxdiv.checked`).
      token_mask: optional boolean ``[N]``; ``False`` tokens are left out.
      labels: optional integer ``[N]`` in ``[0, V)``: next-token labels for the hard-label term
        (outside the range that term is NaN, unless ``label_weight`` is 0, which leaves the
        term out; :func:`jaxdiv.checked` reports them). A label off the student's support (a
        -inf logit, or masked by ``vocab_mask``) gives +inf.
      label_weight: :math:`\lambda`, the weight of the hard-label cross-entropy.
      vocab_mask: optional boolean ``[V]``; ``False`` entries are left out of both softmaxes.
      reduction: ``"none"`` (per-token losses ``[N]``, 0 at masked tokens), ``"sum"``, or
        ``"mean"`` over the kept tokens.
      chunk_size: tokens per chunk (static). Default: :math:`\max(N H, 2^{22}) / V` rounded
        up to a multiple of 8: a chunk's logits are as large as the hidden states (Liger-Kernel's
        choice), and at least 16 MB in float32, so that the chunk's matrix products stay
        efficient (on a 2-core CPU, 16-token chunks at V = 32,768 took 1.7x the materialised
        time, 128-token chunks 0.94x).

    Returns:
      The loss: a scalar, or ``[N]`` with ``reduction="none"``, in the student's dtype.

    Raises:
      ValueError: at trace time, naming the argument: shapes that do not chain, the teacher
        given both ways or neither, :math:`\beta \notin [0, 1]`, a concrete :math:`T \le 0`,
        an unknown ``divergence`` or ``reduction``, ``chunk_size < 1``.

    References:
      Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, 2015
      (arXiv:1503.02531). Agarwal et al., On-Policy Distillation of Language Models: Learning
      from Self-Generated Mistakes (GKD), ICLR 2024. Gu et al., MiniLLM: Knowledge Distillation
      of Large Language Models, ICLR 2024. Hsu et al., Liger Kernel: Efficient Triton Kernels
      for LLM Training, 2024 (arXiv:2410.10989).

    Examples:
      >>> import jax, jaxdiv
      >>> from jaxdiv.losses import linear_distillation_loss
      >>> kh, kw, kt = jax.random.split(jax.random.key(0), 3)
      >>> h = jax.random.normal(kh, (6, 4), "float32")
      >>> w = jax.random.normal(kw, (4, 10), "float32")
      >>> zt = jax.random.normal(kt, (6, 10), "float32")
      >>> loss = linear_distillation_loss(h, w, teacher_logits=zt, chunk_size=4)
      >>> zs = jax.numpy.matmul(h, w, precision="highest")  # the materialised student logits
      >>> ref = jaxdiv.kl_divergence_with_logits(zt, zs).mean()
      >>> print(f"{float(loss):.4f} {float(ref):.4f}")
      2.4334 2.4334
      >>> jsd = linear_distillation_loss(h, w, teacher_logits=zt, divergence="jsd", beta=0.5)
      >>> print(f"{float(jsd):.4f}")  # 4 JS at beta = 1/2
      1.3203
      >>> print(f"{4 * float(jaxdiv.js_divergence_with_logits(zt, zs).mean()):.4f}")
      1.3203
      >>> g = jax.grad(lambda w: linear_distillation_loss(h, w, teacher_logits=zt))(w)
      >>> print(g.shape)
      (4, 10)
    """
    fn = "linear_distillation_loss"
    h = _matrix(fn, "student_hidden", student_hidden, 2)
    w = _matrix(fn, "student_head", student_head, 2)
    (n, hdim), v = h.shape, w.shape[1]
    if w.shape[0] != hdim:
        raise ValueError(f"{fn}: student_head has shape {w.shape} but student_hidden has shape "
                         f"{h.shape}; expected student_head of shape ({hdim}, V)")
    if n == 0 or v == 0:
        raise ValueError(f"{fn}: student_hidden {h.shape} and student_head {w.shape} need at "
                         f"least one token and one vocabulary entry")
    b = None if student_bias is None else _matrix(fn, "student_bias", student_bias, 1)
    if b is not None and b.shape != (v,):
        raise ValueError(f"{fn}: student_bias has shape {b.shape}; expected ({v},)")
    by_head = teacher_hidden is not None or teacher_head is not None
    if (teacher_logits is None) == (not by_head) or (by_head and (
            teacher_hidden is None or teacher_head is None)):
        raise ValueError(f"{fn}: give the teacher either as teacher_logits or as teacher_hidden "
                         f"and teacher_head, not both or neither")
    if teacher_logits is not None:
        zt = _matrix(fn, "teacher_logits", teacher_logits, 2)
        if zt.shape != (n, v):
            raise ValueError(f"{fn}: teacher_logits has shape {zt.shape}; expected ({n}, {v}) "
                             f"for student_hidden {h.shape} and student_head {w.shape}")
        if teacher_bias is not None:
            raise ValueError(f"{fn}: teacher_bias goes with teacher_head, not teacher_logits")
        teacher = (zt,)
    else:
        ht = _matrix(fn, "teacher_hidden", teacher_hidden, 2)
        wt = _matrix(fn, "teacher_head", teacher_head, 2)
        if ht.shape[0] != n:
            raise ValueError(f"{fn}: teacher_hidden has shape {ht.shape} but student_hidden "
                             f"has shape {h.shape}; their numbers of tokens N differ")
        if wt.shape != (ht.shape[1], v):
            raise ValueError(f"{fn}: teacher_head has shape {wt.shape}; expected "
                             f"({ht.shape[1]}, {v}) for teacher_hidden {ht.shape} and the "
                             f"student's vocabulary of {v}")
        bt = None if teacher_bias is None else _matrix(fn, "teacher_bias", teacher_bias, 1)
        if bt is not None and bt.shape != (v,):
            raise ValueError(f"{fn}: teacher_bias has shape {bt.shape}; expected ({v},)")
        teacher = (ht, wt, bt)
    teacher = jax.tree.map(lax.stop_gradient, teacher)  # the teacher is a constant
    if divergence not in _DIVERGENCES:
        raise ValueError(f"{fn}: divergence must be one of {_DIVERGENCES}, got {divergence!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if chunk_size is None:
        chunk_size = 8 * math.ceil(max(n * hdim, 2**22) / v / 8)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise ValueError(f"{fn}: chunk_size must be a static int >= 1, got {chunk_size!r}")
    elif chunk_size < 1:
        raise ValueError(f"{fn}: chunk_size must be >= 1, got {chunk_size}")
    for name, x in (("beta", beta), ("label_weight", label_weight)):
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{fn}: {name} must be a real scalar, got {type(x).__name__}")
    C.static_scalar(fn, "beta", beta, lambda x: bool(0 <= x <= 1), "in [0, 1]")
    C.static_scalar(fn, "label_weight", label_weight, lambda x: bool(np.isfinite(x)), "finite")
    _temperature(fn, temperature)
    mask = _vector(fn, "token_mask", token_mask, n, "bool")
    labels = _vector(fn, "labels", labels, n, "int")
    vmask = _vector(fn, "vocab_mask", vocab_mask, v, "bool")
    if labels is None and (isinstance(label_weight, jax.core.Tracer)
                           or np.asarray(label_weight) != 0):
        raise ValueError(f"{fn}: label_weight is set but labels is None")
    if labels is not None and C.checking():
        checkify.debug_check(jnp.all((labels >= 0) & (labels < v)),
                             f"{fn}: labels must lie in [0, {v}) (smallest {{lo}}, largest "
                             f"{{hi}})", lo=jnp.min(labels), hi=jnp.max(labels))
    dtype = jnp.result_type(h.dtype, w.dtype)
    cdt = compute_dtype(dtype)
    t = jnp.asarray(temperature, cdt)
    C.check_positive(fn, "temperature", t)
    C.check_finite(fn, "temperature", t)
    beta_, lw = jnp.asarray(beta, cdt), jnp.asarray(label_weight, cdt)
    if beta_.shape != () or lw.shape != ():
        raise ValueError(f"{fn}: beta and label_weight must be scalars")
    unit = not isinstance(temperature, jax.core.Tracer) and float(np.asarray(temperature)) == 1
    # Tokens on Explicit mesh axes: a chunk must split evenly over them (dynamic_slice of a
    # sharded dimension); n does, so a multiple of their size up to n is always possible.
    shards = _token_shards(h)
    chunk_size = shards * -(-int(chunk_size) // shards)
    cfg = _Config(divergence, reduction, int(min(chunk_size, n)), unit, labels is not None,
                  (h.dtype, w.dtype, None if b is None else b.dtype))
    out = _chunked_jit(cfg, (h, w, b), teacher, (mask, labels, vmask, t, beta_, lw))
    return out.astype(dtype)
