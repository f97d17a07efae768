"""A third-party wbench plugin (entry point ``example`` in the group ``wbench``).

Keep this module light: it only registers a ``"module:Class"`` string; wbench imports
``wbench_example.model`` when the surrogate is first used.
"""

from wbench import hookimpl


@hookimpl
def wbench_register_surrogates(registry):
    registry.add_surrogate(
        "moments-mlp",
        "wbench_example.model:MomentsSurrogate",
        description="MLP on the mean and covariance of each measure (example plugin)",
        test_params={"hidden": 8},
    )
