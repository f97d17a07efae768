"""Small helpers every stage may use: atomic file writes, file names derived from labels, progress bars."""
