"""Datasets, patient-wise splits, augmentation, training loop and metrics. Never imports Qt."""
