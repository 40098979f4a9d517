"""FHIR interactions (http://hl7.org/fhir/R4/http.html), one module each, free of HTTP details:
each takes parsed inputs and the :class:`~server.interactions.services.Services`, and returns a
:class:`~server.interactions.result.Result` that ``server.http`` renders."""
