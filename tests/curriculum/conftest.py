"""The tiny three-node curriculum on synthetic canvases, shared by the merge and sequential tests."""

from __future__ import annotations

import pytest
import torch

from tests.curriculum.helpers import build_world, embeddings_in, tiny_curriculum


@pytest.fixture(scope="module")
def setup(world, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    curriculum = tiny_curriculum()
    built = build_world(world, curriculum)
    embeddings = embeddings_in(tmp_path_factory.mktemp("gwm_cache"), world)
    yield curriculum, built.canvases, embeddings
    torch.set_num_threads(threads)
