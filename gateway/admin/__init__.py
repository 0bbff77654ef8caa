"""The control plane: operator, auditor and admin endpoints under ``/admin``."""
