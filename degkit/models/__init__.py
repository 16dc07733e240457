"""Models trained on degkit datasets: the degradation adaptor and a level regressor."""
