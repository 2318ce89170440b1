"""How runs start, for every folder: the declarative conditions assets carry and the policy switches.

Owns: ``conditions`` (what follows a source materialized by hand, and the ``follow_sources`` sensor that
evaluates them) and ``policy`` (run tags, ``GWM_AUTOMATION``, the in-flight run check, the ``training``
group selection). The concrete jobs, schedules and sensors live with what they start:
``sources/automation.py`` (refresh jobs, cadence schedules, EDGAR and stale-source sensors) and
``training/automation.py`` (``train_curriculum``, ``weekly_training``).

May import: Dagster only; the asset folders import this one, never the reverse.
"""
