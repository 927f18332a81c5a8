r"""Distillation: a student's softened distribution fitted to a teacher's, per example.

The teacher's distribution changes from example to example, so the loss is a KL, not a
cross-entropy. The KL block reuses :func:`jaxdiv.kl_divergence_with_logits`; for a hard-label term
next to :func:`distillation_loss` use ``optax.softmax_cross_entropy_with_integer_labels``.
float16/bfloat16 inputs are computed in float32 and the result is cast back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdiv import _checks as C
from jaxdiv._numerics import upcast
from jaxdiv.discrete import kl_divergence_with_logits

__all__ = ["distillation_loss"]


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
    C.static_scalar(fn, "temperature", temperature, lambda t: bool(t > 0), "> 0")
    where = C.check_where(fn, where, jnp.broadcast_shapes(zs.shape, zt.shape))
    dtype, (zs, zt) = upcast(zs, zt)
    t = jnp.asarray(temperature, zs.dtype)
    C.check_positive(fn, "temperature", t)
    kl = kl_divergence_with_logits(zt / t, zs / t, axis=axis, where=where)
    return (t * t * kl).astype(dtype)
