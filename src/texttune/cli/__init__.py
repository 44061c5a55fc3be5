"""The command line interface (``texttune``): parsing and printing only."""
