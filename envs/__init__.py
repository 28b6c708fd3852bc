"""metarl's built-in task families; importing this package registers them all."""

from envs import bandit  # noqa: F401
