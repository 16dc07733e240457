"""Training loops for the models in :mod:`degkit.models`."""
