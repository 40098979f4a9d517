"""The bulk job kinds (:mod:`.export`, :mod:`.imports`) and their status (:mod:`.status`): a layer
above :mod:`server.jobs` (they run on its runner), below the operations that start them."""
