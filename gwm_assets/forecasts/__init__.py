"""Forecasts as a product: the ``forecasts`` asset (group ``training``) and ``gwm predict``'s back end.

Owns: ``table`` (the ``forecasts`` and ``forecast_history`` tables and their transactional writes),
``build`` (one node's live and backtest forecasts from its checkpoint and the warehouse), ``predict``
(choosing a node and forecasting on demand for the command line), ``plots`` (history, forecast band and
naive forecast) and ``assets``.

May import: ``training``, ``canvases``, ``warehouse``, ``resources`` and ``gwm_model``.
"""
