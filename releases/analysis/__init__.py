"""Judging slices: per-minute statistics of every (channel, release, slice), the comparison of
a canary with its stable, feedback, shadow agreement and the progressive rollout's state."""
