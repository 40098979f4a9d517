"""The master patient index (issue 15 §1): one person, one identity across institutions.

- :mod:`.keys` (pure): the strong identifiers (居民身份证号 with a valid GB 11643 check character,
  居民健康卡号) and the link assurance rule.
- :mod:`.score` (pure): ``Patient/$match`` scoring and grades.
- :mod:`.linking`: the platform's ``Person`` records, kept in step with every Patient write by a
  commit listener (race-safe through the store's session locks on the identifier keys).
- :mod:`.match`: candidate look-up (indexed searches through the caller's grant) and ranking.
- :mod:`.merge`: ``Patient/$merge`` and ``Patient/$unmerge`` in one write session, with a Provenance.
"""
