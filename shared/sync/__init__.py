"""Keeping the local picture of every tenant true: sync policies, runs and the sync steps."""
