"""`module_mode` sets each module's mode for a block and gives each its own back, also when
the block raises."""

import pytest
from torch import nn

from passt.utils.modes import module_mode


def test_each_module_gets_its_own_mode_back_even_after_an_error():
    a, b = nn.Linear(1, 1).train(), nn.Dropout().eval()
    with module_mode(a, b, training=False):
        assert not a.training and not b.training
    assert a.training and not b.training
    with pytest.raises(RuntimeError), module_mode(a, b, training=True):
        assert a.training and b.training
        raise RuntimeError
    assert a.training and not b.training
