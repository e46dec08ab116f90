"""Shared library of the study: audio, data, front end, training, extraction, probes."""
