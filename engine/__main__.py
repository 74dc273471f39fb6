"""`python -m pixgate` runs the pixgate command line."""

from pixgate.cli import main

if __name__ == "__main__":
    main()
