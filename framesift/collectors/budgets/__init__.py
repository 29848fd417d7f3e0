"""Budgets: the sliding-window limits and the batch cap a sampled datapoint must fit (`limits`), in memory or
shared by a fleet through Redis."""
