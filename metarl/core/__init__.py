"""The core every other layer builds on: tasks and families, the registry, random streams,
the agent protocol, statistics, and the functional inner loop. It imports no other part of
metarl."""
