from aimo_submit.cli import main

raise SystemExit(main())
