"""The job and its loop: where a run trains (`device`), with how many threads, its clock and training loop."""
