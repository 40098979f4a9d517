"""Consent (issue 14 §1): the patient-privacy Consents of residents, honoured by the policy decision
point for every access to another institution's data about a person.

- :mod:`server.consent.purpose`: the v3 PurposeOfUse codes a request may declare (pure).
- :mod:`server.consent.evaluate`: one access decided against a patient's Consents (pure).
- :mod:`server.consent.load`: the Consents one request needs, fetched once from the store and handed
  to the grant (:meth:`server.access.policy.RestrictedGrant.with_consent`).
"""
