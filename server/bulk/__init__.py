"""FHIR Bulk Data Access (IG 2.0, http://hl7.org/fhir/uv/bulkdata/) ``$export`` and ``$import``
(issue 16 §2), as background jobs on the job runner (:mod:`server.jobs.runner`).

- :mod:`.request`: the kick-off's parameters, checked and persisted with the requesting Principal.
- :mod:`.files`: the job's directory of NDJSON files (optionally gzip, one member per page, so a
  resumed job truncates to its last saved offset and appends), and reading them back.
- :mod:`.export`: the export job: keyset pages of the store, restricted by the caller's grant
  (rebuilt from the Policy when the job runs), masked, subset, written.
- :mod:`.imports`: the import job: NDJSON lines upserted through the ordinary write path.
- :mod:`.status`: status, manifest, cancel, download and expiry for the HTTP layer.

Layering: the operations (:mod:`server.operations.bulk`) and HTTP routes (:mod:`server.http.bulk`)
call in here; this package uses jobs, interactions, access, grading, search and stores, never HTTP.
"""
