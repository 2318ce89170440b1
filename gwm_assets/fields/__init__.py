"""The world schema in the warehouse: table ``fields`` (``table``) and the asset that writes it (``assets``).

May import: ``warehouse``, ``resources`` and ``gwm_model``.
"""
