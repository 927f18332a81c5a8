"""A pure optax fitting loop, and sweeps of fits as one compiled, sharded program.

``fit`` runs an optax optimiser inside ``lax.scan``: no Python loop, no host round trip, so it
goes through ``jax.jit`` and ``jax.vmap`` — a whole grid of fits (over keys, initial
parameters, or any traced hyperparameter the loss closes over) is one XLA program. ``sweep``
is that ``vmap`` with the sweep axis split over a device mesh by ``jax.shard_map`` (each device
fits its own share, with no communication), on one host or several.
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
    out = jax.eval_shape(loss_fn, params, key)  # shapes only: the key's stand-in is itself
    if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()
            and jnp.issubdtype(out.dtype, jnp.floating)):
        raise TypeError(f"fit: loss_fn(params, key) must return a real scalar, got "
                        f"{jax.tree.map(lambda v: f'{v.dtype}{list(v.shape)}', out)}")

    def step(carry, k):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, k)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    keys = jax.random.split(key, int(steps))
    (params, _), losses = lax.scan(step, (params, optimizer.init(params)), keys)
    return params, losses


def sweep(fn: Callable[..., Any], *args: Any,
          devices: Sequence[jax.Device] | Mesh | str | None = None,
          spec: PartitionSpec | None = None) -> Any:
    r"""Evaluates ``jax.vmap(fn)(*args)`` as one jitted program, the sweep axis sharded.

    The leading axis of every leaf of ``args`` is the sweep axis. With ``devices`` it is split
    over a device mesh (a one-axis ``Mesh`` named ``"sweep"`` built from the devices, or the
    ``Mesh`` given, Explicit or Auto axes alike) with ``jax.shard_map``: each device runs
    ``vmap(fn)`` on its own share of the sweep, with no communication, and the results come
    back sharded along the sweep axis (``NamedSharding(mesh, spec)``). Several processes
    (``jax.distributed.initialize``) work the same: a mesh over ``jax.devices()`` spans them,
    every process passes the same ``args``, and each reads its devices' share of the result
    (``jax.experimental.multihost_utils.process_allgather`` gathers it all).

    When the sweep size ``n`` is not a multiple of the number of shards ``k``, the last element
    is repeated as padding, the program runs on all ``k`` shards, and the padding is dropped.
    JAX arrays cannot be split unevenly, so the ``n`` results are then sharded over the first
    ``g`` devices of the mesh, ``g`` the largest divisor of ``n`` with ``g <= k`` (e.g. 12
    fits on 8 devices: 6 shards of 2; a prime ``n`` lands on one device). Choose ``n`` a
    multiple of ``k`` to keep every device's share where it was computed.

    Args:
      fn: the function of one sweep element, e.g. ``lambda key, p0: fit(loss, p0, opt,
        steps=500, key=key)``.
      *args: pytrees whose leaves share the leading sweep axis.
      devices: ``None`` for no sharding (the default device), ``"all"`` for
        ``jax.devices()``, a non-empty sequence of devices, or a ``jax.sharding.Mesh``.
      spec: with a ``Mesh``, the ``PartitionSpec`` of the sweep axis: one entry, a mesh
        axis name or a tuple of them (default: every axis of the mesh). Other mesh axes hold
        replicas.

    Returns:
      ``jax.vmap(fn)(*args)``; with ``devices``, its leaves are sharded along the sweep axis.

    Raises:
      ValueError: ``devices`` empty or an unknown string; ``spec`` without a ``Mesh``, with
        more than one entry, or naming an axis the mesh does not have; ``args`` without a
        common leading axis.
      TypeError: ``fn`` not callable; ``devices`` holding something that is not a device.

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
    mesh, spec = _mesh_and_spec(devices, spec)
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("sweep: needs at least one array argument with a sweep axis")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"sweep: every argument needs the same leading sweep axis, got "
                         f"shapes {[jnp.shape(x) for x in leaves]}")
    (n,) = sizes
    if mesh is None:
        return _program(fn, None, None)(*args)
    k = _shards(mesh, spec)
    pad = -n % k
    if pad:
        index = np.concatenate([np.arange(n), np.full(pad, n - 1)])
        args = jax.tree.map(lambda x: x[index], args)
    sharding = NamedSharding(mesh, spec)
    out = _program(fn, mesh, spec)(*jax.tree.map(lambda x: _put(x, sharding), args))
    if not pad:
        return out
    g = max(d for d in range(1, k + 1) if n % d == 0)
    devs = [d for d in mesh.devices.flat][:g]
    target = NamedSharding(Mesh(np.asarray(devs), ("sweep",)), PartitionSpec("sweep"))
    return jax.device_put(_unpad(n)(out), target)


def _mesh_and_spec(devices: Any, spec: Any) -> tuple[Mesh | None, PartitionSpec | None]:
    """Checks ``devices`` and ``spec``; returns the mesh and the spec of the sweep axis."""
    if spec is not None and not isinstance(devices, Mesh):
        raise ValueError(f"sweep: spec needs devices to be a jax.sharding.Mesh, got devices="
                         f"{devices!r}")
    if devices is None:
        return None, None
    if isinstance(devices, Mesh):
        mesh = devices
        spec = PartitionSpec(tuple(mesh.axis_names)) if spec is None else spec
        if not isinstance(spec, PartitionSpec) or len(spec) != 1:
            raise ValueError(f"sweep: spec must be a PartitionSpec with one entry (the sweep "
                             f"axis), got {spec!r}")
        names = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
        missing = [a for a in names if a is not None and a not in mesh.axis_names]
        if missing:
            raise ValueError(f"sweep: spec {spec} names axis {missing[0]!r}, which the mesh "
                             f"(axes {tuple(mesh.axis_names)}) does not have")
        return mesh, spec
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"sweep: devices must be None, 'all', a sequence of devices or a "
                             f"Mesh, got {devices!r}")
        devices = jax.devices()
    devices = tuple(devices)
    if not devices:
        raise ValueError("sweep: devices is empty; give None (no sharding), 'all', a Mesh or "
                         "at least one device")
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if bad:
        raise TypeError(f"sweep: devices must hold jax.Device objects, got "
                        f"{type(bad[0]).__name__}")
    return _device_mesh(devices), PartitionSpec("sweep")


@functools.lru_cache(maxsize=16)
def _device_mesh(devices: tuple[jax.Device, ...]) -> Mesh:
    return Mesh(np.asarray(devices), ("sweep",))


def _shards(mesh: Mesh, spec: PartitionSpec) -> int:
    names = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
    return int(np.prod([mesh.shape[a] for a in names if a is not None]))


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` on ``sharding``; across processes, from the copy every process holds."""
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _put(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


@functools.lru_cache(maxsize=64)
def _unpad(n: int) -> Callable:
    return jax.jit(lambda out: jax.tree.map(lambda x: x[:n], out))


@functools.lru_cache(maxsize=64)
def _program(fn: Callable[..., Any], mesh: Mesh | None,
             spec: PartitionSpec | None) -> Callable:
    """One jitted ``vmap(fn)`` per (function, mesh, spec), so that repeated sweeps (chunks of a
    long one) reuse the compiled program instead of tracing a new ``vmap`` each call."""
    if mesh is None:
        return jax.jit(jax.vmap(fn))
    return jax.jit(jax.shard_map(jax.vmap(fn), mesh=mesh, in_specs=spec, out_specs=spec))
