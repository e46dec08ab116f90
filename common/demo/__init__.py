"""The embedded demo datasets, rendered on first use of --demo into data/demo/.

Each is written in exactly its real counterpart's layout (so the real loaders read it),
from the General-MIDI SoundFont that pretty_midi ships, deterministically (fixed seeds).
A dataset is rendered into a scratch folder and renamed into place when complete, so an
interrupted rendering never leaves a half dataset behind.
"""
import shutil
import time
from pathlib import Path

from common.demo import beatport, mtat, tinysol

WRITERS = {"MTAT": mtat.write, "TinySOL": tinysol.write, "beatport_key": beatport.write}


def ensure(data_root):
    """Render whichever demo datasets are missing under `data_root`/demo."""
    for name, write in WRITERS.items():
        folder = Path(data_root) / "demo" / name
        if folder.is_dir():
            continue
        scratch = folder.parent / f".{name}.rendering"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        started = time.time()
        print(f"rendering the demo {name} dataset into {folder} ...", flush=True)
        write(scratch)
        scratch.rename(folder)
        print(f"  done in {time.time() - started:.0f} s", flush=True)
