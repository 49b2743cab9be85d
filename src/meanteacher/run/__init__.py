"""Running an experiment: the configuration made into a training step, the training loop, and the run directory.

``run.train`` (the loop) uses ``run.setup`` (device, model, optimizer, method), ``data.feed`` (the
training data), ``run.evaluation``, ``run.rundir`` (files) and ``run.progress``.
"""
