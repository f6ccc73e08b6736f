from lego_core.cli import main

raise SystemExit(main())
