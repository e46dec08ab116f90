"""Which parts of an encoder fine-tuning trains: --unfreeze all, last:K or none.

"last:K" trains the last K blocks of the model's layers (AudioEncoder.LAYERS: the blocks
extract_features.py --layers reads) and every module the forward pass runs after the first
of them (a transformer's final norm, a CNN's pooling and projection), as partial
fine-tuning does in MARBLE and in Papaioannou, Benetos and Potamianos (ISMIR 2025). The
order is the one the forward pass takes, seen through hooks on one window: models wire
their modules in their own ways. A module left frozen stays in eval mode while the rest
trains, so that its BatchNorm statistics and dropout do not change either: "none" is
bit-equal to the pretrained encoder, and "last:K" to its first blocks.
"""
import argparse
from dataclasses import dataclass

import torch

from ..cli import UserError


def unfreeze_option(text):
    """--unfreeze: all, none or last:K with K a positive number of blocks."""
    if text in ("all", "none"):
        return text
    kind, _, count = text.partition(":")
    if kind != "last" or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: all, none, or last:K (K >= 1 blocks)")
    return f"last:{int(count)}"


def adaptation_name(unfreeze):
    """The results' adaptation: finetune-all, finetune-last2, finetune-none."""
    return "finetune-" + unfreeze.replace(":", "")


@dataclass
class Unfrozen:
    """The modules of an encoder that train, in forward order, and the ones that do not."""
    trained: list
    frozen: list

    def parameters(self):
        return [p for m in self.trained for p in m.parameters(recurse=False) if p.requires_grad]

    def set_modes(self, training):
        """Train mode for the trained modules when `training`, eval mode for every other one
        and for BatchNorm layers, whose scale and shift train but whose statistics stay the
        pretrained ones: batches of a few windows estimate them poorly, and a first step in
        train mode would move every embedding away from the statistics the head's input is
        standardised with (finetuning.py)."""
        for module in self.trained:
            module.training = training and not isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
        for module in self.frozen:
            module.training = False


def unfreeze(encoder, how):
    """Unfrozen(encoder, how): requires_grad set on every parameter of the encoder."""
    modules = list(encoder.modules())
    if how == "none":
        trained = []
    else:  # the modules the embedding runs, from where the trained part starts
        order, start = _forward_order(encoder, _first_trained_block(encoder, how))
        trained = [m for m in modules if order.get(m, -1) >= start]
    trains = set(trained)
    for module in modules:
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(module in trains)
    for name, parameter in encoder.named_parameters():  # pretraining's own heads, when held by the root
        if name.split(".")[0] in encoder.HEADS:
            parameter.requires_grad_(False)
    return Unfrozen(trained, [m for m in modules if m not in trains])


def _first_trained_block(encoder, how):
    """The first block "last:K" trains (None for all and none)."""
    if not how.startswith("last:"):
        return None
    blocks = [block for name in encoder.LAYERS for block in encoder.get_submodule(name)]
    count = int(how.split(":")[1])
    if count > len(blocks):
        raise UserError(f"--unfreeze {how}: {encoder.name} has {len(blocks)} blocks (last:1 to last:{len(blocks)}, "
                        f"or all)")
    return blocks[-count]


@torch.no_grad()
def _forward_order(encoder, block):
    """({module: the position of its first call} in one window's forward pass, the position at
    which `block` starts)."""
    order, hooks = {encoder: 0}, []  # embed() is not the root's __call__: the root's own weights come first

    def seen(module, inputs):
        order.setdefault(module, len(order))
    for module in encoder.modules():
        hooks.append(module.register_forward_pre_hook(seen))
    was_training = encoder.training
    try:
        encoder.eval()
        device = next(encoder.parameters()).device
        encoder.embed(torch.zeros(1, encoder.input_samples, device=device))
    finally:
        encoder.train(was_training)
        for hook in hooks:
            hook.remove()
    return order, order.get(block, 0)
