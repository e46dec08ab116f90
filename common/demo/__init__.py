"""The embedded demo datasets, rendered on first use of --demo into data/demo/.

Each is written in exactly its real counterpart's layout (so the real loaders read it),
from the General-MIDI SoundFont that pretty_midi ships, deterministically (fixed seeds).
A dataset is rendered into a scratch folder and renamed into place when complete, so an
interrupted rendering never leaves a half dataset behind. Each writer module has a VERSION,
recorded in the folder: when a newer version of the project changes a demo dataset, the
old rendering is replaced on next use.
"""
import shutil
import time
from pathlib import Path

from common.demo import beatport, mtat, tinysol

MODULES = {"MTAT": mtat, "TinySOL": tinysol, "beatport_key": beatport}
VERSION_FILE = ".demo_version"


def ensure(data_root):
    """Render whichever demo datasets are missing under `data_root`/demo."""
    for name, module in MODULES.items():
        folder = Path(data_root) / "demo" / name
        version = str(module.VERSION)
        if folder.is_dir():
            rendered = (folder / VERSION_FILE).read_text() if (folder / VERSION_FILE).exists() else "1"
            if rendered == version:
                continue
            print(f"the demo {name} dataset changed (version {rendered} -> {version}): rendering it again; "
                  f"features extracted from the old one must be extracted again", flush=True)
        scratch = folder.parent / f".{name}.rendering"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        started = time.time()
        print(f"rendering the demo {name} dataset into {folder} ...", flush=True)
        module.write(scratch)
        (scratch / VERSION_FILE).write_text(version)
        if folder.is_dir():
            shutil.rmtree(folder)
        scratch.rename(folder)
        print(f"  done in {time.time() - started:.0f} s", flush=True)
