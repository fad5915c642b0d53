import subprocess
import sys
import tempfile

import psutil

from train import scratch


def test_a_folder_left_by_a_killed_process_is_removed_and_a_live_one_kept(tmp_path):
    # Before: `kill -9` during a runs:/ fetch left an empty /tmp/stance-model-* folder for good.
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = tmp_path / f"stance-model-{scratch._process_mark(victim.pid)}-x1"
    live = tmp_path / f"stance-model-{scratch._process_mark(psutil.Process().pid)}-x2"
    other_kind = tmp_path / f"stance-spark-{scratch._process_mark(victim.pid)}-x3"
    for folder in (dead, live, other_kind):
        folder.mkdir()
    (dead / "model").mkdir()  # a fetch cut short
    victim.kill()
    victim.wait()
    assert scratch.remove_leftovers("model", tmp_path) == [dead]
    assert not dead.exists() and live.exists() and other_kind.exists()


def test_a_scratch_folder_is_named_by_its_process_and_removed_on_leaving(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with scratch.scratch_folder("model") as folder:
        name = folder.rsplit("/", 1)[1]
        assert name.startswith(f"stance-model-{scratch._process_mark(psutil.Process().pid)}-")
        assert scratch.remove_leftovers("model", tmp_path) == []  # its own process lives
    assert list(tmp_path.iterdir()) == []
