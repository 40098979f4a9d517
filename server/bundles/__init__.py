"""Batch and transaction Bundles at the base URL (http://hl7.org/fhir/R4/http.html#transaction)."""
