"""optbench's Hydra plugins: the `tune` sweeper (`optbench -m hydra/sweeper=tune ...`)."""
