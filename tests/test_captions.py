import json
import re
import subprocess
import sys

import pytest
import torch

from common.cli import UserError
from common.data import captions
from common.data.dataset import load_dataset

# Every word a template may add around the tags
TEMPLATE_WORDS = {w for t in captions.TEMPLATES for w in captions.words(re.sub(r"{\w+}", " ", t))}
TEMPLATE_WORDS |= {"and"} | set(captions.words(captions.NO_TAGS))


def test_each_clip_gets_the_same_caption_every_time_made_of_its_own_tags(data_root):
    clips = load_dataset("MTAT", data_root, demo=True).clips
    made = {c.id: captions.from_tags(c.labels["tags"], c.id) for c in clips}
    assert made == {c.id: captions.from_tags(c.labels["tags"], c.id) for c in clips}
    # ... and in another process (no salted hash() decides anything)
    code = ("import json; from common.data import captions; from common.data.dataset import load_dataset; "
            f"print(json.dumps({{c.id: captions.from_tags(c.labels['tags'], c.id) for c in "
            f"load_dataset('MTAT', {str(data_root)!r}, demo=True).clips}}))")
    assert json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout) == made
    assert len(set(made.values())) > len(clips) // 2  # templates and tag orders vary between clips
    for clip in clips:
        own = {w for t in clip.labels["tags"] for w in captions.words(t)}
        assert set(captions.words(made[clip.id])) <= own | TEMPLATE_WORDS, clip
        assert own <= set(captions.words(made[clip.id])), clip  # every tag is said


def test_tokens_are_cls_words_sep_padded_unknown_words_unk_long_captions_cut():
    vocabulary = captions.vocabulary(["A slow piece", "rock"])
    assert vocabulary == (*captions.SPECIAL, "a", "piece", "rock", "slow")
    tokens, mask = captions.tokenize(["a slow piece", "Rock, jazz!", "a " * 40], vocabulary, max_tokens=6)
    cls, sep = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    assert tokens.tolist() == [[cls, 5, 8, 6, sep, 0], [cls, 7, 1, sep, 0, 0], [cls, 5, 5, 5, 5, sep]]
    assert torch.equal(mask, tokens != 0)


def test_a_mulap_format_file_is_read_and_a_malformed_one_named(tmp_path):
    path = tmp_path / "dataset_train.json"
    path.write_text(json.dumps([{"audio_id": 1, "caption": " First caption! ", "audio_path": "track_1.npy"}]))
    assert captions.read_mulap(path) == {"track_1.npy": "First caption!"}
    for text, says in [("{", "not readable JSON"), ("[]", "non-empty JSON list"),
                       ('[{"audio_id": 1, "caption": 3, "audio_path": "x"}]', "entry 0")]:
        path.write_text(text)
        with pytest.raises(UserError, match=says):
            captions.read_mulap(path)
