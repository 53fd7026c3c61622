"""Deep-learning segmentation of short-axis cine (and later LGE) stacks."""
