import sys

from hpctool.cli import main

sys.exit(main())
