"""`python -m pixgate` runs the pixgate command line."""

from pixgate.cli import run

if __name__ == "__main__":
    run()
