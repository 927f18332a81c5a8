"""jaxdiv side by side with the libraries a researcher would otherwise use.

Question: on the same inputs, in one process, is jaxdiv at least as fast as the fastest peer
computing the same quantity (values and gradients), and how accurate is each library on the
hard cases (zeros, disjoint supports, -inf and +-1e4 logits, p ~ q, peaked distributions)?

Command: ``python -m benchmarks.peers`` (full; sized for about 3 minutes on 2 quiet cores) or
``python -m benchmarks.peers --quick`` (smaller inputs, fewer rounds, about a minute).
``--sections discrete,fdiv,gaussian,samples`` picks sections.

Peers, each skipped (and listed as such) when not installed: optax, jax.scipy and plain
``jax.nn.log_softmax`` formulas ("jnp"), scipy, POT, TFP-JAX (``tfp-nightly``), distrax,
numpyro, torch (CPU), ott-jax. Sample distances are called through jaxdiv's public API only.

Output, markdown for ``benchmarks/RESULTS.md``:

- Speed: per quantity, the median time of each implementation over interleaved rounds (every
  round calls each implementation once, in rotating order, results blocked on), and "jaxdiv
  speed": the fastest peer's time over jaxdiv's (>= 1 means jaxdiv is at least as fast).
  JAX implementations are jitted; compile time is excluded.
- Accuracy: per quantity and implementation, the largest relative error against a 50-digit
  mpmath reference over the hard cases (inf where the reference is finite and the value is not,
  and the reverse), and the number of cases with a NaN value or a NaN gradient.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np

import jaxdiv
from benchmarks._timing import header, pin_allocator, table

# torch's OpenMP workers busy-wait after each call by default, holding a core that the next
# implementation in the round then lacks (on 2 cores that doubled the median of a JAX call
# run after torch); passive waiting measures each implementation alone. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
jax.config.update("jax_enable_x64", True)  # float64 cases; timing inputs are float32
mp.mp.dps = 50
HIGHEST = jax.lax.Precision.HIGHEST


def _try(name):
    try:
        return importlib.import_module(name)
    except Exception:  # any import failure: the peer is unavailable
        return None


optax = _try("optax")
scipy_special, scipy_stats, scipy_dist = (_try("scipy.special"), _try("scipy.stats"),
                                          _try("scipy.spatial.distance"))
ot = _try("ot")
tfp = _try("tensorflow_probability.substrates.jax")
distrax = _try("distrax")
numpyro_dist = _try("numpyro.distributions")
torch = _try("torch")
ott_pc, ott_lin = _try("ott.geometry.pointcloud"), _try("ott.solvers.linear")
if torch is not None:
    torch.set_num_threads(2)
AVAILABLE = {"optax": optax, "scipy": scipy_special, "POT": ot, "TFP-JAX": tfp,
             "distrax": distrax, "numpyro": numpyro_dist, "torch": torch, "ott-jax": ott_lin}


# ---------------------------------------------------------------------------------------------
# Timing


def _block(x):
    if torch is not None and isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and torch is not None and any(
            isinstance(v, torch.Tensor) for v in x):
        return x
    return jax.block_until_ready(x)


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def interleaved(cands: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each candidate, over ``rounds`` rotating rounds.

    Seconds of the wall clock, or with ``--clock cpu`` of CPU time of this process (all its
    threads): on a machine shared with other jobs the CPU time counts the work done, not the
    waiting for a core.
    """
    for k, fn in list(cands.items()):
        try:
            _block(fn())
        except Exception as err:  # a peer without this quantity (numpyro: no logits KL)
            print(f"   ({k} skipped: {type(err).__name__}: {str(err)[:80]})")
            del cands[k]
    names, times = list(cands), {k: [] for k in cands}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = _clock()
            _block(cands[k]())
            times[k].append(_clock() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _speed_rows(quantity, cands, rounds):
    t = interleaved(cands, rounds)
    jd = t.pop("jaxdiv")
    best = min(t, key=t.get) if t else None
    return {"quantity": quantity, "jaxdiv ms": 1e3 * jd,
            "fastest peer": best or "-", "peer ms": 1e3 * t[best] if best else "-",
            "jaxdiv speed": t[best] / jd if best else "-",
            "all peers (ms)": ", ".join(f"{k} {1e3 * v:.3g}" for k, v in t.items())}


# ---------------------------------------------------------------------------------------------
# Discrete: peers as functions of (p, q) or (logits_p, logits_q) on JAX arrays.


def _jx(f, *argnums):
    """Jitted value (no argnums) or gradient of the sum in ``argnums``."""
    if not argnums:
        return jax.jit(f)
    return jax.jit(jax.grad(lambda *a: jnp.sum(f(*a)), argnums))


def _plain_kl_logits(lp, lq):
    logp, logq = jax.nn.log_softmax(lp, -1), jax.nn.log_softmax(lq, -1)
    return jnp.sum(jnp.exp(logp) * (logp - logq), -1)


def _plain_js(p, q):
    m = 0.5 * (p + q)
    return 0.5 * jnp.sum(jax.scipy.special.rel_entr(p, m) + jax.scipy.special.rel_entr(q, m), -1)


def _plain_js_logits(lp, lq):
    logp, logq = jax.nn.log_softmax(lp, -1), jax.nn.log_softmax(lq, -1)
    logm = jnp.logaddexp(logp, logq) - math.log(2)
    return 0.5 * jnp.sum(jnp.exp(logp) * (logp - logm) + jnp.exp(logq) * (logq - logm), -1)


def _tfp_cat(kind, x):
    d = tfp.distributions
    return d.Categorical(logits=x) if kind == "logits" else d.Categorical(probs=x)


def _dx_cat(kind, x):
    return distrax.Categorical(logits=x) if kind == "logits" else distrax.Categorical(probs=x)


def _np_cat(kind, x):
    return (numpyro_dist.Categorical(logits=x) if kind == "logits"
            else numpyro_dist.Categorical(probs=x))


def discrete_impls():
    """{quantity: (kind, {impl: jax fn | ('torch', fn) | ('numpy', fn)})}."""
    rel = jax.scipy.special.rel_entr
    Q = {
        "kl_divergence": ("probs", {"jaxdiv": jaxdiv.kl_divergence,
                                    "jnp rel_entr": lambda p, q: jnp.sum(rel(p, q), -1)}),
        "cross_entropy": ("probs", {"jaxdiv": jaxdiv.cross_entropy,
                                    "jnp xlogy": lambda p, q: -jnp.sum(
                                        jax.scipy.special.xlogy(p, q), -1)}),
        "entropy": ("probs1", {"jaxdiv": jaxdiv.entropy,
                               "jnp entr": lambda p: jnp.sum(jax.scipy.special.entr(p), -1)}),
        "js_divergence": ("probs", {"jaxdiv": jaxdiv.js_divergence, "jnp rel_entr": _plain_js}),
        "kl_divergence_with_logits": ("logits", {"jaxdiv": jaxdiv.kl_divergence_with_logits,
                                                 "jnp log_softmax": _plain_kl_logits}),
        "cross_entropy_with_logits": ("logits", {
            "jaxdiv": jaxdiv.cross_entropy_with_logits,
            "jnp log_softmax": lambda lp, lq: -jnp.sum(
                jax.nn.softmax(lp, -1) * jax.nn.log_softmax(lq, -1), -1)}),
        "entropy_with_logits": ("logits1", {
            "jaxdiv": jaxdiv.entropy_with_logits,
            "jnp log_softmax": lambda lp: -jnp.sum(
                jax.nn.softmax(lp, -1) * jax.nn.log_softmax(lp, -1), -1)}),
        "js_divergence_with_logits": ("logits", {"jaxdiv": jaxdiv.js_divergence_with_logits,
                                                 "jnp log_softmax": _plain_js_logits}),
    }
    if optax is not None:
        Q["kl_divergence"][1]["optax"] = lambda p, q: optax.kl_divergence(jnp.log(q), p)
        Q["kl_divergence_with_logits"][1]["optax"] = lambda lp, lq: (
            optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(lq, -1),
                                                 jax.nn.log_softmax(lp, -1)))
        Q["cross_entropy_with_logits"][1]["optax"] = lambda lp, lq: (
            optax.softmax_cross_entropy(lq, jax.nn.softmax(lp, -1)))
        Q["cross_entropy"][1]["optax"] = lambda p, q: optax.softmax_cross_entropy(jnp.log(q), p)
    for name, mod, cat in (("TFP-JAX", tfp, _tfp_cat), ("distrax", distrax, _dx_cat),
                           ("numpyro", numpyro_dist, _np_cat)):
        if mod is None:
            continue
        for q_, kind in (("kl_divergence", "probs"), ("kl_divergence_with_logits", "logits")):
            if name == "numpyro":
                Q[q_][1][name] = lambda a, b, kind=kind, cat=cat: numpyro_dist.kl_divergence(
                    cat(kind, a), cat(kind, b))
            else:
                Q[q_][1][name] = lambda a, b, kind=kind, cat=cat: cat(kind, a).kl_divergence(
                    cat(kind, b))
        for q_, kind in (("entropy", "probs"), ("entropy_with_logits", "logits")):
            Q[q_][1][name] = lambda a, kind=kind, cat=cat: cat(kind, a).entropy()
        if name != "numpyro":
            Q["cross_entropy_with_logits"][1][name] = lambda a, b, cat=cat: cat(
                "logits", a).cross_entropy(cat("logits", b))
    if torch is not None:
        F = torch.nn.functional
        Q["kl_divergence"][1]["torch"] = ("torch", lambda p, q: F.kl_div(
            q.log(), p, reduction="none").sum(-1))
        Q["kl_divergence_with_logits"][1]["torch"] = ("torch", lambda a, b: F.kl_div(
            F.log_softmax(b, -1), F.log_softmax(a, -1), reduction="none",
            log_target=True).sum(-1))
        Q["cross_entropy_with_logits"][1]["torch"] = ("torch", lambda a, b: F.cross_entropy(
            b, F.softmax(a, -1), reduction="none"))
        Q["entropy_with_logits"][1]["torch"] = ("torch", lambda a: torch.distributions.Categorical(
            logits=a).entropy())
    if scipy_special is not None:
        sp, ss, sd = scipy_special, scipy_stats, scipy_dist
        Q["kl_divergence"][1]["scipy"] = ("numpy", lambda p, q: sp.rel_entr(p, q).sum(-1))
        Q["entropy"][1]["scipy"] = ("numpy", lambda p: ss.entropy(p, axis=-1))
        Q["js_divergence"][1]["scipy"] = ("numpy", lambda p, q: sd.jensenshannon(
            p, q, axis=-1) ** 2)
        Q["kl_divergence_with_logits"][1]["scipy"] = ("numpy", lambda a, b: sp.rel_entr(
            sp.softmax(a, -1), sp.softmax(b, -1)).sum(-1))
    return Q


def _wrap(impl, args, grad, dtype_torch=None):
    """A no-argument callable computing the value (or gradient) on ``args``."""
    if isinstance(impl, tuple) and impl[0] == "torch":
        f = impl[1]
        ts = [torch.tensor(np.asarray(a), dtype=dtype_torch) for a in args]
        if not grad:
            return lambda: f(*ts)

        def run():
            xs = [t.clone().requires_grad_(True) for t in ts]
            f(*xs).sum().backward()
            return [x.grad for x in xs]
        return run
    if isinstance(impl, tuple) and impl[0] == "numpy":
        if grad:
            return None
        f, xs = impl[1], [np.asarray(a, np.float64) for a in args]
        return lambda: f(*xs)
    jf = _jx(impl, *range(len(args))) if grad else _jx(impl)
    return lambda: jf(*args)


def discrete_speed(rows, cols, rounds, log, only=()):
    kp, kq = jax.random.split(jax.random.key(0))
    lp, lq = (3 * jax.random.normal(k, (rows, cols), jnp.float32) for k in (kp, kq))
    p, q = jax.nn.softmax(lp, -1), jax.nn.softmax(lq, -1)
    inputs = {"probs": (p, q), "probs1": (p,), "logits": (lp, lq), "logits1": (lp,)}
    out = []
    for quantity, (kind, impls) in discrete_impls().items():
        if only and not any(o in quantity for o in only):
            continue
        for grad in (False, True):
            cands = {}
            for name, impl in impls.items():
                c = _wrap(impl, inputs[kind], grad, torch.float32 if torch else None)
                if c is not None:
                    cands[name] = c
            out.append(_speed_rows(quantity + (" (gradient)" if grad else ""), cands, rounds))
            log(out[-1])
    return out


# References and hard cases (small inputs, mpmath).


def _mp(x):
    return [mp.mpf(float(v)) for v in np.asarray(x, np.float64).ravel()]


def _mp_softmax(lg):
    lg = _mp(lg)
    top = max(lg)
    z = mp.fsum(mp.exp(v - top) for v in lg) if top != -mp.inf else mp.mpf(0)
    return [mp.exp(v - top) / z if v != -mp.inf else mp.mpf(0) for v in lg]


def _ref(quantity, p, q=None, alpha=None):
    """50-digit reference of ``quantity`` between probability lists ``p, q``."""
    pq = list(zip(p, q, strict=True)) if q is not None else []
    if quantity in ("kl", "jeffreys") and any(a > 0 and b == 0 for a, b in pq):
        return mp.inf
    if quantity == "kl":
        return mp.fsum(a * mp.log(a / b) for a, b in pq if a > 0)
    if quantity == "ce":
        return (mp.inf if any(a > 0 and b == 0 for a, b in pq)
                else -mp.fsum(a * mp.log(b) for a, b in pq if a > 0))
    if quantity == "entropy":
        return -mp.fsum(a * mp.log(a) for a in p if a > 0)
    if quantity == "js":
        return mp.fsum((a * mp.log(2 * a / (a + b)) if a > 0 else 0)
                       + (b * mp.log(2 * b / (a + b)) if b > 0 else 0) for a, b in pq) / 2
    if quantity == "jeffreys":
        if any(b > 0 and a == 0 for a, b in pq):
            return mp.inf
        return mp.fsum((a - b) * mp.log(a / b) for a, b in pq if a > 0)
    if quantity == "chi2":
        if any(a > 0 and b == 0 for a, b in pq):
            return mp.inf
        return mp.fsum((a - b) ** 2 / b for a, b in pq if b > 0)
    if quantity == "hellinger":
        return mp.sqrt(mp.fsum((mp.sqrt(a) - mp.sqrt(b)) ** 2 for a, b in pq) / 2)
    if quantity == "tv":
        return mp.fsum(abs(a - b) for a, b in pq) / 2
    if quantity == "alpha":  # the positive-measure form (TFP's self-normalised amari_alpha)
        al = mp.mpf(alpha)
        if any((al > 1 and a > 0 == b) or (al < 0 and b > 0 == a) for a, b in pq):
            return mp.inf
        return mp.fsum(al * a + (1 - al) * b - (a ** al * b ** (1 - al) if a > 0 and b > 0
                                                 else 0) for a, b in pq) / (al * (1 - al))
    if quantity == "renyi":  # log(sum p^a q^(1-a) / sum p) / (a - 1), 0 < a < 1 or a > 1
        al = mp.mpf(alpha)
        if al > 1 and any(a > 0 == b for a, b in pq):
            return mp.inf
        m = mp.fsum(a ** al * b ** (1 - al) for a, b in pq if a > 0 and b > 0)
        return mp.log(m / mp.fsum(p)) / (al - 1)
    raise ValueError(quantity)


def _dyadic(n, bits, rel, dtype, seed):
    """p, q exactly normalised in ``dtype`` (multiples of 2^-bits), q = p (1 + O(rel))."""
    r = np.random.default_rng(seed)
    N = 2 ** bits
    k = np.floor(r.dirichlet(np.ones(n)) * N)
    k[0] += N - k.sum()
    d = np.round(r.normal(size=n) * k * rel)
    d[0] -= d.sum()
    return (k / N).astype(dtype), ((k + d) / N).astype(dtype)


def prob_cases():
    p0 = np.array([0.5, 0.25, 0.25, 0.0])
    q0 = np.array([0.25, 0.25, 0.25, 0.25])
    peak_p = np.full(8, 1e-12)
    peak_p[0] = 1 - 7e-12
    peak_q = peak_p * np.random.default_rng(1).uniform(0.5, 2, 8)
    peak_q[0] = 1 - peak_q[1:].sum()
    return {
        "zeros": (p0, q0),
        "disjoint": (np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.5, 0.5])),
        "p~q 1e-7 f64": _dyadic(8, 50, 1e-7, np.float64, 0),
        "p~q 1e-3 f32": _dyadic(8, 22, 1e-3, np.float32, 0),
        "peaked f32": (peak_p.astype(np.float32), peak_q.astype(np.float32)),
    }


def logit_cases():
    r = np.random.default_rng(2)
    a = 3 * r.normal(size=8)
    return {
        "-inf logits": (np.array([0.0, 1.0, -np.inf, 2.0]), np.array([1.0, 0.0, 0.5, -1.0])),
        "+-1e4 f32": (np.array([1e4, -1e4, 0.0, 1e4 - 3], np.float32),
                      np.array([-1e4, 1e4, 2.0, 1e4], np.float32)),
        "near 1e-7 f64": (a, a + 5 + 1e-7 * r.normal(size=8)),
        "near 1e-3 f32": (a.astype(np.float32), (a + 5 + 1e-3 * r.normal(size=8)).astype(
            np.float32)),
        "peaked f32": (np.array([30.0, 2, 1, 0, 0.5, 1.5], np.float32),
                       np.array([30.0, 1, 2, 0.2, 0.5, 1.0], np.float32)),
    }


_KEY = {"kl_divergence": "kl", "cross_entropy": "ce", "entropy": "entropy",
        "js_divergence": "js"}


def _rel_err(v, ref, dtype=np.float64):
    """|v - ref| / |ref|; 0 for an infinite v where ``ref`` rounds to it in ``dtype`` (a true
    value past the largest float: +-inf is its correctly rounded value)."""
    v, ref = float(v), ref
    if math.isnan(v):
        return math.nan
    if mp.isinf(ref) or math.isinf(v):
        with np.errstate(over="ignore"):
            rounded = float(np.asarray(float(ref)).astype(dtype))
        return 0.0 if v == rounded else math.inf
    if ref == 0:
        return abs(v)
    return float(abs((mp.mpf(v) - ref) / ref))


def _evaluate(impl, args, dtype):
    """Value and whether any gradient entry is NaN, for one small case."""
    if isinstance(impl, tuple) and impl[0] == "torch":
        tdt = torch.float64 if dtype == np.float64 else torch.float32
        xs = [torch.tensor(np.asarray(a), dtype=tdt, requires_grad=True) for a in args]
        v = impl[1](*xs)
        v.sum().backward()
        return float(v), any(bool(torch.isnan(x.grad).any()) for x in xs)
    if isinstance(impl, tuple) and impl[0] == "numpy":
        with np.errstate(all="ignore"):
            return float(np.asarray(impl[1](*[np.asarray(a, np.float64) for a in args]))), False
    xs = [jnp.asarray(a, dtype) for a in args]
    v = impl(*xs)
    g = jax.grad(lambda *a: jnp.sum(impl(*a)), tuple(range(len(xs))))(*xs)
    return float(v), any(bool(jnp.isnan(x).any()) for x in g)


def accuracy_rows(impls_by_quantity, cases_of, ref_of):
    rows = []
    for quantity, (kind, impls) in impls_by_quantity.items():
        cases = cases_of(kind)
        for name, impl in impls.items():
            worst, nan_v, nan_g, failed = 0.0, 0, 0, []
            for case, args in cases.items():
                dtype = np.asarray(args[0]).dtype
                try:
                    v, gnan = _evaluate(impl, args, dtype)
                except Exception as err:  # a peer that rejects an input
                    failed.append(f"{case}: {type(err).__name__}")
                    continue
                e = _rel_err(v, ref_of(quantity, kind, args), dtype)
                nan_v += math.isnan(e)
                nan_g += gnan
                worst = worst if math.isnan(e) else max(worst, e)
            rows.append({"quantity": quantity, "impl": name, "max rel. error": worst,
                         "NaN values": nan_v, "NaN gradients": nan_g,
                         "raised": "; ".join(failed) or "-"})
    return rows


def _discrete_cases(kind):
    base = logit_cases() if kind.startswith("logits") else prob_cases()
    return {k: v[:1] if kind.endswith("1") else v for k, v in base.items()}


def _discrete_ref(quantity, kind, args):
    key = _KEY[quantity.replace("_with_logits", "")]
    conv = _mp_softmax if kind.startswith("logits") else _mp
    ps = [conv(a) for a in args]
    return _ref(key, *ps)


# ---------------------------------------------------------------------------------------------
# f-family, against TFP's Csiszar functions (tfp.vi) and plain jnp.


def _csiszar(f):
    """sum_i q_i f(log p_i - log q_i): how tfp.vi's Csiszar functions give a divergence."""
    return lambda p, q: jnp.sum(q * f(jnp.log(p) - jnp.log(q)), -1)


def fdiv_impls():
    Q = {
        "alpha_divergence(0.5)": ("probs", {
            "jaxdiv": lambda p, q: jaxdiv.alpha_divergence(p, q, 0.5),
            "jnp": lambda p, q: 4 * (1 - jnp.sum(jnp.sqrt(p * q), -1))}),
        "alpha_divergence(2)": ("probs", {
            "jaxdiv": lambda p, q: jaxdiv.alpha_divergence(p, q, 2.0),
            "jnp": lambda p, q: 0.5 * (jnp.sum(p ** 2 / q, -1) - 1)}),
        "alpha_divergence(0.3)": ("probs", {  # the general path (1/2, 2, -1 have closed forms)
            "jaxdiv": lambda p, q: jaxdiv.alpha_divergence(p, q, 0.3),
            "jnp": lambda p, q: (1 - jnp.sum(p ** 0.3 * q ** 0.7, -1)) / 0.21}),
        "hellinger_distance": ("probs", {
            "jaxdiv": jaxdiv.hellinger_distance,
            "jnp": lambda p, q: jnp.sqrt(0.5 * jnp.sum((jnp.sqrt(p) - jnp.sqrt(q)) ** 2, -1))}),
        "chi_square_divergence": ("probs", {
            "jaxdiv": jaxdiv.chi_square_divergence,
            "jnp": lambda p, q: jnp.sum((p - q) ** 2 / q, -1)}),
        "jeffreys_divergence": ("probs", {
            "jaxdiv": jaxdiv.jeffreys_divergence,
            "jnp": lambda p, q: jnp.sum((p - q) * (jnp.log(p) - jnp.log(q)), -1)}),
        "total_variation": ("probs", {
            "jaxdiv": jaxdiv.total_variation,
            "jnp": lambda p, q: 0.5 * jnp.sum(jnp.abs(p - q), -1)}),
        "renyi_divergence(0.3)": ("probs", {
            "jaxdiv": lambda p, q: jaxdiv.renyi_divergence(p, q, 0.3),
            "jnp": lambda p, q: jnp.log(jnp.sum(p ** 0.3 * q ** 0.7, -1)) / -0.7}),
        "renyi_divergence(2)": ("probs", {
            "jaxdiv": lambda p, q: jaxdiv.renyi_divergence(p, q, 2.0),
            "jnp": lambda p, q: jnp.log(jnp.sum(p ** 2 / q, -1))}),
    }
    for a in (0.3, 2.0):  # the logit twins against the log-space one-liner (log-softmaxes)
        c = a * (1 - a)
        Q[f"alpha_divergence_with_logits({a:g})"] = ("logits", {
            "jaxdiv": lambda x, y, a=a: jaxdiv.alpha_divergence_with_logits(x, y, a),
            "jnp log_softmax": lambda x, y, a=a, c=c: (1 - jnp.exp(_log_m(x, y, a))) / c})
        Q[f"renyi_divergence_with_logits({a:g})"] = ("logits", {
            "jaxdiv": lambda x, y, a=a: jaxdiv.renyi_divergence_with_logits(x, y, a),
            "jnp log_softmax": lambda x, y, a=a: _log_m(x, y, a) / (a - 1)})
    if tfp is not None:
        vi = tfp.vi
        Q["alpha_divergence(0.5)"][1]["TFP-JAX"] = _csiszar(
            lambda lu: vi.amari_alpha(lu, alpha=0.5, self_normalized=True))
        Q["alpha_divergence(2)"][1]["TFP-JAX"] = _csiszar(
            lambda lu: vi.amari_alpha(lu, alpha=2.0, self_normalized=True))
        Q["alpha_divergence(0.3)"][1]["TFP-JAX"] = _csiszar(
            lambda lu: vi.amari_alpha(lu, alpha=0.3, self_normalized=True))
        Q["hellinger_distance"][1]["TFP-JAX"] = lambda p, q: jnp.sqrt(
            0.5 * _csiszar(vi.squared_hellinger)(p, q))
        Q["chi_square_divergence"][1]["TFP-JAX"] = _csiszar(vi.pearson)
        Q["jeffreys_divergence"][1]["TFP-JAX"] = lambda p, q: 2 * _csiszar(vi.jeffreys)(p, q)
        Q["total_variation"][1]["TFP-JAX"] = _csiszar(vi.total_variation)
        for a in (0.3, 2.0):
            Q[f"alpha_divergence_with_logits({a:g})"][1]["TFP-JAX"] = (
                lambda x, y, a=a: _csiszar_logits(
                    lambda lu: vi.amari_alpha(lu, alpha=a, self_normalized=True))(x, y))
    return Q


def _log_m(x, y, a):
    """log sum_i p_i^a q_i^(1-a) from logits, by logsumexp of the log-softmaxes."""
    s = a * jax.nn.log_softmax(x, -1) + (1 - a) * jax.nn.log_softmax(y, -1)
    return jax.nn.logsumexp(s, -1)


def _csiszar_logits(f):
    """:func:`_csiszar` from logits: sum_i q_i f(log p_i - log q_i) on the log-softmaxes."""
    def d(x, y):
        lp, lq = jax.nn.log_softmax(x, -1), jax.nn.log_softmax(y, -1)
        return jnp.sum(jnp.exp(lq) * f(lp - lq), -1)
    return d


_FKEY = {"alpha_divergence(0.5)": ("alpha", 0.5), "alpha_divergence(2)": ("alpha", 2.0),
         "alpha_divergence(0.3)": ("alpha", 0.3),
         "hellinger_distance": ("hellinger", None), "chi_square_divergence": ("chi2", None),
         "jeffreys_divergence": ("jeffreys", None), "total_variation": ("tv", None),
         "renyi_divergence(0.3)": ("renyi", 0.3), "renyi_divergence(2)": ("renyi", 2.0),
         **{f"{f}_with_logits({a:g})": (f.split("_")[0], a) for f in ("alpha_divergence",
                                                                     "renyi_divergence")
            for a in (0.3, 2.0)}}


def _fdiv_ref(quantity, kind, args):
    key, alpha = _FKEY[quantity]
    conv = _mp_softmax if kind == "logits" else _mp
    return _ref(key, conv(args[0]), conv(args[1]), alpha)


def _fdiv_cases(kind):
    return logit_cases() if kind == "logits" else prob_cases()


def fdiv_speed(rows, cols, rounds, log):
    kp, kq = jax.random.split(jax.random.key(1))
    p = jax.nn.softmax(3 * jax.random.normal(kp, (rows, cols), jnp.float32), -1)
    q = jax.nn.softmax(3 * jax.random.normal(kq, (rows, cols), jnp.float32), -1)
    lp, lq = jnp.log(p), jnp.log(q)  # logits of the same distributions
    out = []
    for quantity, (kind, impls) in fdiv_impls().items():
        args = (lp, lq) if kind == "logits" else (p, q)
        for grad in (False, True):
            cands = {k: _wrap(v, args, grad) for k, v in impls.items()}
            out.append(_speed_rows(quantity + (" (gradient)" if grad else ""), cands, rounds))
            log(out[-1])
    return out


# ---------------------------------------------------------------------------------------------
# Gaussian KL (closed form), batched scalar Normals.


def gaussian_impls():
    def plain(m1, s1, m2, s2):
        return jnp.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5

    Q = {"jaxdiv": lambda m1, s1, m2, s2: jaxdiv.gaussian_kl(jaxdiv.Normal(m1, s1),
                                                             jaxdiv.Normal(m2, s2)),
         "jnp": plain}
    if tfp is not None:
        N = tfp.distributions.Normal
        Q["TFP-JAX"] = lambda m1, s1, m2, s2: N(m1, s1).kl_divergence(N(m2, s2))
    if distrax is not None:
        Q["distrax"] = lambda m1, s1, m2, s2: distrax.Normal(m1, s1).kl_divergence(
            distrax.Normal(m2, s2))
    if numpyro_dist is not None:
        Q["numpyro"] = lambda m1, s1, m2, s2: numpyro_dist.kl_divergence(
            numpyro_dist.Normal(m1, s1), numpyro_dist.Normal(m2, s2))
    if torch is not None:
        TN = torch.distributions.Normal
        Q["torch"] = ("torch", lambda m1, s1, m2, s2: torch.distributions.kl_divergence(
            TN(m1, s1), TN(m2, s2)))
    return {"gaussian_kl": ("gauss", Q)}


def _gauss_cases(kind):
    return {"near 1e-7 f64": (np.float64(0.3), np.float64(1.2), np.float64(0.3 + 1e-7),
                              np.float64(1.2 * (1 + 1e-7))),
            "near 1e-3 f32": (np.float32(0.3), np.float32(1.2), np.float32(0.3 + 1e-3),
                              np.float32(1.2 * (1 + 1e-3))),
            "far": (np.float64(0.0), np.float64(1e-3), np.float64(5.0), np.float64(10.0))}


def _gauss_ref(quantity, kind, args):
    m1, s1, m2, s2 = (mp.mpf(float(v)) for v in args)
    return mp.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - mp.mpf(1) / 2


def gaussian_speed(n, rounds, log):
    r = np.random.default_rng(3)
    args = tuple(jnp.asarray(v, jnp.float32) for v in (
        r.normal(size=n), r.uniform(0.5, 2, n), r.normal(size=n), r.uniform(0.5, 2, n)))
    out = []
    for grad in (False, True):
        cands = {k: _wrap(v, args, grad, torch.float32 if torch else None)
                 for k, v in gaussian_impls()["gaussian_kl"][1].items()}
        out.append(_speed_rows("gaussian_kl" + (" (gradient)" if grad else ""), cands, rounds))
        log(out[-1])
    return out


# ---------------------------------------------------------------------------------------------
# Sample distances through jaxdiv's public API, against the matmul forms, ott-jax and POT.


def _sqdist(x, y):
    d = (jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :]
         - 2 * jnp.matmul(x, y.T, precision=HIGHEST))
    return jnp.maximum(d, 0)


def _mmd_matmul(x, y, bw):
    def k(a, b):
        return jnp.mean(jnp.exp(-_sqdist(a, b) / (2 * bw ** 2)))
    return k(x, x) + k(y, y) - 2 * k(x, y)


def _energy_matmul(x, y):
    def d(a, b):
        sq = _sqdist(a, b)
        pos = sq > 0
        return jnp.mean(jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1)), 0))
    return 2 * d(x, y) - d(x, x) - d(y, y)


def samples_speed(n, d, n_ot, rounds, log):
    r = np.random.default_rng(4)
    x = jnp.asarray(r.normal(size=(n, d)), jnp.float32)
    y = jnp.asarray(0.8 * r.normal(size=(n, d)) + 0.5, jnp.float32)
    key = jax.random.key(0)
    out = []
    bw = 1.0 * math.sqrt(d)
    groups = {
        "mmd (bandwidth fixed)": {
            "jaxdiv": lambda: _mmd_j(x, y),
            "jnp matmul form": lambda: _mmd_m(x, y)},
        "mmd (gradient in x)": {
            "jaxdiv": lambda: _mmd_jg(x, y),
            "jnp matmul form": lambda: _mmd_mg(x, y)},
        "energy_distance": {
            "jaxdiv": lambda: _en_j(x, y), "jnp matmul form": lambda: _en_m(x, y)},
        "energy_distance (gradient in x)": {
            "jaxdiv": lambda: _en_jg(x, y), "jnp matmul form": lambda: _en_mg(x, y)},
        "sliced_wasserstein (50 projections)": {"jaxdiv": lambda: _sw_j(key, x, y)},
    }
    _mmd_j = jax.jit(lambda x, y: jaxdiv.mmd(x, y, bandwidth=bw))
    _mmd_m = jax.jit(lambda x, y: _mmd_matmul(x, y, bw))
    _mmd_jg = jax.jit(jax.grad(lambda x, y: jaxdiv.mmd(x, y, bandwidth=bw)))
    _mmd_mg = jax.jit(jax.grad(lambda x, y: _mmd_matmul(x, y, bw)))
    _en_j, _en_m = jax.jit(jaxdiv.energy_distance), jax.jit(_energy_matmul)
    _en_jg, _en_mg = jax.jit(jax.grad(jaxdiv.energy_distance)), jax.jit(jax.grad(_energy_matmul))
    _sw_j = jax.jit(lambda k, x, y: jaxdiv.sliced_wasserstein(k, x, y, num_projections=50))
    if ot is not None:
        xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
        groups["sliced_wasserstein (50 projections)"]["POT"] = (
            lambda: ot.sliced_wasserstein_distance(xn, yn, n_projections=50, seed=0))
    for name, cands in groups.items():
        out.append(_speed_rows(f"{name}, n = m = {n}, d = {d}", cands, rounds))
        log(out[-1])

    # Sinkhorn at one epsilon and threshold: jaxdiv.sinkhorn vs raw ott-jax vs POT.
    xs, ys = x[:n_ot, :2], y[:n_ot, :2]
    eps, thr = 0.05, 1e-3
    cands = {"jaxdiv": jax.jit(lambda x, y: jaxdiv.sinkhorn(x, y, epsilon=eps, threshold=thr))}
    cands = {"jaxdiv": (lambda f=cands["jaxdiv"]: f(xs, ys))}
    if ott_lin is not None:
        def raw(x, y):
            with jax.default_matmul_precision("highest"):
                geom = ott_pc.PointCloud(x, y, epsilon=eps)
                return ott_lin.solve(geom, threshold=thr, max_iterations=2000)
        raw_j = jax.jit(raw)
        cands["ott-jax"] = lambda: raw_j(xs, ys)
    # jaxdiv and ott-jax interleaved on their own (POT's 1 s calls between them, with its own
    # threads, made the pair's medians swing by 15%); POT timed after them, in a few rounds.
    row = _speed_rows(f"sinkhorn, n = m = {n_ot}, eps = {eps}, threshold = {thr}", cands,
                      max(7, rounds))
    if ot is not None:
        xn, yn = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        M = ot.dist(xn, yn)
        w = np.full(n_ot, 1 / n_ot)
        pot = interleaved({"POT (log)": lambda: ot.sinkhorn2(
            w, w, M, eps, method="sinkhorn_log", stopThr=thr, numItermax=2000)}, 3)["POT (log)"]
        row["all peers (ms)"] = ", ".join(filter(None, [row["all peers (ms)"],
                                                       f"POT (log) {1e3 * pot:.3g}"]))
        if row["fastest peer"] == "-" or pot < row["peer ms"] / 1e3:
            row.update({"fastest peer": "POT (log)", "peer ms": 1e3 * pot,
                        "jaxdiv speed": pot / (row["jaxdiv ms"] / 1e3)})
    out.append(row)
    log(out[-1])
    return out


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="small inputs, few rounds")
    parser.add_argument("--sections", default="discrete,fdiv,gaussian,samples")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--cols", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--only", default="", help="discrete quantities (substrings, commas)")
    parser.add_argument("--clock", choices=list(CLOCK), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (loaded machine)")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCK[args.clock]
    rows = args.rows or (1024 if args.quick else 4096)
    cols = args.cols or 1024
    rounds = args.rounds or (5 if args.quick else 9)
    sections = set(args.sections.split(","))

    def log(row):
        print("  ", row["quantity"], f"{row['jaxdiv ms']:.3g} ms;", row["all peers (ms)"],
              flush=True)

    print(header(f"benchmarks.peers: ({rows}, {cols}) float32, {rounds} interleaved rounds, "
                 f"{args.clock} clock"))
    missing = [k for k, v in AVAILABLE.items() if v is None]
    versions = []
    for k, mod in (("optax", optax), ("TFP-JAX", tfp), ("distrax", distrax), ("torch", torch)):
        if mod is not None:
            versions.append(f"{k} {getattr(mod, '__version__', '?')}")
    print("peers: " + ", ".join(versions) + "; not installed: " + (", ".join(missing) or "none"))
    speed, acc = [], []
    if "discrete" in sections:
        speed += discrete_speed(rows, cols, rounds, log, args.only.split(",") if args.only else ())
        if not args.no_accuracy:
            acc += accuracy_rows(discrete_impls(), _discrete_cases, _discrete_ref)
    if "fdiv" in sections:
        speed += fdiv_speed(rows, cols, rounds, log)
        if not args.no_accuracy:
            acc += accuracy_rows(fdiv_impls(), _fdiv_cases, _fdiv_ref)
    if "gaussian" in sections:
        speed += gaussian_speed(rows * cols // 16, rounds, log)
        if not args.no_accuracy:
            acc += accuracy_rows(gaussian_impls(), _gauss_cases, _gauss_ref)
    if "samples" in sections:
        n = 512 if args.quick else 2048
        speed += samples_speed(n, 32, 300 if args.quick else 1000, rounds, log)
    print("\n#### Speed (median ms; jaxdiv speed = fastest peer's time / jaxdiv's)\n")
    print(table(speed))
    if acc:
        print("\n#### Accuracy on the hard cases (max relative error vs 50-digit mpmath)\n")
        print("Cases: " + ", ".join(prob_cases()) + " (probabilities); "
              + ", ".join(logit_cases()) + " (logits).\n")
        print(table(acc))


if __name__ == "__main__":
    pin_allocator()
    main()
