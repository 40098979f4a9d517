"""Reports of a run, all rendered from :class:`conformance.runner.ScriptResult` values: the FHIR
TestReport resource, JUnit XML for CI systems and a self-contained HTML page for people."""
