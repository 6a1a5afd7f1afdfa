from parascale_tools.cli import main

raise SystemExit(main())
