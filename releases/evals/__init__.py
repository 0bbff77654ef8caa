"""Golden sets, eval results, the eval gate on promotion and the drift record.

``EvalRegistry`` (``releases.evals.registry``) registers golden sets and records signed eval
results, gates and drift checks through the registry's compare-and-set commit; the gate itself
is checked inside each promotion's commit (``releases.evals.gate``).
"""
