"""The embedded demo datasets, rendered on first use of --demo into data/demo/.

Each is written in exactly its real counterpart's layout (so the real loaders read it),
from the General-MIDI SoundFont that pretty_midi ships, deterministically (fixed seeds).
A dataset is rendered into a scratch folder of its own process and renamed into place when
complete, its version file written last inside it, so an interrupted rendering never leaves
a half dataset behind. Processes that start at once on a fresh data root (two train.py
runs, torchrun's ranks) take turns on a lock: one renders, the others find it done. Each
writer module has a VERSION, recorded in the folder: when a newer version of the project
changes a demo dataset, the old rendering is replaced on next use.
"""
import fcntl
import os
import shutil
import time
from pathlib import Path

from . import beatport, mtat, tinysol

MODULES = {"MTAT": mtat, "TinySOL": tinysol, "beatport_key": beatport}
VERSION_FILE = ".demo_version"


def _current(folder, version):
    return (folder / VERSION_FILE).exists() and (folder / VERSION_FILE).read_text() == version


def ensure(data_root):
    """Render whichever demo datasets are missing or out of date under `data_root`/demo."""
    demo = Path(data_root) / "demo"
    stale = [name for name, module in MODULES.items() if not _current(demo / name, str(module.VERSION))]
    if not stale:  # the common case, which needs no write access
        return
    demo.mkdir(parents=True, exist_ok=True)
    with open(demo / ".render.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in stale:
            _render(demo / name, MODULES[name])


def _render(folder, module):
    version = str(module.VERSION)
    if _current(folder, version):  # another process rendered it while this one waited for the lock
        return
    if folder.is_dir():
        rendered = (folder / VERSION_FILE).read_text() if (folder / VERSION_FILE).exists() else "1"
        print(f"the demo {folder.name} dataset changed (version {rendered} -> {version}): rendering it again; "
              f"features extracted from the old one must be extracted again", flush=True)
    for leftover in folder.parent.glob(f".{folder.name}.rendering*"):  # of processes killed while rendering
        shutil.rmtree(leftover, ignore_errors=True)
    scratch = folder.parent / f".{folder.name}.rendering-{os.getpid()}"
    scratch.mkdir(parents=True)
    started = time.time()
    print(f"rendering the demo {folder.name} dataset into {folder} ...", flush=True)
    module.write(scratch)
    (scratch / VERSION_FILE).write_text(version)
    if folder.is_dir():
        shutil.rmtree(folder)
    scratch.rename(folder)
    print(f"  done in {time.time() - started:.0f} s", flush=True)
