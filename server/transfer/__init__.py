"""Record transfer between districts (档案转迁, issue 16 §1) and data return to districts (数据回流, §3).

- :mod:`.record`: ``Patient/{id}/$transfer`` — one write session that moves a resident's record to
  another managing organization (Patient, EpisodeOfCares, 健康档案编号, Provenance), optionally
  completing the ``transfer-record`` Task that asked for it.
- :mod:`.history`: ``Patient/{id}/$transfer-history`` from the transfer Provenances.
- :mod:`.datareturn`: ``Task/{id}/$data-return`` — the export of an approved ``data-return`` Task.
- :mod:`.operations`: the operation handlers (registered in :mod:`server.operations.table`).

Who may do what (the workflow Tasks' status transitions included) is decided by the policy decision
point, in its transfer rules (:mod:`server.access.transfer`).
"""
