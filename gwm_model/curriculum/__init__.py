"""The training curriculum: a DAG of nodes, each a projection of the world with its parents."""

from gwm_model.curriculum.spec import (
    STANDARD_CURRICULUM,
    CanvasSettings,
    Curriculum,
    CurriculumError,
    CurriculumNode,
    load_curriculum,
)

__all__ = ["STANDARD_CURRICULUM", "CanvasSettings", "Curriculum", "CurriculumError", "CurriculumNode",
           "load_curriculum"]
