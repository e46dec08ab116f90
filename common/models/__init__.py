"""The models: the registry that finds each model's code by its id (registry.py; the
architectures live in the top-level model folders), the pieces they share (encoder,
transformer blocks, mel front ends), their checkpoints on disk, and a checkpoint used
elsewhere (pretrained.py from Python, hear.py through the HEAR API)."""
