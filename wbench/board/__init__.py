"""Boards: leaderboards computed from records (summaries, significance, learning curves,
plots, the re-timed overlay, the command's report) and the static website (:mod:`wbench.board.site`)."""
