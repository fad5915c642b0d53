import json
import subprocess
import sys
import tempfile

from train import scratch


def _folder_of(tmp_path, name: str, owner: dict | None):
    folder = tmp_path / name
    folder.mkdir()
    if owner is not None:
        (folder / scratch.OWNER).write_text(json.dumps(owner))
    return folder


def test_a_folder_left_by_a_killed_process_is_removed_and_no_other(tmp_path):
    # Before: `kill -9` during a runs:/ fetch left an empty /tmp/stance-model-* folder for good.
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead_owner = scratch._this_process() | {
        "pid": victim.pid,
        "started": __import__("psutil").Process(victim.pid).create_time(),
    }
    dead = _folder_of(tmp_path, "stance-model-dead", dead_owner)
    (dead / "model").mkdir()  # a fetch cut short
    victim.kill()
    victim.wait()
    kept = [
        _folder_of(tmp_path, "stance-model-live", scratch._this_process()),
        # A folder a user named like ours, without an owner file: not ours to remove.
        _folder_of(tmp_path, "stance-model-2.1", None),
        # A process of another host, or of another PID namespace sharing /tmp: cannot be checked.
        _folder_of(tmp_path, "stance-model-other-host", dead_owner | {"host": "elsewhere"}),
        _folder_of(tmp_path, "stance-model-container", dead_owner | {"pid_namespace": -1}),
        _folder_of(tmp_path, "stance-spark-dead", dead_owner),  # another kind
    ]
    (kept[1] / "notes.txt").write_text("precious")
    assert scratch.remove_leftovers("model", tmp_path) == [dead]
    assert not dead.exists() and all(folder.exists() for folder in kept)


def test_a_scratch_folder_names_its_process_and_is_removed_on_leaving(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with scratch.scratch_folder("model") as folder:
        owner = json.loads((tmp_path / folder / scratch.OWNER).read_text())
        assert owner == scratch._this_process()
        assert scratch.remove_leftovers("model", tmp_path) == []  # its own process lives
    assert list(tmp_path.iterdir()) == []
