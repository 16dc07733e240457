"""Evaluation of SR models: fixed, content-hashed test sets (:mod:`degkit.evaluate.sets`)."""
