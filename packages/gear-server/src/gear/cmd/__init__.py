"""Console entry points of gear-server (``geard``)."""
