"""`python -m registrum.cli`: the `registrum` command without its installed script."""

from registrum.cli import main

raise SystemExit(main())
