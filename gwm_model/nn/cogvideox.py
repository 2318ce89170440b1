"""A frozen, pretrained CogVideoX transformer as the backbone of the world model.

:class:`CogVideoXBackbone` runs the transformer blocks of a diffusers ``CogVideoXTransformer3DModel`` on canvas
tokens. The pretrained weights stay frozen; only small adapters around them and the loop parameters are trained.

What runs, and what does not
----------------------------
The VAE, the patch embedding (with its text projection and positional embedding), the time-step embedding, the
final norms and the output projection of the transformer are **not** used: they stay inside the registered
submodule (so ``.to(device)`` and ``state_dict()`` see the whole model) but are never called. Positions and time
steps must therefore already be encoded in the canvas tokens by the caller. Rotary embeddings (CogVideoX-5b) are
not applied either, for the same reason: a canvas position is not a pixel patch.

Data flow of :meth:`CogVideoXBackbone.forward`, with ``N_c`` conditioning tokens and ``D`` the transformer width:

1. **hidden stream**: tokens ``(B, L, P, d_model)`` -> ``(B, L*P, d_model)`` -> ``proj_in`` (Linear + LayerNorm)
   -> ``(B, L*P, D)``;
2. **encoder stream** (the place of the text tokens): ``N_c`` learned tokens, plus ``cond_to_tokens(cond)`` added
   to each when ``cond`` is given, through a LayerNorm -> ``(B, N_c, D)``. ``N_c = 0`` is allowed (no encoder
   stream; ``cond`` then reaches the blocks only through ``temb``);
3. **temb** (what the blocks' adaptive norms are modulated by): ``temb_base + cond_to_temb(cond)`` (just
   ``temb_base`` when ``cond`` is None). ``temb_base`` is initialised to the frozen time embedding of
   ``reference_timestep`` so the blocks start on an input they were trained on; ``cond_to_temb`` starts at zero;
4. **looped blocks**: every frozen block ``i`` is applied ``n_loops`` times in a row. Application ``k`` sees the
   streams plus its own embeddings ``loop_emb_hidden[i, k]`` / ``loop_emb_encoder[i, k]`` and contributes its
   update (block output minus block input) scaled by a gate: ``g = 1`` for ``k = 0`` and ``g = loop_gate[i, k-1]``
   for ``k >= 1``::

       x_in = x + emb[i, k];    x = x + g * (block_i(x_in) - x_in)      (x = both streams)

5. ``proj_out`` (LayerNorm + Linear) maps the hidden stream back to ``(B, L, P, d_model)``.

**At initialisation** all loop embeddings and gates are zero. Application ``k = 0`` is then exactly the pretrained
block on the stream, and every later application adds ``0 * update``: the backbone computes
``proj_out(pretrained_blocks(proj_in(tokens)))`` (with the masked attention below), each block once. The gates get
gradients from the start (``d loss / d g = <update, d loss / d x>``), so training can switch extra loops on; the
embeddings of loops ``k >= 1`` receive gradients once their gate is non-zero.

Connectivity
------------
:class:`MaskedCogVideoXAttnProcessor` replaces the blocks' attention processors. It computes the same attention
as diffusers' CogVideoX processor (joint attention over ``[encoder; hidden]`` with the query/key LayerNorms) but
with a boolean mask from :func:`build_attention_mask`: a video token ``(t, p)`` sees ``(t, q)`` where
``spatial_mask[p, q]``, and ``(s, p)`` at every step ``s``; everyone sees the conditioning tokens and they see
everyone. ``spatial_mask=None`` means an all-True spatial mask (not full 3-D attention), as in the other backbones.

Precision: the frozen blocks run in the transformer's dtype (e.g. bf16 on CUDA); adapters, loop parameters and
the residual streams stay float32 and are cast at each block call. Move the backbone with ``.to(device)`` only:
``.to(dtype)`` would cast the trainable parameters too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

TRANSFORMER_PREFIX = "transformer."


def build_attention_mask(spatial_mask: Tensor, n_steps: int, n_cond: int) -> Tensor:
    """The ``(N, N)`` boolean attention mask over ``[conditioning tokens; video tokens]``, ``N = n_cond + L*P``.

    Video token ``t * P + p`` may attend to ``s * P + q`` iff (``s == t`` and ``spatial_mask[p, q]``) or ``q == p``.
    Rows and columns of the conditioning tokens are all True. Built by broadcasting, without Python loops.
    """
    if spatial_mask.dtype != torch.bool or spatial_mask.dim() != 2 or spatial_mask.shape[0] != spatial_mask.shape[1]:
        raise ValueError(
            f"spatial_mask must be a square bool matrix, got {spatial_mask.dtype} {tuple(spatial_mask.shape)}"
        )
    P, device = spatial_mask.shape[0], spatial_mask.device
    same_step = torch.eye(n_steps, dtype=torch.bool, device=device)[:, None, :, None]  # (L, 1, L, 1)
    same_pos = torch.eye(P, dtype=torch.bool, device=device)[None, :, None, :]  # (1, P, 1, P)
    video = (same_step & spatial_mask[None, :, None, :]) | same_pos  # (L, P, L, P)
    n = n_cond + n_steps * P
    mask = torch.ones(n, n, dtype=torch.bool, device=device)
    mask[n_cond:, n_cond:] = video.reshape(n_steps * P, n_steps * P)
    return mask


class MaskedCogVideoXAttnProcessor:
    """Attention processor for the ``attn1`` of a ``CogVideoXBlock`` that honours a boolean attention mask.

    It has the diffusers processor call signature. ``attention_mask`` (``(N, N)`` or broadcastable to
    ``(B, heads, N, N)``, True = may attend) goes straight to ``F.scaled_dot_product_attention``; None means full
    attention. Returns ``(hidden_states, encoder_hidden_states)`` as the block expects.
    """

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        image_rotary_emb: Any = None,
    ) -> tuple[Tensor, Tensor]:
        if image_rotary_emb is not None:
            raise ValueError(
                "MaskedCogVideoXAttnProcessor does not apply rotary embeddings; encode positions in the tokens"
            )
        n_text = encoder_hidden_states.shape[1]
        x = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch, n, _ = x.shape
        if attention_mask is not None:
            if attention_mask.dtype != torch.bool or attention_mask.shape[-2:] != (n, n):
                raise ValueError(
                    f"attention_mask must be bool with trailing shape ({n}, {n}), "
                    f"got {attention_mask.dtype} {tuple(attention_mask.shape)}"
                )
        heads = attn.heads

        def split_heads(t: Tensor) -> Tensor:
            return t.view(batch, n, heads, t.shape[-1] // heads).transpose(1, 2)

        query, key, value = split_heads(attn.to_q(x)), split_heads(attn.to_k(x)), split_heads(attn.to_v(x))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0)
        out = out.transpose(1, 2).reshape(batch, n, -1)
        out = attn.to_out[1](attn.to_out[0](out))  # output projection, then (inactive) dropout
        return out[:, n_text:], out[:, :n_text]


class CogVideoXBackbone(nn.Module):
    """A frozen pretrained CogVideoX transformer with trainable adapters and loops (see the module docstring).

    Args:
        transformer: a ``diffusers.CogVideoXTransformer3DModel``. It is frozen, kept in eval mode and its
            attention processors are replaced in place.
        d_model: token width of the rest of the world model.
        n_loops: how many times each frozen block is applied (>= 1).
        n_cond_tokens: learned conditioning tokens in the encoder stream (>= 0).
        reference_timestep: the diffusion step whose frozen time embedding initialises ``temb_base``.
        gradient_checkpointing: recompute the frozen blocks in the backward pass (saves activation memory).
        source: where the transformer came from (``model_id_or_path``, ``subfolder``, ``torch_dtype``), recorded
            for :meth:`config_dict`; filled in by :meth:`from_pretrained`.
    """

    def __init__(
        self,
        transformer: nn.Module,
        d_model: int,
        n_loops: int = 2,
        n_cond_tokens: int = 4,
        reference_timestep: float = 500.0,
        gradient_checkpointing: bool = False,
        source: dict[str, Any] | None = None,
    ):
        super().__init__()
        blocks = getattr(transformer, "transformer_blocks", None)
        config = getattr(transformer, "config", None)
        if blocks is None or config is None or not hasattr(config, "time_embed_dim"):
            raise TypeError(f"expected a diffusers CogVideoXTransformer3DModel, got {type(transformer).__name__}")
        if n_loops < 1 or n_cond_tokens < 0 or d_model < 1:
            raise ValueError(
                f"need n_loops >= 1, n_cond_tokens >= 0, d_model >= 1; got {n_loops}, {n_cond_tokens}, {d_model}"
            )
        self.d_model, self.n_loops, self.n_cond_tokens = d_model, n_loops, n_cond_tokens
        self.reference_timestep = float(reference_timestep)
        self.gradient_checkpointing = gradient_checkpointing
        self.source = dict(source or {})
        inner = config.num_attention_heads * config.attention_head_dim
        n_layers = len(blocks)
        self.inner_dim = inner

        self.transformer = transformer
        self.transformer.requires_grad_(False)
        self.transformer.eval()
        processor = MaskedCogVideoXAttnProcessor()
        for block in blocks:
            block.attn1.set_processor(processor)

        self.proj_in = nn.Sequential(nn.Linear(d_model, inner), nn.LayerNorm(inner))
        self.cond_tokens = nn.Parameter(torch.randn(n_cond_tokens, inner))
        self.cond_to_tokens = nn.Linear(d_model, inner)
        self.cond_norm = nn.LayerNorm(inner)
        self.temb_base = nn.Parameter(self._reference_temb())
        self.cond_to_temb = nn.Linear(d_model, config.time_embed_dim)
        nn.init.zeros_(self.cond_to_temb.weight)
        nn.init.zeros_(self.cond_to_temb.bias)
        self.loop_emb_hidden = nn.Parameter(torch.zeros(n_layers, n_loops, inner))
        self.loop_emb_encoder = nn.Parameter(torch.zeros(n_layers, n_loops, inner))
        self.loop_gate = nn.Parameter(torch.zeros(n_layers, n_loops - 1))
        self.proj_out = nn.Sequential(nn.LayerNorm(inner), nn.Linear(inner, d_model))

        device = next(transformer.parameters()).device
        for _, param in self.trainable_named_parameters():  # adapters follow the transformer's device, stay float32
            param.data = param.data.to(device)

    @torch.no_grad()
    def _reference_temb(self) -> Tensor:
        """The frozen time embedding of ``reference_timestep``, as a float32 vector on the CPU."""
        t = self.transformer
        param = next(t.time_embedding.parameters())
        steps = torch.tensor([self.reference_timestep], device=param.device)
        return t.time_embedding(t.time_proj(steps).to(param.dtype))[0].float().cpu()

    # ----------------------------------------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str,
        d_model: int,
        n_loops: int = 2,
        subfolder: str | None = None,
        torch_dtype: torch.dtype | str | None = None,
        load_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> CogVideoXBackbone:
        """Load the transformer with ``diffusers.CogVideoXTransformer3DModel.from_pretrained`` and wrap it.

        ``model_id_or_path`` is a hub id (``"THUDM/CogVideoX-2b"`` with ``subfolder="transformer"``; downloads on a
        networked machine) or a local directory written by ``save_pretrained``. ``torch_dtype`` (a dtype or its
        name, e.g. ``"bfloat16"``) is the dtype of the frozen weights. ``load_kwargs`` go to diffusers
        (``revision``, ``cache_dir``, ``local_files_only``, ...); other ``kwargs`` to the constructor.

        Raises FileNotFoundError naming the directory when a local path holds no model, and OSError naming the
        source when diffusers cannot load it.
        """
        from diffusers import CogVideoXTransformer3DModel

        dtype = getattr(torch, torch_dtype) if isinstance(torch_dtype, str) else torch_dtype
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise ValueError(f"torch_dtype must be a torch dtype or its name, got {torch_dtype!r}")
        local = Path(model_id_or_path).expanduser()
        if local.is_dir():
            where = local / subfolder if subfolder else local
            if not (where / "config.json").is_file():
                raise FileNotFoundError(
                    f"no CogVideoXTransformer3DModel in {where}: expected a config.json and weights written by "
                    "save_pretrained"
                    + ("" if subfolder else " (pass subfolder='transformer' for a pipeline directory)")
                )
        try:
            transformer = CogVideoXTransformer3DModel.from_pretrained(
                model_id_or_path, subfolder=subfolder, torch_dtype=dtype, **(load_kwargs or {})
            )
        except (OSError, ValueError) as err:
            raise OSError(
                f"could not load a CogVideoXTransformer3DModel from {model_id_or_path!r} "
                f"(subfolder={subfolder!r}): {err}"
            ) from err
        source = {
            "model_id_or_path": str(model_id_or_path),
            "subfolder": subfolder,
            "torch_dtype": None if dtype is None else str(dtype).removeprefix("torch."),
        }
        return cls(transformer, d_model=d_model, n_loops=n_loops, source=source, **kwargs)

    def config_dict(self) -> dict[str, Any]:
        """Everything :meth:`from_config_dict` needs to rebuild this backbone (JSON-serialisable).

        ``model_id_or_path`` is None when the backbone was built from a transformer instance, not a path.
        """
        return {
            "model_id_or_path": self.source.get("model_id_or_path"),
            "subfolder": self.source.get("subfolder"),
            "torch_dtype": self.source.get("torch_dtype"),
            "d_model": self.d_model,
            "n_loops": self.n_loops,
            "n_cond_tokens": self.n_cond_tokens,
            "reference_timestep": self.reference_timestep,
            "gradient_checkpointing": self.gradient_checkpointing,
        }

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], **overrides: Any) -> CogVideoXBackbone:
        """Rebuild from :meth:`config_dict` (fresh adapters: load them with :meth:`load_trainable_state_dict`)."""
        cfg = {**config, **overrides}
        if not cfg.get("model_id_or_path"):
            raise ValueError("config has no model_id_or_path (built from an instance?); construct it directly instead")
        path = cfg.pop("model_id_or_path")
        return cls.from_pretrained(path, **cfg)

    # -------------------------------------------------------------------------------------------------- training

    def train(self, mode: bool = True) -> CogVideoXBackbone:
        """Switch the adapters' mode; the frozen transformer always stays in eval mode."""
        super().train(mode)
        self.transformer.eval()
        return self

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The adapter and loop parameters: every parameter outside the frozen transformer."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(TRANSFORMER_PREFIX)]

    def trainable_fraction(self) -> float:
        """Parameters with ``requires_grad`` over all parameters (the whole transformer included, used or not)."""
        total = sum(p.numel() for p in self.parameters())
        return sum(p.numel() for p in self.parameters() if p.requires_grad) / total

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Detached copies of the trainable parameters only (the frozen weights come from the pretrained source)."""
        return {n: p.detach().clone() for n, p in self.trainable_named_parameters()}

    def load_trainable_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Load what :meth:`trainable_state_dict` returned; keys and shapes must match exactly."""
        params = dict(self.trainable_named_parameters())
        missing, unexpected = sorted(params.keys() - state_dict.keys()), sorted(state_dict.keys() - params.keys())
        if missing or unexpected:
            raise KeyError(f"trainable state dict does not match: missing {missing}, unexpected {unexpected}")
        for name, param in params.items():
            if tuple(state_dict[name].shape) != tuple(param.shape):
                raise ValueError(f"{name}: expected shape {tuple(param.shape)}, got {tuple(state_dict[name].shape)}")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state_dict[name])

    # --------------------------------------------------------------------------------------------------- forward

    @property
    def block_dtype(self) -> torch.dtype:
        """The dtype the frozen blocks run in."""
        return next(self.transformer.transformer_blocks.parameters()).dtype

    def _check_inputs(self, tokens: Tensor, spatial_mask: Tensor | None, cond: Tensor | None) -> None:
        if tokens.dim() != 4 or tokens.shape[-1] != self.d_model:
            raise ValueError(f"tokens must be (B, L, P, {self.d_model}), got {tuple(tokens.shape)}")
        P = tokens.shape[2]
        if spatial_mask is not None and (spatial_mask.dtype != torch.bool or tuple(spatial_mask.shape) != (P, P)):
            raise ValueError(
                f"spatial_mask must be bool ({P}, {P}), got {spatial_mask.dtype} {tuple(spatial_mask.shape)}"
            )
        if cond is not None and tuple(cond.shape) != (tokens.shape[0], self.d_model):
            raise ValueError(f"cond must be ({tokens.shape[0]}, {self.d_model}), got {tuple(cond.shape)}")

    def _block_update(
        self, block: nn.Module, h: Tensor, e: Tensor, temb: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One frozen block in its own dtype; returns (output - input) of both streams in the streams' dtype."""
        dtype = self.block_dtype
        hb, eb = h.to(dtype), e.to(dtype)
        ho, eo = block(hb, eb, temb.to(dtype), attention_kwargs={"attention_mask": mask})
        return ho.to(h.dtype) - hb.to(h.dtype), eo.to(e.dtype) - eb.to(e.dtype)

    def forward(self, tokens: Tensor, spatial_mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """``(B, L, P, d_model)`` tokens -> ``(B, L, P, d_model)``; see the module docstring for the data flow."""
        self._check_inputs(tokens, spatial_mask, cond)
        B, L, P, _ = tokens.shape
        wdtype = self.proj_in[0].weight.dtype
        h = self.proj_in(tokens.reshape(B, L * P, self.d_model).to(wdtype))
        enc = self.cond_tokens.unsqueeze(0).expand(B, -1, -1)
        temb = self.temb_base.unsqueeze(0).expand(B, -1)
        if cond is not None:
            cond = cond.to(wdtype)
            enc = enc + self.cond_to_tokens(cond).unsqueeze(1)
            temb = temb + self.cond_to_temb(cond)
        enc = self.cond_norm(enc)
        if spatial_mask is None:
            spatial_mask = torch.ones(P, P, dtype=torch.bool, device=tokens.device)
        mask = build_attention_mask(spatial_mask.to(tokens.device), L, self.n_cond_tokens)

        for i, block in enumerate(self.transformer.transformer_blocks):
            for k in range(self.n_loops):
                h_in, e_in = h + self.loop_emb_hidden[i, k], enc + self.loop_emb_encoder[i, k]
                if self.gradient_checkpointing and torch.is_grad_enabled():
                    dh, de = checkpoint(self._block_update, block, h_in, e_in, temb, mask, use_reentrant=False)
                else:
                    dh, de = self._block_update(block, h_in, e_in, temb, mask)
                if k == 0:
                    h, enc = h + dh, enc + de
                else:
                    gate = self.loop_gate[i, k - 1]
                    h, enc = h + gate * dh, enc + gate * de
        return self.proj_out(h).reshape(B, L, P, self.d_model)
