"""Hostile checkpoints (issue 14): every case must raise its exact error class, write nothing, allocate little.

Each test builds a forged or broken file and asserts the error class (``DataError`` for files that are not
consistent checkpoints, ``UnsafeCheckpointError`` for files that would run code or exceed the budget,
``UnsupportedLayerError`` for unknown layer types, ``InvalidParameterError`` for bad output paths) and that the
folder holds exactly the files it held before.
"""

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from prunebound import io as pio
from prunebound import network as N
from prunebound import zoo
from prunebound.errors import DataError, InvalidParameterError, UnsafeCheckpointError, UnsupportedLayerError


def _listing(folder: Path) -> dict:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def _refuses(path: Path, err: type, match: str | None = None, **kw) -> str:
    before = _listing(path.parent)
    with pytest.raises(err, match=match) as info:
        pio.load_model(path, **kw)
    assert type(info.value) is err, f"expected exactly {err.__name__}, got {type(info.value).__name__}"
    assert _listing(path.parent) == before, "loading must not write anything"
    msg = str(info.value)
    if os.environ.get("PRUNEBOUND_SHOW_ERRORS"):
        print(f"\n{err.__name__}: {msg}")
    assert "weights_only=False" not in msg and "Traceback" not in msg
    return msg


def _container(path: Path, header: dict, sd: dict) -> Path:
    """A v2 container with an arbitrary (forged) header."""
    torch.save({"format": pio.FORMAT, "header": json.dumps(header), "state_dict": sd}, path)
    return path


def _honest(tmp_path: Path, name: str = "ok.pt", model=None) -> tuple[Path, dict, dict]:
    m = model if model is not None else N.mlp(4, [3], 2, seed=0)
    p = pio.save_model(m, tmp_path / name)
    obj = torch.load(p, weights_only=True)
    return p, json.loads(obj["header"]), dict(obj["state_dict"])


# ------------------------------------------------------------------------------------------- not checkpoints
def test_random_bytes(tmp_path):
    p = tmp_path / "rand.pt"
    p.write_bytes(bytes(torch.randint(0, 256, (2048,), generator=torch.Generator().manual_seed(0),
                                      dtype=torch.uint8).tolist()))
    msg = _refuses(p, DataError, "not a model checkpoint")
    assert "pickle" not in msg.lower() and "execute" not in msg


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    _refuses(p, DataError, "empty file")


def test_text_file(tmp_path):
    p = tmp_path / "notes.pt"
    p.write_text('{"weights": [1, 2, 3]}')
    _refuses(p, DataError, "text file")


def test_directory_is_not_a_checkpoint(tmp_path):
    d = tmp_path / "dir.pt"
    d.mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        pio.load_model(d)


def test_truncated_pt(tmp_path):
    p, _, _ = _honest(tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _refuses(p, DataError, "truncated|damaged")


def test_truncated_safetensors(tmp_path):
    p = pio.save_model(N.mlp(4, [3], 2, seed=0), tmp_path / "m.safetensors")
    data = p.read_bytes()
    p.write_bytes(data[:-20])
    _refuses(p, DataError)


def test_zip_with_wrong_members(tmp_path):
    p = tmp_path / "other.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "hello")
        z.writestr("weights.npy", b"\x93NUMPY")
    _refuses(p, DataError, "zip archive but not a PyTorch checkpoint")


def test_zip_with_extra_member(tmp_path):
    p, _, _ = _honest(tmp_path)
    with zipfile.ZipFile(p, "a") as z:
        z.writestr(z.namelist()[0].split("/")[0] + "/payload.py", "import os")
    _refuses(p, DataError, "not one torch.save writes")


def test_zip_with_compressed_members(tmp_path):
    p, _, _ = _honest(tmp_path)
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    q = tmp_path / "deflated.pt"
    with zipfile.ZipFile(q, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in members.items():
            z.writestr(n, b)
    _refuses(q, DataError, "compressed")


def test_zip_member_size_forged(tmp_path):
    p, _, _ = _honest(tmp_path)
    raw = bytearray(p.read_bytes())
    # forge the uncompressed size of the last central-directory entry (offset 24 in the entry)
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 20: cd + 28] = struct.pack("<II", 2**31, 2**31)
    p.write_bytes(bytes(raw))
    _refuses(p, DataError)


def test_legacy_pickle_format(tmp_path):
    p = tmp_path / "legacy.pt"
    torch.save(N.mlp(2, [2], 2).state_dict(), p, _use_new_zipfile_serialization=False)
    _refuses(p, UnsafeCheckpointError, "raw pickle stream")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/prunebound_hostile_pwned",))


def test_raw_malicious_pickle(tmp_path):
    flag = Path("/tmp/prunebound_hostile_pwned")
    flag.unlink(missing_ok=True)
    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps({"state_dict": _Evil()}))
    _refuses(p, UnsafeCheckpointError, "refused")
    assert not flag.exists()


def test_zip_pickle_with_code(tmp_path):
    flag = Path("/tmp/prunebound_hostile_pwned")
    flag.unlink(missing_ok=True)
    p = tmp_path / "evilzip.pt"
    torch.save({"state_dict": _Evil()}, p)
    msg = _refuses(p, UnsafeCheckpointError, "refused")
    assert not flag.exists() and "weights_only" not in msg


# ------------------------------------------------------------------------------------------- forged sizes
def test_huge_spec_rejected_before_building(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["reference"]["spec"]["children"][0][1].update(in_features=10**6, out_features=10**6)
    p = _container(tmp_path / "bomb.pt", h, sd)
    assert p.stat().st_size < 4096
    _refuses(p, DataError, "shape")


def test_huge_zoo_kwargs_rejected(tmp_path):
    m = zoo.build("resnet20", width=2, seed=0)
    _, h, sd = _honest(tmp_path, model=m)
    h["reference"]["kwargs"]["width"] = 4096
    p = _container(tmp_path / "zoobomb.pt", h, sd)
    _refuses(p, DataError, "zoo reference rejected|budget")
    h["reference"]["kwargs"]["width"] = 10**9
    _refuses(_container(tmp_path / "zoobomb2.pt", h, sd), DataError, "width")


@pytest.mark.parametrize("kwargs,match", [({"device": "cuda"}, "no parameter 'device'"),
                                          ({"name": "vgg16"}, "no parameter 'name'"),
                                          ({"width": "2"}, "width")])
def test_zoo_kwargs_forged(tmp_path, kwargs, match):
    _, h, sd = _honest(tmp_path, model=zoo.build("resnet20", width=1, seed=0))
    h["reference"]["kwargs"].update(kwargs)
    _refuses(_container(tmp_path / "zk.pt", h, sd), DataError, match)


def test_zoo_unknown_name(tmp_path):
    _, h, sd = _honest(tmp_path, model=zoo.build("resnet20", width=1, seed=0))
    h["reference"]["name"] = "os.system"
    _refuses(_container(tmp_path / "zn.pt", h, sd), DataError, "unknown architecture")


def test_huge_shape_in_pickle(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "t.pt")
    with zipfile.ZipFile(tmp_path / "t.pt") as z:
        members = {n: z.read(n) for n in z.namelist()}
    key = next(n for n in members if n.endswith("data.pkl"))
    pk = members[key]
    i = pk.index(b"K\x00K\x02\x85")  # storage offset 0, size (2,)
    members[key] = pk[:i] + b"K\x00J" + struct.pack("<i", 2**30) + pk[i + 4:]
    p = tmp_path / "shape.pt"
    with zipfile.ZipFile(p, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    (tmp_path / "t.pt").unlink()
    _refuses(p, DataError, "damaged")


def test_safetensors_header_declares_huge_shape(tmp_path):
    p = pio.save_model(N.mlp(4, [3], 2, seed=0), tmp_path / "m.safetensors")
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8: 8 + n])
    header["0.weight"]["shape"] = [10**6, 10**6]
    new = json.dumps(header).encode()
    p.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])
    _refuses(p, DataError, "declares shape")


def test_safetensors_header_length_forged(tmp_path):
    p = tmp_path / "len.safetensors"
    p.write_bytes(struct.pack("<Q", 2**40) + b'{"a": 1}')
    _refuses(p, DataError)


def test_parameter_budget(tmp_path):
    p, _, _ = _honest(tmp_path)
    _refuses(p, UnsafeCheckpointError, "budget", max_params=10)


# ------------------------------------------------------------------------------------------- inconsistent content
def test_shape_mismatch(tmp_path):
    _, h, sd = _honest(tmp_path)
    sd["0.weight"] = torch.zeros(3, 5)
    _refuses(_container(tmp_path / "mis.pt", h, sd), DataError, "shape")


def test_missing_tensor(tmp_path):
    _, h, sd = _honest(tmp_path)
    del sd["2.bias"]
    h["dtypes"].pop("2.bias")
    _refuses(_container(tmp_path / "miss.pt", h, sd), DataError, "missing")


def test_nan_weights(tmp_path):
    _, h, sd = _honest(tmp_path)
    sd["0.weight"][0, 0] = float("nan")
    h["fingerprint"] = None
    _refuses(_container(tmp_path / "nan.pt", h, sd), DataError, "non-finite")


def test_unknown_layer_type(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["reference"]["spec"]["children"][1][1] = {"type": "Subprocess"}
    _refuses(_container(tmp_path / "unk.pt", h, sd), UnsupportedLayerError, "Subprocess")


@pytest.mark.parametrize("field,value", [("in_features", -5), ("out_features", 0), ("in_features", 2.5),
                                         ("in_features", "4"), ("in_features", True)])
def test_negative_or_wrong_typed_sizes(tmp_path, field, value):
    _, h, sd = _honest(tmp_path)
    h["reference"]["spec"]["children"][0][1][field] = value
    _refuses(_container(tmp_path / "neg.pt", h, sd), DataError, field)


def test_spec_nested_too_deep(tmp_path):
    _, h, sd = _honest(tmp_path)
    spec = h["reference"]["spec"]
    for _ in range(100):
        spec = {"type": "Sequential", "children": [["x", spec]]}
    h["reference"]["spec"] = spec
    _refuses(_container(tmp_path / "deep.pt", h, sd), DataError, "deeper")


def test_header_not_json(tmp_path):
    _, _, sd = _honest(tmp_path)
    p = tmp_path / "badjson.pt"
    torch.save({"format": pio.FORMAT, "header": "{not json", "state_dict": sd}, p)
    _refuses(p, DataError, "not valid JSON")


def test_header_wrong_types(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["tied"] = "everything"
    _refuses(_container(tmp_path / "types.pt", h, sd), DataError, "tied")


def test_import_path_needs_allow_import(tmp_path, monkeypatch):
    pkg = tmp_path / "hostile_pkg_io"
    pkg.mkdir()
    flag = tmp_path / "ran.flag"
    (pkg / "__init__.py").write_text(f"open({str(flag)!r}, 'w').write('ran')\ndef make():\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, h, sd = _honest(tmp_path)
    h["reference"] = {"kind": "import", "target": "hostile_pkg_io:make", "kwargs": {}}
    p = _container(tmp_path / "imp.pt", h, sd)
    _refuses(p, UnsafeCheckpointError, "allow_import")
    assert not flag.exists() and "hostile_pkg_io" not in sys.modules
    # allowed: it is imported, and a factory that returns no module is refused clearly
    with pytest.raises(DataError, match="not an nn.Module"):
        pio.load_model(p, allow_import=True)
    sys.modules.pop("hostile_pkg_io", None)


def test_import_path_wrong_kwargs(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["reference"] = {"kind": "import", "target": "prunebound.network:mlp", "kwargs": {"colour": "red"}}
    _refuses(_container(tmp_path / "kw.pt", h, sd), DataError, "refused the recorded kwargs", allow_import=True)


def test_import_path_malformed(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["reference"] = {"kind": "import", "target": "os:system; rm -rf /", "kwargs": {}}
    _refuses(_container(tmp_path / "imp2.pt", h, sd), DataError, "package.module:function", allow_import=True)


def test_dtype_trick_header_lies(tmp_path):
    _, h, sd = _honest(tmp_path)
    sd["0.weight"] = sd["0.weight"].double()  # header still says float32
    _refuses(_container(tmp_path / "dt.pt", h, sd), DataError, "dtype")


def test_dtype_trick_integer_weights(tmp_path):
    _, h, sd = _honest(tmp_path)
    sd["0.weight"] = sd["0.weight"].to(torch.int64)
    h["dtypes"]["0.weight"] = "torch.int64"
    h["fingerprint"] = None
    _refuses(_container(tmp_path / "int.pt", h, sd), DataError, "dtype")


def test_tied_weights_lie_alias_stored(tmp_path):
    _, h, sd = _honest(tmp_path, model=N.mlp(3, [3], 3, seed=0))
    h["tied"] = [["0.weight", "2.weight"]]  # but 2.weight is stored separately
    _refuses(_container(tmp_path / "tie1.pt", h, sd), DataError, "lie")


def test_tied_weights_lie_shapes(tmp_path):
    _, h, sd = _honest(tmp_path)
    del sd["2.weight"]
    h["dtypes"].pop("2.weight")
    h["tied"] = [["0.weight", "2.weight"]]  # (3, 4) cannot stand in for (2, 3)
    _refuses(_container(tmp_path / "tie2.pt", h, sd), DataError, "shape")


def test_tied_weights_lie_missing_canonical(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["tied"] = [["ghost.weight", "0.weight"]]
    _refuses(_container(tmp_path / "tie3.pt", h, sd), DataError, "does not store")


def test_tie_mismatch_with_users_module(tmp_path):
    p, _, _ = _honest(tmp_path, model=N.mlp(3, [3], 3, seed=0))
    tied = N.mlp(3, [3], 3)
    tied[2].weight = tied[0].weight
    _refuses(p, DataError, "ties", module=tied)


def test_mask_values_not_binary(tmp_path):
    m = N.mlp(4, [3], 2, seed=0)
    N.apply_masks(m, {"0": torch.ones(3, 4)})
    _, h, sd = _honest(tmp_path, model=m)
    sd["0.weight_mask"] = sd["0.weight_mask"] * 2
    _refuses(_container(tmp_path / "mask.pt", h, sd), DataError, "0 and 1")


def test_pruned_list_lies(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["pruned"] = ["0.weight"]
    _refuses(_container(tmp_path / "pl.pt", h, sd), DataError, "pruned")


def test_fingerprint_mismatch(tmp_path):
    _, h, sd = _honest(tmp_path)
    sd["0.weight"] = sd["0.weight"] + 0.5  # same shapes, different function, stale fingerprint
    _refuses(_container(tmp_path / "fp.pt", h, sd), DataError, "fingerprint mismatch")


def test_fingerprint_forged_input_shape(tmp_path):
    _, h, sd = _honest(tmp_path)
    h["fingerprint"]["input_shape"] = [10**5, 10**5]
    _refuses(_container(tmp_path / "fp2.pt", h, sd), DataError, "fingerprint")


def test_state_dict_of_wrong_things(tmp_path):
    p = tmp_path / "strs.pt"
    torch.save({"format": pio.FORMAT, "header": "{}", "state_dict": {"w": "not a tensor"}}, p)
    _refuses(p, DataError, "not a tensor")


# ------------------------------------------------------------------------------------------- saving
def test_save_refuses_symlink(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "model.pt"
    link.symlink_to(target)
    before = _listing(tmp_path)
    with pytest.raises(InvalidParameterError, match="symbolic link") as info:
        pio.save_model(N.mlp(2, [2], 2), link)
    assert type(info.value) is InvalidParameterError
    assert target.read_text() == "keep me" and _listing(tmp_path) == before


def test_save_refuses_directory_target(tmp_path):
    (tmp_path / "d.pt").mkdir()
    before = _listing(tmp_path)
    with pytest.raises(InvalidParameterError, match="not a regular file"):
        pio.save_model(N.mlp(2, [2], 2), tmp_path / "d.pt")
    assert _listing(tmp_path) == before


def test_save_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    p = pio.save_model(N.mlp(2, [2], 2, seed=0), tmp_path / "m.pt")
    before, content = _listing(tmp_path), p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        pio.save_model(N.mlp(2, [2], 2, seed=1), p)
    assert _listing(tmp_path) == before and p.read_bytes() == content


def test_save_bad_factory(tmp_path):
    with pytest.raises(InvalidParameterError, match="import path"):
        pio.save_model(N.mlp(2, [2], 2), tmp_path / "f.pt", factory="not a path")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- memory
def test_hostile_load_allocates_little(tmp_path):
    """Peak RSS growth while rejecting 2 KB bombs, measured in a fresh process (< 100 MB; issue 14)."""
    _, h, sd = _honest(tmp_path)
    spec_bomb = dict(h, reference=json.loads(json.dumps(h["reference"])))
    spec_bomb["reference"]["spec"]["children"][0][1].update(in_features=10**6, out_features=10**6)
    _container(tmp_path / "spec_bomb.pt", spec_bomb, sd)
    m = zoo.build("resnet20", width=1, seed=0)
    _, hz, _ = _honest(tmp_path, name="z.pt", model=m)
    hz["reference"]["kwargs"]["width"] = 1000  # 1.05e9 parameters if built; under the default budget
    hz["dtypes"] = {"fc.bias": "torch.float32"}
    _container(tmp_path / "zoo_bomb.pt", hz, {"fc.bias": torch.zeros(10)})
    assert all((tmp_path / f).stat().st_size < 4096 for f in ("spec_bomb.pt", "zoo_bomb.pt"))
    script = textwrap.dedent(f"""
        import resource, sys
        import torch
        from prunebound import io as pio
        from prunebound.errors import PruneboundError

        def vm(key):  # kB; VmHWM is the peak RSS, reset by writing 5 to /proc/self/clear_refs
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1])
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        try:
            open("/proc/self/clear_refs", "w").write("5")
        except OSError:
            pass
        base = vm("VmRSS")
        for name in ("spec_bomb.pt", "zoo_bomb.pt"):
            try:
                pio.load_model({str(tmp_path)!r} + "/" + name)
                sys.exit("loaded a bomb")
            except PruneboundError:
                pass
        print((vm("VmHWM") - base) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    grew_mb = float(out.stdout.strip().splitlines()[-1])
    assert grew_mb < 100, f"peak RSS grew by {grew_mb:.1f} MB while rejecting 2 KB checkpoints"
