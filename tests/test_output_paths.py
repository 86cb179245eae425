"""Output paths: a file where a folder should be, a folder that cannot be written, a disk that
fills up. Each is one line (exit 2 for the path, 1 for the disk); nothing saved is harmed and no
partial file is left as if complete."""

import errno
import json
import os
import tempfile
import threading
from pathlib import Path

import pytest

import metarl.files
import metarl.runs
from metarl.files import OutputPathError, WriteError, atomic_open
from metarl.run import main
from metarl.runs import load_checkpoint, new_run_dir

SINE = ["--task", "sine", "--meta-batch-size", "2", "--eval-every", "0", "--checkpoint-every",
        "1", "--no-progress"]
OMNIGLOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"


def error_line(capsys) -> str:
    """The one line of stderr besides the run directory's, checked to be an error."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line and not line.startswith("run directory")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


class FillingFile:
    """A file on a disk that fills up: each write stores half of its bytes, then ENOSPC."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


class DiskFills:
    """``os`` as ``metarl.files`` sees it, where the disk fills up during the ``at``-th write
    (``at=1``: the first) through a temp file whose name starts with ``prefix``."""

    def __init__(self, prefix: str, at: int):
        self.prefix, self.at, self.writes = prefix, at, 0

    def __getattr__(self, attr):
        return getattr(os, attr)

    def fdopen(self, fd, *args, **kwargs):
        handle = os.fdopen(fd, *args, **kwargs)
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(self.prefix):
            self.writes += 1
            if self.writes == self.at:
                return FillingFile(handle)
        return handle


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(),
                                reason="names open files through /proc/self/fd")


# --- training ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["file", "below-a-file"])
def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, capsys, where):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    output = blocker if where == "file" else blocker / "sine"
    assert main(["maml", *SINE, "--num-batches", "1", "--output-dir", str(output)]) == 2
    line = error_line(capsys)
    assert f"{blocker} is a file, not a folder" in line
    assert blocker.read_text() == "not a folder"


def test_an_output_dir_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # as a folder without write permission answers
        if dir is not None and Path(dir) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert main(["maml", *SINE, "--num-batches", "1", "--output-dir", str(locked)]) == 2
    line = error_line(capsys)
    assert f"cannot write in {locked}: Permission denied; give a writable folder" in line
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs file permissions that apply (not root)")
def test_a_read_only_output_dir_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["maml", *SINE, "--num-batches", "1", "--output-dir", str(locked)]) == 2
    assert "Permission denied" in error_line(capsys)


@needs_proc
@pytest.mark.parametrize("at", [1, 2])
def test_a_full_disk_at_a_checkpoint_keeps_the_last_one_and_says_how_to_resume(
        tmp_path, capsys, monkeypatch, at):
    monkeypatch.setattr(metarl.files, "os", DiskFills(".checkpoint.pt.", at=at))
    assert main(["maml", *SINE, "--num-batches", "3", "--output-dir", str(tmp_path)]) == 1
    (run_dir,) = tmp_path.iterdir()
    line = error_line(capsys)
    assert f"cannot write {run_dir / 'checkpoint.pt'}: No space left on device" in line
    assert temp_files(run_dir) == []  # the half-written temp file is gone
    if at == 1:
        assert "no checkpoint was written yet" in line
        assert not (run_dir / "checkpoint.pt").exists()
        return
    assert f"continue with --resume {run_dir}" in line
    assert load_checkpoint(run_dir / "checkpoint.pt")["iteration"] == 1  # intact, verified
    monkeypatch.undo()  # space freed
    assert main(["maml", "--resume", str(run_dir), "--no-progress"]) == 0
    assert load_checkpoint(run_dir / "checkpoint.pt")["iteration"] == 3


def test_resume_removes_the_temp_files_a_killed_run_left(tmp_path):
    assert main(["maml", *SINE, "--num-batches", "1", "--output-dir", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    left = [run_dir / ".checkpoint.pt.k1ll3d.tmp", run_dir / ".config.yaml.x2.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    other = run_dir / ".notes.txt.tmp"
    other.write_text("not ours")
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "2", "--no-progress"]) == 0
    assert not any(path.exists() for path in left) and other.exists()


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.setattr(metarl.runs.time, "strftime", lambda fmt: "20270101-000000")
    made, start = [], threading.Barrier(8)

    def start_run():
        start.wait()
        made.append(new_run_dir(tmp_path / "runs", "maml", "sine", 0))

    threads = [threading.Thread(target=start_run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    base = "maml__sine__0__20270101-000000"
    assert sorted(p.name for p in made) == sorted([base] + [f"{base}-{i}" for i in range(2, 9)])
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


# --- evaluate ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sine_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sine")
    assert main(["maml", *SINE, "--num-batches", "1", "--output-dir", str(root)]) == 0
    (run_dir,) = root.iterdir()
    return run_dir


EVALUATE = ["--num-tasks", "4", "--steps", "1", "--no-baselines", "--no-progress"]


def test_an_evaluate_output_that_is_a_file_is_one_line(sine_run, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    assert main(["evaluate", "--run", str(sine_run), *EVALUATE, "--output", str(blocker)]) == 2
    assert f"{blocker} is a file, not a folder" in error_line(capsys)


@needs_proc
def test_a_full_disk_during_evaluate_leaves_no_partial_file(sine_run, tmp_path, capsys,
                                                            monkeypatch):
    out = tmp_path / "results"
    monkeypatch.setattr(metarl.files, "os", DiskFills(".curve.png.", at=1))
    assert main(["evaluate", "--run", str(sine_run), *EVALUATE, "--output", str(out)]) == 1
    assert f"cannot write {out / 'curve.png'}: No space left on device" in error_line(capsys)
    assert not (out / "curve.png").exists() and temp_files(out) == []
    assert json.loads((out / "curve.json").read_text())["num_tasks"] == 4  # whole, or absent


# --- the Omniglot cache ------------------------------------------------------------------------

needs_omniglot = pytest.mark.skipif(not (OMNIGLOT / "images_background_small1.zip").is_file(),
                                    reason=f"Omniglot small subsets not found in {OMNIGLOT}")


@needs_omniglot
def test_a_cache_dir_that_is_a_file_is_one_line_before_decoding(tmp_path, capsys, monkeypatch):
    from metarl.supervised.omniglot.data import images

    monkeypatch.setattr(images, "_decode_archives", lambda paths: pytest.fail("decoded"))
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    assert main(["maml", "--task", "omniglot", "--data-dir", str(OMNIGLOT), "--cache-dir",
                 str(blocker), "--num-batches", "1", "--no-progress",
                 "--output-dir", str(tmp_path / "runs")]) == 2
    assert f"{blocker} is a file, not a folder" in error_line(capsys)
    assert not (tmp_path / "runs").exists()


@needs_omniglot
@needs_proc
def test_a_full_disk_while_caching_omniglot_leaves_no_partial_cache(tmp_path, monkeypatch):
    import numpy as np

    from metarl.supervised.omniglot.data import images, load_omniglot

    monkeypatch.setattr(images, "_decode_archives", lambda paths: {  # two images, quickly
        "images": np.zeros((2, 28, 28), np.uint8), "characters": np.array(["a/b"]),
        "offsets": np.array([0, 2]), "files": np.array(["1.png", "2.png"])})
    monkeypatch.setattr(metarl.files, "os", DiskFills(".omniglot_", at=1))
    cache = tmp_path / "cache"
    with pytest.raises(WriteError, match="No space left on device"):
        load_omniglot(OMNIGLOT, archives=["images_background_small1.zip"], cache_dir=cache)
    assert list(cache.iterdir()) == []


# --- the atomic write itself -------------------------------------------------------------------

@pytest.mark.parametrize("code, error", [(errno.ENOSPC, WriteError), (errno.EDQUOT, WriteError),
                                         (errno.EIO, WriteError), (errno.EACCES, OutputPathError),
                                         (errno.EROFS, OutputPathError)])
def test_a_failed_atomic_write_keeps_the_previous_file(tmp_path, code, error):
    path = tmp_path / "result.json"
    path.write_text("previous")
    with pytest.raises(error, match=f"cannot write {path}"):
        with atomic_open(path, "w") as handle:
            handle.write("half of the new")
            raise OSError(code, os.strerror(code))
    assert path.read_text() == "previous" and temp_files(tmp_path) == []


def test_an_atomic_text_write_keeps_its_newlines(tmp_path):
    with atomic_open(tmp_path / "rows.csv", "w") as handle:
        handle.write("a,b\r\n1,2\r\n")
    assert (tmp_path / "rows.csv").read_bytes() == b"a,b\r\n1,2\r\n"


def test_an_atomic_write_gets_the_permissions_of_a_plain_write(tmp_path):
    umask = os.umask(0o027)  # group may read, others nothing
    try:
        with atomic_open(tmp_path / "table.md", "w") as handle:
            handle.write("x")
        (tmp_path / "plain.md").write_text("x")
    finally:
        os.umask(umask)
    modes = [(tmp_path / name).stat().st_mode & 0o777 for name in ("table.md", "plain.md")]
    assert modes == [0o640, 0o640]
