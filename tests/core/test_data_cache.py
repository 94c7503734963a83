"""The on-disk cache of generated data sets: keyed by the spec, atomic, checksummed, never trusted when corrupt."""

import logging

import numpy as np
import pytest

from prunebound import data as D


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBOUND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _make_counter():
    calls = []

    def make():
        calls.append(1)
        rng = np.random.default_rng(len(calls))  # a regenerated file would differ if it were not regenerated
        return {"x": np.arange(12.0).reshape(3, 4), "y": rng.integers(0, 5, 3) * 0 + np.array([0, 1, 2])}

    return make, calls


def test_cache_dir_env_and_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBOUND_CACHE", str(tmp_path / "a"))
    assert D.cache_dir() == tmp_path / "a"
    monkeypatch.setenv("PRUNEBOUND_CACHE", "off")
    assert D.cache_dir() is None
    monkeypatch.delenv("PRUNEBOUND_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.cache_dir() == tmp_path / "xdg" / "prunebound"


def test_hit_skips_generation_and_returns_equal_arrays(cache):
    make, calls = _make_counter()
    a = D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    b = D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    assert len(calls) == 1
    assert all(np.array_equal(a[k], b[k]) for k in a)
    files = list(cache.iterdir())
    assert len(files) == 1 and not any(f.suffix == ".tmp" for f in files)
    D.cached_arrays("toy", {"n": 4}, make, ("x", "y"))  # another spec, another key
    assert len(calls) == 2 and len(list(cache.iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "header", "empty"])
def test_corrupt_or_truncated_file_is_regenerated(cache, damage, caplog):
    make, calls = _make_counter()
    good = D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    (path,) = cache.iterdir()
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[-20] ^= 0xFF  # inside the payload: the zip may still parse, the checksum must not
    elif damage == "header":
        raw[:8] = b"garbage!"
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="prunebound.data"):
        again = D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    assert len(calls) == 2, "a damaged cache file was trusted"
    assert "regenerating" in caplog.text
    assert all(np.array_equal(good[k], again[k]) for k in good)
    # and the file was rewritten intact
    D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    assert len(calls) == 2


def test_file_with_other_arrays_is_not_trusted(cache):
    make, calls = _make_counter()
    D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    more = []

    def make3():
        more.append(1)
        return {"x": np.zeros(2), "y": np.zeros(2), "z": np.ones(2)}

    out = D.cached_arrays("toy", {"n": 3}, make3, ("x", "y", "z"))
    assert more == [1] and np.array_equal(out["z"], np.ones(2))


def test_mnist1d_uses_cache_and_matches_uncached(cache, monkeypatch):
    a = D.mnist1d(200, 3)
    assert len(list(cache.iterdir())) == 1
    b = D.mnist1d(200, 3)
    monkeypatch.setenv("PRUNEBOUND_CACHE", "off")
    c = D.mnist1d(200, 3)
    for s in (b, c):
        assert s.train.sha256 == a.train.sha256 and s.test.sha256 == a.test.sha256
    assert len(list(cache.iterdir())) == 1


def test_unwritable_cache_dir_still_returns_data(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PRUNEBOUND_CACHE", str(blocker / "sub"))
    make, calls = _make_counter()
    out = D.cached_arrays("toy", {"n": 3}, make, ("x", "y"))
    assert out["x"].shape == (3, 4) and len(calls) == 1
