"""Captions for language-supervised pretraining (mulap/): made from tags, or read from a file.

MTAT has no captions, only tags, so each clip gets a weak caption written from its own tags
by one of a fixed set of templates ("a slow classical piece with strings and violin"). The
template and the order of the tags are drawn from a generator seeded with the clip's key,
so a clip's caption never changes between runs, processes or machines, and holds no word
from another clip's tags. A user's own audio-text pairs come in MuLaP's format instead: a
JSON list per split of {"audio_id", "caption", "audio_path"}, paths relative to the audio
folder (ilaria-manco/mulap, data/datasets/audiocaption/dataset_train.json).

Captions are split into lower-case words; the vocabulary is built from the training
captions alone (no downloaded tokenizer), after five special tokens.
"""
import json
import re
import zlib

import numpy as np
import torch

from ..cli import UserError

# The MTAT top-50 tags by what they describe; any other tag (a user's) counts as "other".
GENRES = {"classical", "classic", "techno", "electronic", "rock", "indian", "opera", "pop", "new age", "dance",
          "country", "metal", "choral", "ambient"}
INSTRUMENTS = {"guitar", "strings", "drums", "piano", "violin", "synth", "harpsichord", "flute", "sitar", "harp",
               "cello", "beat", "beats"}
VOICES = {"vocal", "vocals", "female", "male", "singing", "no vocals", "woman", "male vocal", "no vocal", "man",
          "choir", "voice", "male voice", "female vocal", "no voice", "female voice"}

# A part in brackets is left out when a group it names has no tag.
TEMPLATES = (
    "a [{other} ][{genre} ]piece[ with {instrument}][, {voice}]",
    "[{genre} ]music[ featuring {instrument}][ that is {other}][ with {voice}]",
    "[{other} ][{genre} ]song[ played on {instrument}][, {voice}]",
    "the sound of [{instrument} in ]a [{other} ][{genre} ]recording[ with {voice}]",
)
NO_TAGS = "a piece of music"

PAD, UNKNOWN, CLS, SEP, MASK = SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _group(tag):
    return ("genre" if tag in GENRES else "instrument" if tag in INSTRUMENTS else "voice" if tag in VOICES
            else "other")


def _listing(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def from_tags(tags, key, seed=0):
    """The caption of the clip `key` with these tags (deterministic in (seed, key, tags))."""
    if not tags:
        return NO_TAGS
    rng = np.random.default_rng([seed, zlib.crc32(str(key).encode())])
    groups = {}
    for tag in rng.permutation(sorted(tags)):
        groups.setdefault(_group(str(tag)), []).append(str(tag))
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    filled = re.sub(r"\[([^\]]*)\]", lambda part: part.group(1) if all(
        g in groups for g in re.findall(r"{(\w+)}", part.group(1))) else "", template)
    return filled.format(**{g: _listing(words) for g, words in groups.items()})


def words(caption):
    return re.findall(r"[a-z0-9']+", caption.lower())


def vocabulary(captions):
    """The special tokens, then every word of `captions` in sorted order."""
    return SPECIAL + tuple(sorted({w for c in captions for w in words(c)}))


def tokenize(captions, vocabulary, max_tokens):
    """Token ids (batch, longest) of [CLS] words [SEP], at most `max_tokens` (words cut
    first), padded with [PAD] (id 0); and the mask of the real tokens. Words outside the
    vocabulary are [UNK]."""
    index = {w: i for i, w in enumerate(vocabulary)}
    rows = [[index[CLS], *(index.get(w, index[UNKNOWN]) for w in words(c)[: max_tokens - 2]), index[SEP]]
            for c in captions]
    tokens = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens, tokens != index[PAD]


def read_mulap(path):
    """{audio_path: caption} from a MuLaP-format JSON file; anything else is a UserError."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"--captions {path} is not readable JSON ({error})") from None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"--captions {path} must be a non-empty JSON list of {{\"audio_id\", \"caption\", "
                        f"\"audio_path\"}} objects (MuLaP's format)")
    captions = {}
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and {"audio_id", "caption", "audio_path"} <= entry.keys()
                and isinstance(entry["caption"], str) and words(entry["caption"])
                and isinstance(entry["audio_path"], str) and entry["audio_path"]):
            raise UserError(f"--captions {path}: entry {i} is not an object with audio_id, a non-empty caption "
                            f"and an audio_path (MuLaP's format)")
        captions[entry["audio_path"]] = entry["caption"].strip()
    return captions
