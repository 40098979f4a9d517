"""Who may do what: the principal a request acts as, SMART scopes, and the one policy decision
point that turns them into a :class:`~server.access.grant.Grant` compiled into every query and write."""
