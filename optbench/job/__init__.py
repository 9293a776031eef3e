"""The job and its loop: a job's lifecycle for every way in (`job`) and the training loop (`loop`)."""
