"""`python -m processor` runs the same CLI as `attendance-processor`."""

from processor.cli import main

raise SystemExit(main())
