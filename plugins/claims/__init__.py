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
EXTENSIONS_TITLE = "Paper claims on other datasets (extensions: the papers' numbers are for MNIST, no verdict)"


@hookimpl
def wbench_leaderboard_sections(frame: pd.DataFrame, context: SectionContext) -> list[Section]:
    """The error against the number of exact labels (records of at least two ``budget.train_pairs``:
    :mod:`wbench_plugins.claims.labels`), the claims table, when at least one claim was measured
    (every verdict but "not measured"; the claims none of whose methods the run has are left
    out), then the papers' claims computed on other datasets than the paper's, without verdicts."""
    import pandas as pd

    from wbench.sections import Section
    from wbench_plugins.claims.labels import TITLE as LABELS_TITLE
    from wbench_plugins.claims.labels import labels_table, rg_claim
    from wbench_plugins.claims.table import (
        CLAIM_COLUMNS,
        EXTENSION,
        MISSING,
        NOT_MEASURED,
        SIGNIFICANCE_RULE,
        claims_table,
    )

    labels = labels_table(frame)
    sections = [Section(LABELS_TITLE, labels)] if not labels.empty else []
    claims = claims_table(frame, measured_only=True)
    rg = rg_claim(frame)
    if rg is not None and not rg.get(MISSING):  # the RG paper's claim, decided by a label-efficiency run
        claims = pd.concat([claims, pd.DataFrame([rg], columns=CLAIM_COLUMNS)], ignore_index=True)
    if claims.empty:
        return sections
    extension = claims["verdict"] == EXTENSION
    checked = claims[~extension].reset_index(drop=True)
    if not checked.empty and not (checked["verdict"] == NOT_MEASURED).all():
        sections.append(Section(TITLE, checked, note=SIGNIFICANCE_RULE[0].upper() + SIGNIFICANCE_RULE[1:] + "."))
    if extension.any():
        sections.append(Section(EXTENSIONS_TITLE, claims[extension].drop(columns=["verdict"]).reset_index(drop=True)))
    return sections
