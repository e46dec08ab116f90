"""Atomic file writes: a file either exists complete or not at all.

Everything is written to a temporary file in the same folder and renamed into place,
so an interrupted run never leaves a half-written result that a later run would trust.
A temporary file is named after the host and process that write it; one left by a
process of this host that no longer exists (killed with SIGKILL) is removed by the next
write beside it. The written file gets the permissions of the user's umask (0644 under
022), as open() would give it, not mkstemp's private 0600.
"""
import io
import json
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

_HOST = socket.gethostname().replace(".", "_")


def _read_umask():
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import, before any thread
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path):
    """Remove the temporary files of writes to `path` whose process on this host is gone."""
    for tmp in Path(path).parent.glob(f".{Path(path).name}.{_HOST}-*.tmp"):
        pid = tmp.name[len(f".{Path(path).name}.{_HOST}-"):].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it is renamed to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a write into an open file names none
            error.filename = str(path)
        raise


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_serialised(path, dump):
    """`dump(file)` into memory, then written whole: torch's and numpy's own file writers lose
    the errno of a full disk (torch's raises an "unexpected pos" RuntimeError), a plain write
    says what happened. Checkpoints and feature files are a few MB to a GB."""
    buffer = io.BytesIO()
    dump(buffer)
    write_bytes(path, buffer.getbuffer())


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
