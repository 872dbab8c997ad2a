"""One module per benchmark; each draws its raw tree and registers itself."""
