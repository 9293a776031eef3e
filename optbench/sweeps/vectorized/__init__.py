"""Many training jobs as one pass: the engine behind `hydra/launcher=vectorized`.

Jobs that share a task, model shape, batch size, budget and device are trained together as one
wide model (`wide.py`): each member's parameters are one row of a [K, P] tensor, each member sees its
own minibatches, and a written-out backward pass gives every member exactly its own gradient.
Element-wise torch optimizers step all their members at once (`batched.py`); any other optimizer
steps each member over views of its row. `engine.py` runs the loop; `grouping.py`
decides which jobs can share one.
"""
