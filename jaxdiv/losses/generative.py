r"""Generative-model losses: the VAE's KL term, GAN and WGAN(-GP) losses.

Per example, as optax's losses: the batch reduction is the caller's. The GAN losses are
``jax.nn.log_sigmoid`` terms, equal to ``optax.sigmoid_binary_cross_entropy`` for finite logits
and, unlike it, right at infinite ones (optax's ``0 * -inf`` is NaN there).
float16/bfloat16 inputs are computed in float32 and the result is cast back.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import safe, upcast
from jaxdiv.losses.policy import _expm1_minus_x

__all__ = ["gan_discriminator_loss", "gan_generator_loss", "gradient_penalty", "vae_kl",
           "wasserstein_critic_loss"]


def vae_kl(mean: ArrayLike, log_var: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""KL from a diagonal Gaussian posterior to the standard normal prior, as in a VAE.

    .. math:: \mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\, e^{v}) \,\big\|\,
       \mathcal N(0, I)\big) = \tfrac12 \sum_i \big(e^{v_i} - 1 - v_i + \mu_i^2\big).

    ``e^v - 1 - v`` is computed as ``expm1(v) - v`` (a Taylor series for :math:`|v| < 0.1`), so
    it neither overflows nor cancels for large negative ``log_var`` (it grows like
    :math:`-v`, not :math:`e^{-v}`), keeps full relative accuracy near :math:`v = 0`, and is
    :math:`+\infty` only once :math:`e^{v}` itself overflows. The limits: ``log_var``
    :math:`= \pm\infty` (a variance of 0 or :math:`\infty`) and ``mean`` :math:`= \pm\infty`
    give :math:`+\infty`; the derivative in ``log_var``, :math:`(e^v - 1)/2`, is
    :math:`-1/2` at :math:`v = -\infty`.

    Args:
      mean: posterior means :math:`\mu` along ``axis``, shape ``[..., d]``.
      log_var: posterior log-variances :math:`v = \log \sigma^2`, broadcast-compatible with
        ``mean``.
      axis: the latent axis (static under jit).

    Returns:
      The KL in nats per example, with ``axis`` reduced.

    References:
      Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014, Appendix B.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import vae_kl
      >>> mean, log_var = jnp.array([[0.0, 0.0], [1.0, -1.0]]), jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> print(np.asarray(vae_kl(mean, log_var)).round(4))  # KL(N(mean, e^log_var) || N(0, 1))
      [0. 1.]
    """
    mean, log_var = C.check_pair("vae_kl", mean, log_var, axis, ("mean", "log_var"))
    dtype, (mean, log_var) = upcast(mean, log_var)
    terms = _expm1_minus_x(log_var) + mean * mean
    return (0.5 * jnp.sum(terms, axis=axis)).astype(dtype)


def gan_discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
    r"""Discriminator loss of the original GAN, per (real, fake) pair of examples.

    .. math:: L_D = -\log D(x) - \log\big(1 - D(\tilde x)\big), \qquad D = \sigma(\ell),

    the negated minimax value function. Computed as
    ``-log_sigmoid(real_logits) - log_sigmoid(-fake_logits)`` (what
    ``optax.sigmoid_binary_cross_entropy`` gives for finite logits): finite, with finite
    gradients, at logits of :math:`\pm 10^4`, and the limits at infinite logits: a real logit
    :math:`+\infty` or a fake one :math:`-\infty` adds 0 (gradient 0), a real logit
    :math:`-\infty` or a fake one :math:`+\infty` adds :math:`+\infty` (gradient :math:`-1`,
    resp. :math:`1`). With the optimal discriminator :math:`D^* = p_r/(p_r + p_g)` the expected
    loss is :math:`2 \log 2 - 2\,\mathrm{JS}(p_r \| p_g)`.

    Args:
      real_logits: discriminator logits on real examples, any shape.
      fake_logits: logits on generated examples, the same shape.

    Returns:
      The loss per pair, same shape as the inputs.

    References:
      Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import gan_discriminator_loss
      >>> real_logits, fake_logits = jnp.array([3.0, 0.0]), jnp.array([-3.0, 0.0])
      >>> print(np.asarray(gan_discriminator_loss(real_logits, fake_logits)).round(4))
      [0.0972 1.3863]
    """
    real, fake = C.same_shape("gan_discriminator_loss", real_logits, fake_logits,
                             ("real_logits", "fake_logits"))
    dtype, (real, fake) = upcast(real, fake)
    loss = -jax.nn.log_sigmoid(real) - jax.nn.log_sigmoid(-fake)
    return loss.astype(dtype)


def gan_generator_loss(fake_logits: ArrayLike, *, non_saturating: bool = True) -> jax.Array:
    r"""Generator loss of the original GAN, per generated example.

    .. math:: L_G^\mathrm{NS} = -\log D(\tilde x) \quad\text{(non-saturating)}, \qquad
       L_G^\mathrm{MM} = \log\big(1 - D(\tilde x)\big) \quad\text{(minimax)}.

    The minimax loss saturates when the discriminator rejects the fakes (its gradient
    :math:`-\sigma(\ell)` vanishes as :math:`\ell \to -\infty`); the non-saturating one keeps a
    gradient :math:`\sigma(\ell) - 1 \to -1` there. With :math:`D^*` held fixed its expected
    gradient equals that of :math:`\mathrm{KL}(p_g\|p_r) - 2\,\mathrm{JS}(p_r\|p_g)`
    (Arjovsky & Bottou 2017, Thm 2.5). Both via ``log_sigmoid``, with their limits at
    infinite logits: :math:`L_G^\mathrm{NS}` is 0 at :math:`+\infty` and :math:`+\infty` at
    :math:`-\infty`; :math:`L_G^\mathrm{MM}` is :math:`-\infty` at :math:`+\infty` and 0 at
    :math:`-\infty`; the gradients stay finite.

    Args:
      fake_logits: discriminator logits on generated examples, any shape.
      non_saturating: ``True`` for :math:`-\log D`, ``False`` for :math:`\log(1 - D)`; a
        Python bool (static under jit).

    Returns:
      The loss per example, same shape as ``fake_logits``.

    References:
      Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014. Arjovsky & Bottou,
      Towards Principled Methods for Training Generative Adversarial Networks, ICLR 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import gan_generator_loss
      >>> fake = jnp.array([-3.0, 0.0, 3.0])
      >>> print(np.asarray(gan_generator_loss(fake)).round(4))  # -log D
      [3.0486 0.6931 0.0486]
      >>> print(np.asarray(gan_generator_loss(fake, non_saturating=False)).round(4))  # log(1 - D)
      [-0.0486 -0.6931 -3.0486]
    """
    fn = "gan_generator_loss"
    if not isinstance(non_saturating, (bool, np.bool_)):
        raise TypeError(f"{fn}: non_saturating must be a Python bool, got "
                        f"{type(non_saturating).__name__}")
    fake = C.as_float(fn, "fake_logits", fake_logits)
    dtype, (fake,) = upcast(fake)
    loss = -jax.nn.log_sigmoid(fake) if non_saturating else jax.nn.log_sigmoid(-fake)
    return loss.astype(dtype)


def wasserstein_critic_loss(real_scores: ArrayLike, fake_scores: ArrayLike) -> jax.Array:
    r"""WGAN critic loss, per (real, fake) pair: the negated Kantorovich-Rubinstein objective.

    .. math:: L_C = f(\tilde x) - f(x),

    whose minimum over 1-Lipschitz critics :math:`f` is :math:`-W_1(p_r, p_g)` in expectation.
    The Lipschitz constraint is not part of this loss: add :func:`gradient_penalty` (WGAN-GP)
    or clip weights. The generator minimises :math:`-f(\tilde x)`. Infinite scores follow IEEE
    arithmetic: one infinite score gives :math:`\pm\infty`; both infinite with the same sign
    give NaN (:math:`\infty - \infty` has no limit).

    Args:
      real_scores: critic outputs on real examples, any shape.
      fake_scores: critic outputs on generated examples, the same shape.

    Returns:
      The loss per pair, same shape as the inputs.

    References:
      Arjovsky, Chintala & Bottou, Wasserstein Generative Adversarial Networks, ICML 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import wasserstein_critic_loss
      >>> real_scores, fake_scores = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
      >>> print(np.asarray(wasserstein_critic_loss(real_scores, fake_scores)).round(4))
      [-0.5 -3. ]
    """
    real, fake = C.same_shape("wasserstein_critic_loss", real_scores, fake_scores,
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
    ``critic_fn``); ``fake`` usually carries ``stop_gradient`` in the critic step. An empty
    batch (``B = 0``) gives an empty result; examples with no features (``real.shape[1:]``
    of size 0) have a zero input gradient and the penalty :math:`\lambda`. The scores must be
    floating point: integer scores have no gradient, and would give :math:`\lambda` silently.

    Args:
      critic_fn: maps a batch ``[B, ...]`` to scores of shape ``[B]`` or ``[B, 1]``.
      real: real examples, shape ``[B, ...]``.
      fake: generated examples, the same shape.
      key: a PRNG key for the interpolation weights :math:`\epsilon`.
      weight: :math:`\lambda \ge 0`, finite (10 in the paper).

    Returns:
      The penalty per example, shape ``[B]``.

    References:
      Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, Improved Training of Wasserstein GANs,
      NeurIPS 2017.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jaxdiv.losses import gradient_penalty
      >>> real, fake = jnp.ones((2, 3)), jnp.zeros((2, 3))
      >>> critic = lambda x: 2.0 * x.sum(-1)  # input gradient (2, 2, 2), norm 2 sqrt(3)
      >>> print(np.asarray(gradient_penalty(critic, real, fake, jax.random.key(0))).round(4))
      [60.718 60.718]
    """
    fn = "gradient_penalty"
    if not callable(critic_fn):
        raise TypeError(f"{fn}: critic_fn must be a callable, got {type(critic_fn).__name__}")
    real, fake = C.same_shape(fn, real, fake, ("real", "fake"))
    C.check_key(fn, key)
    if real.ndim == 0:
        raise ValueError(f"{fn}: real and fake are scalars; expected a batch of shape [B, ...]")
    _check_weight(fn, weight)
    b, d = real.shape[0], math.prod(real.shape[1:])
    eps = jax.random.uniform(key, (b,) + (1,) * (real.ndim - 1), jnp.float32)
    _, (rc, fc) = upcast(real, fake)  # interpolate in float32: one rounding to a 16-bit dtype
    x_hat = (fc + eps.astype(rc.dtype) * (rc - fc)).astype(real.dtype)
    scores, vjp = jax.vjp(critic_fn, x_hat)
    if not isinstance(scores, jax.Array):
        raise TypeError(f"{fn}: critic_fn must return one array of scores, got "
                        f"{type(scores).__name__}")
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise TypeError(f"{fn}: critic_fn returns scores of dtype {scores.dtype}; expected "
                        f"floating point (integer scores have no gradient)")
    if scores.shape not in ((b,), (b, 1)):
        raise ValueError(f"{fn}: critic_fn maps inputs of shape {x_hat.shape} to shape "
                         f"{scores.shape}; expected one score per example, ({b},) or ({b}, 1)")
    (grad,) = vjp(jnp.ones_like(scores))
    dtype, (grad,) = upcast(grad)
    sq = jnp.sum(jnp.reshape(grad * grad, (b, d)), axis=1)
    pos = ~(sq <= 0)  # sq > 0, or NaN (NaN in, NaN out)
    norm = jnp.where(pos, jnp.sqrt(safe(pos, sq)), 0.0)  # double where: finite grad at 0
    return (weight * (norm - 1) ** 2).astype(dtype)


def _check_weight(fn: str, weight) -> None:
    """A penalty weight: a real scalar, finite and >= 0 (checked when concrete)."""
    if isinstance(weight, jax.core.Tracer):  # reported under jaxdiv.checked
        if C.checking():
            checkify.debug_check(jnp.isfinite(weight) & (weight >= 0),
                                 f"{fn}: weight must be finite and >= 0")
        return
    try:
        if isinstance(weight, (str, bytes, bool)) or weight is None:
            raise TypeError
        w = np.asarray(weight, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: weight must be a real scalar, got {type(weight).__name__}") \
            from err
    if w.ndim != 0 or not (np.isfinite(w) and w >= 0):
        raise ValueError(f"{fn}: weight must be a finite scalar >= 0, got {weight!r}")
