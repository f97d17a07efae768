"""Running a suite: suite files and their checks, the runner and its lock, one cell (fit,
evaluate, time, record), its milestones and plots, cluster tasks, and the re-timing pass."""
