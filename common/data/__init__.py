"""The data: datasets in their official layouts (mtat, tinysol, beatport, and the demo
datasets rendered in the same layouts), their download, decoding and decoded-audio cache,
the study's limited-data subsets and draws, pretraining data from a folder of one's own,
and captions for language supervision. `dataset.load_dataset` is the one entry point."""
