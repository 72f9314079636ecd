from umt.cli import main

raise SystemExit(main())
