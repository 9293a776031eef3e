"""Sweeps and tuning: the tune sweeper's protocol and searches, and the vectorised launcher's engine."""
