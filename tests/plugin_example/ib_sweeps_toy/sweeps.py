"""The sweeps of ``toy_linear``, registered with ib-sweeps' registry (the slice's ``sweeps`` names this module)."""

from search_spaces import register_sweep
from search_spaces.spec import SweepSpec

register_sweep(
    SweepSpec(
        name="toy_digits",
        description="toy_linear on scikit-learn's 8x8 digits: two betas, two epochs (an example plugin).",
        paper="none: an example objective from another package (tests/plugin_example)",
        objective="toy_linear",
        dataset="digits",
        epochs=2,
        config={"batch_size": 128, "lr": 0.01},
        grid={"beta": (0.01, 1.0)},
        smoke={"epochs": 2},
        smoke_grid={"beta": (0.01, 1.0)},
    )
)
