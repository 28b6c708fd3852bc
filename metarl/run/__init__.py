"""Run plumbing: run and evaluation configs, flags and config files, run directories and
checkpoints, TensorBoard logging and evaluation files, and the training loop. Imports only
:mod:`metarl.core`: it drives agents through the protocol in :mod:`metarl.core.agent`."""
