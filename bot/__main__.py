from bot.main.cli import main

raise SystemExit(main())
