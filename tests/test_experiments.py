"""Smoke tests of the research experiments: their physics at loose tolerance, outputs, CLI errors.

Each runs the experiment's ``main`` on small settings and checks the result against closed
forms or an independent numpy/scipy computation, never against the experiment's own output.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

from experiments import (
    _io,
    alpha_interpolation,
    bifurcation,
    disjoint_supports,
    distillation,
    mode_seeking,
)

PNG = b"\x89PNG"
EXPERIMENTS = [alpha_interpolation, bifurcation, disjoint_supports, distillation, mode_seeking]


def _reject(token):
    raise ValueError(f"non-standard JSON token {token}")


# ---------------------------------------------------------------------------------------------
# disjoint_supports


def test_disjoint_supports_closed_forms(tmp_path):
    result = disjoint_supports.main(["--num-theta", "9", "--num-samples", "256", "--y-bins", "4",
                                     "--sinkhorn-samples", "32", "--out", str(tmp_path)])
    th = np.asarray(result["theta"])
    assert len(th) == 9 and (th == 0).sum() == 1
    nz = th != 0
    kl, js = np.asarray(result["kl"]), np.asarray(result["js"])
    assert np.all(np.isposinf(kl[nz])) and kl[~nz] == 0  # disjoint supports: KL = +inf
    np.testing.assert_allclose(js[nz], math.log(2), rtol=1e-12)  # JS saturates at log 2
    assert abs(js[~nz][0]) < 1e-12
    np.testing.assert_allclose(result["wasserstein"], np.abs(th), rtol=1e-12, atol=1e-12)
    grad_js, grad_w = np.asarray(result["grad_js"]), np.asarray(result["grad_wasserstein"])
    np.testing.assert_allclose(grad_js, 0.0, atol=1e-9)  # no signal towards theta = 0
    np.testing.assert_array_equal(grad_w[nz], np.sign(th[nz]))
    assert abs(grad_w[~nz][0]) <= 1  # |theta| at 0: any subgradient in [-1, 1]
    # The 2-D Sinkhorn check: entropic blur adds a little (epsilon = 0.005, 32 points).
    np.testing.assert_allclose(result["wasserstein_sinkhorn"], np.abs(th), atol=0.01)
    np.testing.assert_allclose(np.asarray(result["grad_wasserstein_sinkhorn"])[nz],
                               np.sign(th[nz]), atol=0.01)
    assert result["sinkhorn_converged"]
    text = (tmp_path / "disjoint_supports.json").read_text()
    strict = json.loads(text, parse_constant=_reject)  # strict JSON: no Infinity/NaN tokens
    assert strict["kl"][0] == "inf"  # +inf as the documented string
    on_disk = _io.read_json(tmp_path / "disjoint_supports.json")
    assert {"theta", "kl", "js", "wasserstein", "grad_js", "grad_wasserstein"} <= set(on_disk)
    assert on_disk["kl"][0] == math.inf
    assert (tmp_path / "disjoint_supports.png").read_bytes()[:4] == PNG


# ---------------------------------------------------------------------------------------------
# alpha_interpolation


def test_alpha_interpolation_from_mode_seeking_to_moment_matching(tmp_path):
    result = alpha_interpolation.main(["--num-alpha", "7", "--steps", "300", "--num-samples",
                                       "128", "--grid-points", "401", "--out", str(tmp_path)])
    alpha = np.asarray(result["alpha"])
    np.testing.assert_allclose(alpha, np.linspace(-0.25, 1.25, 7), atol=1e-12)
    t = result["target"]
    sd = math.sqrt(0.36 + 4.0)  # the mixture's std: the forward-KL (alpha = 1) optimum
    assert abs(t["std"] - sd) < 1e-9 and abs(t["mean"]) < 1e-12
    best_m, best_s = np.asarray(result["best"]["mean"]), np.asarray(result["best"]["std"])
    for i in np.flatnonzero(alpha <= 0):  # reverse-KL side: one mode, N(+-2, about 0.6)
        assert abs(abs(best_m[i]) - 2.0) < 0.1 and abs(best_s[i] - 0.6) < 0.06, (alpha[i],)
    one = int(np.flatnonzero(np.isclose(alpha, 1.0))[0])
    assert abs(best_m[one]) < 0.05 * sd and abs(best_s[one] - sd) < 0.05 * sd
    assert np.all(np.diff(best_s) > -0.01)  # std grows with alpha (MC noise below 0.01)
    assert np.all(np.diff(result["exact_optimum"]["std"]) > -1e-3)
    lo, hi = result["best"]["switch_alpha"]
    assert 0 <= lo and hi <= 0.5  # quadrature: the two branches cross at alpha = 0.25
    # The documented limitation: from a narrow start on a mode, the self-normalised Monte
    # Carlo fit cannot see the other mode, even at alpha = 1; the exact fit from there can.
    narrow = result["fits"][0]
    assert narrow["name"] == "narrow-" and abs(narrow["mean"][one] + 2) < 0.1
    assert abs(narrow["exact_mean"][one]) < 0.05 and abs(narrow["exact_std"][one] - sd) < 0.05
    on_disk = json.loads((tmp_path / "alpha_interpolation.json").read_text())
    assert {"alpha", "fits", "best", "exact_optimum", "target", "meta"} <= set(on_disk)
    assert {"name", "init_mean", "init_std", "mean", "std"} <= set(on_disk["fits"][0])
    assert (tmp_path / "alpha_interpolation.png").read_bytes()[:4] == PNG


# ---------------------------------------------------------------------------------------------
# bifurcation: references computed here with numpy/scipy quadrature.

_X = np.linspace(-14.0, 14.0, 14001)


def _reverse_kl(m, s, d):
    """KL(N(m, s) || 0.5 N(-d/2, 1) + 0.5 N(d/2, 1)) by the trapezoid rule, float64."""
    log_q = -0.5 * ((_X - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    log_p = np.logaddexp(-0.5 * (_X + d / 2) ** 2, -0.5 * (_X - d / 2) ** 2) \
        - math.log(2) - 0.5 * math.log(2 * math.pi)
    return np.trapezoid(np.exp(log_q) * (log_q - log_p), _X)


def _fit(m, d, free=True):
    x0 = [m, 0.0] if free else [m]
    f = (lambda v: _reverse_kl(v[0], math.exp(v[1]), d)) if free else \
        (lambda v: _reverse_kl(v[0], 1.0, d))
    r = minimize(f, x0, method="BFGS", options=dict(gtol=1e-8))
    return r.x, r.fun


def test_bifurcation_critical_separations(tmp_path):
    args = ["--d-min", "2", "--d-max", "6", "--num-d", "9", "--num-inits", "8", "--seeds", "2",
            "--steps", "400", "--theory-points", "41", "--out", str(tmp_path)]
    result = bifurcation.main(args)
    crit, th = result["critical"], result["theory"]
    # Fixed scale: the centre's curvature 1 - (d/2)^2 E[sech^2(d z / 2)] vanishes at d_c.
    z = np.linspace(-12, 12, 48001)
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    d_c = brentq(lambda d: 1 - (d / 2) ** 2 * np.trapezoid(phi / np.cosh(d * z / 2) ** 2, z),
                 2.0, 4.0, xtol=1e-10)
    assert abs(th["d_c_fixed"] - d_c) < 5e-3
    assert crit["fixed"]["interval"] == [2.5, 3.0] and crit["fixed"]["interval"][0] < d_c
    assert crit["fixed"]["resolution"] == 0.5
    # Free scale: the centre stays stable (curvature 1/s0^2 in m, Stein's lemma) ...
    lam, s0 = np.asarray(th["free_min_hessian_eigenvalue_at_centre"]), th["free_centre_std"]
    np.testing.assert_allclose(lam, 1 / np.asarray(s0) ** 2, rtol=0.02)
    # ... and the off-centre minimum exists from d_sn on: scipy fits started on a mode.
    (m_lo, _), _ = _fit(4.75 / 2, 4.75)
    (m_hi, _), _ = _fit(4.9 / 2, 4.9)
    assert abs(m_lo) < 0.05 and m_hi > 2.0
    assert 4.75 < th["d_sn_free"] < 4.9
    assert crit["free"]["interval"] == [4.5, 5.0]
    # It becomes the global optimum at d_eq: compare with the centre's best KL.
    def gap(d):  # best KL on the mode minus best KL at the centre
        centre = minimize(lambda u: _reverse_kl(0.0, math.exp(u[0]), d), [1.0],
                          method="BFGS", options=dict(gtol=1e-8)).fun
        return _fit(d / 2, d)[1] - centre
    assert gap(5.5) > 0 > gap(5.7) and 5.5 < th["d_eq_free"] < 5.7
    # The pitchfork's branch (fixed scale) against scipy at d = 4.
    i = int(np.argmin(np.abs(np.asarray(th["d"]) - 4.0)))
    (m_ref,), _ = _fit(2.0, th["d"][i], free=False)
    assert abs(th["fixed_branch"][i] - m_ref) < 0.02
    fixed = np.asarray(result["fits"]["fixed"]["mean"])  # [d, init, seed]
    assert np.all(np.abs(fixed[-1]) > 2.5)  # d = 6: every run on a branch ...
    assert np.all(np.abs(fixed[0]) < 0.2)  # d = 2: every run in the centre
    assert result["meta"]["num_fits"] == 2 * 9 * 8 * 2
    on_disk = json.loads((tmp_path / "bifurcation.json").read_text())
    assert on_disk["fits"] == result["fits"] and np.shape(on_disk["fits"]["free"]["mean"]) == \
        (9, 8, 2)
    assert (tmp_path / "bifurcation.png").read_bytes()[:4] == PNG


SHARDED = textwrap.dedent("""
    import sys, jax, numpy as np
    from experiments import bifurcation
    assert jax.device_count() == 8, jax.devices()
    args = ["--d-min", "1", "--d-max", "7", "--num-d", "4", "--num-inits", "3", "--seeds", "2",
            "--steps", "100", "--no-theory", "--no-figure"]
    one = bifurcation.main(args + ["--out", sys.argv[1] + "/one"])
    many = bifurcation.main(args + ["--out", sys.argv[1] + "/many", "--devices", "all"])
    assert many["meta"]["sharded"] and not one["meta"]["sharded"]
    for fam in ("fixed", "free"):
        for key in ("mean", "std"):
            np.testing.assert_allclose(many["fits"][fam][key], one["fits"][fam][key],
                                       rtol=1e-5, atol=1e-5)
    print("SHARDED-OK")
""")


def test_bifurcation_sharded_equals_single_device(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SHARDED-OK" in out.stdout


# ---------------------------------------------------------------------------------------------
# distillation: the shared command-line and JSON contract (tiny settings; the physics is tested
# with the loss in tests/test_losses.py)


def test_distillation_output_contract(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        result = distillation.main(["--steps", "20", "--teacher-steps", "20", "--seeds", "1",
                                    "--temperatures", "2", "--out", str(tmp_path)])
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    json_path, png_path = tmp_path / "distillation.json", tmp_path / "distillation.png"
    assert f"wrote {json_path}, {png_path}" in out  # the output paths are printed
    for path in (json_path, png_path):  # what open(..., "w") gives under umask 027
        assert path.stat().st_mode & 0o777 == 0o640
    saved = json.loads(json_path.read_text(), parse_constant=_reject)
    assert set(saved) == {"models", "meta"}
    meta = saved["meta"]
    assert meta["steps"] == 20 and meta["temperatures"] == [2.0] and meta["wall_seconds"] > 0
    assert {"jax_version", "backend", "devices", "seed"} <= set(meta)
    assert [m["model"] for m in saved["models"]] == ["bayes", "teacher", "hard labels",
                                                      "distill T=2"]
    assert [m["model"] for m in result["models"]] == [m["model"] for m in saved["models"]]
    assert png_path.read_bytes()[:4] == PNG


@pytest.mark.parametrize("module", EXPERIMENTS, ids=lambda m: m.__name__.split(".")[-1])
def test_every_experiment_has_one_command_line(module, capsys):
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    name = module.__name__.split(".")[-1]
    assert text.startswith(f"usage: python -m experiments.{name} ")
    assert "--no-figure" in text and "--no-plot" not in text
    assert text.count("(default: ") >= 4  # ArgumentDefaultsHelpFormatter
    assert "PRNG seed (default: 0)" in " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# bad command-line input: one line on stderr, exit status 2, nothing written


@pytest.mark.parametrize("module,args,words", [
    # experiments.distillation validated nothing; each of these ran or crashed mid-write
    (distillation, ["--temperatures", "0"], "--temperatures: must be finite and > 0, got 0"),
    (distillation, ["--temperatures", "2", "-1"], "--temperatures: must be finite and > 0"),
    (distillation, ["--temperatures", "inf"], "--temperatures: must be finite, got inf"),
    (distillation, ["--seeds", "0"], "--seeds: must be an integer >= 1, got 0"),
    (distillation, ["--alpha", "nan"], "--alpha: must be in [0, 1], got nan"),
    (distillation, ["--alpha", "2"], "--alpha: must be in [0, 1], got 2"),
    (distillation, ["--steps", "0"], "--steps: must be an integer >= 1, got 0"),
    (distillation, ["--steps", "2.5"], "--steps: expected an integer, got '2.5'"),
    (distillation, ["--n-student", "9000"], "--n-student must be <= 8192"),
    (mode_seeking, ["--epsilon", "nan"], "--epsilon: must be finite"),
    (mode_seeking, ["--stds", "0.5", "-1"], "--stds: must be finite and > 0"),
    (alpha_interpolation, ["--grid-points", "100"], "--grid-points: must be an integer >= 101"),
    (bifurcation, ["--learning-rate=-inf"], "--learning-rate: must be finite"),
    (disjoint_supports, ["--seed", "-1"], "--seed: must be an integer >= 0"),
    (disjoint_supports, ["--num-theta", "4"], "--num-theta must be odd"),
    (disjoint_supports, ["--epsilon", "0"], "--epsilon: must be finite and > 0"),
    (alpha_interpolation, ["--alpha-min", "1", "--alpha-max", "0"], "--alpha-max > --alpha-min"),
    (alpha_interpolation, ["--init-means", "0"], "go together"),
    (bifurcation, ["--d-min", "3", "--d-max", "2"], "--d-min < --d-max"),
    (bifurcation, ["--steps", "0"], "--steps: must be an integer >= 1"),
])
def test_bad_cli_input_exits_2_and_writes_nothing(tmp_path, capsys, module, args, words):
    with pytest.raises(SystemExit) as info:
        module.main([*args, "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module", EXPERIMENTS, ids=lambda m: m.__name__.split(".")[-1])
def test_bad_out_is_refused_before_computing(tmp_path, capsys, module):
    # --out naming a file, a path under a file, or a folder that cannot be created: exit 2 with
    # one line and no traceback, before anything runs (a heavy default setting would take
    # seconds to minutes, so a quick exit shows nothing was computed).
    afile = tmp_path / "afile"
    afile.write_text("keep")
    cases = [(afile, "is a file"), (afile / "sub", "lies under the file")]
    if os.path.isdir("/proc/self"):  # cannot be created even by root
        cases.append((Path("/proc/jaxdiv-no-such-folder"), "cannot create"))
    for out, words in cases:
        with pytest.raises(SystemExit) as info:
            module.main(["--out", str(out)])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and words in err, err
        assert "Traceback" not in err
    assert afile.read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["afile"]
