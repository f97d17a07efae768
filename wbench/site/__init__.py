"""A static website of published runs: ``wbench site results/ --out DIR``.

Modules: :mod:`~wbench.site.source` (the one adapter reading records),
:mod:`~wbench.site.html` (page shell, tables), :mod:`~wbench.site.tables`,
:mod:`~wbench.site.figures` (the charts drawn from records), :mod:`~wbench.site.charts`
(Plotly figure JSON), :mod:`~wbench.site.pages`, :mod:`~wbench.site.assets`,
:mod:`~wbench.site.build` and :mod:`~wbench.site.standalone` (``wbench leaderboard
--format html``).
"""

from wbench.site.build import build_site

__all__ = ["build_site"]
