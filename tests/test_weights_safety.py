"""Weights files: damaged archives name the file, non-finite weights are refused wherever they
enter, a killed save leaves nothing behind for long, and user files get the umask's mode."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import symgrad as sg
from symgrad.codegen import atomic
from symgrad.codegen.export import export_source
from symgrad.runtime.weights_io import WeightsFileError, load_weights, save_weights

SHAPES = {"dense0.W": (2, 3), "dense0.b": (3,)}


@pytest.fixture(scope="module")
def model():
    # Compile only (derivation, no kernels): set_params, params and load never run Numba.
    return sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1)), loss="mse")


def _good(tmp_path):
    path = tmp_path / "good.npz"
    np.savez(path, **{"dense0.W": np.ones((2, 3)), "dense0.b": np.arange(3.0)})
    return path


def _damaged_files(tmp_path):
    good = _good(tmp_path).read_bytes()
    damaged = {"truncated": good[: len(good) // 2], "empty": b"", "tail cut": good[:-30]}
    flipped = bytearray(good)   # a member's data corrupted: the CRC check fails on read
    with zipfile.ZipFile(tmp_path / "good.npz") as archive:
        info = archive.getinfo("dense0.W.npy")
    start = info.header_offset + 30 + len(info.filename) + 140
    flipped[start:start + 8] = b"\xff" * 8
    damaged["corrupt member"] = bytes(flipped)
    for name, data in damaged.items():
        path = tmp_path / f"{name.replace(' ', '_')}.npz"
        path.write_bytes(data)
        yield name, path


def test_damaged_archives_raise_weights_file_error_naming_the_file(tmp_path) -> None:
    assert issubclass(WeightsFileError, ValueError)
    for name, path in _damaged_files(tmp_path):
        with pytest.raises(WeightsFileError) as info:
            load_weights(path, SHAPES)
        assert str(path) in str(info.value), name
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):   # not damage: stays as it is
        load_weights(tmp_path / "nowhere.npz", SHAPES)


def test_non_finite_weights_are_refused_naming_the_parameter(model, tmp_path) -> None:
    before = {k: v.copy() for k, v in model.params.items()}
    bad_W = before["dense0.W"].copy()
    bad_W[1, 2] = np.nan
    bad_b = np.array([np.inf])
    with pytest.raises(ValueError, match=r"dense0\.W.*nan.*\(1, 2\)"):
        model.set_params({**before, "dense0.W": bad_W})
    with pytest.raises(ValueError, match=r"dense1\.b.*inf"):
        model.params["dense1.b"] = bad_b
    with pytest.raises(ValueError, match=r"dense1\.b.*-inf"):
        model.params = {**before, "dense1.b": -bad_b}
    path = tmp_path / "nan.npz"
    np.savez(path, **{**before, "dense0.W": bad_W})
    with pytest.raises(WeightsFileError, match=r"nan\.npz.*dense0\.W.*nan"):
        model.load(str(path))
    for name, value in before.items():   # every refusal left the weights untouched
        np.testing.assert_array_equal(model.params[name], value)
    # Finite in the file, infinite in the model's dtype: refused too.
    small = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1)), loss="mse",
                       dtype="float32")
    huge = {k: v.astype(np.float64) for k, v in small.params.items()}
    huge["dense1.W"] = huge["dense1.W"] * 0 + 1e300
    with pytest.raises(ValueError, match=r"dense1\.W holds 1e\+300 .*overflows .*float32"):
        small.set_params(huge)
    ok = {k: np.full_like(v, 0.5) for k, v in before.items()}
    model.set_params(ok)   # finite values still go through
    model.params["dense1.b"] = np.array([0.25])
    assert model.params["dense1.b"][0] == 0.25


def test_assigned_parameters_must_be_the_networks_own(model) -> None:
    """model.params[name] = value and model.params = {...} refuse a wrong shape, a name the
    network does not have and a missing one, before anything is replaced."""
    import pickle

    before = {k: v.copy() for k, v in model.params.items()}
    W = before["dense0.W"]
    with pytest.raises(ValueError, match=re.escape(f"'dense0.W' must have shape {W.shape}, "
                                                   f"got {W.T.shape}")):
        model.params["dense0.W"] = W.T.copy()
    with pytest.raises(ValueError, match=r"'dense9\.W' is not a parameter.*dense0\.W"):
        model.params["dense9.W"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"'dense1\.b' is missing"):
        model.params = {k: v for k, v in before.items() if k != "dense1.b"}
    with pytest.raises(ValueError, match=r"'extra' is not a parameter"):
        model.params = {**before, "extra": np.zeros(1)}
    assert sorted(model.params) == sorted(before)
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)
    copy = pickle.loads(pickle.dumps(model.params))   # pickled with its shapes
    assert copy.shapes == model.params.shapes and sorted(copy) == sorted(before)
    with pytest.raises(ValueError, match="must have shape"):
        copy["dense0.W"] = W.T.copy()


def test_a_layer_too_big_to_allocate_is_named() -> None:
    from symgrad.definition.errors import DefinitionError

    net = sg.Sequential(sg.Dense(10**20, 4), sg.Tanh(), sg.Dense(4, 1))
    with pytest.raises(DefinitionError, match=r"dense0: its weights of shape "
                                              r"\(100000000000000000000, 4\).*allocated"):
        sg.compile(net, loss="mse")


_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from symgrad.runtime import weights_io
    def stuck_savez(handle, **arrays):
        handle.write(b"half an archive")
        handle.flush()
        print("writing", flush=True)
        time.sleep(600)
    np.savez = stuck_savez
    weights_io.save_weights(sys.argv[1], {"w": np.zeros(3)})
""")


def _start_writer(path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_save_removes_temporaries_of_killed_writers_only(tmp_path) -> None:
    target = tmp_path / "w.npz"
    killed, alive = _start_writer(target), _start_writer(target)
    try:
        temps = {p.name for p in tmp_path.iterdir()}
        assert len(temps) == 2 and all(n.startswith(".symgrad-weights-") for n in temps)
        os.kill(killed.pid, signal.SIGKILL)   # kill -9 mid-save
        killed.wait(30)
        old_style = tmp_path / ".symgrad-weights-abc123.npz.tmp"   # no pid in the name
        old_style.write_bytes(b"x")
        recent = tmp_path / ".symgrad-weights-def456.npz.tmp"
        recent.write_bytes(b"x")
        past = time.time() - 2 * atomic.STALE_AFTER_S
        os.utime(old_style, (past, past))
        foreign = tmp_path / ".other-tool.tmp"
        foreign.write_bytes(b"x")
        save_weights(target, {"w": np.ones(3)})
        left = {p.name for p in tmp_path.iterdir()}
        assert not any(str(killed.pid) + "@" in name for name in left)   # the dead writer's
        assert any(str(alive.pid) + "@" in name for name in left)        # the live writer's kept
        assert old_style.name not in left and recent.name in left and foreign.name in left
        np.testing.assert_array_equal(np.load(target)["w"], np.ones(3))
    finally:
        for proc in (killed, alive):
            proc.kill()
            proc.wait(30)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_user_files_get_the_umask_mode_and_cache_files_stay_private(tmp_path, umask) -> None:
    old = os.umask(umask)
    try:
        save_weights(tmp_path / "w.npz", {"w": np.zeros(2)})
        export_source("X = 1\n", tmp_path / "trainer.py")
        atomic.atomic_write(tmp_path / "cache_entry", b"data")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for name in ("w.npz", "trainer.py"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == expected, name
    assert stat.S_IMODE(os.stat(tmp_path / "cache_entry").st_mode) == 0o600


def test_saving_over_a_file_keeps_its_mode_and_a_symlink_stays_a_symlink(tmp_path) -> None:
    # What open(path, "wb") does: the old file's mode stays, a link's target is written.
    target = tmp_path / "w.npz"
    save_weights(target, {"w": np.zeros(2)})
    os.chmod(target, 0o600)
    save_weights(target, {"w": np.ones(2)})
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    link = tmp_path / "latest.npz"
    link.symlink_to(target.name)
    save_weights(link, {"w": np.full(2, 7.0)})
    assert link.is_symlink() and os.readlink(link) == target.name
    np.testing.assert_array_equal(np.load(target)["w"], np.full(2, 7.0))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    # A link into a folder that does not exist is named as the user gave it.
    dangling = tmp_path / "gone.npz"
    dangling.symlink_to(tmp_path / "missing" / "w.npz")
    with pytest.raises(FileNotFoundError, match=r"gone\.npz: cannot write it"):
        save_weights(dangling, {"w": np.zeros(2)})
