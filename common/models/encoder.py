"""What every model of the study is: a waveform encoder with a fixed input and embedding.

Everything downstream (training, feature extraction) only relies on this interface, so a
sixth model needs nothing but its own folder.
"""
from torch import nn


class AudioEncoder(nn.Module):
    name: str
    sample_rate: int       # Hz of the waveforms it takes
    input_seconds: float   # length of one input window
    emb_dim: int           # size of `embed`'s output
    n_mels: int | None     # mel bins of its front end (None: raw waveform)
    front_end_recipe = "study"  # mel recipe (common/models/melspec.py), set by the model id
    VARIANTS = {}          # variant name -> the class attributes it changes (registry.py)
    VARIANT_OPTION = "variant"  # the train.py option that picks a variant
    DEFAULT_VARIANT = "code"    # what the bare model name is, as that option names it
    AUGMENTED = False      # trained with CLMR's augmentation chain (clmr/augment.py)
    left_out = ()          # transforms of that chain its id leaves out (-no-pitch: registry.py)
    HEADS = ()             # submodules that only pretraining uses (not counted as the embedding's)
    # The blocks whose outputs are the model's layers (embed_layers), as submodule names of
    # sequences run in this order; a transformer's outputs are (batch, tokens, width), a
    # CNN's (batch, channels, [frequency,] time)
    LAYERS = ()
    TOKEN_LAYERS = False

    # What one training item is: how many input windows one crop spans, and whether the views
    # of a multi-view objective are augmentations of one crop or each its own crop of the clip
    # (CLMR's contrastive strategies, clmr/model.py)
    crop_windows = 1
    views_share_crop = False

    input_samples: int     # samples in one input window, set from the two above

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.input_samples = round(cls.input_seconds * cls.sample_rate)  # known before any instance

    def embed(self, waveforms):
        """(batch, input_samples) float waveforms -> (batch, emb_dim) embeddings."""
        raise NotImplementedError

    def layer_count(self):
        return sum(len(self.get_submodule(name)) for name in self.LAYERS)

    def embed_layers(self, waveforms):
        """[(batch, width) for each block of LAYERS, in the order they run, then the embedding]:
        a CNN block's output averaged over time and frequency, a transformer layer's over its
        tokens (what layer-wise probing studies of audio models read)."""
        outputs = []

        def keep(module, inputs, output):
            outputs.append(output.mean(dim=1) if self.TOKEN_LAYERS else output.flatten(2).mean(dim=2))
        hooks = [block.register_forward_hook(keep) for name in self.LAYERS for block in self.get_submodule(name)]
        try:
            embedding = self.embed(waveforms)
        finally:
            for hook in hooks:
                hook.remove()
        return [*outputs, embedding]
