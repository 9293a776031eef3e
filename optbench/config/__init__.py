"""Configuration: where the Hydra configs live, composing them, a config's fingerprint, and the one check of
every setting (`optbench.config.validation`) that a job passes before any data are read."""
