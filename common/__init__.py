"""The study's shared library, by what it serves:

    data/        datasets, decoding and the decoded-audio cache, subsets, captions
    models/      the model registry, shared building blocks, checkpoints, a checkpoint elsewhere
    training/    the one training loop, and what spans processes under torchrun
    evaluation/  features, tasks, probes, metrics, choices on validation, figures, the study's numbers
and, used by all of them, cli.py (one-line errors), allocator.py (malloc keeping freed
memory), atomic.py (atomic writes), provenance.py (what a result was made from) and plan.py
(the study's cost before it runs).

Installed with `pip install .`, this folder is the package `limited_data_music` (a name of
its own: a bare `common` would clash with any other package of that name); its modules
import one another relatively, so the same files serve under either name.
"""
