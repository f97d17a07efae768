"""The training stage: the shared loop, budget milestones and their checkpoints, the fit
report, frozen inference graphs and parameter sizing (public face: :mod:`wbench.training`)."""
