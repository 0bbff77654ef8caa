"""Running golden sets through the gateway: eval runs (``runner``) and the drift watch
(``drift``). The records and the gate live in ``releases.evals``."""
