"""Evaluation of SR models: fixed, content-hashed test sets (:mod:`degkit.evaluate.sets`),
SR model adapters (:mod:`degkit.evaluate.models`), resumable scoring
(:mod:`degkit.evaluate.run`) and leaderboards (:mod:`degkit.evaluate.leaderboard`)."""
