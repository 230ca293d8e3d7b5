"""`python -m artifactstore`: the same command line as the `artifactstore` console script."""

from artifactstore.cli import main

if __name__ == "__main__":
    main()
