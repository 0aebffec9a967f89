from fleetserve.cli import main

raise SystemExit(main())
