"""Demo Beatport EDM Key: short EDM loops in all 24 keys, in the dataset's layout.

Four-on-the-floor drums, a bass on the chord roots, a pad playing a cadential progression
of the key (harmonic minor's raised seventh on V) and a lead melody over the scale.
Written as 44.1 kHz stereo MP3 in audio/, one keys/<name>.txt per file (some tonics
spelled with flats, as the real annotations are), and a few files whose annotation the
loader must drop (two keys, or "other"), as in the real set.
"""
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf

from ..beatport import FLAT_TO_SHARP, KEYS
from .music import Music
from .synth import Score

VERSION = 2  # raise when the rendering changes: old renderings are replaced (2: 5.2 s clips)
SAMPLE_RATE = 44100
CLIP_SECONDS = 5.2  # one window for every model, as the demo MTAT clips
PER_KEY = 4
SHARP_TO_FLAT = {sharp: flat for flat, sharp in FLAT_TO_SHARP.items()}
PROGRESSIONS = {"major": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 3, 4)),
                "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 4))}
PADS, LEADS, BASSES = (89, 90, 91, 95), (80, 81, 82, 87), (38, 39, 87)
UNUSABLE = ("A minor | C major", "other", "D minor | F major")


def render(key, rng):
    tonic_name, mode = key.split()
    bpm = int(rng.integers(118, 131))
    velocity = int(rng.integers(85, 115))
    score = Score()
    progression = PROGRESSIONS[mode][rng.integers(len(PROGRESSIONS[mode]))]
    music = Music(score, KEYS.index(f"{tonic_name} major"), "major" if mode == "major" else "harmonic minor",
                  bpm, CLIP_SECONDS, rng, progression)
    music.chords(int(rng.choice(PADS)), 4, velocity - 20)
    music.bass(int(rng.choice(BASSES)), 2, velocity)
    music.melody(int(rng.choice(LEADS)), 5, velocity - 10)
    music.drums("four_on_floor", velocity)
    return score.render(SAMPLE_RATE, CLIP_SECONDS, peak=0.9)


def _write_clip(job):
    path, key, seed = job
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, render(key, np.random.default_rng(seed)), SAMPLE_RATE, format="MP3",
             subtype="MPEG_LAYER_III")


def write(folder, seed=0):
    rng = np.random.default_rng(seed)
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    jobs, track = [], 10000
    labels = [k for k in KEYS for _ in range(PER_KEY)] + [None] * len(UNUSABLE)
    for i, key in enumerate(labels):
        track += int(rng.integers(1, 60))
        name = f"{track} Demo Artist {i % 7 + 1} - Loop {i + 1} (Original Mix)"
        if key is None:
            text, render_key = UNUSABLE[i - PER_KEY * len(KEYS)], "A minor"
        else:
            tonic, mode = key.split()
            spelled = SHARP_TO_FLAT[tonic] if tonic in SHARP_TO_FLAT and rng.random() < 0.5 else tonic
            text, render_key = f"{spelled} {mode}", key
        (folder / "keys" / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
        jobs.append((folder / "audio" / f"{name}.mp3", render_key, int(rng.integers(2**31))))
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_clip, jobs, chunksize=8))
