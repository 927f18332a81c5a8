"""Experiment outputs are written atomically: an interrupted write loses nothing."""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from experiments import _io


def test_failed_write_keeps_previous_result_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "result.json"
    _io.write_json(path, {"run": 1})

    def crash(f):
        f.write(b'{"run": 2, "half')
        raise KeyboardInterrupt  # interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        _io.write_atomic(path, crash)
    assert json.loads(path.read_text()) == {"run": 1}
    assert sorted(os.listdir(tmp_path)) == ["result.json"]


def test_killed_process_keeps_previous_result(tmp_path):
    # A process killed (SIGKILL: no cleanup at all) in the middle of a write: the destination
    # still holds the previous complete result; only a hidden temporary file may remain.
    path = tmp_path / "result.json"
    _io.write_json(path, {"run": 1})
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from experiments import _io
        def slow(f):
            f.write(b'{{"run": 2, ')
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        _io.write_atomic({str(path)!r}, slow)
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert json.loads(path.read_text()) == {"run": 1}
    leftovers = [n for n in os.listdir(tmp_path) if n != "result.json"]
    assert all(n.startswith(".result.json.") and n.endswith(".tmp") for n in leftovers)


def _reject(token):
    raise ValueError(f"non-standard JSON token {token}")


def test_json_is_strict_and_non_finite_floats_round_trip(tmp_path):
    data = {"kl": float("inf"), "neg": [-math.inf, 1.5], "nan": math.nan, "name": "x",
            "arr": np.array([np.inf, 2.0]), "f32": np.float32(0.5), "none": None}
    path = _io.write_json(tmp_path / "a" / "b.json", data)
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    strict = json.loads(text, parse_constant=_reject)  # what JSON.parse and jq accept
    assert strict == {"kl": "inf", "neg": ["-inf", 1.5], "nan": "nan", "name": "x",
                      "arr": ["inf", 2.0], "f32": 0.5, "none": None}
    back = _io.read_json(path)
    assert back["kl"] == math.inf and back["neg"] == [-math.inf, 1.5] and math.isnan(back["nan"])
    assert back["arr"] == [math.inf, 2.0] and back["name"] == "x"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
        path = _io.write_json(tmp_path / "atomic.json", {"a": 1})
        assert os.umask(umask) == umask  # write_json leaves the umask as it found it
    finally:
        os.umask(old)
    expected = (tmp_path / "plain").stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == expected


def test_figure_written_atomically(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = _io.save_figure(tmp_path / "f.png", fig)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["f.png"]


def test_output_folder_refuses_files_and_unwritable_folders_and_creates_nothing(tmp_path,
                                                                              monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad, words in [(afile, "is a file"), (afile / "a" / "b", "lies under the file")]:
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            _io.output_folder(str(bad))
    assert _io.output_folder(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # checking creates nothing
    # A folder this user may not write in (simulated: root may write anywhere).
    monkeypatch.setattr(_io.os, "access", lambda path, mode: False)
    with pytest.raises(argparse.ArgumentTypeError, match="permission denied"):
        _io.output_folder(str(tmp_path / "new"))
