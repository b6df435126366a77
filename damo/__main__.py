import sys

from damo.cli import main

sys.exit(main())
