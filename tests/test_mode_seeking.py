"""The flagship experiment: its physics at loose tolerance, its outputs, and its CLI errors."""

import json

import numpy as np
import pytest

from experiments import mode_seeking


def _check_physics(result, forward_tol, mode_tol):
    t = result["target"]
    means, stds = np.asarray(t["means"]), np.asarray(t["stds"])
    for run in result["fits"]["forward_kl"]:  # mass-covering: the moment-matching optimum
        assert abs(run["mean"] - t["mean"]) < forward_tol * t["std"], run
        assert abs(run["std"] - t["std"]) < forward_tol * t["std"], run
    found = []
    for run in result["fits"]["reverse_kl"]:  # mode-seeking: sits on one component
        k = int(np.argmin(np.abs(means - run["mean"])))
        assert abs(run["mean"] - means[k]) < mode_tol * stds[k], run
        assert abs(run["std"] - stds[k]) < mode_tol * stds[k], run
        found.append(k)
    return found


def test_default_target_mean_vs_mode_seeking(tmp_path):
    result = mode_seeking.main(["--steps", "300", "--num-samples", "256", "--out",
                                str(tmp_path), "--no-figure", "--sinkhorn-samples", "32"])
    found = _check_physics(result, forward_tol=0.05, mode_tol=0.15)
    assert sorted(found) == [0, 1]  # runs started on opposite sides find different modes
    # With equal modes, each mode's reverse KL (about log 2) beats the moment-matched fit's.
    fwd = min(r["kl_model_target"] for r in result["fits"]["forward_kl"])
    assert all(r["kl_model_target"] < fwd for r in result["fits"]["reverse_kl"])
    on_disk = json.loads((tmp_path / "mode_seeking.json").read_text())
    assert set(on_disk) == {"target", "fits", "meta"}
    assert set(on_disk["fits"]) == {"forward_kl", "reverse_kl", "js", "sinkhorn"}
    assert set(on_disk["fits"]["js"][0]) == {"init_mean", "init_std", "mean", "std", "final_loss",
                                              "kl_target_model", "kl_model_target", "js"}
    assert {"jax_version", "backend", "devices", "steps", "seed",
            "wall_seconds"} <= set(on_disk["meta"])
    assert on_disk["fits"] == result["fits"]


def test_asymmetric_target_and_figure(tmp_path):
    args = ["--weights", "0.3", "0.7", "--means", "-1", "3", "--stds", "0.5", "1.0",
            "--steps", "300", "--sinkhorn-samples", "32", "--out", str(tmp_path)]
    result = mode_seeking.main(args)
    found = _check_physics(result, forward_tol=0.05, mode_tol=0.15)
    assert sorted(found) == [0, 1]
    rk = {k: r["kl_model_target"] for k, r in zip(found, result["fits"]["reverse_kl"],
                                                   strict=True)}
    assert rk[1] < rk[0]  # the heavier, wider mode is the better local optimum
    assert (tmp_path / "mode_seeking.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,words", [
    (["--stds", "0.6", "-1"], "--stds: must be finite and > 0"),
    (["--weights", "0.5", "0.6"], "sum to 1"),
    (["--means", "-2", "0", "2"], "same length"),
    (["--init-std", "0"], "--init-std: must be finite and > 0"),
])
def test_bad_cli_input_exits_2_and_writes_nothing(tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as info:
        mode_seeking.main([*args, "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists()
