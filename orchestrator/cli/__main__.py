"""``python -m orchestrator.cli``: the same as the ``mixserve`` command."""

from orchestrator.cli.main import main

if __name__ == "__main__":
    main()
