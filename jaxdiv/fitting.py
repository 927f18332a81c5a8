"""A pure optax fitting loop, and sweeps of fits as one compiled, sharded program.

``fit`` runs an optax optimiser inside ``lax.scan``: no Python loop, no host round trip, so it
goes through ``jax.jit`` and ``jax.vmap`` — a whole grid of fits (over keys, initial
parameters, or any traced hyperparameter the loss closes over) is one XLA program. ``sweep``
is that ``vmap`` with the sweep axis sharded over devices by JAX's own sharding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdiv import _checks as C

__all__ = ["fit", "sweep"]

Params = Any


def fit(loss_fn: Callable[[Params, jax.Array], jax.Array], params: Params,
        optimizer: optax.GradientTransformation, *, steps: int,
        key: jax.Array) -> tuple[Params, jax.Array]:
    r"""Minimises ``loss_fn`` from ``params`` with ``optimizer`` for ``steps`` steps.

    Each step draws a fresh key (``jax.random.split(key, steps)``), so stochastic objectives
    (Monte Carlo divergences) see new samples every step:

    .. math:: \theta_{t+1} = \theta_t + \mathrm{update}(\nabla_\theta L(\theta_t, k_t)).

    Pure and jit-able; vmap over ``key``, ``params``, or a hyperparameter that ``loss_fn``
    closes over, to run many fits as one program. ``steps`` is static.

    Args:
      loss_fn: ``loss_fn(params, key) -> scalar``, differentiable in ``params``.
      params: initial parameters, any pytree of float arrays.
      optimizer: an optax gradient transformation (e.g. ``optax.adam(1e-2)``).
      steps: number of optimisation steps (static Python int, >= 1).
      key: a PRNG key; step ``t`` uses the ``t``-th of ``steps`` keys split from it.

    Returns:
      ``(params, losses)``: the final parameters and the loss before each step, shape
      ``[steps]``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> import optax
      >>> target = jnp.array([0.7, 0.2, 0.1])
      >>> loss = lambda logits, key: jaxdiv.kl_divergence_with_logits(jnp.log(target), logits)
      >>> key = jax.random.key(0)
      >>> logits, losses = jaxdiv.fit(loss, jnp.zeros(3), optax.adam(0.1), steps=300, key=key)
      >>> print(np.asarray(jax.nn.softmax(logits)).round(3), f"{float(losses[0]):.4f}")
      [0.7 0.2 0.1] 0.2968
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"fit: steps must be a static int >= 1, got {steps!r}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"fit: optimizer must be an optax GradientTransformation (with init and "
                        f"update), got {type(optimizer).__name__}")
    C.check_key("fit", key)

    def step(carry, k):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, k)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    keys = jax.random.split(key, int(steps))
    (params, _), losses = lax.scan(step, (params, optimizer.init(params)), keys)
    return params, losses


def sweep(fn: Callable[..., Any], *args: Any,
          devices: Sequence[jax.Device] | str | None = None) -> Any:
    r"""Evaluates ``jax.vmap(fn)(*args)`` as one jitted program, the sweep axis sharded.

    The leading axis of every leaf of ``args`` is the sweep axis. With ``devices`` it is
    split over a one-axis ``jax.sharding.Mesh`` (``NamedSharding`` with
    ``PartitionSpec("sweep")``), so each device runs its share of the fits with no
    communication; when the sweep size is not a multiple of the device count, the last
    element is repeated as padding and the padding dropped from the result.

    Args:
      fn: the function of one sweep element, e.g. ``lambda key, p0: fit(loss, p0, opt,
        steps=500, key=key)``.
      *args: pytrees whose leaves share the leading sweep axis.
      devices: ``None`` for no sharding (the default device), ``"all"`` for
        ``jax.devices()``, or a sequence of devices.

    Returns:
      ``jax.vmap(fn)(*args)``; with ``devices``, its leaves are sharded along the sweep axis.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> import optax
      >>> def fit_one(key, target):  # fit a Normal's mean to a target mean
      ...     p = jaxdiv.Normal(target, 1.0)
      ...     loss = lambda m, key: jaxdiv.gaussian_kl(p, jaxdiv.Normal(m, 1.0))
      ...     return jaxdiv.fit(loss, jnp.zeros(()), optax.adam(0.1), steps=200, key=key)[0]
      >>> keys, targets = jax.random.split(jax.random.key(0), 3), jnp.array([-1.0, 0.0, 2.0])
      >>> print(np.asarray(jaxdiv.sweep(fit_one, keys, targets, devices="all")).round(2))
      [-1.  0.  2.]
    """
    if not callable(fn):
        raise TypeError(f"sweep: fn must be callable, got {type(fn).__name__}")
    if isinstance(devices, str) and devices != "all":
        raise ValueError(f"sweep: devices must be None, 'all' or a sequence of devices, got "
                         f"{devices!r}")
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("sweep: needs at least one array argument with a sweep axis")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"sweep: every argument needs the same leading sweep axis, got "
                         f"shapes {[jnp.shape(x) for x in leaves]}")
    (n,) = sizes
    if devices is None:
        return _program(fn, None)(*args)
    devices = tuple(jax.devices() if devices == "all" else devices)
    sharding = _sharding(devices)
    pad = -n % len(devices)
    if pad:
        index = np.concatenate([np.arange(n), np.full(pad, n - 1)])
        args = jax.tree.map(lambda x: x[index], args)
    out = _program(fn, devices)(*jax.device_put(args, sharding))
    return jax.tree.map(lambda x: x[:n], out) if pad else out


def _sharding(devices: tuple[jax.Device, ...]) -> NamedSharding:
    return NamedSharding(Mesh(np.asarray(devices), ("sweep",)), PartitionSpec("sweep"))


@functools.lru_cache(maxsize=64)
def _program(fn: Callable[..., Any], devices: tuple[jax.Device, ...] | None) -> Callable:
    """One jitted ``vmap(fn)`` per (function, devices), so that repeated sweeps (chunks of a
    long one) reuse the compiled program instead of tracing a new ``vmap`` each call."""
    if devices is None:
        return jax.jit(jax.vmap(fn))
    return jax.jit(jax.vmap(fn), out_shardings=_sharding(devices))
