"""Where and how a run computes: the device and its numerics policy, CPU threads, the training clock, and the
random draws a run makes (`randomness`). Below everything that trains, so every stage can use it."""
