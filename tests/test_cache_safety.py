"""The cache is trusted like ~/.ssh: private when created, refused (with one warning and a
private fallback) when someone else could have written it; derivations are JSON rebuilt from
whitelists, so a planted file cannot run code."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import warnings

import pytest
import sympy as sp

from symgrad.codegen import cache
from symgrad.definition.activations import REGISTRY
from symgrad.definition.errors import PairingError
from symgrad.definition.losses import LOSSES
from symgrad.derive import memo
from symgrad.derive.elementwise import derive_elementwise
from symgrad.derive.memo_format import MemoFormatError, decode, encode
from symgrad.derive.plan import Identity
from symgrad.store import folder as store_folder


@pytest.fixture
def state(monkeypatch, tmp_path):
    """A process state with no warning given, no folder refused and no fallback made yet."""
    monkeypatch.setattr(store_folder, "_WARNED", set())   # the folder state is stage-neutral
    monkeypatch.setattr(store_folder, "_REFUSED", {})
    monkeypatch.setattr(store_folder, "_FALLBACK", [])
    monkeypatch.setattr(cache, "_LOADED", {})       # the kernel modules are codegen's
    monkeypatch.delenv("SYMGRAD_DERIVATION_CACHE", raising=False)
    return tmp_path


def _private_and_mine(path) -> bool:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


def test_a_new_cache_folder_is_private(state, monkeypatch) -> None:
    root = state / "deep" / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(root))
    old = os.umask(0o002)   # a permissive umask must not leak into the cache
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert cache.cache_dir() == root
    finally:
        os.umask(old)
    for folder in (root, root / "derivations", root / "__pycache__", root / "scalar_steps"):
        assert _private_and_mine(folder), folder


def _foreign(folder):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another uid needs root")
    os.chown(folder, 65534, 65534)


# (where the problem is, how it is made, what the warning says)
UNTRUSTED = {
    "other owner": ("", _foreign, "owned by uid 65534"),
    "group-writable": ("", lambda f: os.chmod(f, 0o770), "writable by group or others"),
    "world-writable": ("", lambda f: os.chmod(f, 0o707), "writable by group or others"),
    "read-only": ("", lambda f: os.chmod(f, 0o500), "read-only"),
    "__pycache__ of another owner": ("__pycache__", _foreign, "owned by uid 65534"),
    "group-writable derivations": ("derivations", lambda f: os.chmod(f, 0o770),
                                   "writable by group or others"),
    # planted step texts pass the whitelist yet could be wrong derivatives
    "group-writable scalar_steps": ("scalar_steps", lambda f: os.chmod(f, 0o770),
                                    "writable by group or others"),
}


@pytest.mark.parametrize("case", sorted(UNTRUSTED))
def test_an_untrusted_folder_is_refused_with_one_warning(state, monkeypatch, case) -> None:
    sub, spoil, reason = UNTRUSTED[case]
    root = state / "cache"
    for folder in (root, root / "derivations", root / "__pycache__", root / "scalar_steps"):
        folder.mkdir(mode=0o700)
    spoil(root / sub if sub else root)
    before = sorted(p.name for p in root.rglob("*"))
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(root))
    with pytest.warns(cache.CacheWarning) as caught:
        used = cache.cache_dir()
        assert cache.cache_dir() == used   # the same fallback for the whole process
        module = cache.load_source("VALUE = 6 * 7\n", stem="probe")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(root / sub if sub else root) in message and reason in message
    assert "SYMGRAD_CACHE_DIR" in message and str(used) in message
    assert used != root and _private_and_mine(used)
    assert module.VALUE == 42 and os.path.dirname(module.__file__) == str(used)
    assert sorted(p.name for p in root.rglob("*")) == before   # nothing written there


def test_cache_dir_pointing_at_a_file_names_the_variable(state, monkeypatch) -> None:
    target = state / "not-a-folder"
    target.write_text("mine")
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(target))
    with pytest.warns(cache.CacheWarning, match=r"SYMGRAD_CACHE_DIR=.*not-a-folder.*"
                                                r"is not a folder") as caught:
        assert cache.load_source("VALUE = 1\n", stem="probe").VALUE == 1
        assert memo.remembered("t", ("file",), lambda: 3) == 3
    assert len(caught) == 1 and target.read_text() == "mine"


def test_a_folder_that_refuses_writes_falls_back(state, monkeypatch) -> None:
    """A folder that passes the checks can still fail to write (read-only file system)."""
    root = state / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(root))
    real = cache.atomic_write

    def read_only_fs(path, data, tag="cache"):
        if str(path).startswith(str(root)):
            raise OSError(30, "Read-only file system")
        return real(path, data, tag)

    monkeypatch.setattr(cache, "atomic_write", read_only_fs)
    with pytest.warns(cache.CacheWarning, match="Read-only file system") as caught:
        module = cache.load_source("VALUE = 5\n", stem="probe")
    assert module.VALUE == 5 and not module.__file__.startswith(str(root))
    assert len(caught) == 1


# --- the derivation memo: data, never code -------------------------------------------
def _nodes(value):
    """Every SymPy expression inside a plan, in a fixed order."""
    if isinstance(value, sp.Basic):
        yield value
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _nodes(getattr(value, name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _nodes(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(key)
            yield from _nodes(item)


def _builtin_plans():
    from symgrad.simplify.fusion import fuse_output
    from symgrad.simplify.saved_output import activation_plan

    for name, cls in sorted(REGISTRY.items()):
        layer = cls()
        if layer.entry.kind == "elementwise":
            yield "activation", name, activation_plan(derive_elementwise(layer))
        for loss_name, loss in sorted(LOSSES.items()):
            try:
                yield "output", f"{name} + {loss_name}", fuse_output(layer, loss)
            except PairingError:
                continue


def test_every_builtin_plan_survives_the_round_trip_exactly() -> None:
    count = 0
    for kind, name, plan in _builtin_plans():
        back = decode(encode(plan, memo.EXPECTED[kind]), memo.EXPECTED[kind])
        assert back == plan, name
        # srepr spells every node and every symbol assumption: nothing re-evaluated or lost
        assert [sp.srepr(n) for n in _nodes(back)] == [sp.srepr(n) for n in _nodes(plan)], name
        assert [n.assumptions0 for n in _nodes(back) if isinstance(n, sp.Symbol)] == \
               [n.assumptions0 for n in _nodes(plan) if isinstance(n, sp.Symbol)], name
        count += 1
    assert count >= len(REGISTRY) + len(LOSSES)


_X = ["Symbol", "x", {"real": True}]
IDENTITY = {"name": "i", "raw": {"expr": _X}, "simplified": {"expr": _X},
            "substitutions": {"dict": []}, "domain": {"dict": []}, "assumptions": ""}
REFUSED = {
    "class outside the whitelist": {"expr": ["Function", "system"]},
    "a lookalike name": {"expr": ["eval", ["Integer", 1]]},
    "symbol with a made-up assumption": {"expr": ["Symbol", "x", {"__class__": True}]},
    "string where a number belongs": {"expr": ["Integer", "__import__('os')"]},
    "dataclass outside the whitelist": {"dataclass": "NetworkPlan", "fields": {}},
    "missing field": {"dataclass": "Identity",
                      "fields": {k: v for k, v in IDENTITY.items() if k != "raw"}},
    "field of the wrong type": {"dataclass": "Identity", "fields": {**IDENTITY, "name": 5}},
    "unknown tag": {"pickle": "gASV"},
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_anything_outside_the_whitelists_is_refused(case) -> None:
    with pytest.raises(MemoFormatError):
        decode(json.dumps({"format": "symgrad-memo/1", "value": REFUSED[case]}))
    good = decode(json.dumps({"format": "symgrad-memo/1",
                              "value": {"dataclass": "Identity", "fields": IDENTITY}}))
    assert isinstance(good, Identity) and good.raw.is_real


def test_an_entry_of_the_wrong_shape_is_rebuilt_with_one_warning(state, monkeypatch) -> None:
    from symgrad.simplify.fusion import fuse_output

    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(state / "cache"))
    layer, loss = REGISTRY["identity"](), LOSSES["mse"]
    plan = fuse_output(layer, loss)
    key = ("wrong shape", layer.key)
    path = memo.memo_path("output", key)
    path.write_text(encode(42))   # well-formed, but an int where an OutputPlan belongs
    with pytest.warns(cache.CacheWarning, match="expected.*OutputPlan") as caught:
        assert memo.remembered("output", key, lambda: plan) == plan
    assert len(caught) == 1
    assert decode(path.read_bytes(), memo.EXPECTED["output"]) == plan   # healed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert memo.remembered("output", key, pytest.fail) == plan


_COMPILE = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import symgrad as sg
        net = sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1))
        model = sg.compile(net, loss="mse")
    print(json.dumps({"delta": str(model.plan.output.delta),
                      "derivative": str(model.plan.layers[0].activation.derivative),
                      "warnings": [str(w.message) for w in caught]}))
""")


class _Planted:
    """Unpickling this creates the marker file: proof that a loader ran the pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_in_derivations_does_not_run(tmp_path) -> None:
    root = tmp_path / "cache"
    env = {**os.environ, "SYMGRAD_CACHE_DIR": str(root)}
    env.pop("SYMGRAD_DERIVATION_CACHE", None)

    def compile_once() -> dict:
        proc = subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = compile_once()
    entries = sorted((root / "derivations").iterdir())
    assert len(entries) >= 2
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Planted(str(marker)))
    for entry in entries:   # over every stored entry, and under the pickle-era name too
        entry.write_bytes(payload)
        entry.with_suffix(".pkl").write_bytes(payload)
    second = compile_once()
    assert not marker.exists()
    assert (second["delta"], second["derivative"]) == (first["delta"], first["derivative"])
    assert sum("damaged cache entry" in w for w in second["warnings"]) == len(entries)
