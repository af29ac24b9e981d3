"""``python -m dragedit`` = the ``dragedit`` command."""
import sys

from .cli import main

sys.exit(main())
