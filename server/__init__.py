"""docomplete's LSP server: docstring-conditioned, doctest-verified Python completions."""
