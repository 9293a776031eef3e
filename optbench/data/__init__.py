"""Data: the `dataset` group's datasets (MNIST, Fashion-MNIST, the thermometer readings, the text corpus) and
the order minibatches are drawn in (`optbench.data.sampling`)."""
