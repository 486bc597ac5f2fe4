"""``ravenctl``: the command line of the Raven training services."""
