"""The oracle stage: exact squared Wasserstein-2 distances (the ground truth).

Its public face, for plugins that need exact distances (the ``exact-lp`` reference, a
method's own tools): the names of :mod:`wbench.oracle.solve` (its ``__all__``), re-exported
here. The LP of one pair is in :mod:`wbench.oracle.lp`, support tables in
:mod:`wbench.oracle.supports`, the verified cache in :mod:`wbench.oracle.cache`, a dataset's
ground truth in :mod:`wbench.oracle.groundtruth` and the blocks metrics ask for in
:mod:`wbench.oracle.exact_blocks`.
"""

from __future__ import annotations

from wbench.oracle.solve import *  # noqa: F403 (the public names, listed once in solve.__all__)
from wbench.oracle.solve import __all__  # noqa: F401
