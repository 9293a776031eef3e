"""optbench's Hydra plugins: the `vectorized` launcher (`optbench -m hydra/launcher=vectorized ...`)."""
