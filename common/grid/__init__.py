"""The study as a graph of steps, and what runs it: this machine's devices (local.py) or a
Slurm cluster."""
