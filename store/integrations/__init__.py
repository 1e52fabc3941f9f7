"""Ways real and simulated agents get into the store, all through the public ``store`` API."""
