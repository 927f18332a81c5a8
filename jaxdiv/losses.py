r"""Model-facing loss blocks: distillation, VAE KL, policy KL, GAN and WGAN losses.

Pure functions that drop into any JAX model (plain JAX, Flax, Equinox) and into optax. Every
loss is **per example**: it reduces only the event axis (or nothing, for the elementwise GAN
losses) and leaves the batch reduction to the caller, as optax's losses do.

Where optax already has the block it is used, not rewritten: the GAN losses are
``optax.sigmoid_binary_cross_entropy`` (stable for extreme logits, through ``log_sigmoid``);
for a hard-label term next to :func:`distillation_loss` use
``optax.softmax_cross_entropy_with_integer_labels``, and ``optax.smooth_labels`` with
``optax.softmax_cross_entropy`` for label smoothing. The KL blocks reuse
:func:`jaxdiv.kl_divergence_with_logits`.

float16/bfloat16 inputs are computed in float32 and the result is cast back.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import safe, upcast
from jaxdiv.discrete import kl_divergence_with_logits

__all__ = [
    "adaptive_kl_coefficient",
    "approx_kl",
    "distillation_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gradient_penalty",
    "policy_kl",
    "vae_kl",
    "wasserstein_critic_loss",
]

# 1/k! for k = 10, 9, ..., 2: the Taylor series of e^x - 1 - x, for Horner's rule.
_TAYLOR = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(10, 1, -1))


def _expm1_minus_x(x: jax.Array) -> jax.Array:
    r""":math:`e^x - 1 - x \ge 0` without overflow for large negative x nor cancellation near 0.

    ``expm1(x) - x`` for :math:`|x| \ge 0.1`, and the Taylor series to :math:`x^{10}` below
    (truncation error :math:`< 10^{-16}` relative there), where ``expm1(x) - x`` would lose
    :math:`\sim\epsilon/|x|` relative accuracy to cancellation.
    """
    small = jnp.abs(x) < 0.1
    xs = jnp.where(small, x, 0.0)
    poly = jnp.zeros_like(xs)
    for c in _TAYLOR:
        poly = poly * xs + c
    return jnp.where(small, poly * xs * xs, jnp.expm1(x) - x)


def _check_same(fn: str, a, b, names: tuple[str, str]) -> tuple[jax.Array, jax.Array]:
    """Two float arrays of exactly the same shape (elementwise pairs), promoted to one dtype."""
    a, b = C.as_float(fn, names[0], a), C.as_float(fn, names[1], b)
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {names[0]} has shape {a.shape} and {names[1]} has shape "
                         f"{b.shape}; they must be equal (one entry per example)")
    dtype = jnp.promote_types(a.dtype, b.dtype)
    return a.astype(dtype), b.astype(dtype)


def _check_static(fn: str, name: str, value, ok: Callable[[np.ndarray], bool],
                  rule: str) -> None:
    """Raises ValueError when a concrete (non-traced) scalar option breaks ``rule``."""
    if isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"{fn}: {name} must be a scalar, got shape {v.shape}")
    if not ok(v):
        raise ValueError(f"{fn}: {name} must be {rule}, got {value}")


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

    Args:
      student_logits: student logits along ``axis``, shape ``[..., n]``.
      teacher_logits: teacher logits, broadcast-compatible with ``student_logits``.
      temperature: scalar :math:`T > 0` (may be traced, e.g. under ``vmap``; a concrete value
        :math:`\le 0` raises ValueError).
      axis: the class axis (static under jit).
      where: boolean mask; ``False`` classes are left out of both softmaxes and the sum.

    Returns:
      The loss per example, with ``axis`` reduced.

    References:
      Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, NIPS Deep
      Learning Workshop, 2015 (arXiv:1503.02531).
    """
    fn = "distillation_loss"
    zs, zt = C.check_pair(fn, student_logits, teacher_logits, axis,
                          ("student_logits", "teacher_logits"))
    _check_static(fn, "temperature", temperature, lambda t: bool(t > 0), "> 0")
    where = C.check_where(fn, where, jnp.broadcast_shapes(zs.shape, zt.shape))
    dtype, (zs, zt) = upcast(zs, zt)
    t = jnp.asarray(temperature, zs.dtype)
    C.check_positive(fn, "temperature", t)
    kl = kl_divergence_with_logits(zt / t, zs / t, axis=axis, where=where)
    return (t * t * kl).astype(dtype)


def vae_kl(mean: ArrayLike, log_var: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""KL from a diagonal Gaussian posterior to the standard normal prior, as in a VAE.

    .. math:: \mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\, e^{v}) \,\big\|\,
       \mathcal N(0, I)\big) = \tfrac12 \sum_i \big(e^{v_i} - 1 - v_i + \mu_i^2\big).

    ``e^v - 1 - v`` is computed as ``expm1(v) - v`` (a Taylor series for :math:`|v| < 0.1`), so
    it neither overflows nor cancels for large negative ``log_var`` (it grows like
    :math:`-v`, not :math:`e^{-v}`), keeps full relative accuracy near :math:`v = 0`, and is
    :math:`+\infty` only once :math:`e^{v}` itself overflows.

    Args:
      mean: posterior means :math:`\mu` along ``axis``, shape ``[..., d]``.
      log_var: posterior log-variances :math:`v = \log \sigma^2`, broadcast-compatible with
        ``mean``.
      axis: the latent axis (static under jit).

    Returns:
      The KL in nats per example, with ``axis`` reduced.

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014, Appendix B.
    """
    mean, log_var = C.check_pair("vae_kl", mean, log_var, axis, ("mean", "log_var"))
    dtype, (mean, log_var) = upcast(mean, log_var)
    terms = _expm1_minus_x(log_var) + mean * mean
    return (0.5 * jnp.sum(terms, axis=axis)).astype(dtype)


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
    """
    fn = "approx_kl"
    if estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"{fn}: estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")
    r = C.as_float(fn, "log_ratio", log_ratio)
    dtype, (r,) = upcast(r)
    out = {"k1": lambda: -r, "k2": lambda: 0.5 * r * r, "k3": lambda: _expm1_minus_x(r)}
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
    """
    fn = "adaptive_kl_coefficient"
    _check_static(fn, "tolerance", tolerance, lambda v: bool(v >= 1), ">= 1")
    _check_static(fn, "factor", factor, lambda v: bool(v >= 1), ">= 1 (a smaller factor "
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


def gan_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
    r"""Discriminator loss of the original GAN, per (real, fake) pair of examples.

    .. math:: L_D = -\log D(x) - \log\big(1 - D(\tilde x)\big), \qquad D = \sigma(\ell),

    the negated minimax value function. Computed as
    ``optax.sigmoid_binary_cross_entropy(real_logits, 1) + (fake_logits, 0)``, i.e. with
    ``log_sigmoid``: finite, with finite gradients, at logits of :math:`\pm 10^4`. With the
    optimal discriminator :math:`D^* = p_r/(p_r + p_g)` the expected loss is
    :math:`2 \log 2 - 2\,\mathrm{JS}(p_r \| p_g)`.

    Args:
      real_logits: discriminator logits on real examples, any shape.
      fake_logits: logits on generated examples, the same shape.

    Returns:
      The loss per pair, same shape as the inputs.

    References:
      Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014.
    """
    real, fake = _check_same("gan_discriminator_loss", real_logits, fake_logits,
                             ("real_logits", "fake_logits"))
    dtype, (real, fake) = upcast(real, fake)
    loss = (optax.sigmoid_binary_cross_entropy(real, jnp.ones_like(real))
            + optax.sigmoid_binary_cross_entropy(fake, jnp.zeros_like(fake)))
    return loss.astype(dtype)


def gan_generator_loss(fake_logits: ArrayLike, *, non_saturating: bool = True) -> jax.Array:
    r"""Generator loss of the original GAN, per generated example.

    .. math:: L_G^\mathrm{NS} = -\log D(\tilde x) \quad\text{(non-saturating)}, \qquad
       L_G^\mathrm{MM} = \log\big(1 - D(\tilde x)\big) \quad\text{(minimax)}.

    The minimax loss saturates when the discriminator rejects the fakes (its gradient
    :math:`-\sigma(\ell)` vanishes as :math:`\ell \to -\infty`); the non-saturating one keeps a
    gradient :math:`\sigma(\ell) - 1 \to -1` there. With :math:`D^*` held fixed its expected
    gradient equals that of :math:`\mathrm{KL}(p_g\|p_r) - 2\,\mathrm{JS}(p_r\|p_g)`
    (Arjovsky & Bottou 2017, Thm 2.5). Both via ``optax.sigmoid_binary_cross_entropy``.

    Args:
      fake_logits: discriminator logits on generated examples, any shape.
      non_saturating: ``True`` for :math:`-\log D`, ``False`` for :math:`\log(1 - D)`.

    Returns:
      The loss per example, same shape as ``fake_logits``.

    References:
      Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014. Arjovsky & Bottou,
      Towards Principled Methods for Training Generative Adversarial Networks, ICLR 2017.
    """
    fake = C.as_float("gan_generator_loss", "fake_logits", fake_logits)
    dtype, (fake,) = upcast(fake)
    if non_saturating:
        loss = optax.sigmoid_binary_cross_entropy(fake, jnp.ones_like(fake))
    else:
        loss = -optax.sigmoid_binary_cross_entropy(fake, jnp.zeros_like(fake))
    return loss.astype(dtype)


def wasserstein_critic_loss(real_scores: ArrayLike, fake_scores: ArrayLike) -> jax.Array:
    r"""WGAN critic loss, per (real, fake) pair: the negated Kantorovich-Rubinstein objective.

    .. math:: L_C = f(\tilde x) - f(x),

    whose minimum over 1-Lipschitz critics :math:`f` is :math:`-W_1(p_r, p_g)` in expectation.
    The Lipschitz constraint is not part of this loss: add :func:`gradient_penalty` (WGAN-GP)
    or clip weights. The generator minimises :math:`-f(\tilde x)`.

    Args:
      real_scores: critic outputs on real examples, any shape.
      fake_scores: critic outputs on generated examples, the same shape.

    Returns:
      The loss per pair, same shape as the inputs.

    References:
      Arjovsky, Chintala & Bottou, Wasserstein Generative Adversarial Networks, ICML 2017.
    """
    real, fake = _check_same("wasserstein_critic_loss", real_scores, fake_scores,
                             ("real_scores", "fake_scores"))
    return fake - real


def gradient_penalty(critic_fn: Callable[[jax.Array], jax.Array], real: ArrayLike,
                     fake: ArrayLike, key: jax.Array, *, weight: float = 10.0) -> jax.Array:
    r"""WGAN-GP gradient penalty, per example.

    .. math:: \hat x = \epsilon x + (1 - \epsilon) \tilde x, \quad
       \epsilon \sim U[0, 1] \text{ per example}, \qquad
       P = \lambda \big(\|\nabla_{\hat x} f(\hat x)\|_2 - 1\big)^2.

    The input gradient comes from one vector-Jacobian product of ``critic_fn`` on the batch,
    which is per-example only if the critic treats examples independently (no batch norm; the
    paper uses layer norm). The norm is a double-``where`` square root: at a zero input gradient
    the penalty is :math:`\lambda` and its gradient in the critic's parameters is finite (0
    through the norm). Differentiate in the critic's parameters (close over them in
    ``critic_fn``); ``fake`` usually carries ``stop_gradient`` in the critic step.

    Args:
      critic_fn: maps a batch ``[B, ...]`` to scores of shape ``[B]`` or ``[B, 1]``.
      real: real examples, shape ``[B, ...]``.
      fake: generated examples, the same shape.
      key: a PRNG key for the interpolation weights :math:`\epsilon`.
      weight: :math:`\lambda` (10 in the paper).

    Returns:
      The penalty per example, shape ``[B]``.

    References:
      Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, Improved Training of Wasserstein GANs,
      NeurIPS 2017.
    """
    fn = "gradient_penalty"
    if not callable(critic_fn):
        raise TypeError(f"{fn}: critic_fn must be a callable, got {type(critic_fn).__name__}")
    real, fake = _check_same(fn, real, fake, ("real", "fake"))
    C.check_key(fn, key)
    if real.ndim == 0:
        raise ValueError(f"{fn}: real and fake are scalars; expected a batch of shape [B, ...]")
    b = real.shape[0]
    eps = jax.random.uniform(key, (b,) + (1,) * (real.ndim - 1), jnp.float32)
    _, (rc, fc) = upcast(real, fake)  # interpolate in float32: one rounding to a 16-bit dtype
    x_hat = (fc + eps.astype(rc.dtype) * (rc - fc)).astype(real.dtype)
    scores, vjp = jax.vjp(critic_fn, x_hat)
    if scores.shape not in ((b,), (b, 1)):
        raise ValueError(f"{fn}: critic_fn maps inputs of shape {x_hat.shape} to shape "
                         f"{scores.shape}; expected one score per example, ({b},) or ({b}, 1)")
    (grad,) = vjp(jnp.ones_like(scores))
    dtype, (grad,) = upcast(grad)
    sq = jnp.sum(jnp.reshape(grad * grad, (b, -1)), axis=1)
    pos = ~(sq <= 0)  # sq > 0, or NaN (NaN in, NaN out)
    norm = jnp.where(pos, jnp.sqrt(safe(pos, sq)), 0.0)  # double where: finite grad at 0
    return (weight * (norm - 1) ** 2).astype(dtype)
