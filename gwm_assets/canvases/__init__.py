"""Point-in-time canvases, one ``canvas/<node>`` asset per curriculum node (group ``canvases``).

Owns: ``build`` (observations of a node's projection read as of their publication, built into a canvas
with ``gwm_model.canvas``, saved as safetensors + manifest, the ``canvases`` table) and ``assets``.

May import: ``observations``, ``warehouse``, ``resources``, ``automation`` and ``gwm_model``.
"""
