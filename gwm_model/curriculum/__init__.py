"""The training curriculum: a DAG of nodes, each a projection of the world with its parents, the profiles
that give every node its hyperparameters, and :func:`build_curriculum` to design one for a goal; and
training it: the trunk, merging parents, the merge measures, one node's pass
(:func:`gwm_model.curriculum.node_training.train_node`) and the whole DAG in order.

May import :mod:`gwm_model.schema`, :mod:`gwm_model.canvas`, :mod:`gwm_model.nn`, :mod:`gwm_model.training`
and :mod:`gwm_model.evaluation` (a trained node is scored against the baselines); never
:mod:`gwm_model.inference`.
"""

from gwm_model.curriculum.dataset_profile import DatasetProfile
from gwm_model.curriculum.design import CurriculumDesign, build_curriculum
from gwm_model.curriculum.llm import AnthropicProvider, CurriculumProvider, LLMProviderError, OpenAIProvider
from gwm_model.curriculum.profiles import (
    BUILTIN_CPU_PROFILE,
    CurriculumError,
    EvaluationSettings,
    MergeSettings,
    NodeHyperparameters,
)
from gwm_model.curriculum.spec import (
    STANDARD_CURRICULUM,
    CanvasSettings,
    Curriculum,
    CurriculumNode,
    load_curriculum,
    load_curriculum_text,
)

__all__ = ["BUILTIN_CPU_PROFILE", "STANDARD_CURRICULUM", "AnthropicProvider", "CanvasSettings", "Curriculum",
           "CurriculumDesign", "CurriculumError", "CurriculumNode", "CurriculumProvider", "DatasetProfile",
           "EvaluationSettings", "LLMProviderError", "MergeSettings", "NodeHyperparameters", "OpenAIProvider",
           "build_curriculum", "load_curriculum", "load_curriculum_text"]
