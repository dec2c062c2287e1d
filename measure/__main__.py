import sys

from measure.tools.cli import main

sys.exit(main())
