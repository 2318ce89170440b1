"""CogVideoXBackbone on a tiny CogVideoX transformer written with save_pretrained and loaded back by path."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from gwm_model.nn import cogvideox as cv  # noqa: E402
from gwm_model.nn.cogvideox import CogVideoXBackbone, build_attention_mask  # noqa: E402

D_MODEL = 12
TINY = dict(
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=4,
    time_embed_dim=8,
    text_embed_dim=8,
    num_layers=2,
    sample_width=4,
    sample_height=4,
    sample_frames=1,
    patch_size=2,
    max_text_seq_length=4,
)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    torch.manual_seed(0)
    model = diffusers.CogVideoXTransformer3DModel(**TINY)
    path = tmp_path_factory.mktemp("cogvideox") / "tiny"
    model.save_pretrained(str(path))
    return path


def make_backbone(tiny_path, seed: int = 1, **kwargs) -> CogVideoXBackbone:
    torch.manual_seed(seed)
    return CogVideoXBackbone.from_pretrained(str(tiny_path), d_model=D_MODEL, **kwargs)


def banded_mask(P: int) -> torch.Tensor:
    """Each position sees itself and its neighbours; position 0 sees only itself."""
    idx = torch.arange(P)
    mask = (idx[:, None] - idx[None, :]).abs() <= 1
    mask[0] = False
    mask[0, 0] = True
    return mask


def test_forward_shape_with_mask_and_cond(tiny_path):
    bb = make_backbone(tiny_path)
    B, L, P = 2, 3, 5
    out = bb(torch.randn(B, L, P, D_MODEL), spatial_mask=banded_mask(P), cond=torch.randn(B, D_MODEL))
    assert out.shape == (B, L, P, D_MODEL) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert bb(torch.randn(B, L, P, D_MODEL)).shape == (B, L, P, D_MODEL)  # no mask, no cond
    with pytest.raises(ValueError, match="spatial_mask"):
        bb(torch.randn(B, L, P, D_MODEL), spatial_mask=torch.ones(P, P))  # not bool


def test_frozen_transformer_and_eval_mode(tiny_path):
    bb = make_backbone(tiny_path)
    assert isinstance(bb.transformer, diffusers.CogVideoXTransformer3DModel)
    assert not any(p.requires_grad for p in bb.transformer.parameters())
    bb.train()
    assert bb.training and not bb.transformer.training
    assert all(not m.training for m in bb.transformer.modules())
    assert all(
        isinstance(b.attn1.processor, cv.MaskedCogVideoXAttnProcessor) for b in bb.transformer.transformer_blocks
    )


def test_training_moves_adapters_only(tiny_path):
    bb = make_backbone(tiny_path)
    frozen = {k: v.clone() for k, v in bb.transformer.state_dict().items()}
    before = bb.trainable_state_dict()
    gen = torch.Generator().manual_seed(3)
    B, L, P = 4, 2, 4
    x = torch.randn(B, L, P, D_MODEL, generator=gen)
    cond = torch.randn(B, D_MODEL, generator=gen)
    target = x @ torch.randn(D_MODEL, D_MODEL, generator=gen) * 0.5
    mask = banded_mask(P)
    opt = torch.optim.Adam([p for p in bb.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    bb.train()
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(bb(x, spatial_mask=mask, cond=cond), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    for k, v in bb.transformer.state_dict().items():
        assert torch.equal(v, frozen[k]), f"frozen tensor {k} changed"
    after = bb.trainable_state_dict()
    unmoved = [k for k in before if torch.equal(before[k], after[k])]
    assert not unmoved, f"trainable parameters did not move: {unmoved}"
    assert (after["loop_gate"] != 0).all()


def test_trainable_fraction_counts(tiny_path):
    bb = make_backbone(tiny_path)
    frozen = sum(p.numel() for p in bb.transformer.parameters())
    adapters = sum(p.numel() for n, p in bb.named_parameters() if not n.startswith("transformer."))
    # independent count of the adapter shapes: proj_in, cond tokens/norm/projections, loops, proj_out
    inner, layers, loops, temb = 16, 2, 2, TINY["time_embed_dim"]
    expected = sum(
        [
            D_MODEL * inner + inner + 2 * inner,  # proj_in
            4 * inner + D_MODEL * inner + inner + 2 * inner,  # cond tokens, cond_to_tokens, cond_norm
            temb + D_MODEL * temb + temb,  # temb_base, cond_to_temb
            2 * layers * loops * inner + layers * (loops - 1),  # loop embeddings, gates
            2 * inner + inner * D_MODEL + D_MODEL,  # proj_out
        ]
    )
    assert adapters == expected
    frac = bb.trainable_fraction()
    assert 0.0 < frac < 1.0
    assert frac == pytest.approx(expected / (expected + frozen))


def test_attention_mask_given_to_sdpa_matches_rule(tiny_path, monkeypatch):
    bb = make_backbone(tiny_path, n_cond_tokens=3)
    L, P, C = 3, 4, 3
    spatial = banded_mask(P)
    seen = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(q, k, v, attn_mask=None, **kw):
        seen.append(attn_mask)
        return real_sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(cv.F, "scaled_dot_product_attention", recording_sdpa)
    bb(torch.randn(1, L, P, D_MODEL), spatial_mask=spatial)
    assert len(seen) == 2 * 2  # layers x loops
    n = C + L * P
    expected = torch.ones(n, n, dtype=torch.bool)
    for t in range(L):
        for p in range(P):
            for s in range(L):
                for q in range(P):
                    expected[C + t * P + p, C + s * P + q] = (t == s and bool(spatial[p, q])) or p == q
    for mask in seen:
        assert mask is not None and torch.equal(mask, expected)
    assert torch.equal(build_attention_mask(spatial, L, C), expected)


@pytest.mark.parametrize("n_loops", [1, 2])
def test_spatial_mask_cuts_information_flow(tiny_path, n_loops):
    # with no conditioning tokens, nothing else can carry information between positions: position 0 (which
    # sees only itself, at every time step) must not depend on the other positions at all
    bb = make_backbone(tiny_path, n_loops=n_loops, n_cond_tokens=0)
    with torch.no_grad():
        bb.loop_gate.fill_(0.7)  # make the extra loops count
        bb.loop_emb_hidden.normal_()
    B, L, P = 2, 3, 4
    x = torch.randn(B, L, P, D_MODEL)
    y = x.clone()
    y[:, :, 1:] += torch.randn(B, L, P - 1, D_MODEL)
    cond = torch.randn(B, D_MODEL)
    mask = banded_mask(P)
    with torch.no_grad():
        ox, oy = bb(x, mask, cond), bb(y, mask, cond)
        fx, fy = bb(x, torch.ones(P, P, dtype=torch.bool), cond), bb(y, torch.ones(P, P, dtype=torch.bool), cond)
    torch.testing.assert_close(ox[:, :, 0], oy[:, :, 0], rtol=0, atol=1e-6)
    assert (ox[:, :, 1] - oy[:, :, 1]).abs().max() > 1e-3  # the perturbation is visible elsewhere
    assert (fx[:, :, 0] - fy[:, :, 0]).abs().max() > 1e-3  # and reaches position 0 when the mask allows it


def test_initial_extra_loops_are_identity(tiny_path):
    one = make_backbone(tiny_path, n_loops=1, seed=5)
    three = make_backbone(tiny_path, n_loops=3, seed=5)
    sd = {k: v for k, v in one.trainable_state_dict().items() if not k.startswith("loop_")}
    with torch.no_grad():
        for name, p in three.trainable_named_parameters():
            if name in sd:
                p.copy_(sd[name])
    x = torch.randn(2, 2, 3, D_MODEL)
    with torch.no_grad():
        torch.testing.assert_close(three(x), one(x))


def test_trainable_state_dict_round_trip(tiny_path):
    a = make_backbone(tiny_path, seed=1)
    with torch.no_grad():
        for _, p in a.trainable_named_parameters():
            p.add_(0.1 * torch.randn_like(p))
    b = make_backbone(tiny_path, seed=2)
    x, cond, mask = torch.randn(2, 2, 3, D_MODEL), torch.randn(2, D_MODEL), banded_mask(3)
    sd = a.trainable_state_dict()
    assert sd and not any(k.startswith("transformer.") for k in sd)
    with torch.no_grad():
        assert not torch.allclose(a(x, mask, cond), b(x, mask, cond))
        b.load_trainable_state_dict(sd)
        assert torch.equal(a(x, mask, cond), b(x, mask, cond))
    with pytest.raises(KeyError, match="missing"):
        b.load_trainable_state_dict({k: v for k, v in sd.items() if k != "loop_gate"})


def test_config_dict_rebuilds(tiny_path):
    a = make_backbone(tiny_path, n_loops=3, n_cond_tokens=2)
    cfg = a.config_dict()
    assert cfg["model_id_or_path"] == str(tiny_path) and cfg["d_model"] == D_MODEL and cfg["n_loops"] == 3
    b = CogVideoXBackbone.from_config_dict(cfg)
    b.load_trainable_state_dict(a.trainable_state_dict())
    x = torch.randn(1, 2, 3, D_MODEL)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_gradient_checkpointing_matches(tiny_path):
    plain = make_backbone(tiny_path, seed=4)
    ckpt = make_backbone(tiny_path, seed=4, gradient_checkpointing=True)
    x, mask = torch.randn(2, 2, 3, D_MODEL), banded_mask(3)
    plain(x, mask).square().sum().backward()
    ckpt(x, mask).square().sum().backward()
    for (name, p), (_, q) in zip(plain.trainable_named_parameters(), ckpt.trainable_named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_bf16_blocks_keep_float32_adapters(tiny_path):
    bb = make_backbone(tiny_path, torch_dtype="bfloat16")
    assert bb.block_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for _, p in bb.trainable_named_parameters())
    out = bb(torch.randn(1, 2, 3, D_MODEL), banded_mask(3), torch.randn(1, D_MODEL))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert bb.config_dict()["torch_dtype"] == "bfloat16"


def test_missing_model_names_the_path(tmp_path):
    empty = tmp_path / "no_model_here"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no_model_here"):
        CogVideoXBackbone.from_pretrained(str(empty), d_model=D_MODEL)
    with pytest.raises(OSError, match="does_not_exist"):
        CogVideoXBackbone.from_pretrained(str(tmp_path / "does_not_exist"), d_model=D_MODEL)
