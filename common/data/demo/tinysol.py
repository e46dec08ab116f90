"""Demo TinySOL: single notes of the same 14 instruments, in TinySOL's layout.

Each instrument plays six pitches, each at two of the three dynamics, at an octave drawn
inside its real range, through the nearest General-MIDI program; over the 14 instruments
every pitch class is played 14 times, so the pitch-class task is balanced. The two
dynamics of a pitch go to different folds, paired so that under either split (the study's:
fold 0 valid, 1 test, 2-4 train; the project's: 0-2 train, 3 valid, 4 test) a validation or
test note's twin is a training note: as in the real TinySOL, where an instrument's whole
range is recorded at several dynamics, a held-out note's pitch is heard in training on the
same instrument. (With one
note per pitch class and instrument, a probe that recognises the instrument would be
wrong by construction on every test note.) Files, names and the metadata CSV follow
TinySOL exactly.
"""
import csv

import numpy as np
import soundfile as sf

from ..tinysol import HEADER
from .synth import Score, note_name

VERSION = 3  # 2: each pitch at two dynamics (see above); 3: folds paired for both splits
SAMPLE_RATE = 44100
NOTE_SECONDS, FILE_SECONDS = 1.5, 2.0
# abbr, GM program, family, full name, folder, lowest and highest MIDI note. The accordion
# plays GM's harmonica (22), a free reed too: the SoundFont's accordion samples are
# detuned by up to 70 cents above C5, which would make wrong pitch labels.
INSTRUMENTS = (
    ("BTb", 58, "Brass", "Bass Tuba", "Bass_Tuba", 29, 65),
    ("Hn", 60, "Brass", "French Horn", "Horn", 35, 77),
    ("Tbn", 57, "Brass", "Trombone", "Trombone", 40, 72),
    ("TpC", 56, "Brass", "Trumpet in C", "Trumpet_C", 54, 84),
    ("Acc", 22, "Keyboards", "Accordion", "Accordion", 43, 93),
    ("Cb", 43, "Strings", "Contrabass", "Contrabass", 28, 67),
    ("Va", 41, "Strings", "Viola", "Viola", 48, 88),
    ("Vc", 42, "Strings", "Violoncello", "Violoncello", 36, 84),
    ("Vn", 40, "Strings", "Violin", "Violin", 55, 96),
    ("Bn", 70, "Winds", "Bassoon", "Bassoon", 34, 75),
    ("ClBb", 71, "Winds", "Clarinet in Bb", "Clarinet_Bb", 50, 91),
    ("Fl", 73, "Winds", "Flute", "Flute", 60, 96),
    ("Ob", 68, "Winds", "Oboe", "Oboe", 58, 91),
    ("ASax", 65, "Winds", "Alto Saxophone", "Sax_Alto", 49, 80),
)
DYNAMICS = (("pp", 0, 40, 0.15), ("mf", 2, 80, 0.4), ("ff", 4, 120, 0.8))  # name, id, velocity, peak
FOLD_PAIRS = ((1, 4), (0, 3), (2, 4), (2, 1), (2, 3), (2, 0))


def _audible(program, candidates):
    """The first of the candidate notes that the SoundFont really plays on `program` (its
    alto saxophone, for one, has no sample for E4 and renders it as silence)."""
    for midi in candidates:
        score = Score()
        score.note(program, int(midi), 0.05, 0.05 + NOTE_SECONDS, 80)
        if np.abs(score.render(SAMPLE_RATE, FILE_SECONDS)).max() > 0:
            return int(midi)
    raise RuntimeError(f"General-MIDI program {program} renders none of {list(candidates)}")


def write(folder, seed=0):
    rng = np.random.default_rng(seed)
    # Seven shuffles of the 12 pitch classes, halved: 14 sets of six, each pitch class in 7.
    pitch_sets = [half for _ in range(7) for half in np.split(rng.permutation(12), 2)]
    rows = []
    for (abbr, program, family, full, subfolder, low, high), pitch_classes in zip(INSTRUMENTS, pitch_sets):
        # fold pairs whose held-out note has a training twin under both splits
        pairs = [FOLD_PAIRS[i] for i in rng.permutation(len(FOLD_PAIRS))]
        notes = []
        for pitch_class, folds in zip(pitch_classes, pairs):
            midi = _audible(program, rng.permutation([m for m in range(low, high + 1) if m % 12 == pitch_class]))
            dynamics = rng.choice(len(DYNAMICS), 2, replace=False)
            notes += [(midi, fold, DYNAMICS[d]) for fold, d in zip(folds, dynamics)]
        for midi, fold, (dyn, dyn_id, velocity, peak) in notes:
            string = str(int(rng.integers(1, 5))) if family == "Strings" else None
            name = f"{abbr}-ord-{note_name(midi)}-{dyn}-{string + 'c' if string else 'N'}-N.wav"
            path = f"{family}/{subfolder}/ordinario/{name}"
            score = Score()
            score.note(program, midi, 0.05, 0.05 + NOTE_SECONDS, velocity)
            audio = score.render(SAMPLE_RATE, FILE_SECONDS, peak=peak).mean(axis=1)
            (folder / "audio" / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(folder / "audio" / path, audio, SAMPLE_RATE, subtype="PCM_24")
            rows.append([path, int(fold), family, abbr, full, "ord", "ordinario", note_name(midi), midi,
                         dyn, dyn_id, 0, f"{string}.0" if string else "", "FALSE"])
    with open(folder / "TinySOL_metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
