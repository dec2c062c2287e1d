import sys

from measure.ops.cli import main

sys.exit(main())
