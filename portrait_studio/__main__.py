from portrait_studio.cli import main

raise SystemExit(main())
