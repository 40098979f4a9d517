"""FHIR JSON helpers with no I/O: parsing, instants, ids, references, summaries."""
