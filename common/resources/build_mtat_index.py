"""Derive the shipped MTAT index from the real metadata (run once by a maintainer).

Input: jukemir's MTAT metadata, metadata/magnatagatune.json.gz of github.com/p-lambda/jukemir
(MIT licence; the MTAT annotations themselves are CC BY-NC-SA 3.0): one JSON object keyed
by clip, with its split, top-50 tags (y), mp3 path and duration.
Output, beside this file:
  mtat_index.tsv.gz  one row per clip of the Lee et al. 2017 / Won et al. 2020 split
                     (split set and at least one top-50 tag): clip_id, split, seconds,
                     mp3_path, tags (top-50 tags, comma-separated)
  mtat_tags.txt      the 188 tag names of annotations_final.csv, one per line
The project reads only these two files at run time.

    python common/resources/build_mtat_index.py path/to/jukemir/metadata/magnatagatune.json.gz
"""
import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(source):
    meta = json.load(gzip.open(source))
    rows = sorted(((int(v["extra"]["clip_id"]), v) for v in meta.values() if v["split"] and v["y"]),
                  key=lambda r: r[0])
    lines = ["clip_id\tsplit\tseconds\tmp3_path\ttags"]
    for clip_id, v in rows:
        lines.append(f"{clip_id}\t{v['split']}\t{v['clip']['clip_duration']:.3f}\t"
                     f"{v['extra']['mp3_path']}\t{','.join(v['y'])}")
    with gzip.GzipFile(HERE / "mtat_index.tsv.gz", "wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode())
    tags = sorted({t for v in meta.values() for t in (v["y_all"] or [])})
    (HERE / "mtat_tags.txt").write_text("\n".join(tags) + "\n")
    print(f"{len(rows)} clips, {len(tags)} tags")


if __name__ == "__main__":
    main(sys.argv[1])
