"""Sub-commands of the ``kantong`` CLI, one module each (see ``engine.cli.COMMANDS``)."""
