"""docomplete's evalkit: HumanEval pass@k on the same backend, and the shared sandbox."""
