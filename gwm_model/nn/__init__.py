"""The world model's networks: field identity from text, token geometry, encoders/decoders, backbones.

May import :mod:`gwm_model.schema` and :mod:`gwm_model.canvas` only.

- :mod:`gwm_model.nn.field_text`: MiniLM embeddings of field descriptions, cached by schema hash;
- :mod:`gwm_model.nn.geometry`: which canvas positions become tokens and who attends to whom;
- :mod:`gwm_model.nn.fields`: ``FieldEncoder`` / ``FieldDecoder``;
- :mod:`gwm_model.nn.looped`: the looped space/time transformer backbone;
- :mod:`gwm_model.nn.cogvideox`: a frozen pretrained diffusers CogVideoX transformer as backbone;
- :mod:`gwm_model.nn.model`: ``ModelConfig`` and ``WorldModelNet``; :mod:`gwm_model.nn.build` builds one
  for a canvas.
"""
