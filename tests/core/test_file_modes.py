"""Atomic writes create files with the ordinary permission bits (0o666 minus the umask), not mkstemp's 0o600."""

from __future__ import annotations

import os
import stat

from torch import nn

from prunebound.files import atomic_write_text, new_file_mode
from prunebound.io import save_model


def test_atomic_outputs_have_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        assert new_file_mode() == 0o644
        p = atomic_write_text(tmp_path / "c.json", "{}")
        m = save_model(nn.Sequential(nn.Linear(3, 2)), tmp_path / "m.pt")
        for f in (p, m):
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o644, f
    finally:
        os.umask(old)
