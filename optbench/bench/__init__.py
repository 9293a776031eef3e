"""`optbench bench`: a named suite's protocol run for new optimizers, compared with the baselines optbench ships."""
