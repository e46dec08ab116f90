"""Pretrain MuLaP on an MTAT subset from weak captions: masked words and audio-text matching.

MTAT has tags, not captions, so each clip's caption is written from its own tags by a
fixed, seeded set of templates (common/data/captions.py: "a slow classical piece with strings
and violin"); with --audio-dir, --captions reads a user's own pairs in MuLaP's JSON format
(or --tags makes captions from a CSV of tags). The vocabulary is the training captions'
words. An item is a clip's first 18 s (6 MusiCNN chunks of 3 s), once per epoch, with its
caption; each step, half the items swap their caption for another item's, and the model
learns (MuLaP's two language objectives, weighted as its configuration does):
  - audio-text matching: whether the caption belongs to the audio (binary cross-entropy),
    weight 2.0;
  - masked language modelling conditioned on the audio: 15% of the words of the matched
    captions (at least one each) are hidden (80% [MASK], 10% a random word, 10% kept) and
    predicted from the text and the audio, weight 0.1.
MuLaP also regresses masked audio features; that third objective is left out here. Under
torchrun each process draws the mismatched pairs among its own items (randomness per
process, as dropout is), and BatchNorm spans the global batch as for every model.

Budget: the study's (1,000 epochs, weights kept every 50), so MuLaP is compared with the
study's models on equal terms; MuLaP's batch (64) and rate (1e-4, constant; its AdamW decay
and warm-up are not in the shared loop: docs/models.md, MuLaP). The loop itself (data,
checkpoints, resume, DDP) is common/training/loop.py.

    python mulap/train.py --subset 5
    python mulap/train.py --audio-dir ~/my_music --captions ~/my_music/captions_train.json
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common.cli import run  # noqa: E402
from common.data.captions import MASK, SPECIAL, tokenize  # noqa: E402
from common.training.distributed import to_device, unwrap  # noqa: E402
from common.training.loop import pretrain  # noqa: E402

DEFAULTS = {"epochs": 1000, "batch_size": 64, "lr": 1e-4, "weight_decay": 0.0, "lr_schedule": "constant",
            "crops": "tile", "crops_per_clip": 1, "checkpoint_every": 50}
WORD_WEIGHT, MATCH_WEIGHT, MASKED_SHARE = 0.1, 2.0, 0.15  # configs/models/mulbert.yaml; BERT's 15%


def mismatched_captions(captions):
    """Half the items (at random) take another item's caption: (captions, 1.0 where a caption
    still belongs to its item: kept, or another item's of the same text)."""
    n = len(captions)
    swap = (torch.rand(n) < 0.5).tolist()
    other = ((torch.arange(n) + torch.randint(1, max(n, 2), (n,))) % n).tolist()
    paired = [captions[o] if s else c for c, s, o in zip(captions, swap, other)]
    return paired, torch.tensor([p == c for p, c in zip(paired, captions)], dtype=torch.float32)


def mask_words(tokens, token_mask, vocabulary_size, hide):
    """BERT's masking of the words (not [CLS], [SEP], [PAD]) of the rows in `hide`: (input
    ids, targets: the hidden words' ids, -100 elsewhere)."""
    is_word = token_mask.clone()
    is_word[:, 0] = False
    is_word[torch.arange(len(tokens)), token_mask.sum(dim=1) - 1] = False
    scores = torch.rand(tokens.shape).masked_fill(~is_word, 2.0)
    hidden = (scores < MASKED_SHARE) | (scores == scores.min(dim=1, keepdim=True).values)  # at least one word
    hidden &= is_word & hide[:, None]
    targets = tokens.masked_fill(~hidden, -100)
    kind = torch.rand(tokens.shape)
    inputs = tokens.masked_fill(hidden & (kind < 0.8), SPECIAL.index(MASK))
    random_words = torch.randint(len(SPECIAL), max(vocabulary_size, len(SPECIAL) + 1), tokens.shape)
    inputs = torch.where(hidden & (kind >= 0.8) & (kind < 0.9), random_words, inputs)
    return inputs, targets


def language_loss(model, batch):
    vocabulary, max_tokens = unwrap(model).vocabulary, unwrap(model).max_tokens
    captions, matched = mismatched_captions(batch.captions)
    tokens, token_mask = tokenize(captions, vocabulary, max_tokens)
    inputs, targets = mask_words(tokens, token_mask, len(vocabulary), hide=matched.bool())
    device = batch.audio.device
    word_logits, match_logits = model(batch.audio, to_device(inputs, device), to_device(token_mask, device))
    targets = to_device(targets, device)
    words = F.cross_entropy(word_logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
    words = words / (targets >= 0).sum().clamp(min=1)  # an all-mismatched batch hides no word
    match = F.binary_cross_entropy_with_logits(match_logits.float(), to_device(matched, device))
    return WORD_WEIGHT * words + MATCH_WEIGHT * match


if __name__ == "__main__":
    run(lambda: pretrain("mulap", language_loss, DEFAULTS, __doc__.split("\n")[0], learns_from="captions"))
