"""Atomic writes: the umask's permissions, and temporaries of killed writers cleaned up."""
import os
import stat
import subprocess
import sys

from common.atomic import _HOST, atomic_path, write_text


def test_written_files_get_the_umasks_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        code = "from common.atomic import write_text; import sys; write_text(sys.argv[1], 'x')"
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "shared.txt")], check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644


def test_a_killed_writers_temporary_is_removed_by_the_next_write_and_a_live_ones_kept(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer exists
    stale = tmp_path / f".clean.npy.{_HOST}-{gone.pid}.abc123.tmp"
    live = tmp_path / f".clean.npy.{_HOST}-{os.getpid()}.def456.tmp"
    other = tmp_path / f".other.npy.{_HOST}-{gone.pid}.abc123.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"half a file")
    write_text(tmp_path / "clean.npy", "done")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "clean.npy").read_text() == "done"


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    try:
        with atomic_path(tmp_path / "result.csv") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed half way")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
