"""Teaching views of a model and a run: the autograd graph of one step (`trace`), training
curves and attention heat-maps (`plots`, matplotlib optional), attention maps and feature-map
distances between a teacher and a student (`attention`)."""
