"""metarl's built-in task families; importing this package registers them all."""

from envs import bandit, cartpole, gridworld, nav2d, pendulum, tabular_mdp  # noqa: F401
