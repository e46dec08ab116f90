"""Tiny composition helpers for the demo datasets: scales, chord progressions, parts.

Each part writes notes into a `Score` for one stretch of music given a key, a tempo and a
progression; the demo MTAT arranges them per genre, the demo Beatport set in 24 keys.
Tonics are pitch classes (0 = C) and an `octave` argument k puts notes at MIDI 12 k + offset
(k = 5 is the octave of middle C).
"""
import numpy as np

from .synth import DRUM_KIT

MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "bhairav": (0, 1, 4, 5, 7, 8, 11),  # a raga scale for the demo's Indian clips
}
PROGRESSIONS = {  # scale degrees (0-based) of one chord per bar
    "major": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 3, 0), (0, 3, 0, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 4), (0, 3, 6, 0)),
}
KICK, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, LOW_CONGA, HIGH_CONGA, RIDE = 36, 38, 39, 42, 46, 64, 63, 51
DRUM_PATTERNS = {  # instrument -> 16th-note steps of one bar
    "four_on_floor": {KICK: (0, 4, 8, 12), CLAP: (4, 12), CLOSED_HAT: (2, 6, 10, 14), OPEN_HAT: (14,)},
    "breakbeat": {KICK: (0, 10), SNARE: (4, 12), CLOSED_HAT: tuple(range(0, 16, 2))},
    "rock": {KICK: (0, 6, 8), SNARE: (4, 12), CLOSED_HAT: tuple(range(0, 16, 2))},
    "pop": {KICK: (0, 8, 10), SNARE: (4, 12), CLOSED_HAT: tuple(range(0, 16, 2))},
    "country": {KICK: (0, 8), SNARE: (4, 12), RIDE: (0, 4, 8, 12)},
    "tabla": {LOW_CONGA: (0, 6, 10), HIGH_CONGA: (3, 4, 8, 12, 14)},
}


def triad(scale, degree, tonic):
    """The diatonic triad on `degree` as pitch offsets from middle C's octave."""
    return [tonic + scale[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]


class Music:
    """One clip's worth of music: key, scale, tempo, progression, and the parts that play it."""

    def __init__(self, score, tonic, mode, bpm, seconds, rng, progression=None):
        self.score, self.tonic, self.scale, self.rng = score, tonic, MODES[mode], rng
        self.beat = 60.0 / bpm
        self.seconds = seconds
        family = "major" if self.scale[2] == 4 else "minor"
        self.progression = progression or PROGRESSIONS[family][rng.integers(len(PROGRESSIONS[family]))]

    def bars(self):
        """(start time, chord degree) per bar until the clip ends."""
        bar, t = 0, 0.0
        while t < self.seconds:
            yield t, self.progression[bar % len(self.progression)]
            bar, t = bar + 1, t + 4 * self.beat

    def chords(self, program, octave, velocity, strum=False):
        for t, degree in self.bars():
            for i, pitch in enumerate(triad(self.scale, degree, self.tonic)):
                offset = 0.03 * i if strum else 0.0
                for hit in ((0, 2) if strum else (0,)):
                    self.score.note(program, pitch + 12 * octave, t + hit * self.beat + offset,
                                    t + (hit + 2) * self.beat, velocity)

    def arpeggio(self, program, octave, velocity, per_beat=2):
        step = self.beat / per_beat
        for t, degree in self.bars():
            notes = triad(self.scale, degree, self.tonic)
            for i in range(4 * per_beat):
                self.score.note(program, notes[i % 3] + 12 * (octave + (i // 3) % 2), t + i * step,
                                t + (i + 1) * step, velocity)

    def bass(self, program, octave, velocity, per_bar=4):
        for t, degree in self.bars():
            root = triad(self.scale, degree, self.tonic)[0] % 12
            for i in range(per_bar):
                start = t + i * 4 * self.beat / per_bar
                self.score.note(program, root + 12 * octave, start, start + 0.9 * 4 * self.beat / per_bar,
                                velocity)

    def melody(self, program, octave, velocity):
        """A random walk over the scale that lands on chord tones on strong beats."""
        t, position = 0.0, 7 + int(self.rng.integers(0, 5))
        chords = list(self.bars())
        while t < self.seconds:
            length = self.beat * float(self.rng.choice((0.5, 1.0, 1.0, 2.0)))
            degree = chords[min(int(t / (4 * self.beat)), len(chords) - 1)][1]
            if abs(t / self.beat - round(t / self.beat)) < 1e-6 and round(t / self.beat) % 2 == 0:
                position = min((degree + d for d in (0, 2, 4, 7, 9, 11)), key=lambda p: abs(p - position))
            else:
                position = int(np.clip(position + self.rng.choice((-2, -1, 1, 2)), 3, 14))
            pitch = self.tonic + self.scale[position % 7] + 12 * (position // 7 + octave - 1)
            self.score.note(program, pitch, t, t + 0.95 * length, velocity)
            t += length

    def drone(self, program, octave, velocity):
        for pitch in (self.tonic, self.tonic + 7):
            self.score.note(program, pitch + 12 * octave, 0.0, self.seconds, velocity)

    def drums(self, pattern, velocity):
        sixteenth = self.beat / 4
        for t, _ in self.bars():
            for instrument, steps in DRUM_PATTERNS[pattern].items():
                for s in steps:
                    if t + s * sixteenth < self.seconds:
                        self.score.note(DRUM_KIT, instrument, t + s * sixteenth, t + (s + 1) * sixteenth,
                                        velocity - 15 * (instrument in (CLOSED_HAT, RIDE)))
