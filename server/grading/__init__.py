"""Data grading (分类分级, GB/T 39725-2020) and masking (脱敏), issue 14 §3: pure functions over a policy
file. :mod:`.policy` reads the policy, :mod:`.grade` grades and stamps a resource, :mod:`.mask` masks
what is above a reader's clearance (:mod:`.clearance`), :mod:`.body` applies it to response bodies."""
