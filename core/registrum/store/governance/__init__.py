"""Governance: access, the audit trail, lineage, promotion approvals, gates and webhooks."""
