"""Background jobs (``$reindex`` now; bulk ``$export`` later): a runner owned by the application
lifespan (:mod:`.runner`), jobs persisted as FHIR ``Task`` resources in the store so they show
progress and survive a restart (:mod:`.tasks`), and one module per job kind (:mod:`.reindex`).

Layering: operations submit jobs; jobs use interactions, search and stores, never HTTP."""
