"""Many training jobs as one pass: the engine behind `hydra/launcher=vectorized`.

Jobs that share a task, model shape, batch size, budget and device are trained together as one
wide model (`wide.py`): each member's layers are slices of stacked weights, each member sees its own
minibatches, and the sum of the members' losses gives every member exactly its own gradient.
Element-wise torch optimizers step all their members at once (`batched.py`); any other optimizer
steps each member over views of the stacked tensors. `engine.py` runs the loop; `grouping.py`
decides which jobs can share one.
"""
