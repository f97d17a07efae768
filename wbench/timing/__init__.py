"""The timing stage: interleaved timing rounds, the cost model (e, c, o), fair speed-up
denominators against the exact LP, the roofline, and the one-command GPU run."""
