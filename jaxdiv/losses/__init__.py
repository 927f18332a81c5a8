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

from jaxdiv.losses.distillation import distillation_loss, linear_distillation_loss
from jaxdiv.losses.generative import (
    gan_discriminator_loss,
    gan_generator_loss,
    gradient_penalty,
    vae_kl,
    wasserstein_critic_loss,
)
from jaxdiv.losses.policy import adaptive_kl_coefficient, approx_kl, kl_penalty, policy_kl

__all__ = [
    "adaptive_kl_coefficient",
    "approx_kl",
    "distillation_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gradient_penalty",
    "kl_penalty",
    "linear_distillation_loss",
    "policy_kl",
    "vae_kl",
    "wasserstein_critic_loss",
]


def __dir__() -> list[str]:
    return sorted(__all__)
