"""docomplete's model tier: the Backend seam (light) and the engine, server and training (heavy)."""
