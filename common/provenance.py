"""What made a derived file: the record a stage compares before it reuses one.

Every derived file (features, results) is written with a provenance: a flat dict of what
its numbers depend on (the weights' save id, the clips and their decoded audio, the
settings that change values). A later run reuses or copies the file only when the
provenance it would write now is equal; otherwise it computes it again and says in one
line what changed.
"""
import hashlib
import json


def digest(obj):
    """A short, stable hash of any JSON-able value (lists of clip ids, index texts, ...)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def clips_digest(clips_and_splits):
    """The provenance of a task's clip list: its (clip id, split) pairs, in row order. Extraction
    records it from the clips it embeds, probes compare it with the index they read."""
    return digest([[clip, split] for clip, split in clips_and_splits])


def changes(before, now):
    """The keys whose values differ between two recorded provenances."""
    return [key for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
