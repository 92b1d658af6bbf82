"""The ``clipedit`` command: submit, watch and manage edits on a deployed stack or the local stack."""
