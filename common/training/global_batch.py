"""Computing over the global batch under DistributedDataParallel, so N processes train the
objective one process would.

DDP averages gradients, which is exact for a loss that is a mean over items computed item by
item. Two things are not: an objective that compares items across the batch (NT-Xent's
negatives, audio-text matching), and BatchNorm, whose statistics would be each process's
alone. With the reference batch of 48 on 4 GPUs, CLMR would see 22 negatives per clip
instead of 94. So under torchrun:
  - `gather` hands every process the whole batch's embeddings, with gradients: each process
    then computes the global loss, and the backward pass sums every process's gradient for
    this process's rows, so after DDP's averaging the gradient is the global loss's;
  - `sync_batchnorm` makes every BatchNorm layer's training statistics the global batch's:
    on GPUs it is torch's SyncBatchNorm (fused kernels, NCCL); on CPUs, where that does not
    run, `GlobalBatchNorm`, whose cost is two all-reduces of a few floats per channel per
    layer and step, a small fraction of the step's compute and of DDP's own gradient
    all-reduce.
In a single process all of this is the identity.
"""
import torch
import torch.distributed as dist


def _world():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllReduce(torch.autograd.Function):
    """The sum over processes; its gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    """Every process's rows, concatenated in process order; the gradient of this process's
    rows is the sum of every process's. Every process holds as many rows: the loop shares each
    step's batch equally (World.batch_share), so no sizes are exchanged and read."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(_world())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = len(x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather(x):
    """(rows of every process, ...) with gradients; `x` itself in a single process."""
    return _AllGather.apply(x) if _world() > 1 else x


def gather_views(z, views):
    """Embeddings of `views` views laid out view by view ([view 0 of every item; view 1; ...],
    as training.Batch lays them out), gathered from every process in the same layout."""
    if _world() == 1:
        return z
    return torch.cat([gather(part) for part in z.chunk(views)])


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (of every process);
    the same parameters and buffers as the BatchNorm it replaces, and the same as it in
    evaluation and in a single process."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions, got {x.dim()}")

    def forward(self, x):
        if not self.training or _world() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # never below float32, as BatchNorm under autocast
        count = _AllReduce.apply(xf.new_full((1,), xf.numel() / xf.shape[1]))
        mean = _AllReduce.apply(xf.sum(dims)) / count
        centred = xf - mean.reshape(shape)
        var = _AllReduce.apply(centred.pow(2).sum(dims)) / count  # two passes: as exact as BatchNorm's
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.to(x.dtype)


def sync_batchnorm(module, device):
    """`module` with every BatchNorm layer replaced by one that computes its statistics over
    every process and holds the same state: torch's SyncBatchNorm on a GPU, GlobalBatchNorm
    on the CPU."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _global_batchnorm(module)


def _global_batchnorm(module):
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            device = next(iter([*child.parameters(), *child.buffers()])).device
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats).to(device)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            _global_batchnorm(child)
    return module
