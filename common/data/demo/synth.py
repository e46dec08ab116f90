"""Rendering MIDI to audio with the General-MIDI SoundFont that pretty_midi ships.

midirenderer (a SoundFont synthesiser compiled into its wheel, no system libraries)
turns a Standard MIDI File into WAV bytes; everything here is deterministic.
"""
import io
from functools import lru_cache
from pathlib import Path

import midirenderer
import numpy as np
import pretty_midi
import soundfile as sf

from ..audio import resample

SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
DRUM_KIT = -1  # program value that stands for the General-MIDI percussion channel
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@lru_cache(maxsize=1)
def _soundfont():
    return SOUNDFONT.read_bytes()


def note_name(midi):
    """60 -> 'C4', 37 -> 'C#2' (sharps, as TinySOL writes them)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


class Score:
    """A few instrument tracks of notes, rendered in one go."""

    def __init__(self):
        self.midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
        self.tracks = {}

    def note(self, program, pitch, start, end, velocity):
        if program not in self.tracks:
            track = pretty_midi.Instrument(program=max(program, 0), is_drum=program == DRUM_KIT)
            self.tracks[program] = track
            self.midi.instruments.append(track)
        self.tracks[program].notes.append(
            pretty_midi.Note(velocity=int(np.clip(velocity, 1, 127)), pitch=int(pitch),
                             start=float(start), end=float(end)))

    def render(self, sample_rate, seconds, peak=None):
        """Stereo float32 (samples, 2) of exactly `seconds` at `sample_rate`, scaled to `peak` if given."""
        buffer = io.BytesIO()
        self.midi.write(buffer)
        wav, sr = sf.read(io.BytesIO(midirenderer.render_wave_from(_soundfont(), buffer.getvalue())),
                          dtype="float32", always_2d=True)
        n = int(round(seconds * sr))
        wav = np.pad(wav[:n], ((0, max(0, n - len(wav))), (0, 0)))
        channels = [resample(np.ascontiguousarray(wav[:, c]), sr, sample_rate) for c in range(2)]
        stereo = np.stack(channels, axis=1)[: int(round(seconds * sample_rate))]
        if peak is not None:
            stereo *= peak / max(np.abs(stereo).max(), 1e-9)
        return stereo
