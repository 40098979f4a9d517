"""Mutual recognition of results (检查检验结果互认, issue 15 §2–§3) and the cross-institution look-up
(调阅) it serves.

- :mod:`.model`: the catalogue items and institution qualifications as FHIR resources, and the URLs
  of the extensions and codes (pure).
- :mod:`.status`: a DiagnosticReport's recognition status as of a time (pure rules).
- :mod:`.csvrows`: the import CSV files read into items and qualifications, bad rows with reasons (pure).
- :mod:`.reference`: the catalogue and qualifications a look-up needs, and the import's writes.
- :mod:`.linked`: the Patients of one person across institutions (Person links, strong identifiers).
- :mod:`.decisions`: recognised / repeated decisions, recorded with who and when.
- :mod:`.stats`: look-ups, persons, results shown, recognitions and repeats, from the audit trail
  and the decisions.
"""
