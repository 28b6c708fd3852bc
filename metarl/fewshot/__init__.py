"""The few-shot (supervised) layer: episodes, supervised family bases, class-indexed data
and episode sampling, losses, the shots-curve evaluation, agent bases, and networks.
Imports only :mod:`metarl.core`."""
