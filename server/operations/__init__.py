"""FHIR operations (``$name``, http://hl7.org/fhir/R4/operations.html): the registry and one module
per operation. An operation module declares an :class:`~server.operations.registry.Operation` and
``server/operations/registry.py`` lists it; routes, the CapabilityStatement and the Parameters
handling come from that one table."""
