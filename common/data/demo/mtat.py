"""Demo MagnaTagATune: multi-instrument clips arranged per genre, in MTAT's layout.

The same ten genres as the study's subsets, each with its palette of General-MIDI
instruments, tempo range, scale and drum pattern. Each clip draws a key, a tempo, a
loudness and a few instruments from its genre's palette; its tags are what it really
contains (genre, instruments, fast/slow, loud/quiet/soft), all from the MTAT top 50.
Written as 16 kHz mono MP3 in folders 0..f, an annotations_final.csv in MTAT's format
(all 188 tag columns) and a split index in the format of the one the project ships.
"""
import csv
import gzip
import hashlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf

from ..mtat import INDEX_NAME, all_tags
from .music import Music
from .synth import Score

VERSION = 1  # raise when the rendering changes: old renderings are replaced
SAMPLE_RATE = 16000
CLIP_SECONDS = 5.2  # one window for every model (AST's 5.12 s is the longest): extraction costs per window
# Clips per genre and split. 20 single-genre train clips per genre fill the subsets of
# 1, 2, 5, 10 and 20 tracks per genre; MIXED train clips carry two genres, as real MTAT
# clips often do, and belong to `full` only.
PER_GENRE = {"train": 20, "valid": 2, "test": 3}
MIXED = (("techno", "electronic"), ("classical", "opera"), ("rock", "pop"), ("new age", "electronic"),
         ("choral", "classical"), ("country", "pop"), ("indian", "new age"), ("opera", "choral"))

# genre -> tempo range, scale, drum pattern (or None), palette of (tag, GM program, part, octave)
GENRES = {
    "classical": ((60, 110), ("major", "minor"), None,
                  [("strings", 48, "chords", 4), ("violin", 40, "melody", 5), ("cello", 42, "bass", 3),
                   ("piano", 0, "arpeggio", 4), ("harpsichord", 6, "arpeggio", 4), ("flute", 73, "melody", 6)]),
    "techno": ((125, 140), ("minor",), "four_on_floor",
               [("synth", 81, "melody", 5), ("synth", 38, "bass", 2), ("synth", 90, "chords", 4)]),
    "electronic": ((95, 122), ("minor", "major"), "breakbeat",
                   [("synth", 88, "chords", 4), ("synth", 39, "bass", 2), ("synth", 80, "arpeggio", 5)]),
    "rock": ((110, 160), ("major", "minor"), "rock",
             [("guitar", 30, "chords", 4), ("guitar", 29, "melody", 5), (None, 33, "bass", 2)]),
    "indian": ((70, 110), ("bhairav",), "tabla",
               [("sitar", 104, "melody", 5), ("sitar", 104, "drone", 3), ("flute", 77, "melody", 6)]),
    "opera": ((55, 95), ("major", "minor"), None,
              [("vocal", 53, "melody", 5), ("strings", 48, "chords", 4), ("violin", 40, "arpeggio", 5),
               ("cello", 42, "bass", 3)]),
    "pop": ((90, 125), ("major",), "pop",
            [("piano", 0, "chords", 4), ("guitar", 25, "chords", 4), ("synth", 81, "melody", 5),
             (None, 33, "bass", 2)]),
    "new age": ((55, 85), ("major",), None,
                [("synth", 89, "chords", 4), ("harp", 46, "arpeggio", 4), ("flute", 73, "melody", 5),
                 ("piano", 0, "arpeggio", 5)]),
    "country": ((90, 130), ("major",), "country",
                [("guitar", 25, "chords", 4), ("violin", 110, "melody", 5), (None, 105, "arpeggio", 4),
                 (None, 32, "bass", 2)]),
    "choral": ((50, 80), ("major", "minor"), None,
               [("choir", 52, "chords", 4), ("choir", 52, "melody", 5), ("choir", 52, "bass", 3)]),
}
LOUDNESS = (("loud", 0.9, 115), ("soft", 0.3, 70), ("quiet", 0.12, 55), (None, 0.5, 90))  # tag, peak, velocity


def _arrange(genres, rng):
    """A clip's score recipe and tags, drawn from its genre(s)."""
    palette = [entry for g in genres for entry in GENRES[g][3]]
    low, high = GENRES[genres[0]][0]
    bpm = int(rng.integers(low, high + 1))
    mode = str(rng.choice(GENRES[genres[0]][1]))
    loudness, peak, velocity = LOUDNESS[rng.integers(len(LOUDNESS))]
    chosen = sorted(rng.choice(len(palette), size=int(rng.integers(2, min(4, len(palette)) + 1)), replace=False))
    parts = [palette[0]] + [palette[i] for i in chosen if i != 0]
    drums = next((GENRES[g][2] for g in genres if GENRES[g][2]), None)
    drums = drums if drums and rng.random() < 0.85 else None
    tags = set(genres) | {tag for tag, *_ in parts if tag}
    tags |= {"fast"} if bpm >= 120 else {"slow"} if bpm <= 80 else set()
    tags |= {loudness} if loudness else set()
    tags |= {"drums"} if drums and drums != "tabla" else set()
    recipe = dict(tonic=int(rng.integers(12)), mode=mode, bpm=bpm, parts=parts, drums=drums,
                  velocity=velocity, peak=peak, seed=int(rng.integers(2**31)))
    return recipe, sorted(tags)


def render(recipe):
    score = Score()
    music = Music(score, recipe["tonic"], recipe["mode"], recipe["bpm"], CLIP_SECONDS,
                  np.random.default_rng(recipe["seed"]))
    for _, program, part, octave in recipe["parts"]:
        getattr(music, part)(program, octave, recipe["velocity"])
    if recipe["drums"]:
        music.drums(recipe["drums"], recipe["velocity"])
    return score.render(SAMPLE_RATE, CLIP_SECONDS, peak=recipe["peak"]).mean(axis=1)


def _write_clip(job):
    path, recipe = job
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, render(recipe), SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")


def write(folder, seed=0):
    rng = np.random.default_rng(seed)
    plan = [(split, (genre,)) for split, n in PER_GENRE.items() for genre in GENRES for _ in range(n)]
    plan += [("train", pair) for pair in MIXED]
    clips, jobs = [], []
    for clip_id, (split, genres) in enumerate(plan, start=2):
        recipe, tags = _arrange(genres, rng)
        stem = f"demo_{genres[0].replace(' ', '_')}-collection-{clip_id % 17 + 1:02d}-take_{clip_id}-0-5.mp3"
        mp3_path = f"{hashlib.sha1(stem.encode()).hexdigest()[0]}/{stem}"
        clips.append((str(clip_id), split, mp3_path, tags))
        jobs.append((folder / mp3_path, recipe))
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_clip, jobs, chunksize=8))

    header = all_tags()
    with open(folder / "annotations_final.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["clip_id", *header, "mp3_path"])
        for clip_id, _, mp3_path, tags in clips:
            writer.writerow([clip_id, *("1" if t in tags else "0" for t in header), mp3_path])
    with gzip.open(folder / INDEX_NAME, "wt", newline="") as f:
        f.write("clip_id\tsplit\tseconds\tmp3_path\ttags\n")
        for clip_id, split, mp3_path, tags in clips:
            f.write(f"{clip_id}\t{split}\t{CLIP_SECONDS:.3f}\t{mp3_path}\t{','.join(tags)}\n")
