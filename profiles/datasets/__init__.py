"""Local data sets (WS 363 data elements, WS 365/445 data sets) → FHIR R4 with data-quality control.

- :mod:`profiles.datasets.spec` reads the declarative maps in ``maps/`` (one YAML file per data set);
- :mod:`profiles.datasets.readers` reads CSV (UTF-8/GB18030), JSON and XML files;
- :mod:`profiles.datasets.convert` is the generic engine (QC, FHIR paths, one transaction per person);
- :mod:`profiles.datasets.qc` holds the quality rules, :mod:`profiles.datasets.report` the QC report;
- :mod:`profiles.datasets.run` runs a file and merges identifiers for the read-modify-write step;
- :mod:`profiles.datasets.export` reads stored resources back into data-set rows (数据回流).

See ``README.md`` in this folder for the map format and the identity/idempotency approach.
"""
