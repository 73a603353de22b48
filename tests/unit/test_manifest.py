"""Run-directory files: atomic, and as readable as any file the user's umask would make."""
from __future__ import annotations

import os
import stat

import pytest

from luyen.manifest import _FILE_MODE, atomic_write


def test_atomic_write_gives_the_umask_mode_not_mkstemps_0600(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == _FILE_MODE == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    from luyen.manifest import staged
    dest = tmp_path / "index"
    with staged(dest) as tmp:
        (tmp / "a.txt").write_text("old")
    assert (dest / "a.txt").read_text() == "old"
    with pytest.raises(RuntimeError):
        with staged(dest) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed half way")
    assert (dest / "a.txt").read_text() == "old"  # the old folder is untouched
    with staged(dest) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]  # replaced whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temp or trash folder left


def test_plan_skips_resumes_or_redoes_a_stage(tmp_path):
    from luyen.manifest import RunDir, fingerprinted
    out = tmp_path / "train"
    assert RunDir.plan(out, "fp1") == "fresh"
    out.mkdir()
    (out / "checkpoints").mkdir()
    assert RunDir.plan(out, "fp1", started="fp1", resumable=True) == "resume"
    assert RunDir.plan(out, "fp1", started="fp0", resumable=True) == "fresh"  # started with another config
    assert RunDir.plan(out, "fp1", started="fp1", resumable=False) == "fresh"
    with fingerprinted("fp1"):
        manifest = RunDir(out, "train").finish(config={}, inputs=[])
    assert manifest["fingerprint"] == "fp1"
    assert RunDir.plan(out, "fp1") == "skip"
    assert RunDir.plan(out, "fp2") == "fresh"
    assert RunDir(tmp_path / "x", "data").finish(config={}, inputs=[])["fingerprint"] is None  # outside `luyen run`


def test_a_failed_overwrite_leaves_the_earlier_run_intact(tmp_path):
    from luyen.errors import LuyenError
    from luyen.manifest import RunDir
    out = tmp_path / "eval"
    with RunDir.create(out, "eval") as rd:
        rd.write_text("report.md", "first")
        rd.finish(config={}, inputs=[])
    with pytest.raises(LuyenError, match="already holds another run"):
        with RunDir.create(out, "eval"):
            pass
    with pytest.raises(RuntimeError):
        with RunDir.create(out, "eval", overwrite=True) as rd:
            rd.write_text("report.md", "second, half written")
            raise RuntimeError("the judge endpoint went away")
    assert (out / "report.md").read_text() == "first" and (out / "manifest.json").is_file()
    with RunDir.create(out, "eval", overwrite=True) as rd:
        rd.write_text("report.md", "second")
        rd.finish(config={}, inputs=[])
    assert (out / "report.md").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval"]
