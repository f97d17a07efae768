"""Built-in plugin: the papers' claims (DeepKENN, DWE) and the "beats LOT" baseline claim as a
leaderboard section, contributed through ``wbench_leaderboard_sections`` like any
third-party section.

Light on purpose: the table code (:mod:`wbench_plugins.claims.table`) is imported only when a
leaderboard is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wbench import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from wbench.sections import Section, SectionContext

TITLE = "Paper claims under this budget"


@hookimpl
def wbench_leaderboard_sections(frame: pd.DataFrame, context: SectionContext) -> list[Section]:
    """The claims table, when at least one claim was measured (every verdict but "not measured")."""
    from wbench.sections import Section
    from wbench_plugins.claims.table import NOT_MEASURED, claims_table

    claims = claims_table(frame)
    if claims.empty or (claims["verdict"] == NOT_MEASURED).all():
        return []
    return [Section(TITLE, claims)]
