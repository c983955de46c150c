"""`python -m experiments`: the tour (see `experiments.framework.tour`)."""
import sys

from experiments.framework.tour import main

if __name__ == "__main__":
    sys.exit(main())
