"""Yidang (一档): an HL7 FHIR R4 server for regional health-information platforms.

Public surface: :func:`create_app` and :class:`Settings`.
"""

__version__ = "0.1.0"
