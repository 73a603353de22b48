"""Run-directory files: atomic, and as readable as any file the user's umask would make."""
from __future__ import annotations

import os
import stat

from luyen.manifest import _FILE_MODE, atomic_write


def test_atomic_write_gives_the_umask_mode_not_mkstemps_0600(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == _FILE_MODE == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind
