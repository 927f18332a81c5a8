"""Experiment outputs are written atomically: an interrupted write loses nothing."""

import json
import os
import signal
import subprocess
import sys
import textwrap

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


def test_json_infinity_round_trips(tmp_path):
    path = _io.write_json(tmp_path / "a" / "b.json", {"kl": float("inf")})
    assert json.loads(path.read_text()) == {"kl": float("inf")}
    assert "Infinity" in path.read_text()


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
