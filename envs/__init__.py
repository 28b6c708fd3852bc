"""metarl's built-in task families; importing this package registers them all."""

# Optional extras ([mujoco], [metaworld]): these modules import without their dependency
# and register their families only when it is installed.
from envs import (  # noqa: F401  # noqa: F401
    bandit,
    cartpole,
    gridworld,
    metaworld_families,
    mujoco_locomotion,
    nav2d,
    omniglot,  # noqa: F401
    pendulum,
    sinusoid,  # noqa: F401
    tabular_mdp,
)
