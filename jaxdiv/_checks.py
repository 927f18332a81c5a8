"""Argument checks: shape and dtype at trace time, values only when opted in.

Shape and dtype mistakes raise at trace time (also under ``jax.jit``) with a message naming
the function, the argument and the shapes. Value checks (negative probabilities, sums far from
one, NaN) cannot raise inside ``jit``: they are ``checkify.debug_check`` calls, traced only while
the switch :func:`value_checks` is on (:func:`checked` turns it on). Traced and left unused, a
``debug_check`` would still cost every call: its effect takes ``jax.jit`` off its fast C++
dispatch path (about 40 us a call, and a runtime token) and eager calls would compute each
predicate. The switch is a ``jax.make_user_context``, part of the jit cache key, so a function
traced without checks is traced again with them, never reused silently.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from jaxdiv._numerics import compute_dtype

__all__ = ["checked", "value_checks"]

# A jax whose public API lacks make_user_context (none known) traces the checks always: correct,
# only slower.
_VALUE_CHECKS = (jax.make_user_context(default_value=False)
                 if hasattr(jax, "make_user_context") else None)


def _describe(x: Any) -> str:
    return type(x).__name__ if not hasattr(x, "shape") else f"shape {tuple(x.shape)}"


def as_float(fn: str, name: str, x: Any) -> jax.Array:
    """Returns ``x`` as a floating JAX array; integers and booleans become the default float.

    Raises:
      TypeError: for None, strings, complex numbers and anything that is not numeric.
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{fn}: argument {name} must be a real array, got {type(x).__name__}")
    try:
        x = jnp.asarray(x)
    except (TypeError, ValueError) as err:  # ValueError: ragged nested lists
        raise TypeError(f"{fn}: argument {name} must be a real array (a ragged list is not one), "
                        f"got {_describe(x)}: {err}") from err
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{fn}: argument {name} is complex ({x.dtype}); expected real values")
    if not jnp.issubdtype(x.dtype, jnp.number) and x.dtype != jnp.bool_:
        raise TypeError(f"{fn}: argument {name} has non-numeric dtype {x.dtype}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jax.dtypes.canonicalize_dtype(np.float64))
    return x


@functools.cache
def _raw_key_shape() -> tuple[int, ...]:
    return tuple(jax.random.key_data(jax.random.key(0)).shape)


def check_key(fn: str, key: Any, name: str = "key") -> None:
    """Checks that ``key`` is one PRNG key: ``jax.random.key(seed)`` or a raw uint32 key of the
    default implementation's shape (``jax.random.PRNGKey(seed)``: (2,) for threefry)."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and ((jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ())
                              or (dtype == np.uint32 and tuple(shape) == _raw_key_shape())):
        return
    raise TypeError(f"{fn}: {name} must be one PRNG key, e.g. jax.random.key(0), got "
                    f"{_describe(key)}{f' of dtype {dtype}' if dtype is not None else ''} "
                    f"(jax.vmap over a batch of keys)")


def event_axis(fn: str, shape: Sequence[int], axis: int, name: str = "p") -> int:
    """Normalises a static ``axis`` against ``shape`` and checks the event axis is not empty."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be a static int, got {type(axis).__name__} "
                        f"(use jax.jit(f, static_argnames='axis'))")
    nd = len(shape)
    if nd == 0:
        raise ValueError(f"{fn}: argument {name} is a scalar (shape ()); expected a probability "
                         f"vector along axis {axis}")
    if not -nd <= axis < nd:
        raise ValueError(f"{fn}: axis {axis} is out of range for {name} of shape {tuple(shape)}")
    ax = int(axis) % nd
    if shape[ax] == 0:
        raise ValueError(f"{fn}: argument {name} of shape {tuple(shape)} is empty along "
                         f"axis {axis}")
    return ax


def check_one(fn: str, p: Any, axis: int, name: str = "p") -> jax.Array:
    """Checks a single distribution argument and returns it as a float array."""
    p = as_float(fn, name, p)
    event_axis(fn, p.shape, axis, name)
    return p


def check_pair(fn: str, p: Any, q: Any, axis: int,
               names: tuple[str, str] = ("p", "q")) -> tuple[jax.Array, jax.Array]:
    """Checks a pair of distributions along ``axis`` and promotes them to one float dtype.

    Leading (batch) axes broadcast; the event axis must have the same size in both: a size-1
    event axis is never broadcast, since that would compare distributions of different sizes.
    """
    p, q = as_float(fn, names[0], p), as_float(fn, names[1], q)
    nd = max(p.ndim, q.ndim)
    sp, sq = (1,) * (nd - p.ndim) + p.shape, (1,) * (nd - q.ndim) + q.shape
    ax = event_axis(fn, sp if p.ndim >= q.ndim else sq, axis, names[0])
    if p.ndim == 0 or q.ndim == 0 or sp[ax] != sq[ax]:
        raise ValueError(
            f"{fn}: {names[0]} has shape {p.shape} and {names[1]} has shape {q.shape}; their "
            f"event sizes along axis {axis} differ ({sp[ax] if p.ndim else 'scalar'} vs "
            f"{sq[ax] if q.ndim else 'scalar'})")
    try:
        jnp.broadcast_shapes(p.shape, q.shape)
    except ValueError as err:
        raise ValueError(f"{fn}: batch shapes of {names[0]} {p.shape} and {names[1]} {q.shape} "
                         f"do not broadcast") from err
    dtype = jnp.promote_types(p.dtype, q.dtype)
    return p.astype(dtype), q.astype(dtype)


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` without enlarging it."""
    try:
        return jnp.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


def check_where(fn: str, where: Any, shape: Sequence[int]) -> jax.Array | None:
    """Checks a boolean ``where`` mask against the (broadcast) input shape."""
    if where is None:
        return None
    try:
        where = jnp.asarray(where)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: where must be a boolean mask, got {_describe(where)}") from err
    if where.dtype != jnp.bool_:
        raise TypeError(f"{fn}: where must be a boolean mask, got dtype {where.dtype}")
    try:
        out = jnp.broadcast_shapes(where.shape, tuple(shape))
    except ValueError as err:
        raise ValueError(f"{fn}: where of shape {where.shape} does not broadcast to the inputs' "
                         f"shape {tuple(shape)}") from err
    if out != tuple(shape):
        raise ValueError(f"{fn}: where of shape {where.shape} would enlarge the inputs' shape "
                         f"{tuple(shape)} to {out}")
    return where


def check_base(fn: str, base: Any) -> None:
    """Checks a static logarithm base: None (nats) or a positive real number other than 1."""
    if base is None or isinstance(base, jax.core.Tracer):
        return
    dtype = getattr(base, "dtype", None)
    if (isinstance(base, (str, bytes, complex, bool)) or np.ndim(base) != 0
            or (dtype is not None and not jnp.issubdtype(dtype, jnp.number))
            or (dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating))):
        raise TypeError(f"{fn}: base must be None or a real scalar (2 for bits), got "
                        f"{_describe(base)} {base!r}")
    try:
        b = float(base)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{fn}: base must be None or a real scalar, got {base!r}") from err
    if not (b > 0 and b != 1):
        raise ValueError(f"{fn}: base must be positive and not 1, got {base}")


# ---------------------------------------------------------------------------------------------
# Value checks: no-ops unless the caller opts in with `checked` or `value_checks`.


def value_checks(on: bool = True) -> Any:
    """Context manager: jaxdiv functions traced inside it carry their value checks.

    For ``jax.experimental.checkify`` in your own code, where :func:`checked` (which raises in
    Python) cannot be the outermost wrapper. Outside it the checks are not traced at all: no
    cost, and ``checkify`` finds none. The switch is part of ``jax.jit``'s cache key: a jitted
    function first traced without checks is traced again inside the context.

    Args:
      on: ``False`` turns the checks off again inside an enclosing ``value_checks()``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> import jaxdiv
      >>> kl = jax.jit(checkify.checkify(jaxdiv.kl_divergence))
      >>> p, q = jnp.array([0.5, 0.6]), jnp.array([0.9, 0.1])  # p sums to 1.1
      >>> print(kl(p, q)[0].get())  # traced without the checks: none fails
      None
      >>> with jaxdiv.value_checks():
      ...     err, _ = kl(p, q)
      >>> print(err.get().split(" (")[0])
      kl_divergence: argument p does not sum to 1 along axis -1
    """
    return contextlib.nullcontext() if _VALUE_CHECKS is None else _VALUE_CHECKS(bool(on))


def checking() -> bool:
    """Whether value checks are being traced (inside :func:`checked` or :func:`value_checks`)."""
    return _VALUE_CHECKS is None or bool(_VALUE_CHECKS.value)


def _tolerance(dtype: Any, n: int) -> float:
    eps = float(jnp.finfo(dtype).eps)
    return max(float(np.sqrt(eps)), 4 * n * eps)


def check_probabilities(fn: str, name: str, p: jax.Array, axis: int, *,
                        normalized: bool = True) -> None:
    """Value checks for a probability vector; reported only under :func:`checked`."""
    if not checking():
        return
    checkify.debug_check(~jnp.any(jnp.isnan(p)), f"{fn}: argument {name} contains NaN")
    checkify.debug_check(jnp.all(p >= 0), f"{fn}: argument {name} has negative entries "
                         "(smallest {m})", m=jnp.min(p, initial=jnp.inf))  # initial: empty batch
    if normalized:
        total = jnp.sum(p, axis=axis, dtype=jnp.promote_types(p.dtype, jnp.float32))
        err = jnp.max(jnp.abs(total - 1), initial=0)
        tol = _tolerance(p.dtype, p.shape[axis])
        checkify.debug_check(err <= tol, f"{fn}: argument {name} does not sum to 1 along axis "
                             f"{axis} (largest error {{e}}, tolerance {tol:.1e})", e=err)


def check_unit_interval(fn: str, name: str, p: jax.Array) -> None:
    """Value checks for elementwise probabilities in [0, 1]; reported only under :func:`checked`."""
    if not checking():
        return
    checkify.debug_check(~jnp.any(jnp.isnan(p)), f"{fn}: argument {name} contains NaN")
    checkify.debug_check(jnp.all((p >= 0) & (p <= 1)), f"{fn}: argument {name} has entries "
                         "outside [0, 1] (smallest {m}, largest {M})",
                         m=jnp.min(p, initial=jnp.inf), M=jnp.max(p, initial=-jnp.inf))


def check_finite(fn: str, name: str, x: jax.Array) -> None:
    """Value check that ``x`` has no NaN or infinity; reported only under :func:`checked`."""
    if not checking():
        return
    checkify.debug_check(jnp.all(jnp.isfinite(x)), f"{fn}: argument {name} is not finite")


def check_positive(fn: str, name: str, x: jax.Array) -> None:
    """Value check that ``x > 0`` everywhere; reported only under :func:`checked`."""
    if not checking():
        return
    checkify.debug_check(jnp.all(x > 0), f"{fn}: argument {name} must be > 0 "
                         "(smallest {m})", m=jnp.min(x, initial=jnp.inf))


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps ``fn`` so that jaxdiv's value checks raise instead of passing silently.

    Reports negative or unnormalised probabilities, NaN inputs, non-positive scales and
    non-finite epsilons: which function, which argument and which check. Works on plain and on
    jitted functions — ``checked(jax.jit(jaxdiv.kl_divergence))(p, q)`` — since
    ``jax.experimental.checkify`` traces through ``jit`` (a jitted function already traced
    without checks is traced again). The result of ``checked`` raises in Python, so it is the
    outermost wrapper: to keep the checks inside your own ``jit``, call
    ``jax.experimental.checkify.checkify(f)`` yourself under :func:`value_checks` and
    ``err.throw()`` outside it.

    Without this wrapper (or :func:`value_checks`) the checks are not traced at all: they cost
    nothing, and the functions follow IEEE arithmetic (NaN in, NaN out).

    Raises:
      jax.experimental.checkify.JaxRuntimeError: when a check fails.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import jaxdiv
      >>> from jax.experimental.checkify import JaxRuntimeError
      >>> kl = jaxdiv.checked(jax.jit(jaxdiv.kl_divergence))
      >>> print(f"{float(kl(jnp.array([0.5, 0.5]), jnp.array([0.9, 0.1]))):.4f}")
      0.5108
      >>> try:
      ...     kl(jnp.array([0.5, 0.6]), jnp.array([0.9, 0.1]))
      ... except JaxRuntimeError as e:
      ...     print("raised")
      raised
    """
    if not callable(fn):
        raise TypeError(f"checked: fn must be a callable, got {type(fn).__name__}")
    checkified = checkify.checkify(fn, errors=checkify.user_checks)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with value_checks(True):
            err, out = checkified(*args, **kwargs)
        err.throw()
        return out

    return wrapper


def point_clouds(fn, x, y, a, b, min_size=1):
    """Checks point clouds [n, d], [m, d] and weights [n], [m]; returns them in one dtype."""
    x, y = as_float(fn, "x", x), as_float(fn, "y", y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"{fn}: x has shape {x.shape} and y has shape {y.shape}; expected point "
                         f"clouds [n, d] and [m, d] with the same dimension d")
    if min(x.shape[0], y.shape[0]) < min_size or x.shape[1] == 0:
        raise ValueError(f"{fn}: x of shape {x.shape} and y of shape {y.shape} need at least "
                         f"{min_size} point(s) each and d > 0")
    ws = []
    for name, w, cloud, pts in (("a", a, "x", x), ("b", b, "y", y)):
        if w is not None:
            w = as_float(fn, name, w)
            if w.shape != (pts.shape[0],):
                raise ValueError(f"{fn}: weights {name} have shape {w.shape} but {cloud} has "
                                 f"shape {pts.shape}; expected {name} of shape ({pts.shape[0]},)")
        ws.append(w)
    dtype = compute_dtype(jnp.result_type(*[v for v in (x, y, *ws) if v is not None]))
    cast = [None if v is None else v.astype(dtype) for v in (x, y, *ws)]
    return jnp.result_type(x, y), *cast


def positive_scalar(fn, name, value, dtype):
    """A scalar option that must be > 0: raises at trace time when concrete, else opt-in check."""
    value = jnp.asarray(value, dtype)
    if value.shape != ():
        raise ValueError(f"{fn}: {name} must be a scalar, got shape {value.shape}")
    if not isinstance(value, jax.core.Tracer) and not (0 < value < jnp.inf):
        raise ValueError(f"{fn}: {name} must be > 0 and finite, got {float(value)}")
    check_finite(fn, name, value)
    check_positive(fn, name, value)
    return value


def same_shape(fn: str, a, b, names: tuple[str, str]) -> tuple[jax.Array, jax.Array]:
    """Two float arrays of exactly the same shape (elementwise pairs), promoted to one dtype."""
    a, b = as_float(fn, names[0], a), as_float(fn, names[1], b)
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {names[0]} has shape {a.shape} and {names[1]} has shape "
                         f"{b.shape}; they must be equal (one entry per example)")
    dtype = jnp.promote_types(a.dtype, b.dtype)
    return a.astype(dtype), b.astype(dtype)


def static_scalar(fn: str, name: str, value, ok: Callable[[np.ndarray], bool],
                  rule: str) -> None:
    """Raises ValueError when a concrete (non-traced) scalar option breaks ``rule``."""
    if isinstance(value, jax.core.Tracer):
        return
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"{fn}: {name} must be a scalar, got shape {v.shape}")
    if not ok(v):
        raise ValueError(f"{fn}: {name} must be {rule}, got {value}")
