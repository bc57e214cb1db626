"""The `tinybert` command line: a click group whose subcommands each live in a small module."""
