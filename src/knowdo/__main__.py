"""``python -m knowdo`` runs the command-line interface."""

from knowdo.cli import main

if __name__ == "__main__":
    main()
