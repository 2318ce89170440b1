"""The curriculum as assets: ``train/trunk`` and one ``train/<node>`` per node (group ``training``).

Owns: ``assets`` (the factory over the curriculum spec), ``node_run`` (one node from files on disk:
prepare and fingerprint, then ``gwm_model``'s one pass; also how the asset runs it under torchrun),
``train_node_ddp`` (the torchrun entry point), ``core_share`` (threads per concurrent training process),
``checkpoint_table`` (the ``checkpoints`` table), ``plots`` (loss curves) and ``automation``
(``train_curriculum`` and the opt-in ``weekly_training`` schedule).

May import: ``canvases``, ``warehouse``, ``resources``, ``automation`` and ``gwm_model``. Training writes
files; only ``checkpoint_table`` touches the warehouse, after training.
"""
