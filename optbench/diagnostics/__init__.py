"""What a run can measure about its own steps, beside the loss: gradient and update norms, update-to-weight
ratios, and the loss's curvature (`hessian.py`)."""
