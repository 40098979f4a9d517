"""Conformance testing: a TestScript runner pointed at any FHIR server (built by the conformance
issue; nothing here is claimed by the server or the CLI yet)."""
