import os

import pytest
import torch

torch.set_num_threads(1)

FULL = bool(os.environ.get("PRUNEBOUND_FULL"))


@pytest.fixture
def full() -> bool:
    """True when running the full-size statistical tests (``make verify``)."""
    return FULL
