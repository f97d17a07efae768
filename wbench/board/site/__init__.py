"""A static website of published runs: ``wbench site results/ --out DIR``.

Modules: :mod:`~wbench.board.site.source` (the one adapter reading records),
:mod:`~wbench.board.site.html` (page shell, tables), :mod:`~wbench.board.site.tables`,
:mod:`~wbench.board.site.figures` (the charts drawn from records), :mod:`~wbench.board.site.charts`
(Plotly figure JSON), :mod:`~wbench.board.site.pages`, :mod:`~wbench.board.site.assets`,
:mod:`~wbench.board.site.build` and :mod:`~wbench.board.site.standalone` (``wbench leaderboard
--format html``).
"""

from wbench.board.site.build import build_site

__all__ = ["build_site"]
