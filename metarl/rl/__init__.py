"""The RL layer: family bases and their environments, the trial collector, action
distributions, returns and advantages, policy-gradient losses, TRPO, and trial agents.
Imports only :mod:`metarl.core`."""
