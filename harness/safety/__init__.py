"""The safety layers: the one ownership gate every delete passes (``guards``), protected-target
enforcement (``protect``), preflight identity checks (``preflight``) and redaction (``redact``).
"""
