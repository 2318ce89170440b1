"""The tiny three-node curriculum on synthetic canvases, shared by the merge and sequential tests."""

from __future__ import annotations

import pytest
import torch

from tests.curriculum.helpers import build_world, embeddings_in, tiny_curriculum


@pytest.fixture(scope="module")
def setup(world, tmp_path_factory, request):
    """The tiny curriculum, its canvases and field embeddings; a module with ``VALIDATION = False`` gets it without a
    validation split (see :func:`~tests.curriculum.helpers.tiny_curriculum`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    curriculum = tiny_curriculum(validation=getattr(request.module, "VALIDATION", True))
    built = build_world(world, curriculum)
    embeddings = embeddings_in(tmp_path_factory.mktemp("gwm_cache"), world)
    yield curriculum, built.canvases, embeddings
    torch.set_num_threads(threads)
