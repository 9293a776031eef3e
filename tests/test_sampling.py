"""optbench's batches and random draws are exactly those of the notebooks' DataLoaders."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from optbench.data.sampling import shuffled_batches
from optbench.runtime.randomness import consume_test_pass_draw


@pytest.mark.parametrize("n,batch_size,steps", [(60, 10, 25), (57, 10, 20), (1000, 100, 23)])
def test_batches_and_rng_stream_match_dataloader(n, batch_size, steps):
    dataset = TensorDataset(torch.arange(n))
    torch.manual_seed(123)
    expected = []
    train = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    test = DataLoader(dataset, batch_size=batch_size)
    while len(expected) < steps:
        for (batch,) in train:
            expected.append(batch)
            if len(expected) % 7 == 0:  # an evaluation pass in the middle of an epoch
                for _ in test:
                    pass
            if len(expected) == steps:
                break
    after_notebook = torch.rand(3)

    torch.manual_seed(123)
    got = []
    for index in itertools.islice(shuffled_batches(n, batch_size, torch.device("cpu")), steps):
        got.append(index)
        if len(got) % 7 == 0:
            consume_test_pass_draw()
    after_optbench = torch.rand(3)

    assert [b.tolist() for b in got] == [b.tolist() for b in expected]
    assert torch.equal(after_notebook, after_optbench)
