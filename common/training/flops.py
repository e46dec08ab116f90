"""The compute of a pretraining step, so that runs can be compared by FLOPs as well as by minutes.

torch's FlopCounterMode counts the floating-point operations of the matrix products,
convolutions and attention of one forward and backward pass (2 per multiply-add), on a
copy of the model (its BatchNorm statistics stay untouched, so a run's numbers are the
same with or without the count). Element-wise work, the FFTs of the mel front ends and of
CLMR's augmentations and the optimizer's update are not counted: they are a few percent
of a step's arithmetic for these models. A run's training FLOPs are its steps times this.
"""
import copy

from torch.utils.flop_counter import FlopCounterMode

from . import distributed


def step_flops(model, objective, batch, world, precision):
    """The FLOPs of one step of `objective` on this process's `batch`, summed over the processes."""
    twin = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        with distributed.autocast(world.device, precision):
            loss = objective(twin, batch)
        loss.backward()
    return round(world.mean(counter.get_total_flops()) * world.size)
