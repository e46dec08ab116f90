"""Evaluation: features from checkpoints (extraction, hand-crafted, test conditions, a
folder of one's own audio), the downstream tasks and their metrics, probes, choices made on
validation, the figures, and the study's published numbers beside ours."""
