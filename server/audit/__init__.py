"""Audit (issue 14 §2): an AuditEvent for every request, durable before the response, stored in a
tamper-evident hash chain; ``yidang audit verify|prune|export``.

The token endpoints record authentication through ``request.app.state.audit`` (None when auditing is
off): ``await audit.authentication(success=..., principal=..., subject=..., address=..., description=...)``.
"""
