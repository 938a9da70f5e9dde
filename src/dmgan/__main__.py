import sys

from dmgan.cli import main

sys.exit(main())
