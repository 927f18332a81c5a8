r"""Policy KL for reinforcement learning: exact, per-sample estimators, adaptive coefficient.

float16/bfloat16 inputs are computed in float32 and the result is cast back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import expm1_minus_x, upcast
from jaxdiv.discrete import kl_divergence_with_logits

__all__ = ["adaptive_kl_coefficient", "approx_kl", "policy_kl"]


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
    if estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"{fn}: estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")
    r = C.as_float(fn, "log_ratio", log_ratio)
    dtype, (r,) = upcast(r)
    out = {"k1": lambda: -r, "k2": lambda: 0.5 * r * r, "k3": lambda: expm1_minus_x(r)}
    return out[estimator]().astype(dtype)


def adaptive_kl_coefficient(beta: ArrayLike, kl: ArrayLike, target: ArrayLike, *,
                            tolerance: float = 1.5, factor: float = 2.0) -> jax.Array:
    r"""PPO's adaptive KL-penalty update of the coefficient :math:`\beta`, pure and traceable.

    .. math:: \beta' = \begin{cases} \beta / c & d < d_\mathrm{targ} / \tau \\
       \beta \, c & d > d_\mathrm{targ} \, \tau \\ \beta & \text{otherwise} \end{cases}

    with :math:`d` the measured KL (e.g. the mean of :func:`policy_kl` or :func:`approx_kl`
    over the batch), :math:`\tau` the ``tolerance`` (1.5) and :math:`c` the ``factor`` (2), as
    in Schulman et al. 2017, Sec. 4. Written with ``jnp.where``: it goes inside ``jit``,
    ``lax.scan`` and ``vmap``; all arguments broadcast.

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
    C.static_scalar(fn, "tolerance", tolerance, lambda v: bool(v >= 1), ">= 1")
    C.static_scalar(fn, "factor", factor, lambda v: bool(v >= 1), ">= 1 (a smaller factor "
                  "would move beta the wrong way)")
    beta, kl, target = (C.as_float(fn, n, x) for n, x in
                        (("beta", beta), ("kl", kl), ("target", target)))
    try:
        jnp.broadcast_shapes(beta.shape, kl.shape, target.shape)
    except ValueError as err:
        raise ValueError(f"{fn}: shapes of beta {beta.shape}, kl {kl.shape} and target "
                         f"{target.shape} do not broadcast") from err
    dtype = jnp.result_type(beta, kl, target)
    beta, kl, target = beta.astype(dtype), kl.astype(dtype), target.astype(dtype)
    low, high = kl < target / tolerance, kl > target * tolerance
    beta = jnp.where(jnp.isnan(kl) | jnp.isnan(target), jnp.nan, beta)  # NaN in, NaN out
    return jnp.where(low, beta / factor, jnp.where(high, beta * factor, beta))
