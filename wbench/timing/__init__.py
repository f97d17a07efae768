"""The timing stage: interleaved timing rounds, the cost model (e, c, o) of a method, its
throughput step functions, the roofline, and the one-command GPU run. A run's timing pass
(:mod:`wbench.run.timing_pass`) is built on them."""
