"""`python -m experiments.benchmark`: every bench, its claims and the peer section."""
from experiments.benchmark import main

if __name__ == "__main__":
    main()
