"""`python -m ionctl` is the same as the `ionctl` command."""

from ionctl.cli import main

raise SystemExit(main())
