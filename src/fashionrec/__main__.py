"""Allow ``python -m fashionrec``."""

from fashionrec.cli import main

raise SystemExit(main())
