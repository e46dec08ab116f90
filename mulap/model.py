"""MuLaP (Manco et al., ICASSP 2022): an audio CNN that learns from weakly aligned text.

Written from reading ilaria-manco/mulap (configs/models/mulbert.yaml, mulap/models/mulbert.py,
mulap/modules/audio_encoders.py). MuLaP's audio backbone is MusiCNN on 3 s chunks at 16 kHz;
a clip's first 20 s give a sequence of chunk features, which an audio transformer stream
reads beside a BERT text stream, the two exchanging information in co-attention layers
(ViLBERT's: each stream's queries attend to the other's keys and values). Pretraining
predicts masked words of the caption from the text and the audio, and whether caption and
audio belong together (audio-text matching). What a downstream task gets is the backbone's
pooled chunk feature, as for the study's CNNs.

Here: the backbone is the study's MusiCNN (musicnn/model.py, its 200-d dense layer the
embedding, 808 k parameters, sized like the study's CNNs), a crop is 6 chunks (18 s, the
chunks MuLaP reads of 20 s; silent padding chunks are neither embedded nor attended), and
the streams are small and trained from scratch on the subset's own captions, where MuLaP
fine-tunes a pretrained 768-wide BERT: width 256, 4 heads, 4 text layers and 2 audio layers
of self-attention, then 2 co-attention layers; captions of at most 32 tokens.
"""
import torch
from torch import nn

from ...data.captions import SPECIAL
from ...models.registry import model_class
from ...models.transformer import Block, CrossAttention, init_weights, mlp

WIDTH, HEADS, TEXT_DEPTH, AUDIO_DEPTH, CO_DEPTH, MAX_TOKENS = 256, 4, 4, 2, 2, 32
MusiCNN = model_class("musicnn")


class CrossBlock(nn.Module):
    """A pre-norm block whose attention reads another sequence."""

    def __init__(self, dim, heads):
        super().__init__()
        self.norm_x, self.norm_context = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = mlp(dim)

    def forward(self, x, context, context_mask):
        x = x + self.attn(self.norm_x(x), self.norm_context(context), context_mask)
        return x + self.mlp(self.norm2(x))


class CoAttention(nn.Module):
    """Text attends to audio and audio to text, both from the layer's inputs."""

    def __init__(self):
        super().__init__()
        self.text, self.audio = CrossBlock(WIDTH, HEADS), CrossBlock(WIDTH, HEADS)

    def forward(self, text, text_mask, audio, audio_mask):
        return self.text(text, audio, audio_mask), self.audio(audio, text, text_mask)


class MuLaP(MusiCNN):
    name = "mulap"
    VARIANTS = {}
    HEADS = ("audio_in", "audio_positions", "audio_blocks", "words", "text_positions", "text_blocks", "co_attention",
             "text_norm", "audio_norm", "predict_word", "match")
    crop_windows = 6
    max_tokens = MAX_TOKENS

    def __init__(self, vocabulary=SPECIAL):
        super().__init__()
        del self.head  # MusiCNN's tag head: MuLaP learns from captions instead
        self.vocabulary = tuple(vocabulary)
        self.audio_in = nn.Linear(self.emb_dim, WIDTH)
        self.audio_positions = nn.Parameter(torch.zeros(1, self.crop_windows, WIDTH))
        self.audio_blocks = nn.ModuleList(Block(WIDTH, HEADS) for _ in range(AUDIO_DEPTH))
        self.words = nn.Embedding(len(self.vocabulary), WIDTH)
        self.text_positions = nn.Parameter(torch.zeros(1, self.max_tokens, WIDTH))
        self.text_blocks = nn.ModuleList(Block(WIDTH, HEADS) for _ in range(TEXT_DEPTH))
        self.co_attention = nn.ModuleList(CoAttention() for _ in range(CO_DEPTH))
        self.text_norm, self.audio_norm = nn.LayerNorm(WIDTH, eps=1e-6), nn.LayerNorm(WIDTH, eps=1e-6)
        self.predict_word = nn.Linear(WIDTH, len(self.vocabulary))
        self.match = nn.Linear(WIDTH, 1)
        for name in self.HEADS:  # BERT's initialisation for the language side; the backbone keeps MusiCNN's
            module = getattr(self, name)
            if isinstance(module, nn.Parameter):
                nn.init.trunc_normal_(module, std=0.02)
            else:
                module.apply(init_weights)
        nn.init.trunc_normal_(self.words.weight, std=0.02)

    def forward(self, waveforms, tokens, token_mask):
        """(batch, windows * input_samples) audio and (batch, tokens) caption ids -> word logits
        (batch, tokens, vocabulary) and audio-text match logits (batch,)."""
        b = len(waveforms)
        chunks = waveforms.reshape(b, -1, self.input_samples)
        audio_mask = chunks.abs().amax(dim=2) > 0
        audio_mask |= ~audio_mask.any(dim=1, keepdim=True)  # a silent crop: attend to its silence
        # The backbone's BatchNorm sees the sounding chunks alone: how many there are is the
        # one value a training step of MuLaP reads back from the device.
        sounding = audio_mask.flatten().nonzero()[:, 0]
        embedded = self.embed(chunks.flatten(0, 1).index_select(0, sounding))
        features = embedded.new_zeros(audio_mask.numel(), embedded.shape[1]).index_copy(0, sounding, embedded)
        features = features.reshape(*audio_mask.shape, -1)
        audio = self.audio_in(features) + self.audio_positions[:, : chunks.shape[1]]
        for block in self.audio_blocks:
            audio = block(audio, audio_mask)
        text = self.words(tokens) + self.text_positions[:, : tokens.shape[1]]
        for block in self.text_blocks:
            text = block(text, token_mask)
        for layer in self.co_attention:
            text, audio = layer(text, token_mask, audio, audio_mask)
        text, audio = self.text_norm(text), self.audio_norm(audio)
        weights = audio_mask.unsqueeze(2).to(audio.dtype)
        pooled_audio = (audio * weights).sum(dim=1) / weights.sum(dim=1)
        # MuLaP's "mul" fusion: the caption's [CLS] output times the pooled audio
        return self.predict_word(text), self.match(text[:, 0] * pooled_audio).squeeze(1)
