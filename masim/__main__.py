import sys

from masim.cli import main

sys.exit(main())
