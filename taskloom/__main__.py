"""`python -m taskloom` is the `taskloom` command."""

from taskloom.cli import main

if __name__ == "__main__":
    main()
