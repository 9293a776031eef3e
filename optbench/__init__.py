"""optbench: benchmark PyTorch optimizers from the command line, configured with Hydra."""

__version__ = "0.1.0"
