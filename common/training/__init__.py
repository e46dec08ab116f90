"""Pretraining: the one training loop every train.py runs (loop.py), and what spans
processes under torchrun (distributed.py, and global_batch.py for what is computed over
the whole batch)."""
