r"""Policy KL for reinforcement learning: exact, per-sample estimators, the KL penalty of RL
fine-tuning, adaptive coefficient.

float16/bfloat16 inputs are computed in float32 and the result is cast back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import expm1_minus_x, upcast
from jaxdiv.discrete import kl_divergence_with_logits

__all__ = ["adaptive_kl_coefficient", "approx_kl", "kl_penalty", "policy_kl"]

_ESTIMATORS = ("k1", "k2", "k3")
_GRADIENTS = ("none", "naive", "unbiased")
_AGGREGATIONS = ("token-mean", "sequence-mean-token-sum", "sequence-mean-token-mean")


@jax.custom_jvp
def _expm1_minus_x(x: jax.Array) -> jax.Array:
    r""":math:`e^x - 1 - x` with its limit :math:`+\infty` at :math:`x = +\infty` (where
    ``expm1(x) - x`` is ``inf - inf = NaN``); derivative :math:`e^x - 1`, itself
    differentiable (finite wherever the value is)."""
    return jnp.where(x == jnp.inf, jnp.inf, expm1_minus_x(x))


@_expm1_minus_x.defjvp
def _expm1_minus_x_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return _expm1_minus_x(x), jnp.expm1(x) * dx


def _estimate(estimator: str, log_r: jax.Array) -> jax.Array:
    """Schulman's k1, k2, k3 of the log-ratio, with their limits at infinite log-ratios."""
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r * log_r
    return _expm1_minus_x(log_r)


def _option(fn: str, name: str, value, options: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{fn}: {name} must be one of {', '.join(map(repr, options))}, got "
                         f"{value!r}")


def policy_kl(old_logits: ArrayLike, new_logits: ArrayLike, *, axis: int = -1,
              where: ArrayLike | None = None) -> jax.Array:
    r"""Exact KL between a behaviour policy and an updated policy, per state.

    .. math:: \mathrm{KL}(\pi_\mathrm{old} \,\|\, \pi_\mathrm{new})
       = \sum_a \pi_\mathrm{old}(a) \big(\log \pi_\mathrm{old}(a) - \log \pi_\mathrm{new}(a)\big).

    The direction PPO and TRPO constrain: the expectation is under the policy that collected
    the data. :func:`jaxdiv.kl_divergence_with_logits` with the policies' logits (or
    log-probabilities); use ``where`` as an action mask (invalid actions leave both softmaxes).

    Args:
      old_logits: logits of :math:`\pi_\mathrm{old}` along ``axis``, shape ``[..., n]``.
      new_logits: logits of :math:`\pi_\mathrm{new}`, broadcast-compatible with ``old_logits``.
      axis: the action axis (static under jit).
      where: boolean mask of valid actions.

    Returns:
      The KL per state, with ``axis`` reduced.

    References:
      Schulman et al., Trust Region Policy Optimization, ICML 2015.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import policy_kl
      >>> old = jnp.array([[1.0, 0.0, -1.0]])
      >>> print(np.asarray(policy_kl(old, old + jnp.array([0.0, 0.1, 0.2]))).round(6))
      [0.00218]
    """
    old, new = C.check_pair("policy_kl", old_logits, new_logits, axis,
                            ("old_logits", "new_logits"))
    where = C.check_where("policy_kl", where, jnp.broadcast_shapes(old.shape, new.shape))
    return kl_divergence_with_logits(old, new, axis=axis, where=where)


def approx_kl(log_ratio: ArrayLike, *, estimator: str = "k3") -> jax.Array:
    r"""Schulman's per-sample Monte Carlo estimates k1, k2, k3 of a policy KL.

    With :math:`r = \log \pi_\mathrm{new}(a) - \log \pi_\mathrm{old}(a)` for actions
    :math:`a \sim \pi_\mathrm{old}`:

    .. math:: k_1 = -r, \qquad k_2 = \tfrac12 r^2, \qquad k_3 = (e^{r} - 1) - r.

    Averaged over samples, :math:`k_1` and :math:`k_3` are unbiased (:math:`k_3` adds the
    zero-mean control variate :math:`e^r - 1`); :math:`k_1` has high variance and can be
    negative, :math:`k_3` is non-negative per sample with low variance for nearby policies;
    :math:`k_2` is biased, with bias of third order in the policy difference. :math:`k_3` is
    computed without cancellation (``expm1`` and a Taylor series near 0).

    Infinite log-ratios give each estimator's limit: :math:`k_1 = \mp\infty` at
    :math:`r = \pm\infty`, :math:`k_2 = k_3 = +\infty` at both. The derivatives
    (:math:`-1`, :math:`r`, :math:`e^r - 1`) are finite wherever the value is (:math:`k_3`'s
    is :math:`-1` at :math:`r = -\infty`). To penalise a policy with these estimators, with
    masks and the right gradient, use :func:`kl_penalty`.

    Args:
      log_ratio: :math:`r` per sampled action, any shape.
      estimator: ``"k1"``, ``"k2"`` or ``"k3"`` (static).

    Returns:
      The per-sample estimates, same shape as ``log_ratio``; the caller averages.

    References:
      Schulman, Approximating KL Divergence, http://joschu.net/blog/kl-approx.html, 2020.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import approx_kl
      >>> log_ratio = jnp.array([-0.1, 0.05, 0.2])
      >>> for k in ("k1", "k2", "k3"):
      ...     print(k, np.asarray(approx_kl(log_ratio, estimator=k)).round(4))
      k1 [ 0.1  -0.05 -0.2 ]
      k2 [0.005  0.0013 0.02  ]
      k3 [0.0048 0.0013 0.0214]
    """
    fn = "approx_kl"
    _option(fn, "estimator", estimator, _ESTIMATORS)
    r = C.as_float(fn, "log_ratio", log_ratio)
    dtype, (r,) = upcast(r)
    return _estimate(estimator, r).astype(dtype)



def kl_penalty(log_probs: ArrayLike, ref_log_probs: ArrayLike, *, mask: ArrayLike | None = None,
               estimator: str = "k3", gradient: str = "unbiased",
               aggregation: str = "token-mean") -> jax.Array:
    r"""KL penalty :math:`\mathrm{KL}(\pi \,\|\, \pi_\mathrm{ref})` of RL fine-tuning, from
    sampled tokens, with a chosen estimator, gradient and aggregation.

    For the token :math:`a_{bt}` sampled from the policy :math:`\pi` at position :math:`t` of
    sequence :math:`b`, with :math:`\ell = \log \pi(a_{bt})` (``log_probs``) and
    :math:`\ell_\mathrm{ref} = \log \pi_\mathrm{ref}(a_{bt})` (``ref_log_probs``), let
    :math:`\log r = \ell_\mathrm{ref} - \ell`. Schulman's per-token estimators are

    .. math:: k_1 = -\log r, \qquad k_2 = \tfrac12 (\log r)^2, \qquad
       k_3 = (r - 1) - \log r.

    **Values.** Under :math:`a \sim \pi`, :math:`\mathbb E[k_1] = \mathbb E[k_3] =
    \mathrm{KL}(\pi\|\pi_\mathrm{ref})` (:math:`k_3` adds :math:`r - 1`, of mean
    :math:`\sum_a \pi_\mathrm{ref}(a) - 1 = 0`); :math:`k_2` is biased by
    :math:`\mathbb E[\tfrac12 (\log r)^2] - \mathrm{KL}`, of third order in the difference of
    the policies (:math:`\mathrm{KL}/2` relative for two unit-variance Gaussians).
    :math:`k_1` can be negative and is noisy; :math:`k_2, k_3 \ge 0`.

    **Gradients** in the policy's parameters, tokens held fixed. The target is

    .. math:: \nabla \mathrm{KL}(\pi\|\pi_\mathrm{ref})
       = \sum_a \pi(a) \big(\log \pi(a) - \log \pi_\mathrm{ref}(a) + 1\big) \nabla \log \pi(a)
       = \mathbb E_\pi\big[-\log r \; \nabla \log \pi\big],

    since :math:`\mathbb E_\pi[\nabla \log \pi] = \nabla \sum_a \pi(a) = 0`.

    - ``gradient="none"``: :math:`\mathrm{sg}(k)`, no gradient: the value for logging or for
      reward shaping. In the reward, the policy gradient estimates
      :math:`\mathbb E[k \nabla \log \pi]`, which is :math:`\nabla \mathrm{KL}` for :math:`k_1`
      only; :math:`k_3` adds :math:`\mathbb E[(r - 1)\nabla\log\pi] = \sum_a
      \pi_\mathrm{ref}(a) \nabla \log \pi(a)`, and :math:`k_2` its own bias.
    - ``gradient="naive"``: the estimator differentiated as written.
      :math:`\nabla k_1 = \nabla \log \pi`, of mean 0: no signal, only noise.
      :math:`\nabla k_2 = \log r \, \nabla \log r = -\log r \, \nabla \log \pi`: unbiased.
      :math:`\nabla k_3 = (r - 1) \nabla \log r = (1 - r) \nabla \log \pi`, of mean
      :math:`-\sum_a \pi_\mathrm{ref}(a) \nabla \log \pi(a) = \nabla
      \mathrm{KL}(\pi_\mathrm{ref}\|\pi)`: the gradient of the *reverse* KL. It agrees with
      :math:`\nabla \mathrm{KL}(\pi\|\pi_\mathrm{ref})` to first order in the policies'
      difference and parts from it as they separate (a pitfall reported against several RL
      fine-tuning trainers).
    - ``gradient="unbiased"``: a surrogate whose gradient is an unbiased estimate of
      :math:`\nabla \mathrm{KL}(\pi\|\pi_\mathrm{ref})`, with the score-function term explicit
      (:math:`\mathrm{sg}` is ``stop_gradient``; :math:`\ell - \mathrm{sg}(\ell)` is 0 in value,
      :math:`\nabla\log\pi` in gradient). For :math:`k_1`:
      :math:`\mathrm{sg}(k_1)\,(1 + \ell - \mathrm{sg}(\ell))`, of gradient
      :math:`k_1 \nabla \log \pi = -\log r\,\nabla\log\pi`. For :math:`k_2`: as written (its
      naive gradient is already unbiased). For :math:`k_3`: importance-weighted,
      :math:`\rho\,k_3` with :math:`\rho = \pi / \mathrm{sg}(\pi) = e^{\ell - \mathrm{sg}(\ell)}`
      (value 1), whose gradient :math:`k_3 \nabla \log \pi + \nabla k_3 = (r - 1 - \log r
      + 1 - r) \nabla \log \pi = -\log r \, \nabla \log \pi` is the score-function plus
      pathwise gradient of :math:`\mathbb E_\pi[k_3] = \mathrm{KL}`. All three have the same
      per-token gradient :math:`-\log r\,\nabla\log\pi`, computed as
      :math:`\mathrm{sg}(k) + \mathrm{sg}(-\log r)(\ell - \mathrm{sg}(\ell))`: the value is
      exactly :math:`k` (logging is unchanged), and no cancellation between :math:`k_3 \approx r`
      and :math:`1 - r` at large :math:`r`.

    The gradients are unbiased for tokens sampled from the current :math:`\pi` (on-policy), per
    token: they estimate the gradient of :math:`\mathrm{KL}(\pi(\cdot|s)\|\pi_\mathrm{ref}
    (\cdot|s))` at the visited prefixes :math:`s`, held fixed. The gradient of the KL between
    whole sequences also carries the effect of each token on later prefixes (later log-ratios
    times earlier scores), which a per-token penalty in the loss leaves out (Tang & Munos
    2025); a :math:`k_1` reward summed into the returns keeps it. ``ref_log_probs`` is
    the frozen reference: it is wrapped in ``stop_gradient``.

    **Aggregation** with the boolean ``mask`` :math:`m_{bt}` (``True``: a generated token that
    counts) and :math:`\mathcal S = \{b : \sum_t m_{bt} > 0\}`, the sequences with a token:

    .. math::
       \text{token-mean:}\quad \frac{\sum_{b,t} m_{bt} k_{bt}}{\sum_{b,t} m_{bt}}, \qquad
       \text{sequence-mean-token-sum:}\quad \frac{1}{|\mathcal S|} \sum_{b \in \mathcal S}
       \sum_t m_{bt} k_{bt},

    .. math::
       \text{sequence-mean-token-mean:}\quad \frac{1}{|\mathcal S|} \sum_{b \in \mathcal S}
       \frac{\sum_t m_{bt} k_{bt}}{\sum_t m_{bt}}.

    These are different objectives: token-mean weights long sequences more; the sequence sum
    estimates the KL between whole sequences. A fully masked sequence contributes nothing (it
    is not in :math:`\mathcal S`); a fully masked (or empty) batch gives 0, with zero gradient.
    Averaging the results of micro-batches equals the value of their union only for the
    sequence means over equally many sequences in :math:`\mathcal S`; for token-mean weight
    each micro-batch by its number of tokens.

    **Infinite log-ratios** (a token :math:`\pi_\mathrm{ref}` cannot produce,
    :math:`\log r = -\infty`, or one :math:`\pi` cannot, :math:`+\infty`) give the estimator's
    limit: :math:`k_2 = k_3 = +\infty`, :math:`k_1 = \mp\infty` at :math:`\log r = \pm\infty`.
    Such a token has zero gradient (double ``where``), so every gradient is finite, though the
    loss is infinite; mask such tokens, or clamp as verl does
    (``ref_log_probs = log_probs + jnp.clip(ref_log_probs - log_probs, -20, 20)``). An
    undefined log-ratio (both log-probabilities :math:`-\infty`, or a NaN) gives NaN.

    Under ``jit`` the options are static:
    ``jax.jit(kl_penalty, static_argnames=("estimator", "gradient", "aggregation"))``.
    Reductions are plain sums, so inputs sharded over the batch need no gather.

    Args:
      log_probs: :math:`\log \pi(a_{bt})` of the sampled tokens, shape ``[B, T]``.
      ref_log_probs: :math:`\log \pi_\mathrm{ref}(a_{bt})`, the same shape.
      mask: boolean ``[B, T]``, ``True`` for tokens that count; ``None``: all count.
      estimator: ``"k1"``, ``"k2"`` or ``"k3"``.
      gradient: ``"none"``, ``"naive"`` or ``"unbiased"``.
      aggregation: ``"token-mean"``, ``"sequence-mean-token-sum"`` or
        ``"sequence-mean-token-mean"``.

    Returns:
      The aggregated penalty, a scalar in the input dtype.

    Raises:
      ValueError: for a mask that is not boolean or not of shape ``[B, T]``, inputs of
        different shapes or not 2-D, or an unknown option.

    References:
      Schulman, Approximating KL Divergence, http://joschu.net/blog/kl-approx.html, 2020.
      Tang & Munos, On a Few Pitfalls in KL Divergence Gradient Estimation for RL,
      arXiv:2506.09477, 2025.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from jaxdiv.losses import kl_penalty
      >>> log_probs = jnp.log(jnp.array([[0.5, 0.2, 0.9], [0.3, 0.6, 0.1]]))
      >>> ref_log_probs = jnp.log(jnp.array([[0.4, 0.3, 0.8], [0.3, 0.5, 0.2]]))
      >>> mask = jnp.array([[True, True, True], [True, True, False]])  # the last is padding
      >>> print(f"{float(kl_penalty(log_probs, ref_log_probs, mask=mask)):.4f}")
      0.0280
      >>> print(f"{float(kl_penalty(log_probs, ref_log_probs, mask=mask, estimator='k1')):.4f}")
      0.0236
      >>> def grad(gradient):  # in log_probs; (1 - r) / 5 against -log(r) / 5 at the first token
      ...     f = lambda lp: kl_penalty(lp, ref_log_probs, mask=mask, gradient=gradient)
      ...     return float(jax.grad(f)(log_probs)[0, 0])
      >>> print(f"naive {grad('naive'):.4f}, unbiased {grad('unbiased'):.4f}")
      naive 0.0400, unbiased 0.0446
    """
    fn = "kl_penalty"
    _option(fn, "estimator", estimator, _ESTIMATORS)
    _option(fn, "gradient", gradient, _GRADIENTS)
    _option(fn, "aggregation", aggregation, _AGGREGATIONS)
    lp, ref = C.same_shape(fn, log_probs, ref_log_probs, ("log_probs", "ref_log_probs"))
    if lp.ndim != 2:
        raise ValueError(f"{fn}: log_probs and ref_log_probs have shape {lp.shape}; expected "
                         f"[B, T] (sequences x tokens)")
    if mask is None:
        m = jnp.ones(lp.shape, bool)
    else:
        try:
            m = jnp.asarray(mask)
        except TypeError as err:
            raise ValueError(f"{fn}: mask must be a boolean array, got "
                             f"{type(mask).__name__}") from err
        if m.dtype != jnp.bool_:
            raise ValueError(f"{fn}: mask must be boolean, got dtype {m.dtype}")
        if m.shape != lp.shape:
            raise ValueError(f"{fn}: mask has shape {m.shape} and log_probs has shape "
                             f"{lp.shape}; they must be equal")
    dtype, (lp, ref) = upcast(lp, ref)
    ref = jax.lax.stop_gradient(ref)
    log_r = ref - lp
    ok = m & jnp.isfinite(log_r)
    lp_s, ref_s = jnp.where(ok, lp, 0.0), jnp.where(ok, ref, 0.0)  # double where: finite grads
    d = ref_s - lp_s
    k = _estimate(estimator, d)
    sg = jax.lax.stop_gradient
    if gradient == "none":
        term = sg(k)
    elif gradient == "naive":
        term = k
    else:  # value k, gradient -log r * grad log pi
        term = sg(k) + sg(-d) * (lp_s - sg(lp_s))
    limit = _estimate(estimator, sg(log_r))  # infinite or NaN log-ratios: value, no gradient
    per_token = jnp.where(ok, term, jnp.where(m, limit, 0.0))
    n_tok = jnp.sum(m, axis=1).astype(lp.dtype)  # [B]
    if aggregation == "token-mean":
        out = jnp.sum(per_token) / jnp.maximum(jnp.sum(n_tok), 1)
    else:
        seq = jnp.sum(per_token, axis=1)
        if aggregation == "sequence-mean-token-mean":
            seq = seq / jnp.maximum(n_tok, 1)
        out = jnp.sum(seq) / jnp.maximum(jnp.sum(n_tok > 0).astype(lp.dtype), 1)
    return out.astype(dtype)

def adaptive_kl_coefficient(beta: ArrayLike, kl: ArrayLike, target: ArrayLike, *,
                            tolerance: float = 1.5, factor: float = 2.0) -> jax.Array:
    r"""PPO's adaptive KL-penalty update of the coefficient :math:`\beta`, pure and traceable.

    .. math:: \beta' = \begin{cases} \beta / c & d < d_\mathrm{targ} / \tau \\
       \beta \, c & d > d_\mathrm{targ} \, \tau \\ \beta & \text{otherwise} \end{cases}

    with :math:`d` the measured KL (e.g. the mean of :func:`policy_kl` or :func:`approx_kl`
    over the batch), :math:`\tau` the ``tolerance`` (1.5) and :math:`c` the ``factor`` (2), as
    in Schulman et al. 2017, Sec. 4. Written with ``jnp.where``: it goes inside ``jit``,
    ``lax.scan`` and ``vmap``; all arguments broadcast.

    The comparisons follow IEEE arithmetic at the limits: :math:`d = +\infty` (e.g. a policy
    putting mass where the reference has none) multiplies :math:`\beta` by :math:`c`;
    :math:`d = -\infty` (a :math:`k_1` average can be negative) divides it; with
    :math:`d_\mathrm{targ} = +\infty` every finite :math:`d` divides it and
    :math:`d = +\infty` leaves it; a NaN ``kl`` or ``target`` gives NaN. :math:`\beta = 0`
    stays 0. ``tolerance`` and ``factor`` are finite and :math:`\ge 1` (checked when
    concrete); a negative ``beta`` or ``target`` is reported under :func:`jaxdiv.checked`.

    Args:
      beta: current penalty coefficient.
      kl: measured KL divergence.
      target: target KL :math:`d_\mathrm{targ}`.
      tolerance: ratio band :math:`\tau \ge 1` around the target.
      factor: multiplicative step :math:`c \ge 1`.

    Returns:
      The updated coefficient, the broadcast shape of the inputs.

    References:
      Schulman, Wolski, Dhariwal, Radford & Klimov, Proximal Policy Optimization Algorithms,
      arXiv:1707.06347, 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import adaptive_kl_coefficient
      >>> kls = jnp.array([0.001, 0.01, 0.1])  # below, within and above the band around 0.01
      >>> print(np.asarray(adaptive_kl_coefficient(1.0, kls, 0.01)).round(4))
      [0.5 1.  2. ]
    """
    fn = "adaptive_kl_coefficient"
    for name, value in (("tolerance", tolerance), ("factor", factor)):
        if not isinstance(value, jax.core.Tracer) and (
                isinstance(value, (str, bytes, bool)) or value is None
                or not jnp.issubdtype(np.asarray(value).dtype, np.number)
                or jnp.issubdtype(np.asarray(value).dtype, np.complexfloating)):
            raise TypeError(f"{fn}: {name} must be a real scalar, got {type(value).__name__}")
    C.static_scalar(fn, "tolerance", tolerance, lambda v: bool(1 <= v < np.inf),
                    "finite and >= 1")
    C.static_scalar(fn, "factor", factor, lambda v: bool(1 <= v < np.inf), "finite and >= 1 "
                    "(a smaller factor would move beta the wrong way)")
    beta, kl, target = (C.as_float(fn, n, x) for n, x in
                        (("beta", beta), ("kl", kl), ("target", target)))
    try:
        jnp.broadcast_shapes(beta.shape, kl.shape, target.shape)
    except ValueError as err:
        raise ValueError(f"{fn}: shapes of beta {beta.shape}, kl {kl.shape} and target "
                         f"{target.shape} do not broadcast") from err
    dtype = jnp.result_type(beta, kl, target)
    beta, kl, target = beta.astype(dtype), kl.astype(dtype), target.astype(dtype)
    if C.checking():
        checkify.debug_check(~jnp.any(beta < 0), f"{fn}: beta must be >= 0")
        checkify.debug_check(~jnp.any(target < 0), f"{fn}: target must be >= 0")
    low, high = kl < target / tolerance, kl > target * tolerance
    beta = jnp.where(jnp.isnan(kl) | jnp.isnan(target), jnp.nan, beta)  # NaN in, NaN out
    return jnp.where(low, beta / factor, jnp.where(high, beta * factor, beta))
