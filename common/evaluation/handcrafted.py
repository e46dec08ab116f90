"""The hand-crafted comparison features: what a researcher would compute with librosa.

Per clip at 22,050 Hz: 20 MFCCs and their deltas, chroma, spectral centroid, bandwidth,
roll-off, flatness and contrast, zero-crossing rate and RMS, each summarised by its mean
and standard deviation over time: 130 numbers.
"""
import librosa
import numpy as np

SAMPLE_RATE = 22050
DIM = 130


def features(y, sr=SAMPLE_RATE):
    y = np.pad(y, (0, max(0, 4096 - len(y))))  # at least 9 frames: enough for the deltas
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    power = stft ** 2
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr)), n_mfcc=20)
    frames = [
        mfcc,
        librosa.feature.delta(mfcc),
        librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0),  # A440: no tuning estimate
        librosa.feature.spectral_centroid(S=stft, sr=sr),
        librosa.feature.spectral_bandwidth(S=stft, sr=sr),
        librosa.feature.spectral_rolloff(S=stft, sr=sr),
        librosa.feature.spectral_flatness(S=stft),
        librosa.feature.spectral_contrast(S=stft, sr=sr),
        librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512),
        librosa.feature.rms(S=stft, frame_length=2048),
    ]
    stacked = np.concatenate(frames, axis=0)
    return np.concatenate([stacked.mean(axis=1), stacked.std(axis=1)]).astype(np.float32)
